"""``serve --host`` beyond loopback: only in container mode, only with ``--allow-non-loopback``.

The one test that binds a non-loopback address does so inside a network namespace it creates
(``tests/netns.py``); the TLS endpoint and the HTTP clients live there too, and botocore's own
container provider fetches from the server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Optional

import pytest
import trustme
from botocore.credentials import ContainerProvider

from awsiot_credentialhelper.cli._serve import bind_address
from awsiot_credentialhelper.exceptions import ConfigurationError
from tests.netns import SERVER_ADDRESS, Namespace, created_namespace
from tests.servers import DeviceFiles, Reply, TlsServer, credentials_body, wait_until

from .conftest import SCRIPT, Cli, device_flags, stop
from .test_serve import Lines, _exports, _request


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


@pytest.mark.parametrize(
    ("host", "mode", "opt_in", "refusal"),
    [
        pytest.param("127.0.0.2", "container", False, None, id="loopback"),
        pytest.param("::1", "imds", False, None, id="v6-loopback-imds"),
        pytest.param("169.254.170.2", "container", True, None, id="opted-in"),
        pytest.param("fd00:ec2::23", "container", True, None, id="v6-opted-in"),
        pytest.param("0.0.0.0", "container", True, None, id="any-opted-in"),  # noqa: S104
        pytest.param("169.254.170.2", "container", False, "--allow-non-loopback", id="no-opt-in"),
        pytest.param("169.254.170.2", "imds", True, "IMDS mode", id="imds"),
        pytest.param("localhost", "container", False, "not an IP address", id="a-name"),
    ],
)
def test_bind_address_decisions(host: str, mode: str, opt_in: bool, refusal: Optional[str]) -> None:
    if refusal is None:
        assert str(bind_address(host, mode=mode, allow_non_loopback=opt_in)) == host
    else:
        with pytest.raises(ConfigurationError, match=refusal):
            bind_address(host, mode=mode, allow_non_loopback=opt_in)


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    with created_namespace() as created:
        yield created


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
