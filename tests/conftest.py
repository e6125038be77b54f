"""Fixtures shared by every test: a test CA, a device identity, a loopback mTLS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme

from awsiot_credentialhelper import IotCredentialProvider

from .servers import DeviceFiles, Reply, TlsServer, credentials_body, issue_device


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def device(ca: trustme.CA, tmp_path: Path) -> DeviceFiles:
    return issue_device(ca, str(tmp_path))


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[TlsServer]:
    with TlsServer(ca, default=Reply(body=credentials_body())) as running_server:
        yield running_server


ProviderFactory = Callable[..., IotCredentialProvider]


@pytest.fixture
def make_provider(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> Iterator[ProviderFactory]:
    """Build providers against ``server``; every one is closed after the test."""
    made: list[IotCredentialProvider] = []

    def factory(**overrides: Any) -> IotCredentialProvider:
        options: dict[str, Any] = {
            "endpoint": server.endpoint,
            "role_alias": "test-alias",
            "thing_name": "test-thing",
            "certificate": device.certificate_file,
            "private_key": device.private_key_file,
            "ca": ca_file,
            "trust_env": False,
        }
        options.update(overrides)
        provider = IotCredentialProvider(**options)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.close()
