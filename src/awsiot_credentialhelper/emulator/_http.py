"""HTTP/1.1 request heads and responses as plain values: parse one, render the other.

The emulator speaks just enough HTTP/1.1 for credential requests: one request head, no body,
keep-alive. Keeping the parsing pure lets the server module deal only with sockets and TLS.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Mapping
from typing import Optional
from urllib.parse import unquote, urlsplit

__all__ = [
    "Delivery",
    "HttpError",
    "HttpRequest",
    "HttpResponse",
    "json_response",
    "parse_head",
    "render_head",
]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class HttpError(Exception):
    """The request cannot be understood; answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """A parsed request head.

    Attributes:
        method: The method, as sent.
        target: The request target, as sent.
        path: The target's path, percent-decoded, without the query.
        version: ``HTTP/1.1`` or ``HTTP/1.0``.
        headers: Header values by lower-case name (the last one wins if repeated).
    """

    method: str
    target: str
    path: str
    version: str
    headers: Mapping[str, str]

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after the answer."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    @property
    def content_length(self) -> int:
        """The announced body length (0 if none).

        Raises:
            HttpError: the header is not a non-negative number, or the body is chunked.
        """
        if "transfer-encoding" in self.headers:
            raise HttpError(501, "Transfer-Encoding is not supported")
        raw = self.headers.get("content-length", "0").strip()
        if not raw.isdigit():
            raise HttpError(400, "Content-Length is not a number")
        return int(raw)


class Delivery(enum.Enum):
    """How the server sends a response: whole, or broken on purpose."""

    FULL = "full"
    TRUNCATE = "truncate"
    DISCONNECT = "disconnect"


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """A response to send.

    Attributes:
        status: The status code.
        headers: Header name/value pairs, in order (Content-Length is added when rendering).
        body: The body bytes (hidden from repr: a success body holds the secret key and
            session token).
        delivery: Whole, or cut short on purpose (test faults).
        close: Close the connection after sending.
        delay: Seconds to wait before sending (injected latency).
        on_ready: Called once just before sending, with the seconds since the request head
            was complete.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = dataclasses.field(repr=False)
    delivery: Delivery = Delivery.FULL
    close: bool = False
    delay: float = 0.0
    on_ready: Optional[Callable[[float], None]] = dataclasses.field(
        default=None, repr=False, compare=False
    )


def json_response(
    status: int,
    payload: object,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    close: bool = False,
) -> HttpResponse:
    """A response with a compact JSON body and ``Content-Type: application/json``."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpResponse(
        status=status,
        headers=(("Content-Type", "application/json"), *headers),
        body=body,
        close=close,
    )


def _is_token(text: str) -> bool:
    return bool(text) and all(char in _TOKEN_CHARS for char in text)


def parse_head(head: bytes) -> HttpRequest:
    """Parse a request head (request line and headers, without the final blank line).

    Raises:
        HttpError: the head is not a valid HTTP/1.x request head.
    """
    text = head.decode("latin-1")  # never fails: every byte is a latin-1 character
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _is_token(parts[0]):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, "unsupported HTTP version")
    if not target.startswith("/"):
        raise HttpError(400, "request target must be a path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _is_token(name):
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip(" \t")
    path = unquote(urlsplit(target).path)
    return HttpRequest(method=method, target=target, path=path, version=version, headers=headers)


def render_head(response: HttpResponse, content_length: Optional[int] = None) -> bytes:
    """Render the status line and headers, announcing ``content_length`` (default: the body's)."""
    length = len(response.body) if content_length is None else content_length
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append(f"Content-Length: {length}")
    if response.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
