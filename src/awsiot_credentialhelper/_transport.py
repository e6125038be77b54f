"""The one seam to the network: awscrt resources, one mTLS connection per request, error mapping.

Every use of awscrt but the credentials provider it hands to awscrt-based AWS clients
(``_crt_credentials``) is here: TLS options for each kind of key (:func:`tls_options`), PKCS#11
modules (:func:`load_pkcs11_module`), the TLS context, awscrt's error names
(:func:`crt_error_name`), the connection, and the three calls on awscrt's native logger that
``_crt_log`` (which redacts that log) makes. The provider sees only the small
:class:`Transport` protocol (and :class:`AsyncTransport` for asyncio), which
:class:`CrtTransport` implements both of: ``send_async`` awaits the same awscrt futures that
``send`` blocks on, bridged onto the event loop, so asyncio code needs no thread pool.

A :class:`CrtTransport` owns its TLS context for its whole life and shares the process's one
awscrt event-loop thread and bootstrap (:func:`_client_bootstrap`); each request opens a
connection, sends one GET, reads the answer and closes the connection. Every awscrt error is
translated here, and only here, into this package's exceptions.

An answer is capped at :data:`MAX_RESPONSE_BYTES`, status line, headers and body together. awscrt
hands over the head only once it is complete, and keeps it in native memory until then; on Linux
a watch on the connection's own socket drops a server that never completes its head (see
:class:`_ByteWatch`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Protocol, TypeVar

from awscrt import http as crt_http
from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError
from awscrt.io import LogLevel as CrtLogLevel  # for _crt_log: awscrt's log levels

from ._endpoint import Endpoint
from ._keys import KeySource, PemKey, Pkcs11Key
from ._pem import load_certificates
from ._pkcs11 import module_load_error
from ._protocol import Request, Response
from ._proxy import ProxySettings
from .exceptions import (
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    InvalidPemError,
    NetworkError,
    ReadTimeoutError,
    ResponseTooLargeError,
    TlsHandshakeError,
)

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "MAX_RESPONSE_BYTES",
    "AsyncTransport",
    "CrtLogLevel",
    "CrtTransport",
    "Transport",
    "build_tls_context",
    "create_tls_context",
    "crt_error_name",
    "crt_log_level",
    "init_crt_logging",
    "load_pkcs11_module",
    "set_crt_log_level",
    "tls_options",
]

logger = logging.getLogger(__name__)

#: A credentials answer is about 1.1 KB; anything far larger is not the Credential Provider.
MAX_RESPONSE_BYTES = 64 * 1024

#: What the socket may receive after the handshake beyond MAX_RESPONSE_BYTES before the byte watch
#: drops the connection: TLS framing (22-29 bytes per record of up to 16 KiB) and TLS 1.3 session
#: tickets. Measured on loopback: a 297-byte answer arrives as 320 bytes, after 1.7 KB of two
#: session tickets from Python's ``ssl`` server.
_WIRE_MARGIN = 16 * 1024

#: How often the byte watch reads the socket's counter while the answer is awaited. Measured on
#: loopback: an endless head is dropped after 0.1-1.8 MB have arrived (kernel buffers included).
_WATCH_INTERVAL = 0.005

#: awscrt holds ``connect_timeout_ms`` in a C uint32.
_MAX_CONNECT_TIMEOUT_MS = 2**32 - 1

_LINUX = sys.platform.startswith("linux")

_HANDSHAKE_HINT = (
    "the server's certificate is not signed by the CA given as `ca` (production endpoints need "
    "AmazonRootCA1.pem or the system trust store), or the server refused this device's "
    "certificate. `awsiot-credentialhelper check` tells which"
)

# awscrt error name prefix -> (our class, what happened). The first matching prefix wins.
_CRT_ERRORS: tuple[tuple[str, type[NetworkError], str], ...] = (
    ("AWS_IO_DNS_", ConnectError, "cannot resolve the host name (DNS)"),
    ("AWS_IO_SOCKET_CONNECTION_REFUSED", ConnectError, "the connection was refused"),
    ("AWS_IO_SOCKET_TIMEOUT", ConnectTimeoutError, "the connection timed out"),
    ("AWS_IO_SOCKET_NO_ROUTE_TO_HOST", ConnectError, "there is no route to the host"),
    ("AWS_IO_SOCKET_NETWORK_DOWN", ConnectError, "the network is down"),
    ("AWS_IO_SOCKET_INVALID_ADDRESS", ConnectError, "the address is not valid"),
    ("AWS_IO_TLS_NEGOTIATION_TIMEOUT", ConnectTimeoutError, "the TLS handshake timed out"),
    ("AWS_IO_TLS_", TlsHandshakeError, f"the TLS handshake failed: {_HANDSHAKE_HINT}"),
    ("AWS_ERROR_HTTP_PROXY_", ConnectError, "the HTTP proxy refused or failed the CONNECT"),
    ("AWS_ERROR_HTTP_CONNECTION_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_ERROR_HTTP_SERVER_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_IO_SOCKET_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_IO_BROKEN_PIPE", ConnectionClosedError, "the connection broke"),
    ("AWS_ERROR_HTTP_", ConnectionClosedError, "the server's answer is not valid HTTP/1.1"),
)


class Transport(Protocol):
    """What a provider needs from the network: one answer per request, then ``close``.

    :class:`CrtTransport` is the one this package builds (mutual TLS with awscrt); a provider
    takes another as ``transport=`` (the way httpx's clients take a ``BaseTransport``) and closes
    it with itself.
    """

    def send(self, request: Request, *, timeout: float) -> Response:
        """Send ``request`` and return the whole answer within ``timeout`` seconds.

        Raises:
            NetworkError: a subclass naming what failed (timeouts included).
        """
        ...

    def close(self) -> None:
        """Release what the transport holds; ``send`` is not called again."""
        ...


class AsyncTransport(Protocol):
    """The same exchange for asyncio code: :class:`CrtTransport` implements both protocols.

    ``send_async`` never blocks the event loop: awscrt does the I/O on its own thread, and the
    coroutine awaits its futures. Cancelling it closes the connection in use.
    """

    async def send_async(self, request: Request, *, timeout: float) -> Response:
        """As :meth:`Transport.send`, awaited."""
        ...

    def close(self) -> None:
        """Release what the transport holds; ``send_async`` is not called again."""
        ...


def translate_crt_error(name: str, endpoint: Endpoint) -> NetworkError:
    """Our exception for the awscrt failure ``name`` while talking to ``endpoint``."""
    error_class, what = next(
        ((cls, text) for prefix, cls, text in _CRT_ERRORS if name.startswith(prefix)),
        (NetworkError, "the connection failed"),
    )
    return error_class(f"{endpoint}: {what} ({name}).", endpoint=str(endpoint), crt_error=name)


def build_tls_context(
    key: KeySource, certificate_pem: bytes, *, ca_pem: Optional[bytes], verify_peer: bool
) -> crt_io.ClientTlsContext:
    """A client TLS context: TLS 1.2 or newer, the given CA (else the system store), verification.

    Raises:
        ConfigurationError: awscrt refused the certificate, key or CA: the key's store says why
            (e.g. :class:`KeyMismatchError`, :class:`Pkcs11Error`), else cryptography finds
            the certificate or CA unparseable (:class:`InvalidPemError`), else awscrt's name.
    """
    options = tls_options(key, certificate_pem)
    options.min_tls_ver = crt_io.TlsVersion.TLSv1_2
    options.verify_peer = verify_peer
    if ca_pem is not None:
        options.override_default_trust_store(ca_pem)
    try:
        return create_tls_context(key, options)
    except AwsCrtError as exc:
        raise _unparseable(certificate_pem, ca_pem) or ConfigurationError(
            f"awscrt cannot build a TLS context from this certificate, key and CA ({exc.name}): "
            "check that each is the PEM you meant."
        ) from None


def tls_options(key: KeySource, certificate_pem: bytes) -> crt_io.TlsContextOptions:
    """awscrt client options that present ``certificate_pem`` and sign with ``key``.

    A PKCS#11 key's module is loaded here (the options hold it, and the TLS context takes a
    reference); its token is opened only with the TLS context.

    Raises:
        Pkcs11Error: the module cannot be loaded (see :func:`load_pkcs11_module`).
        TypeError: ``key`` is neither a :class:`PemKey` nor a :class:`Pkcs11Key`.
    """
    if isinstance(key, PemKey):
        return crt_io.TlsContextOptions.create_client_with_mtls(certificate_pem, key.pem)
    if isinstance(key, Pkcs11Key):
        config = key.config
        return crt_io.TlsContextOptions.create_client_with_mtls_pkcs11(
            pkcs11_lib=load_pkcs11_module(key.module_path),
            user_pin=config.user_pin,
            slot_id=config.slot_id,
            token_label=config.token_label,
            private_key_label=config.private_key_label,
            cert_file_contents=certificate_pem,
        )
    raise TypeError(f"awscrt takes a PemKey or a Pkcs11Key, not {type(key).__name__}")


def load_pkcs11_module(path: str) -> crt_io.Pkcs11Lib:
    """Load the PKCS#11 module at ``path`` (``C_Initialize``).

    Raises:
        Pkcs11Error: not a shared library, not a PKCS#11 module, or it failed to initialise.
    """
    try:
        return crt_io.Pkcs11Lib(file=path)
    except (AwsCrtError, RuntimeError) as exc:
        name = crt_error_name(exc)
        if name is None:
            raise
        raise module_load_error(name, path) from exc


def create_tls_context(
    key: KeySource, options: crt_io.TlsContextOptions
) -> crt_io.ClientTlsContext:
    """Build awscrt's client TLS context, translating failures of the key's store.

    awscrt raises a bare ``RuntimeError("1117 (AWS_ERROR_...): ...")`` here, not
    ``AwsCrtError``; failures that are not the key's are re-raised as ``AwsCrtError`` so the
    caller's own error table sees one type.

    Raises:
        ConfigurationError: the key's store explains the failure (e.g. :class:`Pkcs11Error`).
        AwsCrtError: any other awscrt failure, by name.
    """
    try:
        return crt_io.ClientTlsContext(options)
    except (AwsCrtError, RuntimeError) as exc:
        name = crt_error_name(exc)
        if name is None:
            raise
        explained = key.explain_crt_error(name)
        if explained is not None:
            raise explained from exc
        if isinstance(exc, AwsCrtError):
            raise
        code, message = _crt_code_and_message(exc)
        raise AwsCrtError(code=code, name=name, message=message) from exc


# Compiled on first use (by re's cache): only failures need it.
_NATIVE_ERROR = r"(\d+) \(([A-Z][A-Z0-9_]+)\)(?:: (.*))?"


def crt_error_name(exc: BaseException) -> Optional[str]:
    """awscrt's error name (``AWS_...``) for ``exc``, or ``None`` when it is not awscrt's.

    Asynchronous failures arrive as ``AwsCrtError``; synchronous native calls (``Pkcs11Lib``,
    ``ClientTlsContext``) raise ``RuntimeError("<code> (<NAME>): <message>")``.
    """
    if isinstance(exc, AwsCrtError):
        return str(exc.name)
    match = (
        re.fullmatch(_NATIVE_ERROR, str(exc), re.DOTALL) if isinstance(exc, RuntimeError) else None
    )
    return match.group(2) if match else None


def _crt_code_and_message(exc: BaseException) -> tuple[int, str]:
    match = re.fullmatch(_NATIVE_ERROR, str(exc), re.DOTALL)
    return (int(match.group(1)), match.group(3) or "") if match else (-1, str(exc))


def _unparseable(certificate_pem: bytes, ca_pem: Optional[bytes]) -> Optional[InvalidPemError]:
    """What cryptography finds wrong in a certificate or CA that awscrt refused, if anything."""
    try:
        load_certificates(certificate_pem)
        if ca_pem is not None:
            load_certificates(ca_pem, what="CA certificate")
    except InvalidPemError as error:
        return error
    return None


class CrtTransport:
    """Sends one GET per call over a fresh mutual-TLS connection, on resources it owns."""

    def __init__(
        self,
        endpoint: Endpoint,
        tls_context: crt_io.ClientTlsContext,
        *,
        proxy: Optional[ProxySettings] = None,
    ) -> None:
        self._endpoint = endpoint
        self._proxy = proxy
        self._tls_context: Optional[crt_io.ClientTlsContext] = tls_context
        _client_bootstrap()  # starts the event-loop thread now: the first fetch need not wait

    def send(self, request: Request, *, timeout: float) -> Response:
        """Open a connection, send ``request``, return the answer, close the connection.

        Raises:
            NetworkError: a subclass naming what failed, including timeouts and
                :class:`ResponseTooLargeError`.
        """
        deadline = time.monotonic() + timeout
        future = self._start(request, timeout)
        try:
            exchange = future.result(_wait_seconds(timeout))
        except FutureTimeoutError:
            future.add_done_callback(_close_late_connection)
            raise self._connect_timeout(timeout) from None
        except AwsCrtError as exc:
            raise translate_crt_error(exc.name, self._endpoint) from exc
        try:
            with self._translated(exchange.reply):
                _await_completion(exchange.completion(), exchange.watch, exchange.reply, deadline)
            return self._checked(exchange.reply)
        finally:
            exchange.close()

    async def send_async(self, request: Request, *, timeout: float) -> Response:
        """:meth:`send` for asyncio: awaits awscrt's futures, never blocks the event loop.

        Cancelling the coroutine closes the connection (or the one still being opened, once
        it arrives).

        Raises:
            NetworkError: as :meth:`send`.
        """
        import asyncio  # noqa: PLC0415 - here, so that a sync fetch does not import it (~20 ms)

        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        future = self._start(request, timeout)
        try:
            exchange = await _await_until(_bridge(future, loop), deadline)
        except FutureTimeoutError:
            future.add_done_callback(_close_late_connection)
            raise self._connect_timeout(timeout) from None
        except AwsCrtError as exc:
            raise translate_crt_error(exc.name, self._endpoint) from exc
        except BaseException:  # cancelled: the connection may still arrive
            future.add_done_callback(_close_late_connection)
            raise
        try:
            with self._translated(exchange.reply):
                await _await_completion_async(
                    _bridge(exchange.completion(), loop), exchange.watch, exchange.reply, deadline
                )
            return self._checked(exchange.reply)
        finally:
            exchange.close()

    def close(self) -> None:
        """Drop the TLS context; awscrt frees it once no connection uses it."""
        self._tls_context = None

    def _start(self, request: Request, timeout: float) -> Future[_Exchange]:
        """The future of ``request`` under way on a new connection to the endpoint (see
        :func:`_begin_on_arrival`).

        Raises:
            RuntimeError: the transport is closed.
        """
        tls_context = self._tls_context
        if tls_context is None:
            raise RuntimeError("This transport is closed.")
        endpoint = self._endpoint
        connection_options = tls_context.new_connection_options()
        # SNI and certificate name check: AWS IoT refuses connections without the right SNI.
        connection_options.set_server_name(endpoint.host)
        socket_options = crt_io.SocketOptions()
        socket_options.connect_timeout_ms = connect_timeout_ms(timeout)
        tag = _next_tag() if _LINUX else None
        if tag is not None:
            _apply_tag(socket_options, tag)
        if endpoint.is_ip_literal and not endpoint.is_ipv6:
            socket_options.domain = crt_io.SocketDomain.IPv4
        crt_request = crt_http.HttpRequest(
            "GET", request.path, crt_http.HttpHeaders(list(request.headers))
        )
        connecting: Future[crt_http.HttpClientConnection] = crt_http.HttpClientConnection.new(
            host_name=endpoint.host,
            port=endpoint.port,
            bootstrap=_client_bootstrap(),
            socket_options=socket_options,
            tls_connection_options=connection_options,
            proxy_options=self._proxy_options(),
        )
        return _begin_on_arrival(connecting, tag, crt_request)

    def _connect_timeout(self, timeout: float) -> ConnectTimeoutError:
        return ConnectTimeoutError(
            f"{self._endpoint}: no connection and TLS handshake within {timeout:.1f} s.",
            endpoint=str(self._endpoint),
        )

    @contextmanager
    def _translated(self, reply: _ReplyCollector) -> Iterator[None]:
        """Our exceptions for awscrt's failures and the deadline, while the answer comes."""
        endpoint = self._endpoint
        try:
            yield
        except FutureTimeoutError:
            raise ReadTimeoutError(
                f"{endpoint}: connected, but no complete answer before the timeout.",
                endpoint=str(endpoint),
            ) from None
        except (AwsCrtError, RuntimeError) as exc:
            # awscrt raises RuntimeError("<code> (<NAME>): ...") from synchronous calls such as
            # request() on a connection that is closing.
            name = crt_error_name(exc)
            if name is None:
                raise
            if reply.too_large:
                raise _too_large(endpoint, name) from None
            raise translate_crt_error(name, endpoint) from exc

    def _checked(self, reply: _ReplyCollector) -> Response:
        if reply.too_large:  # refused, yet the stream ended cleanly with what was buffered
            raise _too_large(self._endpoint, None)
        return reply.response()

    def _proxy_options(self) -> Optional[crt_http.HttpProxyOptions]:
        proxy = self._proxy
        if proxy is None:
            return None
        options = crt_http.HttpProxyOptions(
            host_name=proxy.host,
            port=proxy.port,
            connection_type=crt_http.HttpProxyConnectionType.Tunneling,
        )
        if proxy.username is not None:
            options.auth_type = crt_http.HttpProxyAuthenticationType.Basic
            options.auth_username = proxy.username
            options.auth_password = proxy.password or ""
        return options


