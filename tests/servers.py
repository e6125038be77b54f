"""A scriptable HTTPS server with mutual TLS on loopback, for tests of the client side.

Each test queues the answers it wants (:class:`Reply`), including the broken ones: a stall, a
connection closed mid-response, garbage. The server records what it received. It is a real TLS
server (stdlib ``ssl``) on 127.0.0.1 or ::1, started and stopped by the test.

Also what every test server and waiting test here shares: :func:`wait_until` (poll a condition
with a deadline, instead of sleeping), :class:`StopSignal` and :func:`accept_until` (server
threads that block instead of polling, and wake at once on stop).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Callable, Optional, TypeVar, Union

import trustme

#: The longest a :class:`Reply` with ``stall`` holds its connection.
STALL_LIMIT = 60.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Send only this many bytes of the full response, then close the connection.
    truncate_at: Optional[int] = None
    #: Never answer; hold the connection open until the server stops (or STALL_LIMIT passes:
    #: then close it, so that a client that never times out fails its test instead of hanging).
    stall: bool = False


@dataclasses.dataclass(frozen=True)
class Received:
    """What one request looked like."""

    method: str
    path: str
    headers: dict[str, str]
    client_certificate: Optional[bytes]


def credentials_body(
    lifetime: timedelta = timedelta(hours=1),
    *,
    now: Optional[datetime] = None,
    key: str = "ASIATEST",
) -> bytes:
    """A 200 body as the Credential Provider sends it."""
    expiration = (now or datetime.now(timezone.utc)) + lifetime
    return json.dumps(
        {
            "credentials": {
                "accessKeyId": key,
                "secretAccessKey": "test-secret-access-key",
                "sessionToken": "test-session-token",
                "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }
    ).encode()


_T = TypeVar("_T")

#: How long :func:`wait_until` waits unless told: a guard against hanging, not a measurement.
WAIT_TIMEOUT = 30.0


def wait_until(
    condition: Callable[[], _T],
    timeout: float = WAIT_TIMEOUT,
    *,
    what: str = "",
    interval: float = 0.01,
) -> _T:
    """Poll ``condition`` until it returns something true, and return that.

    Tests wait for a thing to happen with this, never with a fixed sleep: a sleep is too short on
    a loaded machine and too long everywhere else. Past ``timeout`` the test fails, naming
    ``what`` it waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or condition!r}")
        time.sleep(interval)


class StopSignal(threading.Event):
    """An event that ``select`` can wait on too: once set, :meth:`fileno` stays readable.

    Server threads wait on their sockets and on this at once, so :meth:`set` wakes them at once
    (no accept timeout polled every few tenths of a second).
    """

    def __init__(self) -> None:
        super().__init__()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)

    def set(self) -> None:
        super().set()
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def fileno(self) -> int:
        return self._reader.fileno()

    def close(self) -> None:
        _close_quietly(self._reader)
        _close_quietly(self._writer)


def accept_until(
    stopping: StopSignal,
    listener: socket.socket,
    handle: Callable[[socket.socket, tuple[str, int]], None],
) -> None:
    """Accept connections on ``listener`` and hand each (blocking) to ``handle``, until
    ``stopping`` is set. Run it in a thread; it wakes on a connection or on the signal."""
    listener.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        selector.register(stopping, selectors.EVENT_READ)
        while not stopping.is_set():
            selector.select()
            if stopping.is_set():
                return
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # the client gave up between select and accept
            sock.setblocking(True)
            handle(sock, peer)


class FakeClock:
    """A settable wall clock, shared by a client under test and a scripted server."""

    def __init__(self, start: Optional[datetime] = None) -> None:
        self.now = start or datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def issuing(
    clock: Callable[[], datetime],
    lifetime: timedelta,
    *,
    skew: timedelta = timedelta(0),
    delay: float = 0.0,
) -> Callable[[Received], Reply]:
    """Replies with fresh credentials valid ``lifetime`` by the server's clock (``clock`` +
    ``skew``), dated with that clock, and numbered ASIA000001, ASIA000002, ..."""
    counter = itertools.count(1)

    def reply(_: Received) -> Reply:
        server_now = clock() + skew
        body = credentials_body(lifetime, now=server_now, key=f"ASIA{next(counter):06d}")
        return Reply(
            body=body,
            headers=(("Date", format_datetime(server_now, usegmt=True)),),
            delay=delay,
        )

    return reply


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


ReplySource = Union[Reply, Callable[[Received], Reply]]


