"""Parse a Credential Provider endpoint: host, port and the AWS region it serves."""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from .exceptions import InvalidEndpointError

__all__ = ["DEFAULT_PORT", "Endpoint", "parse_endpoint"]

DEFAULT_PORT = 443

_DESCRIBE_ENDPOINT = "aws iot describe-endpoint --endpoint-type iot:CredentialProvider"

# <prefix>.credentials.iot[-fips].<region>.amazonaws.com[.cn]. The prefix is any one label (the
# labels are checked on their own): 1.x's docs wrote "my_endpoint", and DNS, not this module,
# says whether a prefix exists.
_CREDENTIAL_ENDPOINT = re.compile(
    r"[^.]+\.credentials\.iot(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
    r"\.amazonaws\.com(?:\.cn)?"
)
# Data endpoints people paste by mistake: <prefix>-ats.iot..., <prefix>.ats.iot..., <prefix>.iot...
_DATA_ENDPOINT = re.compile(r"[^.]+(?:\.ats)?\.iot(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com")
# One label of a host name: letters, digits, '-' and '_' (lower-cased before matching).
_LABEL = re.compile(r"[a-z0-9_-]+")
_HOST_PORT = re.compile(
    r"^(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^:/\[\]]+))(?::(?P<port>\d+))?$"
)


class Endpoint(NamedTuple):
    """Where to connect, and the region the endpoint's hostname names (if it names one)."""

    host: str
    port: int = DEFAULT_PORT
    region: Optional[str] = None

    @property
    def is_ip_literal(self) -> bool:
        return self.is_ipv6 or _is_ipv4(self.host)

    @property
    def is_ipv6(self) -> bool:
        # parse_endpoint takes a ':' in the host only from inside [brackets].
        return ":" in self.host

    @property
    def authority(self) -> str:
        """``host[:port]`` as it goes in a ``Host`` header or a URL."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.authority


def _is_ipv4(host: str) -> bool:
    """Dotted-quad ``a.b.c.d``: the form awscrt and the socket layer treat as an address."""
    parts = host.split(".")
    return len(parts) == 4 and all(
        part.isascii() and part.isdigit() and int(part) <= 255 for part in parts
    )


def _checked_characters(text: str, endpoint: str) -> str:
    """``text`` if it is printable ASCII without spaces: the only characters a host name holds.

    Raises:
        InvalidEndpointError: not ASCII (including undecodable bytes that ``os.fsdecode`` turned
            into surrogates), or a space or control character. The message shows the endpoint
            in ASCII, so any log can carry it.
    """
    if not text.isascii():
        raise InvalidEndpointError(
            f"Endpoint {endpoint!a} holds characters that are not ASCII (or bytes that are "
            "not UTF-8): a host name is ASCII (an internationalised one in its xn-- form); "
            f"get yours with `{_DESCRIBE_ENDPOINT}`."
        )
    if any(character.isspace() or not character.isprintable() for character in text):
        raise InvalidEndpointError(
            f"Endpoint {endpoint!a} holds a space or a control character: a host name has neither."
        )
    return text


def _check_labels(host: str, endpoint: str) -> None:
    """Refuse an empty label (``a..b``) or a character no host name label holds (``@``).

    Raises:
        InvalidEndpointError: naming the label or character.
    """
    for label in host.split("."):
        if not label:
            raise InvalidEndpointError(
                f"Endpoint {endpoint!a} has an empty label (two dots in a row, or a leading dot)."
            )
        if not _LABEL.fullmatch(label):
            bad = next(c for c in label if not _LABEL.fullmatch(c))
            raise InvalidEndpointError(
                f"Endpoint {endpoint!a} holds {bad!r}, which no host name holds (labels are "
                f"letters, digits, '-' and '_'); get yours with `{_DESCRIBE_ENDPOINT}`."
            )


def parse_endpoint(endpoint: str) -> Endpoint:
    """Split ``endpoint`` into host, port and region.

    Accepts a bare host, ``host:port``, ``[v6]:port`` and, for convenience, an ``https://`` URL
    with no path. A data endpoint (``...-ats.iot...``) is refused: its account prefix differs
    from the credential endpoint's, so no rewrite of it can be right.

    Raises:
        InvalidEndpointError: the text is not a usable endpoint.
    """
    if not isinstance(endpoint, str):
        raise InvalidEndpointError(
            f"endpoint must be a str (host, host:port or [IPv6]:port), got "
            f"{type(endpoint).__name__}; get yours with `{_DESCRIBE_ENDPOINT}`."
        )
    text = _checked_characters(endpoint.strip(), endpoint)
    if text.lower().startswith("https://"):
        text = text[len("https://") :].rstrip("/")
    match = _HOST_PORT.fullmatch(text)
    if not text or match is None:
        raise InvalidEndpointError(
            f"Endpoint {endpoint!a} is not a host name, host:port or [IPv6]:port; "
            f"get yours with `{_DESCRIBE_ENDPOINT}`."
        )
    host = (match.group("ipv6") or match.group("host")).lower().rstrip(".")
    port = int(match.group("port")) if match.group("port") else DEFAULT_PORT
    if not 0 < port < 65536:
        raise InvalidEndpointError(f"Endpoint {endpoint!a} has port {port}, outside 1-65535.")
    if not match.group("ipv6"):
        _check_labels(host, endpoint)
    credential = _CREDENTIAL_ENDPOINT.fullmatch(host)
    if credential:
        return Endpoint(host=host, port=port, region=credential.group("region"))
    if _DATA_ENDPOINT.match(host):
        raise InvalidEndpointError(
            f"{host!r} is an AWS IoT data endpoint, not the Credential Provider endpoint. Run "
            f"`{_DESCRIBE_ENDPOINT}` and use the host it prints (it looks like "
            f"'<prefix>.credentials.iot.<region>.amazonaws.com')."
        )
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        raise InvalidEndpointError(
            f"{host!r} is not a Credential Provider endpoint; run `{_DESCRIBE_ENDPOINT}`."
        )
    return Endpoint(host=host, port=port)