class _ClientIo(NamedTuple):
    bootstrap: crt_io.ClientBootstrap
    keep_alive: tuple[crt_io.EventLoopGroup, crt_io.DefaultHostResolver]


_client_io: Optional[_ClientIo] = None
_client_io_lock = threading.Lock()
#: The parent's, in a child after fork: never freed, since their threads are not in the child.
_client_io_of_parent: list[_ClientIo] = []


def _client_bootstrap() -> crt_io.ClientBootstrap:
    """This process's one bootstrap, on one event-loop thread: made on first use, never freed.

    Never freed, because freeing a bootstrap runs awscrt's Python shutdown callback on whichever
    thread drops the last reference, without setting aside an exception pending there. On
    Python 3.9 a generator's or coroutine's return value is such an exception (StopIteration)
    while its frame's locals are freed, so a provider freed with that frame lost the value.
    """
    global _client_io  # noqa: PLW0603 - one per process, as awscrt's own static default
    with _client_io_lock:
        if _client_io is None:
            group = crt_io.EventLoopGroup(1)
            resolver = crt_io.DefaultHostResolver(group)
            _client_io = _ClientIo(crt_io.ClientBootstrap(group, resolver), (group, resolver))
        return _client_io.bootstrap


def _forget_client_io_in_child() -> None:
    """After fork: the child makes its own on first use (the parent's lock may be held)."""
    global _client_io, _client_io_lock  # noqa: PLW0603 - see _client_bootstrap
    if _client_io is not None:
        _client_io_of_parent.append(_client_io)
    _client_io = None
    _client_io_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_client_io_in_child)