class TlsServer:
    """Serves scripted replies over mutual TLS until :meth:`stop`.

    Its threads block on sockets, never poll: a connection is served as soon as it arrives, and
    :meth:`stop` wakes every thread at once (the acceptor through a :class:`StopSignal`, the
    connection threads by shutting their sockets down).
    """

    def __init__(
        self,
        ca: trustme.CA,
        *,
        host: str = "127.0.0.1",
        client_ca: Optional[trustme.CA] = None,
        default: ReplySource = Reply(body=b""),
        maximum_version: Optional[ssl.TLSVersion] = None,
        port: int = 0,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(64)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(self._context)
        (client_ca or ca).configure_trust(self._context)
        self._context.verify_mode = ssl.CERT_REQUIRED
        if maximum_version is not None:
            self._context.maximum_version = maximum_version
        self._replies: collections.deque[ReplySource] = collections.deque()
        self._default = default
        self.received: list[Received] = []
        self.handshake_failures = 0
        self._lock = threading.Lock()
        self._stopping = StopSignal()
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._acceptor = threading.Thread(
            target=accept_until, args=(self._stopping, self._listener, self._accepted), daemon=True
        )
        self._stopped = False

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def queue(self, *replies: ReplySource) -> None:
        """Answer the next requests with these, in order; then the default."""
        with self._lock:
            self._replies.extend(replies)

    def set_default(self, reply: ReplySource) -> None:
        with self._lock:
            self._default = reply

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.received)

    def start(self) -> TlsServer:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake every connection thread and wait for all of them; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        with self._lock:
            sockets = list(self._open)
            threads = list(self._threads)
        for sock in sockets:
            _shut_down(sock)
        for thread in threads:
            thread.join(5)
        self._listener.close()
        self._stopping.close()

    def __enter__(self) -> TlsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accepted(self, sock: socket.socket, _: tuple[str, int]) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        # wrap_socket takes over the descriptor: register the TLS socket before the handshake,
        # so that stop() can wake a thread blocked in it. On a failed handshake, close the TLS
        # socket itself at once (clients wait for the server's FIN), not the detached raw one.
        tls = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            self._open.append(tls)
        if self._stopping.is_set():  # stop() may have shut down the others without this one
            _close_quietly(tls)
            return
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            with self._lock:
                self.handshake_failures += 1
            _close_quietly(tls)
            return
        try:
            self._answer(tls)
        except (ssl.SSLError, OSError):
            pass
        finally:
            _close_quietly(tls)

    def _answer(self, tls: ssl.SSLSocket) -> None:
        received = _read_request(tls)
        if received is None:
            return
        with self._lock:
            self.received.append(received)
            source = self._replies.popleft() if self._replies else self._default
        reply = source(received) if callable(source) else source
        if reply.stall:
            self._stopping.wait(STALL_LIMIT)
            return
        if reply.delay and self._stopping.wait(reply.delay):
            return
        data = _render(reply)
        tls.sendall(data if reply.truncate_at is None else data[: reply.truncate_at])


def _read_request(tls: ssl.SSLSocket) -> Optional[Received]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Received(method, path, headers, tls.getpeercert(binary_form=True))


def _render(reply: Reply) -> bytes:
    names = {name.lower() for name, _ in reply.headers}
    headers = list(reply.headers)
    if "date" not in names:
        headers.append(("Date", format_datetime(datetime.now(timezone.utc), usegmt=True)))
    if "content-length" not in names:
        headers.append(("Content-Length", str(len(reply.body))))
    headers.append(("Content-Type", "application/json"))
    headers.append(("Connection", "close"))  # one request per connection, said so
    head = f"HTTP/1.1 {reply.status} Status\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode() + b"\r\n" + reply.body


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _shut_down(sock: socket.socket) -> None:
    """Wake a thread blocked in this socket's handshake, recv or send, from another thread.

    ``socket.socket.shutdown`` itself, not ``SSLSocket.shutdown``, which would also drop the TLS
    object under the thread still using it.
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@dataclasses.dataclass(frozen=True)
class DeviceFiles:
    """A device identity on disk and in memory, issued by a test CA."""

    certificate_file: str
    private_key_file: str
    certificate_pem: bytes
    private_key_pem: bytes


def issue_device(ca: trustme.CA, directory: str, name: str = "device") -> DeviceFiles:
    """Issue a client certificate and write it and its key (0600) into ``directory``."""
    leaf = ca.issue_cert(f"{name}.example")
    certificate_pem = leaf.cert_chain_pems[0].bytes()
    private_key_pem = leaf.private_key_pem.bytes()
    certificate_file = os.path.join(directory, f"{name}.pem.crt")
    private_key_file = os.path.join(directory, f"{name}.pem.key")
    with open(certificate_file, "wb") as handle:
        handle.write(certificate_pem)
    descriptor = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_key_pem)
    return DeviceFiles(certificate_file, private_key_file, certificate_pem, private_key_pem)


def running(server: TlsServer) -> Iterator[TlsServer]:
    """Fixture body: start, yield, always stop."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
