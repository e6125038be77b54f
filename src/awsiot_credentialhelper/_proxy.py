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


def parse_proxy_url(url: str) -> ProxySettings:
    """Parse ``http://[user:password@]host[:port]``.

    Raises:
        ConfigurationError: not an http:// proxy URL.
    """
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415 - see the module docstring

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigurationError(
            f"Proxy {_redact(url)!r} is not an http://host:port URL (HTTPS to the proxy itself is "
            "not supported; the connection through it is still TLS end to end)."
        )
    try:
        port = parts.port or 8080
    except ValueError:
        raise ConfigurationError(f"Proxy {_redact(url)!r} has an invalid port.") from None
    return ProxySettings(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def proxy_from_environment(host: str) -> Optional[ProxySettings]:
    """The proxy ``HTTPS_PROXY`` names for ``host``, unless ``NO_PROXY`` excludes it."""
    url = env.get(env.HTTPS_PROXY)
    if not url or _bypassed(host, env.get(env.NO_PROXY) or ""):
        return None
    return parse_proxy_url(url)


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
    from urllib.parse import urlsplit  # noqa: PLC0415 - see the module docstring

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.password:
        return url.replace(parts.password, "***")
    return url