class _ReplyCollector:
    """Gathers status, headers and body from awscrt's callbacks, within MAX_RESPONSE_BYTES."""

    def __init__(self, connection: crt_http.HttpClientConnection) -> None:
        self._connection = connection
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        #: Bytes of the answer so far: its head (as reported, see on_response) and body.
        self._size = 0
        self.too_large = False

    # awscrt calls these with keyword arguments (http_stream=..., status_code=..., chunk=...).
    def on_response(self, *, status_code: int, headers: Any, **_: Any) -> None:
        self._status = status_code
        self._headers = {name.lower(): value for name, value in headers}
        # The head as it came, but for the reason phrase, which awscrt does not report.
        self._size = len("HTTP/1.1 200 \r\n\r\n") + sum(
            len(name) + len(value) + len(": \r\n") for name, value in headers
        )
        if self._size > MAX_RESPONSE_BYTES:
            self.refuse()

    def on_body(self, *, chunk: bytes, **_: Any) -> None:
        if self.too_large:
            return
        if self._size + len(chunk) > MAX_RESPONSE_BYTES:
            self.refuse()
            return
        self._size += len(chunk)
        self._body.extend(chunk)

    def refuse(self) -> None:
        """Drop the connection: the answer is past the cap (awscrt may be mid-callback)."""
        self.too_large = True
        self._connection.close()

    def response(self) -> Response:
        return Response(status=self._status, headers=self._headers, body=bytes(self._body))


