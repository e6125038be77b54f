"""The TLS/HTTP server under bad input: it answers properly, never crashes, keeps serving."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import logging
import os
import resource
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from awsiot_credentialhelper.emulator import Device, Emulator
from awsiot_credentialhelper.emulator import _server as server_module
from awsiot_credentialhelper.emulator._app import CredentialProviderApp
from awsiot_credentialhelper.emulator._http import HttpResponse
from awsiot_credentialhelper.emulator._journal import Journal
from awsiot_credentialhelper.emulator._server import TlsHttpServer

from ._client import (
    TIMEOUT,
    Answer,
    call_with_deadline,
    connect,
    credentials_path,
    fetch,
    held_port,
    request,
    tls_context,
)


@contextlib.contextmanager
def raw_tls(emulator: Emulator, device: Device) -> Iterator[ssl.SSLSocket]:
    """A TLS socket with the device's certificate, for sending bytes no HTTP client would."""
    context = tls_context(emulator.ca_file, device.certificate_file, device.private_key_file)
    sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT)
    with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        yield tls


def read_all(sock: socket.socket) -> bytes:
    """Read until the server closes the connection (bounded by the socket's timeout)."""
    chunks = []
    with contextlib.suppress(ssl.SSLError, ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def still_serving(emulator: Emulator, device: Device) -> bool:
    return fetch(emulator, device).status == 200


# --- transport-level abuse -------------------------------------------------------------------


def test_plain_text_garbage_is_dropped(iot_emulator: Emulator, iot_device: Device) -> None:
    with socket.create_connection(("127.0.0.1", iot_emulator.port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(256))
        reply = read_all(sock)
        waited = time.monotonic() - started
    # The handshake fails on the first bytes and the server closes at once: no HTTP answer
    # (a TLS alert record at most), and no waiting for the 5 s handshake deadline.
    assert reply == b"" or reply.startswith(b"\x15\x03"), reply[:16]
    assert waited < 2.0
    assert iot_emulator.stats().total == 0  # not a request: nothing journaled
    assert still_serving(iot_emulator, iot_device)


def test_silent_client_is_dropped_after_the_handshake_deadline(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, read_timeout=0.5) as emulator:
        device = emulator.provision_device("silent-neighbour")
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT) as silent:
            started = time.monotonic()
            assert still_serving(emulator, device)  # others are served meanwhile
            assert read_all(silent) == b""  # the server closes it, without a word
            waited = time.monotonic() - started
        assert 0.3 < waited < 3.0
        assert emulator.stats().by_outcome == {"SUCCESS": 1}


def test_client_without_certificate_fails_the_handshake(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    connection = connect(iot_emulator, None, None)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        # TLS 1.3 reports the missing certificate after the client's handshake completes.
        request(connection, credentials_path(iot_device.role_alias))
    connection.close()
    assert still_serving(iot_emulator, iot_device)


def test_server_certificate_is_valid_for_localhost_names(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    for host in ("localhost", "127.0.0.1"):
        connection = connect(
            iot_emulator, iot_device.certificate_file, iot_device.private_key_file, host=host
        )
        try:
            assert request(connection, credentials_path(iot_device.role_alias)).status == 200
            assert isinstance(connection.sock, ssl.SSLSocket)
            assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            connection.close()


def test_tls_1_2_clients_are_served(iot_emulator: Emulator, iot_device: Device) -> None:
    context = tls_context(
        iot_emulator.ca_file, iot_device.certificate_file, iot_device.private_key_file
    )
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    connection = http.client.HTTPSConnection(
        "127.0.0.1", iot_emulator.port, context=context, timeout=TIMEOUT
    )
    try:
        answer = request(connection, credentials_path(iot_device.role_alias))
        assert answer.status == 200
    finally:
        connection.close()


# --- HTTP-level abuse --------------------------------------------------------------------------


def test_unknown_path_is_a_json_404(iot_emulator: Emulator, iot_device: Device) -> None:
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        answer = request(connection, "/nothing/here")
        assert (answer.status, answer.json()) == (404, {"message": "Not Found"})
        assert answer.headers["content-type"] == "application/json"
        assert "x-amzn-requestid" in answer.headers
        # The connection stays usable.
        assert request(connection, credentials_path(iot_device.role_alias)).status == 200
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_a_405(iot_emulator: Emulator, iot_device: Device, method: str) -> None:
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        answer = request(connection, credentials_path(iot_device.role_alias), method=method)
        assert answer.status == 405
        assert answer.headers["allow"] == "GET"
        if method != "HEAD":
            assert answer.json() == {"message": "Method Not Allowed"}
    finally:
        connection.close()


def test_oversized_head_is_a_431(iot_emulator: Emulator, iot_device: Device) -> None:
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b'{"message":"Request head too large"}' in reply
    assert still_serving(iot_emulator, iot_device)


BAD_REQUEST, INTERNAL_FAILURE = "BadRequestException", "InternalFailureException"
HOST = b"Host: 127.0.0.1\r\n"


@pytest.mark.parametrize(
    ("head", "status", "error_type"),
    [
        pytest.param(b"NONSENSE\r\n\r\n", 400, BAD_REQUEST, id="bad-request-line"),
        pytest.param(b"GET / HTTP/3\r\n" + HOST + b"\r\n", 400, BAD_REQUEST, id="bad-version"),
        pytest.param(
            b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", 505, INTERNAL_FAILURE, id="http-2-over-1"
        ),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, BAD_REQUEST, id="no-host"),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + HOST + b"x-amzn-iot-thingname: a\r\n"
            b"x-amzn-iot-thingname: b\r\n\r\n",
            400,
            BAD_REQUEST,
            id="two-thing-names",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
            501,
            INTERNAL_FAILURE,
            id="not-chunked",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n",
            400,
            BAD_REQUEST,
            id="chunked-and-length",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + HOST + b"Content-Length: 999999\r\n\r\n",
            413,
            BAD_REQUEST,
            id="huge-body",
        ),
    ],
)
def test_malformed_requests_get_an_error_and_a_close(
    iot_emulator: Emulator, iot_device: Device, head: bytes, status: int, error_type: str
) -> None:
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(head)
        reply = read_all(tls)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in reply
    assert f"x-amzn-ErrorType: {error_type}\r\n".encode() in reply
    assert iot_emulator.stats().by_outcome == {"BAD_REQUEST": 1}


def test_small_request_body_is_read_and_ignored(iot_emulator: Emulator, iot_device: Device) -> None:
    path = credentials_path(iot_device.role_alias).encode()
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(
            b"GET " + path + b" HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
            b"Connection: close\r\n\r\nhello"
        )
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 200 ")


def test_chunked_request_body_is_read_and_ignored(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    """The old parser refused any Transfer-Encoding (501); h11 reads a chunked body."""
    request = b"GET " + credentials_path(iot_device.role_alias).encode() + b" HTTP/1.1\r\n" + HOST
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(request + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        tls.sendall(request + b"Connection: close\r\n\r\n")  # the connection was kept
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 2}


def test_pipelined_requests_are_answered_in_order(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    path = credentials_path(iot_device.role_alias).encode()
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(
            b"GET /first HTTP/1.1\r\n" + HOST + b"\r\n"
            b"GET " + path + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
        )
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 404 ")
    assert reply.count(b"HTTP/1.1 ") == 2
    assert [r.path for r in iot_emulator.requests()] == ["/first", path.decode()]


def test_keep_alive_serves_many_requests_on_one_connection(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        statuses = [
            request(connection, credentials_path(iot_device.role_alias)).status for _ in range(3)
        ]
    finally:
        connection.close()
    assert statuses == [200, 200, 200]


def test_http_1_0_closes_after_the_answer(iot_emulator: Emulator, iot_device: Device) -> None:
    path = credentials_path(iot_device.role_alias).encode()
    for keep_alive in (b"", b"Connection: keep-alive\r\n"):  # h11 keeps no 1.0 connection
        with raw_tls(iot_emulator, iot_device) as tls:
            tls.sendall(b"GET " + path + b" HTTP/1.0\r\n" + keep_alive + b"\r\n")
            reply = read_all(tls)  # returns because the server closes
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nConnection: close\r\n" in reply


def test_slow_and_idle_clients_are_timed_out(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, read_timeout=0.3) as emulator:
        device = emulator.provision_device("slow-client")
        with raw_tls(emulator, device) as tls:
            tls.sendall(b"GET /role-aliases/")  # ...and never the rest
            assert read_all(tls).startswith(b"HTTP/1.1 408 ")
        with raw_tls(emulator, device) as tls:
            assert read_all(tls) == b""  # idle: closed without an answer
        assert still_serving(emulator, device)


def test_connections_beyond_the_limit_are_closed(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, max_connections=1) as emulator:
        device = emulator.provision_device("limited")
        with contextlib.ExitStack() as stack:
            stack.enter_context(raw_tls(emulator, device))
            extra = socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT)
            stack.enter_context(extra)
            assert read_all(extra) == b""  # closed at once
        # The held connection's slot frees once its thread sees the close: allow a moment.
        for _ in range(100):
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                if still_serving(emulator, device):
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the server did not serve again after the held connection closed")


# --- concurrency, addresses, lifecycle ---------------------------------------------------------


def test_concurrent_clients(iot_emulator: Emulator, iot_device: Device) -> None:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: fetch(iot_emulator, iot_device), range(48)))
    assert {answer.status for answer in answers} == {200}
    keys = {answer.json()["credentials"]["accessKeyId"] for answer in answers}
    assert len(keys) == 48  # every request minted its own credentials
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 48}


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_ipv6_loopback(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, host="::1") as emulator:
        device = emulator.provision_device("ipv6-device")
        assert emulator.endpoint.startswith("[::1]:")
        assert device.endpoint == emulator.endpoint
        answer: Answer = fetch(emulator, device)
        assert answer.status == 200


