"""Tunnelling through an HTTP CONNECT proxy on loopback, explicit or from the environment."""

from __future__ import annotations

import base64
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from awsiot_credentialhelper._proxy import ProxySettings, parse_proxy_url, proxy_from_environment
from awsiot_credentialhelper.exceptions import ConfigurationError

from ..conftest import ProviderFactory
from ..servers import StopSignal, TlsServer, accept_until


class ConnectProxy:
    """A minimal CONNECT proxy: records each request line and auth header, pipes bytes.

    Its threads wait on their sockets and on a :class:`StopSignal` together: :meth:`close` wakes
    them at once.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[tuple[str, str]] = []
        self._stop = StopSignal()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=accept_until, args=(self._stop, self._listener, self._accepted), daemon=True
        )
        self._acceptor.start()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        self._stop.close()

    def _accepted(self, client: socket.socket, _: tuple[str, int]) -> None:
        thread = threading.Thread(target=self._tunnel, args=(client,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.decode("latin-1").split("\r\n")
            auth = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in lines
                    if line.lower().startswith("proxy-authorization:")
                ),
                "",
            )
            self.requests.append((lines[0], auth))
            host, port = lines[0].split()[1].rsplit(":", 1)
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        ends = {client.fileno(): (client, upstream), upstream.fileno(): (upstream, client)}
        while True:
            readable, _, _ = select.select([*ends, self._stop.fileno()], [], [])
            if self._stop.is_set():
                return
            for number in readable:
                source, destination = ends[number]
                data = source.recv(65536)
                if not data:
                    return
                destination.sendall(data)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    running = ConnectProxy()
    yield running
    running.close()


def test_explicit_proxy_with_credentials(
    make_provider: ProviderFactory, server: TlsServer, proxy: ConnectProxy
) -> None:
    provider = make_provider(proxy=f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    assert provider.fetch().access_key_id == "ASIATEST"
    ((request_line, auth),) = proxy.requests
    assert request_line == f"CONNECT {server.endpoint} HTTP/1.1"
    assert base64.b64decode(auth.split()[1]) == b"user:p@ss"
    assert "p@ss" not in repr(provider)
    assert "p@ss" not in str(provider.proxy)
    assert "p@ss" not in repr(provider.proxy)


def test_https_proxy_from_environment(
    make_provider: ProviderFactory, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    make_provider(trust_env=True).fetch()
    assert len(proxy.requests) == 1


def test_no_proxy_bypasses(
    make_provider: ProviderFactory, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "example.com,127.0.0.0/8")
    make_provider(trust_env=True).fetch()
    assert proxy.requests == []


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypassed"),
    [
        ("*", "anything.example", True),
        ("example.com", "a.credentials.iot.example.com", True),
        (".example.com", "example.com", True),
        ("example.com", "notexample.com", False),
        ("10.0.0.0/8, ::1", "::1", True),
        ("[::1]:443", "::1", True),
        ("host.internal:8443", "host.internal", True),
        ("10.0.0.0/8", "192.168.1.1", False),
        ("", "host", False),
    ],
)
def test_no_proxy_rules(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, host: str, bypassed: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    expected = None if bypassed else ProxySettings("proxy.internal", 3128)
    assert proxy_from_environment(host) == expected


def test_proxy_url_forms() -> None:
    assert parse_proxy_url("proxy:3128") == ProxySettings("proxy", 3128)
    assert parse_proxy_url("http://proxy") == ProxySettings("proxy", 8080)
    with pytest.raises(ConfigurationError, match="not an http"):
        parse_proxy_url("socks5://proxy:1080")