def _too_large(endpoint: Endpoint, crt_error: Optional[str]) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{endpoint}: the answer is larger than {MAX_RESPONSE_BYTES} bytes (status line, "
        "headers and body); this is not the Credential Provider.",
        endpoint=str(endpoint),
        crt_error=crt_error,
    )


def _await_completion(
    completion: Future[Any], watch: _ByteWatch, reply: _ReplyCollector, deadline: float
) -> None:
    """Wait for the stream to end, and while waiting let the watch refuse an oversized answer.

    Raises:
        FutureTimeoutError: the deadline passed first.
        AwsCrtError: the stream failed.
    """
    interval = _WATCH_INTERVAL if watch.active else threading.TIMEOUT_MAX
    while True:
        try:
            completion.result(min(max(0.0, deadline - time.monotonic()), interval))
        except FutureTimeoutError:
            if watch.exceeded():
                reply.refuse()
                return
            if time.monotonic() >= deadline:
                raise
        else:
            return


class _ByteWatch:
    """A cap on what the connection's socket takes in while the answer is awaited.

    Why: awscrt's HTTP/1.1 decoder (0.38) keeps an unfinished head in native memory and reports
    nothing until it ends: no per-header callback, no limit, and its flow-control window counts
    body bytes only. 1xx answers are read and dropped without a callback. A server streaming
    header lines pushed a process to 1 GB in 10 s, one endless header line to 2 GB. The kernel
    counts what the socket received (``tcpi_bytes_received`` in ``TCP_INFO``, Linux 4.1 and
    later); the watch compares it with its value after the handshake plus MAX_RESPONSE_BYTES and
    a margin for TLS framing. Elsewhere than Linux, on older kernels, or when the socket cannot
    be told from others, the watch is inactive: the size cap then holds for what awscrt hands
    over (status, headers, body) and the total timeout bounds the rest.
    """

    def __init__(self, sock: Optional[socket.socket]) -> None:
        self._socket = sock
        start = _bytes_received(sock) if sock is not None else None
        self._limit = None if start is None else start + MAX_RESPONSE_BYTES + _WIRE_MARGIN

    @property
    def active(self) -> bool:
        return self._limit is not None

    def exceeded(self) -> bool:
        if self._socket is None or self._limit is None:
            return False
        received = _bytes_received(self._socket)
        return received is not None and received > self._limit


