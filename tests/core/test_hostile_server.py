"""Servers that never finish their answer: the transport drops them at a fixed size, at once.

awscrt's HTTP/1.1 decoder keeps a response's header block in native memory and reports it only
when the block ends, so an endless header block (or line, or run of 1xx answers) grew a client to
gigabytes. These tests face the transport with such servers over real TLS on loopback.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest
import trustme

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._endpoint import parse_endpoint
from awsiot_credentialhelper._keys import PemKey
from awsiot_credentialhelper._protocol import Request, Response
from awsiot_credentialhelper._proxy import ProxySettings
from awsiot_credentialhelper._transport import (
    MAX_RESPONSE_BYTES,
    CrtTransport,
    build_tls_context,
    connect_timeout_ms,
)

from ..servers import (
    DeviceFiles,
    Reply,
    StopSignal,
    TlsServer,
    accept_until,
    credentials_body,
    wait_until,
)
from .test_proxy import ConnectProxy

#: What one connection's server sends after reading the request: chunks until it is exhausted,
#: the client hangs up or the server stops (the event it is given is set).
Script = Callable[[threading.Event], Iterator[bytes]]

#: A child process facing an endless answer must stay under this peak resident size.
MEMORY_CEILING_KB = 100 * 1024

REQUEST = Request(
    path="/role-aliases/test-alias/credentials",
    headers=(("Host", "localhost"), ("x-amzn-iot-thingname", "test-thing")),
)


class HostileTlsServer:
    """A mutual-TLS server on loopback that answers every request with a scripted byte stream.

    Each connection is served by its own thread, which ends when the script is exhausted, when
    the client hangs up (a send fails), when a send blocks for 2 s (the client stopped reading)
    or when :meth:`stop` is called.
    """

    def __init__(
        self,
        ca: trustme.CA,
        script: Script,
        *,
        on_accept: Optional[Callable[[], None]] = None,
    ) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self._context)
        ca.configure_trust(self._context)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._script = script
        self._on_accept = on_accept
        self._stopping = StopSignal()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        #: The clients' (address, port), in the order they connected.
        self.peers: list[tuple[str, int]] = []
        #: Set when a client closed or reset the connection while the script was still sending.
        self.hung_up = threading.Event()
        self.bytes_sent = 0
        self._acceptor = threading.Thread(
            target=accept_until, args=(self._stopping, self._listener, self._accepted), daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> HostileTlsServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, unblock every connection thread and wait for all of them to end."""
        self._stopping.set()
        self._acceptor.join(5)
        with self._lock:
            for sock in self._open:
                # shutdown() wakes a thread blocked in this socket's handshake or recv.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                _close_quietly(sock)
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()
        self._stopping.close()
        alive = [thread for thread in [self._acceptor, *self._threads] if thread.is_alive()]
        assert not alive, "a server thread did not end"

    def _accepted(self, raw: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            self.peers.append(peer[:2])
            self._open.append(raw)
        if self._on_accept is not None:
            self._on_accept()
        thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(2)
        # wrap_socket takes over the descriptor: register the TLS socket so stop() can wake a
        # thread blocked in its handshake.
        try:
            tls = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except OSError:  # stop() closed it first
            _close_quietly(raw)
            return
        with self._lock:
            self._open.append(tls)
        try:
            tls.do_handshake()
            if _read_request_head(tls):
                self._send_script(tls)
        except OSError:
            pass  # a failed handshake: the foreign plain-TCP sockets of one test
        finally:
            _close_quietly(tls)

    def _send_script(self, tls: ssl.SSLSocket) -> None:
        try:
            for chunk in self._script(self._stopping):
                if self._stopping.is_set():
                    return
                tls.sendall(chunk)
                with self._lock:
                    self.bytes_sent += len(chunk)
        except socket.timeout:
            return  # the client stopped reading without hanging up
        except OSError:
            if not self._stopping.is_set():
                self.hung_up.set()


def _read_request_head(tls: ssl.SSLSocket) -> bool:
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                return False
            data += chunk
        return True
    return False


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


# --- scripts -------------------------------------------------------------------------------


def endless_header_lines(_: threading.Event) -> Iterator[bytes]:
    yield b"HTTP/1.1 200 OK\r\n"
    block = (b"X-Filler: " + b"a" * 100 + b"\r\n") * 150
    while True:
        yield block


def endless_informational(_: threading.Event) -> Iterator[bytes]:
    block = b"HTTP/1.1 100 Continue\r\nX-Filler: a\r\n\r\n" * 500
    while True:
        yield block


def endless_header_line(_: threading.Event) -> Iterator[bytes]:
    yield b"HTTP/1.1 200 OK\r\nX-Long: "
    block = b"a" * 16384
    while True:
        yield block


def slow_drip(stopping: threading.Event) -> Iterator[bytes]:
    """One byte of an unfinished header line every 0.25 s, for as long as the client waits.

    The pace is the point (each byte arrives well within any per-read timeout); a quicker one
    than a byte a second also lets the server see the client hang up sooner.
    """
    yield b"HTTP/1.1 200 OK\r\nX-Slow: "
    while not stopping.wait(0.25):
        yield b"a"


def finished(head_bytes: int, body_bytes: int) -> Script:
    """A complete answer with about ``head_bytes`` of headers and ``body_bytes`` of body."""
    line = b"X-Filler: " + b"a" * 90 + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\n" + line * (head_bytes // len(line))
    head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % body_bytes

    def script(stopping: threading.Event) -> Iterator[bytes]:
        yield head + b"x" * body_bytes
        stopping.wait(2)  # hold the connection open: the client must act on what it has

    return script


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def transport_to(ca: trustme.CA, device: DeviceFiles) -> Iterator[Callable[[str], CrtTransport]]:
    """Transports to an endpoint with the test device and CA; every one is closed after."""
    made: list[CrtTransport] = []
    context = build_tls_context(
        PemKey(device.private_key_pem, device.certificate_pem, origin="test key"),
        device.certificate_pem,
        ca_pem=ca.cert_pem.bytes(),
        verify_peer=True,
    )

    def make(endpoint: str) -> CrtTransport:
        transport = CrtTransport(parse_endpoint(endpoint), context)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def send(transport: CrtTransport, timeout: float = 10.0) -> Response:
    return transport.send(REQUEST, timeout=timeout)


# --- endless answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [endless_header_lines, endless_informational, endless_header_line],
    ids=["header-lines", "informational-1xx", "one-header-line"],
)
def test_an_endless_answer_is_cut_off_at_the_cap(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport], script: Script
) -> None:
    with HostileTlsServer(ca, script) as server:
        with pytest.raises(errors.ResponseTooLargeError) as caught:
            send(transport_to(server.endpoint), timeout=30)
        assert server.hung_up.wait(10), "the client kept the connection open"
    error = caught.value
    assert isinstance(error, errors.NetworkError)
    assert error.retryable is False
    assert str(MAX_RESPONSE_BYTES) in str(error)
    assert error.endpoint == server.endpoint
    # What the server pushed before it noticed: the cap, the overshoot of one watch interval and
    # the kernel's socket buffers; without the watch, hundreds of megabytes before the timeout.
    assert server.bytes_sent < 64 * 1024 * 1024


