"""``serve --host`` beyond loopback: only in container mode, only with ``--allow-non-loopback``.

The one test that binds a non-loopback address does so inside a network namespace it creates
(``ip netns``), with a veth pair of its own: nothing is reachable from outside that namespace.
The test process reaches into the namespace per thread (``setns`` affects only the calling
thread; a socket stays in the namespace it was created in), so the TLS endpoint and the HTTP
client live there too, and botocore's own container provider fetches from the server.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Callable, TypeVar

import pytest
import trustme
from botocore.credentials import ContainerProvider

from tests.servers import DeviceFiles, Reply, TlsServer, credentials_body, wait_until

from .conftest import SCRIPT, Cli, device_flags, stop
from .test_serve import Lines, _exports, _request

_T = TypeVar("_T")
_CLONE_NEWNET = 0x40000000
#: The address ECS gives its credentials endpoint: botocore accepts it over plain http.
SERVER_ADDRESS = "169.254.170.2"
CLIENT_ADDRESS = "169.254.170.3"


def test_non_loopback_needs_the_opt_in_and_container_mode(cli: Cli, flags: list[str]) -> None:
    # Refused before anything is bound.
    result = cli.run("serve", "--host", "10.1.2.3", "--port", "0", *flags)
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
    assert "--allow-non-loopback" in result.stderr
    imds = ["serve", "--mode", "imds", "--host", "10.1.2.3", "--allow-non-loopback", *flags]
    result = cli.run(*imds, "--port", "0")
    assert result.returncode == 2
    assert "IMDS mode binds to loopback only" in result.stderr


class Namespace:
    """A network namespace with a veth pair: the server's end and a client's end."""

    def __init__(self) -> None:
        self.name = f"awsiot-test-{uuid.uuid4().hex[:8]}"
        self._libc = ctypes.CDLL(None, use_errno=True)

    def create(self) -> None:
        commands = [
            ["ip", "netns", "add", self.name],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
            ["ip", "-n", self.name, "link", "add", "srv0", "type", "veth", "peer", "name", "cli0"],
            ["ip", "-n", self.name, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", "srv0"],
            ["ip", "-n", self.name, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", "cli0"],
            ["ip", "-n", self.name, "link", "set", "srv0", "up"],
            ["ip", "-n", self.name, "link", "set", "cli0", "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=30)

    def delete(self) -> None:
        subprocess.run(
            ["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=30
        )

    def run(self, function: Callable[[], _T]) -> _T:
        """Call ``function`` in a thread that has entered the namespace."""
        results: list[_T] = []
        errors: list[BaseException] = []

        def enter_and_call() -> None:
            try:
                descriptor = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if self._libc.setns(descriptor, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(descriptor)
                results.append(function())
            except BaseException as error:  # handed to the caller
                errors.append(error)

        thread = threading.Thread(target=enter_and_call)
        thread.start()
        thread.join(60)
        if errors:
            raise errors[0]
        return results[0]


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip (scripts/bootstrap.sh installs it)")
    created = Namespace()
    try:
        created.create()
    except subprocess.CalledProcessError as error:
        created.delete()
        pytest.skip(f"cannot create a network namespace here: {error.stderr.decode().strip()}")
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture
def endpoint_in_namespace(namespace: Namespace, ca: trustme.CA) -> Iterator[TlsServer]:
    """The TLS endpoint, listening on the namespace's loopback."""
    server = namespace.run(lambda: TlsServer(ca, default=Reply(body=credentials_body())))
    with server:
        yield server


def test_serve_on_a_container_network_address_inside_a_namespace(
    cli: Cli,
    namespace: Namespace,
    endpoint_in_namespace: TlsServer,
    device: DeviceFiles,
    ca_file: str,
) -> None:
    token_file = cli.home / "serve.token"
    command = [
        *("ip", "netns", "exec", namespace.name, SCRIPT, "serve"),
        *("--host", SERVER_ADDRESS, "--allow-non-loopback", "--port", "0"),
        *("--token-file", str(token_file)),
        *device_flags(endpoint_in_namespace, device, ca_file),
    ]
    process = subprocess.Popen(
        command,
        env=cli.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        exports = _exports(Lines(process), 2)
        url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        assert url.startswith(f"http://{SERVER_ADDRESS}:")
        base = url.rsplit("/", 1)[0]
        port = int(base.rsplit(":", 1)[1])
        token = token_file.read_text()
        namespace.run(
            lambda: wait_until(
                lambda: _request(base, path="/healthz")[0] == 200, what="serve to be healthy"
            )
        )

        credentials = namespace.run(
            lambda: ContainerProvider(environ=exports).load().get_frozen_credentials()
        )
        assert credentials.access_key == "ASIATEST"

        def ask(headers: dict[str, str]) -> int:
            return _request(base, path="/credentials", headers=headers)[0]

        assert namespace.run(lambda: ask({})) == 401, "the token is still required"
        assert namespace.run(lambda: ask({"Authorization": token + "x"})) == 403
        by_name = {"Authorization": token, "Host": f"credentials.example:{port}"}
        assert namespace.run(lambda: ask(by_name)) == 403, "DNS names are refused in Host"
    finally:
        _, err = stop(process)
    assert process.returncode == 0, err
    assert f"Listening on {SERVER_ADDRESS}, which is not a loopback address" in err
    assert token not in err
    assert "test-secret-access-key" not in err