#: struct tcp_info (linux/tcp.h): the __u64 tcpi_bytes_received follows 104 bytes of counters
#: and three __u64 (pacing rate, max pacing rate, bytes acked).
_TCPI_BYTES_RECEIVED = slice(128, 136)


def _bytes_received(sock: socket.socket) -> Optional[int]:
    """The socket's ``tcpi_bytes_received``, or None where the kernel does not report it."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCPI_BYTES_RECEIVED.stop:
        return None
    return int.from_bytes(info[_TCPI_BYTES_RECEIVED], sys.byteorder)


_T = TypeVar("_T")


def _bridge(future: Future[_T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
    """An asyncio future with ``future``'s outcome, delivered on ``loop`` from awscrt's thread.

    Unlike ``asyncio.wrap_future``, cancelling the asyncio side leaves awscrt's future alone
    (awscrt would fail to set a result on a cancelled one, and a late connection would leak);
    the caller closes late arrivals itself.
    """
    waiter: asyncio.Future[_T] = loop.create_future()

    def deliver(done: Future[_T]) -> None:
        with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_copy_outcome, done, waiter)

    future.add_done_callback(deliver)
    return waiter


def _copy_outcome(source: Future[_T], waiter: asyncio.Future[_T]) -> None:
    if waiter.done():
        return
    if source.cancelled():
        waiter.cancel()
        return
    error = source.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(source.result())


async def _await_until(waiter: asyncio.Future[_T], deadline: float) -> _T:
    """``waiter``'s result, or ``FutureTimeoutError`` at ``deadline`` (``waiter`` left alone).

    Raises:
        FutureTimeoutError: the deadline passed first.
    """
    import asyncio  # noqa: PLC0415 - see send_async

    done, _ = await asyncio.wait({waiter}, timeout=max(0.0, deadline - time.monotonic()))
    if not done:
        raise FutureTimeoutError
    return waiter.result()


async def _await_completion_async(
    completion: asyncio.Future[Any], watch: _ByteWatch, reply: _ReplyCollector, deadline: float
) -> None:
    """:func:`_await_completion` for asyncio: the same watch, between awaits.

    Raises:
        FutureTimeoutError: the deadline passed first.
        AwsCrtError: the stream failed.
    """
    import asyncio  # noqa: PLC0415 - see send_async

    interval = _WATCH_INTERVAL if watch.active else None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FutureTimeoutError
        done, _ = await asyncio.wait(
            {completion}, timeout=left if interval is None else min(left, interval)
        )
        if done:
            completion.result()
            return
        if watch.exceeded():
            reply.refuse()
            return


class _Exchange(NamedTuple):
    """One GET under way: its connection, the connection's own socket where it was found, the
    byte watch on that socket, the collector of the answer, and the stream (or the error that
    starting it raised)."""

    connection: crt_http.HttpClientConnection
    own_socket: Optional[socket.socket]
    watch: _ByteWatch
    reply: _ReplyCollector
    stream: Optional[crt_http.HttpClientStream]
    start_error: Optional[Exception]

    @classmethod
    def begin(
        cls,
        connection: crt_http.HttpClientConnection,
        own_socket: Optional[socket.socket],
        request: crt_http.HttpRequest,
    ) -> _Exchange:
        """Send ``request`` on ``connection``; the collector gathers the answer as it comes."""
        watch = _ByteWatch(own_socket)  # before the request: counts from the handshake's end
        reply = _ReplyCollector(connection)
        try:
            stream = connection.request(request, reply.on_response, reply.on_body)
            stream.activate()
        except Exception as exc:  # handed to the caller, who translates it
            return cls(connection, own_socket, watch, reply, None, exc)
        return cls(connection, own_socket, watch, reply, stream, None)

    def completion(self) -> Future[Any]:
        """The stream's end.

        Raises:
            Exception: what starting the stream raised.
        """
        if self.stream is None:
            raise self.start_error or RuntimeError("The request was not sent.")
        future: Future[Any] = self.stream.completion_future
        return future

    def close(self) -> None:
        self.connection.close()
        # After awscrt's close: until this duplicate goes too, the kernel keeps the connection open.
        if self.own_socket is not None:
            self.own_socket.close()


def _begin_on_arrival(
    connecting: Future[crt_http.HttpClientConnection],
    tag: Optional[tuple[int, int]],
    request: crt_http.HttpRequest,
) -> Future[_Exchange]:
    """The exchange that starts as ``connecting``'s connection arrives, on awscrt's own thread.

    There, in the callback, the connection's socket is found (:func:`_own_socket` reads a link
    per descriptor of the process, 7 ms at 500), Nagle is turned off and the request is sent,
    before awscrt's thread reads anything more from the server. So the search never holds an
    asyncio event loop, and a server that refuses the device's certificate just after the
    TLS 1.3 handshake is reported as the TLS alert it sent, not as a closed connection that a
    request from another thread found.
    """
    started: Future[_Exchange] = Future()

    def begin(done: Future[crt_http.HttpClientConnection]) -> None:
        if done.cancelled():
            started.cancel()
            return
        error = done.exception()
        if error is not None:
            started.set_exception(error)
            return
        own_socket = None
        if tag is not None:
            try:
                own_socket = _own_socket(tag)
            except Exception:  # never leave the caller waiting: fetch without the watch
                logger.debug("Cannot look for the connection's socket.", exc_info=True)
        if own_socket is not None:
            _disable_nagle(own_socket)
        started.set_result(_Exchange.begin(done.result(), own_socket, request))

    connecting.add_done_callback(begin)
    return started


def _close_late_connection(future: Future[_Exchange]) -> None:
    """A connection we stopped waiting for may still arrive: close it instead of leaking it."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def connect_timeout_ms(timeout: float) -> int:
    """awscrt's ``connect_timeout_ms`` for ``timeout`` seconds: at least 1, and no more than its
    C uint32 holds (a larger value raised OverflowError), whatever ``timeout`` is."""
    milliseconds = timeout * 1000
    if not milliseconds < _MAX_CONNECT_TIMEOUT_MS:  # also NaN
        return _MAX_CONNECT_TIMEOUT_MS
    return max(1, int(milliseconds))