def test_only_loopback_hosts_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host must be one of"):
        Emulator(directory=tmp_path, host="0.0.0.0")  # noqa: S104 - the point of the test


def test_unknown_regions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'mars-1' is not an AWS IoT region known to botocore"):
        Emulator(directory=tmp_path, region="mars-1")


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("iot-emulator")]


def test_stop_closes_sockets_and_joins_threads(tmp_path: Path) -> None:
    before = set(emulator_threads())
    emulator = Emulator(directory=tmp_path)
    with emulator:
        device = emulator.provision_device("lifecycle")
        port = emulator.port
        held = connect(emulator, device.certificate_file, device.private_key_file)
        assert request(held, credentials_path(device.role_alias)).status == 200  # kept alive
        assert f"endpoint='127.0.0.1:{port}'" in repr(emulator)
    assert repr(emulator) == "Emulator(region='us-east-1', stopped)"
    assert set(emulator_threads()) <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    held.close()
    emulator.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.endpoint


def test_a_busy_moto_port_fails_promptly(tmp_path: Path) -> None:
    with held_port() as port:
        emulator = Emulator(directory=tmp_path, moto_port=port)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            call_with_deadline(emulator.start)
    assert not emulator.running
    with emulator:  # the failed start left nothing behind that blocks a retry
        assert emulator.aws_endpoint_url == f"http://127.0.0.1:{port}"


