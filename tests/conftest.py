"""Fixtures shared by every test: a test CA, a device identity, a loopback mTLS server.

And one rule: under ``CI=true`` a hardware-key test (marked ``pkcs11``) that skips fails, with
its reason, so CI cannot silently lose the SoftHSM2 and TPM tests to a missing package.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme

from awsiot_credentialhelper import IotCredentialProvider

from .servers import DeviceFiles, Reply, TlsServer, credentials_body, issue_device

#: Tests that must run, never skip, under ``CI=true``.
HARDWARE_KEY_MARKER = "pkcs11"


def on_ci() -> bool:
    """Whether this run is CI's (``CI=true``, as CI services and .ci/run set it)."""
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI, report a skipped hardware-key test as failed, keeping the skip's reason."""
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker(HARDWARE_KEY_MARKER) is not None
        and on_ci()
    ):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"CI=true: this {HARDWARE_KEY_MARKER} (hardware-key) test must run, but skipped: "
            f"{reason}"
        )
    return report


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


def provider_options(server: TlsServer, device: DeviceFiles, ca_file: str) -> dict[str, Any]:
    """The arguments of a provider for ``device`` that fetches from ``server``."""
    return {
        "endpoint": server.endpoint,
        "role_alias": "test-alias",
        "thing_name": "test-thing",
        "certificate": device.certificate_file,
        "private_key": device.private_key_file,
        "ca": ca_file,
        "trust_env": False,
    }


@pytest.fixture
def make_provider(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> Iterator[ProviderFactory]:
    """Build providers against ``server``; every one is closed after the test."""
    made: list[IotCredentialProvider] = []

    def factory(**overrides: Any) -> IotCredentialProvider:
        options = provider_options(server, device, ca_file)
        options.update(overrides)
        provider = IotCredentialProvider(**options)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.close()