def _wait_seconds(timeout: float) -> float:
    """``timeout`` as a wait that threading accepts (it refuses more than TIMEOUT_MAX)."""
    return timeout if timeout < threading.TIMEOUT_MAX else threading.TIMEOUT_MAX


def _disable_nagle(sock: socket.socket) -> None:
    """Set TCP_NODELAY on this connection's socket.

    Why: awscrt-python (0.38) offers no TCP_NODELAY option, and with Nagle's algorithm on, the
    request after a TLS 1.3 handshake waits for the server's delayed ACK of the client's Finished
    message: ~40 ms on every fetch, ten times the rest of the exchange. Setting TCP_NODELAY at this
    point sends the held segment at once. TLS 1.2 stalls inside the handshake, before we can reach
    the socket; see the README's performance notes. Linux only (see :func:`_own_socket`).
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # the fetch still works, ~40 ms slower
        logger.debug("Cannot set TCP_NODELAY on the connection: %s", exc)


# --- finding the connection's own socket (Linux) ----------------------------------------------

#: TCP_KEEPIDLE of every connection this module opens on Linux: a prime below the kernel's
#: 32767 ceiling, far from the 7200 s default. TCP_KEEPINTVL carries a serial (see _next_tag).
_TAG_MARK = 32_749
_serials = itertools.count()


def _next_tag() -> tuple[int, int]:
    """A (TCP_KEEPIDLE, TCP_KEEPINTVL) pair that no other connection of this process that is
    being opened at the same time carries (the serial repeats only every 32767 connections)."""
    return (_TAG_MARK, next(_serials) % 32_767 + 1)


def _apply_tag(options: crt_io.SocketOptions, tag: tuple[int, int]) -> None:
    """Have awscrt set ``tag`` on the socket it creates.

    awscrt (aws-c-io) sets ``keep_alive_interval_secs`` as TCP_KEEPIDLE and
    ``keep_alive_timeout_secs`` as TCP_KEEPINTVL even with ``keep_alive`` off; without
    SO_KEEPALIVE the kernel never uses them, so the tag changes nothing on the wire.
    """
    options.keep_alive_interval_secs, options.keep_alive_timeout_secs = tag


def _own_socket(tag: tuple[int, int]) -> Optional[socket.socket]:
    """A duplicate of the descriptor of the connection just opened, or None if it is not found.

    awscrt does not expose its socket, so it is recognised by ``tag`` (see :func:`_apply_tag`):
    the process's sockets are listed from the ``socket:[N]`` links of ``/proc/self/fd``
    (reading a link touches no descriptor), then read with getsockopt on a duplicate, newest
    first (the kernel numbers socket inodes in rising batches), until one carries the tag. The
    new socket is nearly always the first read; any other socket read is closed at once,
    never changed.

    The kernel's ``/proc/net/tcp`` could narrow the search by remote port without reading any
    socket, but the kernel builds it from every TCP socket of the host, TIME_WAIT included:
    20 ms for 2000 rows here, more on a busy host.

    The caller closes the duplicate. None on other systems, without /proc, or when awscrt
    stopped applying the tag: then there is no TCP_NODELAY and no byte watch.
    """
    for inode, fd in sorted(_socket_inodes().items(), reverse=True):
        sock = _claim(inode, fd, tag)
        if sock is not None:
            return sock
    return None


def _socket_inodes() -> dict[int, int]:
    """This process's sockets: inode -> descriptor number, from the ``socket:[N]`` links."""
    inodes: dict[int, int] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes[int(target[8:-1])] = int(name)
    return inodes


