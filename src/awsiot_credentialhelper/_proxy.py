"""Choose the HTTP proxy for an endpoint: an explicit URL, or HTTPS_PROXY unless NO_PROXY says.

``urllib.parse`` and ``ipaddress`` are imported only when there is a proxy to parse or a
NO_PROXY to match: a fetch without a proxy does not pay for them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from . import _environment as env
from .exceptions import ConfigurationError

__all__ = ["ProxySettings", "parse_proxy_url", "proxy_from_environment"]


class ProxySettings(NamedTuple):
    """An HTTP proxy reached with CONNECT; the password never shows in a ``repr``."""

    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"http://{user}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"ProxySettings({str(self)!r})"


def parse_proxy_url(url: str, *, source: str = "proxy=") -> ProxySettings:
    """Parse ``http://[user:password@]host[:port]``.

    Args:
        url: The proxy URL.
        source: Where it came from (the argument or the variable), for messages.

    Raises:
        ConfigurationError: not an http:// proxy URL; the message names ``source`` and shows the
            URL without its password.
    """
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415 - see the module docstring

    # urlsplit drops tabs and line breaks silently, and a host with a space or a non-ASCII
    # letter fails only at connect time: refuse them here.
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise _malformed(url, source, "holds a space, a control character or non-ASCII text")
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port or 8080
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        reason = "has an invalid port" if "port" in str(exc).lower() else "does not parse"
        raise _malformed(url, source, reason) from None
    if parts.scheme != "http" or not parts.hostname:
        raise _malformed(
            url,
            source,
            "is not an http://host:port URL (HTTPS to the proxy itself is not supported; the "
            "connection through it is still TLS end to end)",
        )
    return ProxySettings(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _malformed(url: str, source: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"The proxy {source} {_redact(url)!a} {reason}.")


def proxy_from_environment(host: str) -> Optional[ProxySettings]:
    """The proxy ``HTTPS_PROXY`` names for ``host``, unless ``NO_PROXY`` excludes it.

    Raises:
        ConfigurationError: the variable holds a malformed URL (named, without its password).
    """
    url = env.get(env.HTTPS_PROXY)
    if not url or _bypassed(host, env.get(env.NO_PROXY) or ""):
        return None
    return parse_proxy_url(url, source=f"${env.HTTPS_PROXY}")


def _bypassed(host: str, no_proxy: str) -> bool:
    """curl's NO_PROXY rules: ``*``, exact hosts, domain suffixes, and IP networks."""
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry = _without_port(entry).lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
        if _in_network(host, entry):
            return True
    return False


def _without_port(entry: str) -> str:
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    return entry.split(":", 1)[0] if entry.count(":") == 1 else entry


def _in_network(host: str, entry: str) -> bool:
    import ipaddress  # noqa: PLC0415 - see the module docstring

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _redact(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``.

    Done by hand: this runs for URLs that ``urlsplit`` refuses, too.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{separator}{authority}{slash}{path}"
