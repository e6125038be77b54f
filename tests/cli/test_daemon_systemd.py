"""systemd's notify protocol, with a real ``AF_UNIX`` datagram socket as ``NOTIFY_SOCKET``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from awsiot_credentialhelper.cli._systemd import Notifier
from tests.servers import Reply, TlsServer, credentials_body, error_body

from .conftest import Cli, signal_until_it_exits, stop


class NotifySocket:
    """What systemd listens on: every datagram received, as lists of lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self.messages: list[list[str]] = []

    def wait_for(self, start: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Read datagrams until ``count`` lines start with ``start``; return every line so far."""
        deadline = time.monotonic() + timeout
        while sum(line.startswith(start) for line in self.lines()) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no {start!r} within {timeout:g} s; got {self.messages[-5:]}"
            self._socket.settimeout(left)
            with contextlib.suppress(socket.timeout):
                self.messages.append(self._socket.recv(4096).decode().split("\n"))
        return self.lines()

    def lines(self) -> list[str]:
        return [line for message in self.messages for line in message]

    def nothing_within(self, seconds: float) -> bool:
        self._socket.settimeout(seconds)
        try:
            self._socket.recv(4096)
        except socket.timeout:
            return True
        return False

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()


def test_ready_only_with_credentials_status_on_failures_watchdog_and_stopping(
    cli: Cli, server: TlsServer, flags: list[str], notify_socket: NotifySocket
) -> None:
    server.set_default(Reply(status=403, body=error_body("Access Denied")))
    environment = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "300000"}
    with cli.background("serve", "--port", "0", *flags, env=environment) as process:
        failing = notify_socket.wait_for("STATUS=Refreshing credentials failed 1 time(s)")
        assert "READY=1" not in failing, "not ready before it holds credentials"
        assert "STATUS=Fetching the first credentials." in failing
        status = next(line for line in failing if line.startswith("STATUS=Refreshing"))
        assert "Access Denied" in status

        server.set_default(Reply(body=credentials_body()))
        process.send_signal(signal.SIGHUP)
        ready = notify_socket.wait_for("READY=1")
        assert any(line.startswith("STATUS=Serving credentials valid until") for line in ready)
        # The pings go on (every 0.15 s: half of WATCHDOG_USEC).
        pings = ready.count("WATCHDOG=1")
        notify_socket.wait_for("WATCHDOG=1", count=pings + 3, timeout=10)

        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        _, err = stop(process)
    assert process.returncode == 0, err
    everything = "\n".join(notify_socket.lines())
    assert "test-secret-access-key" not in everything
    assert "test-session-token" not in everything
    assert notify_socket.lines().count("READY=1") == 1


def test_more_signals_while_it_stops_still_end_in_a_clean_stop(
    cli: Cli, server: TlsServer, flags: list[str], notify_socket: NotifySocket
) -> None:
    """systemd, or a user pressing Ctrl-C twice, may signal again while serve stops; here the
    stop waits for a refresh still under way (the server takes 3 s to answer it)."""
    environment = {"NOTIFY_SOCKET": str(notify_socket.path)}
    with cli.background("serve", "--port", "0", *flags, env=environment) as process:
        notify_socket.wait_for("READY=1")
        server.set_default(Reply(body=credentials_body(), delay=3.0))
        requests = server.request_count
        process.send_signal(signal.SIGHUP)  # a refresh, now under way for 3 s
        deadline = time.monotonic() + 10
        while server.request_count == requests and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        signal_until_it_exits(process)
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "Stopped." in err


def test_an_abstract_socket_and_a_watchdog_meant_for_another_process() -> None:
    name = f"awsiot-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        environ = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
        notifier = Notifier.from_environment(environ)
        try:
            assert notifier.watchdog_interval is None, "WATCHDOG_PID names another process"
            notifier.notify("READY=1", "STATUS=two\nlines")
            assert listener.recv(4096) == b"READY=1\nSTATUS=two lines"
        finally:
            notifier.close()
    mine = {
        "NOTIFY_SOCKET": "@" + name,
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    assert Notifier.from_environment(mine).watchdog_interval == 0.5
    assert not Notifier.from_environment({}).enabled
