"""HTTP/1.1 for the emulator, on h11: bytes in, requests out; responses in, bytes out.

h11 (the sans-I/O HTTP/1.1 state machine ``serve`` uses too) reads and frames every message, so
the emulator and ``serve`` agree on what a request is: duplicate ``Host`` or conflicting
``Content-Length`` headers, ``Transfer-Encoding``, bare-LF line ends and folded header lines
follow h11's rules, and this module adds the same refusals ``serve`` adds on top. Nothing here
touches a socket: the server module feeds the bytes it reads and writes the bytes it gets.

The one exception is on purpose: the fault controls' broken answers (a ``Content-Length``
larger than the body, a status line cut short) and fault statuses that cannot carry the body
they were given are answers h11 will not produce, so :func:`render_raw_head` writes those by
hand and the connection closes after them.
"""

from __future__ import annotations

import dataclasses
import enum
import http
import json
from collections.abc import Callable, Mapping
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

import h11

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "Delivery",
    "HttpConnection",
    "HttpError",
    "HttpRequest",
    "HttpResponse",
    "json_response",
    "render_raw_head",
]

#: Real clients send ~200 bytes; 16 KiB is the common web-server limit for a request head.
MAX_HEAD_BYTES = 16 * 1024
#: A credential request has no body; accept (and discard) a small one from odd clients.
MAX_BODY_BYTES = 64 * 1024
#: Headers the service decides by: a second copy is refused (400), never silently chosen
#: between, as ``serve`` refuses a second copy of the headers it reads. The one here is
#: ``_app.THING_NAME_HEADER``.
_READ_ONCE = frozenset({b"x-amzn-iot-thingname"})
#: Reason phrases, fixed here for the statuses the emulator itself sends (Python's own table
#: renamed some between versions); any other status gets Python's phrase, or none.
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_REASONS.update(
    {
        413: "Content Too Large",
        431: "Request Header Fields Too Large",
        505: "HTTP Version Not Supported",
    }
)
#: Statuses whose answers carry no body in HTTP (h11 refuses to send one).
_NO_BODY = frozenset({204, 304})


class HttpError(Exception):
    """The request cannot be understood; answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """A request, read whole (its body, if any, was read and dropped).

    Attributes:
        method: The method, as sent.
        target: The request target, as sent.
        path: The target's path, percent-decoded, without the query.
        version: ``HTTP/1.1`` or ``HTTP/1.0``.
        headers: Header values by lower-case name (the first one if repeated; a repeated
            ``x-amzn-iot-thingname`` is refused instead).
    """

    method: str
    target: str
    path: str
    version: str
    headers: Mapping[str, str]


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
        headers: Header name/value pairs, in order (Content-Length is added when framing).
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


class HttpConnection:
    """One connection's HTTP/1.1 state: feed it what arrives, frame what leaves.

    Requests are read whole (h11 decodes a chunked or ``Content-Length`` body, which is
    dropped), one at a time: pipelined bytes wait in the buffer until the answer before them
    is framed. One h11 connection serves every request of the TLS connection, so keep-alive
    costs nothing per request.
    """

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        #: Bytes received and not yet given to h11 (see :meth:`_feed`).
        self._pending = bytearray()
        self._request: Optional[HttpRequest] = None
        self._body_bytes = 0
        #: The request being answered is a HEAD: h11 sends no body for it.
        self._head = False

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the peer."""
        self._pending += data

    @property
    def mid_request(self) -> bool:
        """Whether part of a request not yet answered has arrived (a timeout then is a 408)."""
        return bool(
            self._pending or self._h11.their_state is not h11.IDLE or self._h11.trailing_data[0]
        )

    def next_request(self) -> Optional[HttpRequest]:
        """The next whole request, or None until more bytes arrive.

        Raises:
            HttpError: the bytes are not an HTTP/1.1 request the emulator accepts: h11's 400
                (malformed, a missing or second ``Host``, conflicting ``Content-Length``),
                431 (a head over ``MAX_HEAD_BYTES``) or 501 (a ``Transfer-Encoding`` other
                than ``chunked``), or one of this module's own (see ``_check_head``).
        """
        while True:
            full = self._feed()
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(exc.error_status_hint, _protocol_message(exc)) from None
            if event is h11.NEED_DATA:
                if full:
                    raise HttpError(431, "Request head too large")
                return None
            if isinstance(event, h11.Request):
                self._head = event.method == b"HEAD"
                self._request, self._body_bytes = _check_head(event), 0
            elif isinstance(event, h11.Data):
                # Only a chunked body gets here too big: a Content-Length was checked first.
                self._body_bytes += len(event.data)
                if self._body_bytes > MAX_BODY_BYTES:
                    raise HttpError(413, "Request body too large")
            elif isinstance(event, h11.EndOfMessage):
                request, self._request = self._request, None
                if request is not None:
                    return request
            # Nothing else can come: the next request waits (PAUSED) only while one is
            # unanswered, which is never when this is called; ConnectionClosed needs a b"".

    def _feed(self) -> bool:
        """Give h11 what is pending, but never more than one head's worth while it waits for one.

        h11 refuses (431) a buffer over ``MAX_HEAD_BYTES`` holding no whole head, but accepts a
        longer head that arrived whole in one read. Capping what it holds makes the limit
        exact however the bytes arrive: a head of up to 16 KiB (its blank line included)
        always fits, and a longer one always leaves h11 a full buffer without one.

        Returns:
            Whether h11, waiting for a head, now holds ``MAX_HEAD_BYTES`` (if it still needs
            data, the head is too large).
        """
        pending = self._pending
        if self._h11.their_state is not h11.IDLE:
            if pending:  # a body: h11 takes it as it comes
                self._h11.receive_data(bytes(pending))
                pending.clear()
            return False
        held = len(self._h11.trailing_data[0])
        take = min(len(pending), MAX_HEAD_BYTES - held)
        if take > 0:
            self._h11.receive_data(bytes(pending[:take]))
            del pending[:take]
        return held + max(take, 0) >= MAX_HEAD_BYTES

    def frame(self, response: HttpResponse) -> tuple[bytes, bool]:
        """The bytes of ``response``, and whether another request may follow on this connection.

        h11 frames whole answers, adds ``Connection: close`` when the client asked to close or
        spoke HTTP/1.0, and then starts the next request cycle if the connection stays open.
        The fault controls' broken answers, and fault statuses that cannot carry their body,
        are written by hand instead (:func:`render_raw_head`); the connection closes after them.

        Raises:
            HttpError: h11 refuses a header of the answer (e.g. a line break in a fault's
                ``error_type``); h11 has sent nothing, so another answer may be framed.
        """
        if response.delivery is Delivery.DISCONNECT:
            # Cut inside "HTTP/1.1": no client can read a status out of it.
            return render_raw_head(response)[: len(b"HTTP/1.")], False
        if response.delivery is Delivery.TRUNCATE:
            announced = len(response.body) * 2 + 1
            return render_raw_head(response, announced) + response.body, False
        if response.status < 200 or (response.status in _NO_BODY and response.body):
            # An injected 1xx, or 204/304 with a body: HTTP has no such answer.
            return render_raw_head(response) + response.body, False
        return self._frame_with_h11(response)

    def _frame_with_h11(self, response: HttpResponse) -> tuple[bytes, bool]:
        connection = self._h11
        headers = [_encode_header(name, value) for name, value in response.headers]
        headers.append((b"Content-Length", str(len(response.body)).encode()))
        if response.close:
            headers.append((b"Connection", b"close"))
        reason = _REASONS.get(response.status, "").encode()
        try:
            head = h11.Response(status_code=response.status, headers=headers, reason=reason)
            data = _bytes(connection.send(head))
        except h11.LocalProtocolError as exc:
            raise HttpError(500, f"the answer cannot be framed: {_without_quote(exc)}") from None
        if response.body and not self._head:
            data += _bytes(connection.send(h11.Data(data=response.body)))
        data += _bytes(connection.send(h11.EndOfMessage()))
        self._head = False
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return data, False  # MUST_CLOSE: Connection: close was sent, or HTTP/1.0
        connection.start_next_cycle()
        return data, True