def test_a_slow_drip_ends_at_the_total_timeout(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    with HostileTlsServer(ca, slow_drip) as server:
        with pytest.raises(errors.ReadTimeoutError):
            send(transport_to(server.endpoint), timeout=1.5)
        assert server.hung_up.wait(10), "the client kept the connection open"


def test_a_finished_header_block_over_the_cap_is_refused(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    server = HostileTlsServer(ca, finished(MAX_RESPONSE_BYTES + 1024, 10))
    with server, pytest.raises(errors.ResponseTooLargeError):
        send(transport_to(server.endpoint))


def test_headers_and_body_count_together(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    half = MAX_RESPONSE_BYTES // 2 + 1024
    server = HostileTlsServer(ca, finished(half, half))
    with server, pytest.raises(errors.ResponseTooLargeError):
        send(transport_to(server.endpoint))


def test_a_body_over_the_cap_is_refused(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    server = HostileTlsServer(ca, finished(0, MAX_RESPONSE_BYTES + 1))
    with server, pytest.raises(errors.ResponseTooLargeError) as caught:
        send(transport_to(server.endpoint))
    assert caught.value.retryable is False


def test_an_answer_just_under_the_cap_is_read(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    head, body = 8 * 1024, MAX_RESPONSE_BYTES - 9 * 1024
    with HostileTlsServer(ca, finished(head, body)) as server:
        response = send(transport_to(server.endpoint))
    assert response.status == 200
    assert len(response.body) == body


# --- a whole credential-process run, in a child process -------------------------------------

#: Runs the command in its argv and reports its exit code and peak resident size (KB): this
#: wrapper's only child is that command, so RUSAGE_CHILDREN is that command's alone.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "run = subprocess.run(sys.argv[1:], capture_output=True, text=True, stdin=subprocess.DEVNULL)\n"
    "sys.stderr.write(run.stderr)\n"
    "print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def test_credential_process_memory_stays_bounded_facing_endless_headers(
    ca: trustme.CA, ca_file: str, device: DeviceFiles, tmp_path: Path
) -> None:
    script = str(Path(sys.executable).with_name("awsiot-credentialhelper"))
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("AWS", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"))
    }
    environment["HOME"] = str(tmp_path)
    with HostileTlsServer(ca, endless_header_lines) as server:
        measured = subprocess.run(
            [
                *(sys.executable, "-c", _MEASURE),
                *(script, "credential-process", "--no-cache", "--timeout=10"),
                f"--endpoint={server.endpoint}",
                "--role-alias=test-alias",
                "--thing-name=test-thing",
                f"--certificate={device.certificate_file}",
                f"--private-key={device.private_key_file}",
                f"--ca={ca_file}",
            ],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    exit_code, peak_kb = (int(word) for word in measured.stdout.split())
    assert exit_code != 0
    assert "larger than" in measured.stderr
    assert peak_kb < MEMORY_CEILING_KB, f"peak RSS {peak_kb} KB"


# --- the connection's own socket (issue 11) --------------------------------------------------


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_other_sockets_to_the_same_port_are_left_alone(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport]
) -> None:
    """Sockets of other code to the same server, one opened before the transport's connect and
    one during it, keep their options; the transport still watches its own connection."""
    others: list[socket.socket] = []
    armed = threading.Event()
    # Holds a descriptor number below the transport's, for the socket born during its connect:
    # sockets are then examined in an order that puts the other one first.
    placeholder = socket.socket()

    def open_another() -> None:
        # Called on the server's accept of the transport's connection, before its TLS handshake
        # can complete: this socket is born while the transport is connecting, to the same port.
        if armed.is_set() and len(others) == 1:
            placeholder.close()  # POSIX: the next socket gets the lowest free number, this one
            others.append(socket.create_connection(("127.0.0.1", server.port)))

    server = HostileTlsServer(ca, endless_header_lines, on_accept=open_another)
    try:
        with server:
            others.append(socket.create_connection(("127.0.0.1", server.port)))
            wait_until(lambda: server.peers, what="the server accepted the first socket")
            armed.set()  # only then: the transport's connection is the second one accepted
            with pytest.raises(errors.ResponseTooLargeError):
                send(transport_to(server.endpoint), timeout=30)
            assert len(others) == 2
            assert [_nodelay(other) for other in others] == [0, 0]
    finally:
        placeholder.close()
        for other in others:
            other.close()


# --- timeouts that awscrt cannot hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (0.0001, 1),
        (2.5, 2500),
        (86400, 86_400_000),
        (4_294_967.295, 2**32 - 1),
        (1e12, 2**32 - 1),
        (math.inf, 2**32 - 1),
        (math.nan, 2**32 - 1),
    ],
)
def test_connect_timeout_fits_awscrt_uint32(timeout: float, expected: int) -> None:
    assert connect_timeout_ms(timeout) == expected


@pytest.mark.parametrize("timeout", [1e12, math.inf], ids=["1e12", "inf"])
def test_a_huge_timeout_still_fetches(
    ca: trustme.CA, transport_to: Callable[[str], CrtTransport], timeout: float
) -> None:
    with TlsServer(ca, default=Reply(body=credentials_body())) as server:
        response = send(transport_to(server.endpoint), timeout=timeout)
    assert response.status == 200


class _HangUpTolerantProxy(ConnectProxy):
    """The test CONNECT proxy, whose tunnel ends quietly when the client resets it (as the
    transport does when it drops a flood it has not read)."""

    def _tunnel(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            super()._tunnel(client)


def test_through_a_proxy_the_watch_finds_the_tunnel_socket(
    ca: trustme.CA, device: DeviceFiles
) -> None:
    """Through a CONNECT proxy in this process, four sockets are born per fetch (ours to the
    proxy, the proxy's two, the server's): the watch still finds ours and cuts the flood."""
    context = build_tls_context(
        PemKey(device.private_key_pem, device.certificate_pem, origin="test key"),
        device.certificate_pem,
        ca_pem=ca.cert_pem.bytes(),
        verify_peer=True,
    )
    proxy = _HangUpTolerantProxy()
    try:
        with HostileTlsServer(ca, endless_header_lines) as server:
            transport = CrtTransport(
                parse_endpoint(server.endpoint),
                context,
                proxy=ProxySettings(host="127.0.0.1", port=proxy.port),
            )
            try:
                with pytest.raises(errors.ResponseTooLargeError):
                    send(transport, timeout=30)
            finally:
                transport.close()
    finally:
        proxy.close()
    assert len(proxy.requests) == 1