def test_private_key_files_are_owner_only(iot_emulator: Emulator, iot_device: Device) -> None:
    server_keys = list(iot_emulator.directory.glob("*.key"))
    assert server_keys
    for key_file in [*server_keys, iot_device.private_key_file]:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for public in (iot_emulator.ca_file, iot_device.certificate_file):
        assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert not list(iot_emulator.directory.rglob("*.tmp"))  # no temporary file left behind


def test_head_gets_no_body(iot_emulator: Emulator, iot_device: Device) -> None:
    path = credentials_path(iot_device.role_alias).encode()
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(b"HEAD " + path + b" HTTP/1.1\r\n" + HOST + b"\r\n")
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert reply.endswith(b"\r\n\r\n")
    assert b"Content-Length: 0\r\n" in reply


def test_localhost_endpoint_and_single_start(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, host="localhost") as emulator:
        assert emulator.endpoint == f"localhost:{emulator.port}"
        assert emulator.url == f"https://localhost:{emulator.port}"
        with pytest.raises(RuntimeError, match="already running"):
            emulator.start()


def test_descriptors_above_1024_are_served(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2048
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the descriptor limit ({hard}) is too low")
    with contextlib.ExitStack() as stack:
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            stack.callback(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        # Take every descriptor below 1100, so the listener and connections get larger ones.
        filler = []
        while (fd := os.open(os.devnull, os.O_RDONLY)) < 1100:
            filler.append(fd)
        filler.append(fd)
        for taken in filler:
            stack.callback(os.close, taken)
        emulator = stack.enter_context(Emulator(directory=tmp_path))
        device = emulator.provision_device("many-files")
        assert fetch(emulator, device).status == 200


class _UnstartableThread(threading.Thread):
    """A thread whose start() fails once, as when the process has run out of threads."""

    failures = 1

    def start(self) -> None:
        if _UnstartableThread.failures > 0:
            _UnstartableThread.failures -= 1
            raise RuntimeError("can't start new thread")
        super().start()


def test_a_failed_dispatch_closes_that_client_and_frees_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Emulator(directory=tmp_path, max_connections=1) as emulator:
        device = emulator.provision_device("unlucky")
        patched = types.ModuleType("threading")
        patched.__dict__.update(vars(threading))
        patched.Thread = _UnstartableThread  # type: ignore[attr-defined]
        monkeypatch.setattr(server_module, "threading", patched)
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT) as sock:
            assert read_all(sock) == b""  # closed at once
        # The acceptor is still alive and the only slot is free again.
        assert still_serving(emulator, device)
    assert "Cannot serve a new connection" in caplog.text


def _broken_journal(*_: object) -> None:
    raise RuntimeError("simulated journal failure")


def test_a_failing_journal_still_answers_500_and_the_server_keeps_serving(
    iot_emulator: Emulator,
    iot_device: Device,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Journal, "add", _broken_journal)
    answer = fetch(iot_emulator, iot_device)
    assert (answer.status, answer.json()) == (500, {"message": "Internal failure"})
    assert "x-amzn-requestid" in answer.headers
    assert answer.headers["x-amzn-errortype"] == INTERNAL_FAILURE
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "Cannot record a request in the journal; answering 500 instead"
    ]
    assert "simulated journal failure" in caplog.text
    # The decided answer held credentials: none of it may reach the log.
    for secret_field in ("secretAccessKey", "sessionToken", "accessKeyId"):
        assert secret_field not in caplog.text
    monkeypatch.undo()
    assert still_serving(iot_emulator, iot_device)
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def _descriptor_probe(scenario: str, directory: Path) -> dict[str, Any]:
    """Run a scenario of _descriptor_probe.py in a child process and return its findings.

    In a child: the descriptor limit is process-wide, and pytest's must stay intact.
    """
    probe = Path(__file__).with_name("_descriptor_probe.py")
    run = subprocess.run(
        [sys.executable, "-I", str(probe), str(directory), scenario],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr  # no thread died
    findings: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return findings


def test_accept_backs_off_while_out_of_descriptors_and_recovers(tmp_path: Path) -> None:
    findings = _descriptor_probe("accept", tmp_path)
    # A retry loop without a wait burns a whole core; generous for a loaded CI machine.
    assert findings["cpu"] < findings["window"] / 4, findings
    assert findings["before"] == findings["status"] == "HTTP/1.1 200 OK"
    assert findings["recovery"] < 1.5  # the wait is capped at 1 s
    assert findings["stop"] < 0.25  # stop() cuts the wait short
    cannot = "WARNING Cannot accept connections (Too many open files); retrying with backoff"
    assert findings["log"] == [cannot, "INFO Accepting connections again", cannot]


def test_a_handler_failure_still_gets_a_plain_500(
    iot_emulator: Emulator,
    iot_device: Device,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decided: list[HttpResponse] = []

    def broken_journaling(_: CredentialProviderApp, response: HttpResponse, *__: object) -> None:
        decided.append(response)
        raise RuntimeError("simulated handler failure")

    # handle() fails after its own try, once it has decided (and minted credentials).
    monkeypatch.setattr(CredentialProviderApp, "_journaled", broken_journaling)
    answer = fetch(iot_emulator, iot_device)
    assert (answer.status, answer.json()) == (500, {"message": "Internal failure"})
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert "x-amzn-requestid" not in answer.headers  # the server's own answer, not the handler's
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["The handler failed; answering a plain 500 instead"]
    assert "simulated handler failure" in caplog.text
    [response] = decided
    secret = json.loads(response.body)["credentials"]["secretAccessKey"]
    assert secret not in caplog.text
    assert "secretAccessKey" not in caplog.text
    monkeypatch.undo()
    assert still_serving(iot_emulator, iot_device)


def _broken_reject(*_: object) -> HttpResponse:
    raise RuntimeError("simulated reject failure")


def test_a_failing_reject_still_gets_a_plain_500(
    iot_emulator: Emulator,
    iot_device: Device,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(CredentialProviderApp, "reject", _broken_reject)
    with raw_tls(iot_emulator, iot_device) as tls:
        tls.sendall(b"NONSENSE\r\n\r\n")
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 500 ")
    assert b"Connection: close\r\n" in reply
    assert reply.endswith(b'\r\n\r\n{"message":"Internal failure"}')
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["The handler failed; answering a plain 500 instead"]
    assert "simulated reject failure" in caplog.text
    monkeypatch.undo()
    assert still_serving(iot_emulator, iot_device)


def test_a_start_without_descriptors_fails_and_leaves_nothing_running(tmp_path: Path) -> None:
    findings = _descriptor_probe("start", tmp_path)
    port = findings["port"]
    assert findings["error"] == (
        f"the credential endpoint cannot accept connections on 127.0.0.1:{port}: "
        "Too many open files"
    )
    assert findings["acceptors"] == 0
    assert not findings["listening"]  # stop() after the failed start closed the socket


def test_a_failed_server_start_leaves_nothing_listening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[tuple[str, int]] = []

    def refuse_to_start(server: TlsHttpServer) -> None:
        refused.append(server.address)
        raise OSError("simulated start failure")

    monkeypatch.setattr(TlsHttpServer, "start", refuse_to_start)
    emulator = Emulator(directory=tmp_path)
    # The traceback keeps the server object alive: its listener must be closed all the same.
    with pytest.raises(OSError, match="simulated start failure") as caught:
        emulator.__enter__()
    assert not emulator.running
    [address] = refused
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=TIMEOUT).close()
    assert caught.traceback  # held until here


def test_a_busy_port_is_reported_with_its_address(tmp_path: Path) -> None:
    with held_port() as port:
        emulator = Emulator(directory=tmp_path, port=port)
        message = f"the credential endpoint cannot listen on 127.0.0.1:{port}: "
        with pytest.raises(OSError, match=message):
            emulator.start()
    assert not emulator.running