def _claim(inode: int, fd: int, tag: tuple[int, int]) -> Optional[socket.socket]:
    """A duplicate of ``fd`` if it still is socket ``inode`` and carries ``tag``; else None, and
    no duplicate left open."""
    try:
        duplicate = os.dup(fd)
    except OSError:  # closed meanwhile
        return None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return None
    try:
        # The number may have been closed and reused since it was read: check the inode.
        if os.fstat(sock.fileno()).st_ino == inode and _tag_of(sock) == tag:
            return sock
    except OSError:  # not a TCP socket
        pass
    sock.close()
    return None


def _tag_of(sock: socket.socket) -> tuple[int, int]:
    return (
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    )


# --- awscrt's native logger (used by _crt_log, which redacts what it writes) --------------------


def crt_log_level(level: object) -> CrtLogLevel:
    """``level`` as an awscrt log level.

    Raises:
        ValueError: ``level`` is not one (TypeError for unhashable values).
    """
    return CrtLogLevel(level)


def set_crt_log_level(level: CrtLogLevel) -> bool:
    """Set the level of an initialised logger; False if it is not (or awscrt is too old)."""
    set_log_level = getattr(crt_io, "set_log_level", None)  # awscrt >= 0.28.4
    if set_log_level is None:
        return False
    try:
        set_log_level(level)
    except RuntimeError:  # not initialised
        return False
    return True


def init_crt_logging(level: CrtLogLevel, path: str) -> None:
    """Initialise awscrt's process-global logger into the file ``path`` (once per process).

    Raises:
        RuntimeError: awscrt refused (its own error types vary by version).
    """
    try:
        crt_io.init_logging(level, path)
    except AwsCrtError as exc:
        raise RuntimeError(f"awscrt could not open its log ({exc.name})") from exc