def _check_head(event: h11.Request) -> HttpRequest:
    """Check a head h11 accepted against the emulator's own rules, the same as ``serve``'s.

    Raises:
        HttpError: 505 for a major version other than 1; 400 for a target that is not a path,
            a second ``x-amzn-iot-thingname``, or both ``Content-Length`` and
            ``Transfer-Encoding`` (RFC 9112 section 6.1 lets a server refuse these, and a
            proxy may frame them otherwise); 413 for a ``Content-Length`` over
            ``MAX_BODY_BYTES``.
    """
    if not event.http_version.startswith(b"1."):
        raise HttpError(505, "HTTP version not supported")
    if not event.target.startswith(b"/"):
        raise HttpError(400, "request target must be a path")
    headers: dict[str, str] = {}
    for name, value in event.headers:  # names come lower-cased, values without outer spaces
        key = name.decode("ascii")  # a token: ASCII only
        if key not in headers:
            headers[key] = value.decode("latin-1")  # never fails: every byte is a character
        elif name in _READ_ONCE:
            raise HttpError(400, f"duplicate {key} header")
    length = headers.get("content-length")
    if length is not None:
        if "transfer-encoding" in headers:
            raise HttpError(400, "Content-Length and Transfer-Encoding together")
        if int(length) > MAX_BODY_BYTES:  # h11 checked that it is decimal digits
            raise HttpError(413, "Request body too large")
    target = event.target.decode("ascii")  # h11 allows visible ASCII only
    return HttpRequest(
        method=event.method.decode("ascii"),
        target=target,
        path=unquote(urlsplit(target).path),
        version="HTTP/" + event.http_version.decode("ascii"),
        headers=headers,
    )


def _protocol_message(error: h11.RemoteProtocolError) -> str:
    """h11's reason for refusing a request, without the request bytes it quotes."""
    if error.error_status_hint == 431:
        return "Request head too large"
    return f"malformed request: {_without_quote(error)}"


def _without_quote(error: h11.ProtocolError) -> str:
    """h11's message without the bytes it quotes (they may be anything the peer sent)."""
    text = str(error)
    for quote in (": bytearray(", " bytearray(", ": b'", " b'", ': b"', ' b"'):
        text = text.split(quote, 1)[0]
    return text


def _encode_header(name: str, value: str) -> tuple[bytes, bytes]:
    """A header as bytes; a character beyond latin-1 is a framing error, like a line break."""
    try:
        return name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise HttpError(500, f"the answer cannot be framed: header {name!r}") from None


def _bytes(data: Union[bytes, None]) -> bytes:
    """What h11 returns for an event that is not ConnectionClosed: always bytes."""
    return data if data is not None else b""


def render_raw_head(response: HttpResponse, content_length: Optional[int] = None) -> bytes:
    """The status line and headers, by hand, announcing ``content_length`` (default: the body's).

    Only for answers h11 must not produce: the fault controls' broken ones. The connection
    always closes after them, so h11's state for it no longer matters.
    """
    length = len(response.body) if content_length is None else content_length
    reason = _REASONS.get(response.status, "")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
