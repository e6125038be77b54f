"""A small mutual-TLS HTTP/1.1 server on loopback: sockets, handshakes, threads and timeouts.

Each connection gets a thread (at most ``max_connections`` at once; more are closed at once).
HTTP itself (reading requests, framing answers) is ``_http.HttpConnection``'s, on h11: this
module only moves its bytes. Every blocking step has a deadline, so a silent, slow or
garbage-sending client costs one thread for at most ``read_timeout`` seconds. What to answer
is the handler's business.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Optional, Protocol, TypeVar

from cryptography import x509
from OpenSSL import SSL

from ._http import Delivery, HttpConnection, HttpError, HttpRequest, HttpResponse, json_response

__all__ = ["Handler", "TlsHttpServer"]

_LOG = logging.getLogger("awsiot_credentialhelper.emulator.server")
_T = TypeVar("_T")

_RECV_CHUNK = 16 * 1024
#: accept() errors that say the process or system is out of descriptors, buffers or memory
#: (asyncio's list): the pending connection stays pending, so retrying at once only spins.
_ACCEPT_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The acceptor's first wait after such an error; it doubles per failure up to the last.
_ACCEPT_BACKOFF_FIRST = 0.01
_ACCEPT_BACKOFF_LAST = 1.0
#: The server's own answer when the handler fails: built once here, so nothing can fail.
_INTERNAL_FAILURE = json_response(500, {"message": "Internal failure"}, close=True)


class Handler(Protocol):
    """Turns requests into responses; the server handles the transport."""

    def handle(self, request: HttpRequest, certificate: x509.Certificate) -> HttpResponse:
        """Answer a well-formed request."""

    def reject(self, status: int, message: str) -> HttpResponse:
        """Answer a request the server could not parse or answer (the connection closes after)."""


class _ClosedError(Exception):
    """The peer closed the connection, or the server is stopping."""


class _DeadlineError(Exception):
    """A deadline passed while waiting for the peer."""


class _Connection:
    """Blocking-style reads and writes on a non-blocking pyOpenSSL connection, with deadlines."""

    def __init__(self, sock: socket.socket, tls: SSL.Connection) -> None:
        self.sock = sock
        self.tls = tls
        # A selector, not select.select(): that fails for descriptors >= FD_SETSIZE (1024).
        self._selector = selectors.DefaultSelector()
        self._events = selectors.EVENT_READ
        self._selector.register(sock, self._events)

    def _wait(self, for_write: bool, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineError
        events = selectors.EVENT_WRITE if for_write else selectors.EVENT_READ
        if events != self._events:
            self._selector.modify(self.sock, events)
            self._events = events
        if not self._selector.select(remaining):
            raise _DeadlineError

    def _retry(self, operation: Callable[[], _T], deadline: float) -> _T:
        while True:
            try:
                return operation()
            except SSL.WantReadError:
                self._wait(False, deadline)
            except SSL.WantWriteError:
                self._wait(True, deadline)

    def handshake(self, deadline: float) -> None:
        self._retry(self.tls.do_handshake, deadline)

    def recv(self, deadline: float) -> bytes:
        try:
            data = self._retry(lambda: self.tls.recv(_RECV_CHUNK), deadline)
        except SSL.Error as exc:  # includes a clean close (ZeroReturnError) and resets
            raise _ClosedError from exc
        if not data:
            raise _ClosedError
        return data

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        try:
            while view:
                sent = self._retry(functools.partial(self.tls.send, view), deadline)
                view = view[sent:]
        except SSL.Error as exc:
            raise _ClosedError from exc

    def close(self, *, notify: bool) -> None:
        if notify:
            with contextlib.suppress(SSL.Error, OSError):
                self.tls.shutdown()  # close_notify, best effort: never wait for the peer's
        self.release()
        self.sock.close()

    def release(self) -> None:
        """Close the selector (idempotent; the socket is the caller's)."""
        self._selector.close()


class TlsHttpServer:
    """Serve ``handler`` over mutual TLS on one loopback address.

    Args:
        host: ``127.0.0.1``, ``::1`` or ``localhost`` (loopback only).
        port: The port; 0 picks a free one.
        context: The TLS server context (it must request a client certificate).
        handler: What to answer.
        read_timeout: Seconds allowed for a handshake or for a whole request (head and
            body), including the idle time before it on a kept-alive connection.
        max_connections: Connections served at once; more are closed immediately.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        context: SSL.Context,
        handler: Handler,
        read_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self._context = context
        self._handler = handler
        self._read_timeout = read_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        # Requests are handled one at a time, like an event loop would: under the GIL,
        # interleaving them only stretches each one (see bench/emulator.py).
        self._processing = threading.Lock()
        self._listener = _listen(host, port)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._acceptor: Optional[threading.Thread] = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start accepting connections in a background thread.

        Raises:
            OSError: the acceptor cannot be set up (e.g. no descriptor is left for its
                selector); no thread is left running, and :meth:`stop` still closes the socket.
            RuntimeError: the server was started before.
        """
        if self._acceptor is not None:
            raise RuntimeError("the server is already started")
        # Set up here, not in the thread: a failure there would leave a server that returned
        # from start() but never accepts.
        # A selector, not select.select(): that fails for descriptors >= FD_SETSIZE (1024).
        try:
            selector = selectors.DefaultSelector()
        except OSError as exc:
            host, port = self.address
            raise OSError(
                f"the credential endpoint cannot accept connections on {host}:{port}: "
                f"{exc.strerror}"
            ) from exc
        try:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            acceptor = threading.Thread(
                target=self._accept_loop, args=(selector,), name="iot-emulator-accept", daemon=True
            )
            acceptor.start()
        except BaseException:
            selector.close()
            raise
        self._acceptor = acceptor

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every open connection and join every thread."""
        self._stopping.set()
        self._wake_writer.send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            connections = list(self._connections.items())
        for _, sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's select()
        deadline = time.monotonic() + timeout
        for thread, _ in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._wake_reader.close()
        self._wake_writer.close()

    # --- accepting ------------------------------------------------------------------------------

    def _accept_loop(self, selector: selectors.BaseSelector) -> None:
        """Accept until stopped; ``selector`` watches the listener and the wake-up socket."""
        backoff = 0.0  # the last wait after an exhausted accept(); 0 outside such an episode
        with selector:
            while not self._stopping.is_set():
                ready = {key.fileobj for key, _ in selector.select(1.0)}
                if self._listener not in ready or self._stopping.is_set():
                    continue
                try:
                    sock, _ = self._listener.accept()
                except OSError as exc:
                    if exc.errno in _ACCEPT_EXHAUSTED:
                        backoff = self._back_off(backoff, exc)
                    continue
                if backoff:
                    _LOG.info("Accepting connections again")
                    backoff = 0.0
                self._dispatch(sock)

    def _back_off(self, last: float, exc: OSError) -> float:
        """Wait after accept() ran out of a resource (warn once per episode); return the wait."""
        if last:
            wait = min(last * 2, _ACCEPT_BACKOFF_LAST)
        else:
            _LOG.warning("Cannot accept connections (%s); retrying with backoff", exc.strerror)
            wait = _ACCEPT_BACKOFF_FIRST
        self._stopping.wait(wait)  # cut short by stop()
        return wait

    def _dispatch(self, sock: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            _LOG.warning("Too many connections; closing a new one at once")
            sock.close()
            return
        thread: Optional[threading.Thread] = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle per answer
            sock.setblocking(False)
            thread = threading.Thread(
                target=self._serve, args=(sock,), name="iot-emulator-conn", daemon=True
            )
            with self._lock:
                self._connections[thread] = sock
            thread.start()
        except Exception:  # e.g. no thread can start: drop this client, keep accepting
            _LOG.exception("Cannot serve a new connection; closing it")
            if thread is not None:
                with self._lock:
                    self._connections.pop(thread, None)
            sock.close()
            self._slots.release()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._serve_connection(sock)
        except Exception:  # a bug must not take the server down; log it and drop the client
            _LOG.exception("Unexpected error while serving a connection")
        finally:
            sock.close()
            with self._lock:
                self._connections.pop(threading.current_thread(), None)
            self._slots.release()

    # --- one connection -------------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket) -> None:
        tls = SSL.Connection(self._context, sock)
        tls.set_accept_state()
        connection = _Connection(sock, tls)
        try:
            self._converse(connection, tls)
        finally:
            connection.release()

    def _converse(self, connection: _Connection, tls: SSL.Connection) -> None:
        """Handshake, then answer requests until the connection should close."""
        try:
            connection.handshake(time.monotonic() + self._read_timeout)
        except (SSL.Error, _DeadlineError, OSError) as exc:
            _LOG.debug("TLS handshake failed: %r", exc)
            connection.close(notify=False)  # close at once: the client is waiting for the FIN
            return
        certificate = tls.get_peer_certificate(as_cryptography=True)
        if certificate is None:  # pragma: no cover - the context fails the handshake first
            connection.close(notify=False)
            return
        http = HttpConnection()
        keep_open, polite = True, True
        while keep_open and not self._stopping.is_set():
            try:
                keep_open, polite = self._serve_request(connection, certificate, http)
            except (_ClosedError, OSError):
                keep_open, polite = False, False
        connection.close(notify=polite)

    def _serve_request(
        self, connection: _Connection, certificate: x509.Certificate, http: HttpConnection
    ) -> tuple[bool, bool]:
        """Read one request from ``http`` and the connection, and answer it.

        Returns:
            Whether to keep the connection open for another request; and, if not, whether to
            announce the close with a TLS close_notify (not after a deliberately broken answer).
        """
        deadline = time.monotonic() + self._read_timeout
        try:
            request = _read_request(connection, http, deadline)
        except _DeadlineError:
            if not http.mid_request:
                return False, True  # an idle kept-alive connection: close quietly
            return self._reject(connection, http, 408, "Request too slow")
        except HttpError as exc:
            return self._reject(connection, http, exc.status, exc.message)
        with self._processing:
            started = time.monotonic()
            response = self._ask(functools.partial(self._handler.handle, request, certificate))
        if request.method == "HEAD":  # a HEAD answer has no body; close, as before h11
            response = dataclasses.replace(response, body=b"", close=True)
        if response.delay > 0:
            self._stopping.wait(response.delay)  # injected latency, cut short by stop()
        return self._send(connection, http, response, started)

    def _reject(
        self, connection: _Connection, http: HttpConnection, status: int, message: str
    ) -> tuple[bool, bool]:
        """Answer a request that could not be read; the connection closes after, whatever
        the handler's answer says (h11 cannot start another request after a broken one)."""
        response = self._ask(functools.partial(self._handler.reject, status, message))
        _, polite = self._send(connection, http, dataclasses.replace(response, close=True))
        return False, polite

    def _ask(self, call: Callable[[], HttpResponse]) -> HttpResponse:
        """The handler's answer or, if it raises, a plain 500 that closes the connection.

        Only the traceback is logged: whatever the handler had decided, credentials included,
        is gone with it.
        """
        try:
            return call()
        except Exception:  # a bug in the handler: the client still gets an answer
            _LOG.exception("The handler failed; answering a plain 500 instead")
            return _INTERNAL_FAILURE

    def _send(
        self,
        connection: _Connection,
        http: HttpConnection,
        response: HttpResponse,
        started: Optional[float] = None,
    ) -> tuple[bool, bool]:
        """Send ``response`` as its delivery says.

        ``started`` is when the request was complete: ``on_ready`` gets the time since, just
        before the answer is framed and written, so the journal is up to date by the time the
        client has its answer. If it raises, the handler's 500 goes out instead.

        Returns:
            Whether the connection may carry another request, and whether the answer went out
            whole (so the close, if any, may be announced).
        """
        now = time.monotonic()
        if response.on_ready is not None:
            try:
                response.on_ready(now - (started if started is not None else now))
            except Exception:  # an emulator bug: say so once, but still answer the client
                _LOG.exception("Cannot record a request in the journal; answering 500 instead")
                # Not recorded either (the journal just failed); the decided answer, which
                # may hold credentials, is dropped unlogged.
                reject = functools.partial(self._handler.reject, 500, "Internal failure")
                response = dataclasses.replace(self._ask(reject), on_ready=None)
        try:
            data, keep_open = http.frame(response)
        except HttpError as exc:  # e.g. a line break injected into a fault's header
            _LOG.error("Cannot send the answer (%s); answering a plain 500 instead", exc.message)
            response = _INTERNAL_FAILURE
            data, keep_open = http.frame(response)
        try:
            connection.send(data, now + self._read_timeout)
        except (_ClosedError, _DeadlineError, OSError):
            return False, False
        whole = response.delivery is Delivery.FULL
        return keep_open and whole, whole


def _read_request(connection: _Connection, http: HttpConnection, deadline: float) -> HttpRequest:
    """Read until ``http`` has a whole request (at once if a pipelined one is buffered).

    Raises:
        HttpError: the bytes are not a request the emulator accepts.
        _DeadlineError: the deadline passed first (``http.mid_request`` says if any arrived).
        _ClosedError: the peer closed the connection.
    """
    while True:
        request = http.next_request()
        if request is not None:
            return request
        http.receive_data(connection.recv(deadline))


def _listen(host: str, port: int) -> socket.socket:
    """Bind a listening socket on a loopback address."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"the emulator listens on loopback only, not on {host!r}")
    family = socket.AF_INET6 if host == "::1" else socket.AF_INET
    address = "127.0.0.1" if host == "localhost" else host
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"the credential endpoint cannot listen on {address}:{port}: {exc.strerror}"
        ) from exc
    return sock
