"""pytest fixtures for the IoT Credential Provider emulator (registered as a pytest11 plugin).

One emulator serves the whole test session, because starting moto costs more than a test
should; each test gets fresh devices with unique names and clean test controls. Nothing heavy
is imported until a test asks for a fixture, and without the ``emulator`` extra the tests
that use these fixtures are skipped with a hint instead of breaking pytest's start-up.

Fixtures:
    iot_emulator_session: The session's :class:`~awsiot_credentialhelper.emulator.Emulator`.
    iot_emulator: The same emulator, with controls and journal reset around the test.
    iot_device_factory: Call it (with ``provision_device`` options) for fresh devices.
    iot_device: One fresh, fully provisioned device.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device, Emulator

__all__ = ["iot_device", "iot_device_factory", "iot_emulator", "iot_emulator_session"]

_EXTRA_HINT = "needs the emulator extra: pip install 'awsiot-credentialhelper[emulator]'"


def _require_extra() -> None:
    for module in ("moto", "OpenSSL", "flask", "flask_cors"):
        pytest.importorskip(module, reason=_EXTRA_HINT)


@pytest.fixture(scope="session")
def iot_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator (moto plus the mTLS endpoint) for the whole session, on 127.0.0.1."""
    _require_extra()
    from awsiot_credentialhelper.emulator import Emulator  # noqa: PLC0415 - lazy by design

    with Emulator(directory=tmp_path_factory.mktemp("iot-emulator")) as emulator:
        yield emulator


@pytest.fixture
def iot_emulator(iot_emulator_session: Emulator) -> Iterator[Emulator]:
    """The session's emulator with no faults, latency, skew or history left from other tests."""
    iot_emulator_session.reset()
    yield iot_emulator_session
    iot_emulator_session.reset()


@pytest.fixture
def iot_device_factory(iot_emulator: Emulator) -> Callable[..., Device]:
    """A function that provisions a fresh device; it takes ``provision_device``'s options.

    The device name defaults to a unique ``dev-<hex>``, so tests never share state.
    """

    def make(name: Optional[str] = None, **options: Any) -> Device:
        return iot_emulator.provision_device(name or f"dev-{uuid.uuid4().hex[:12]}", **options)

    return make


@pytest.fixture
def iot_device(iot_device_factory: Callable[..., Device]) -> Device:
    """A fresh device: thing, certificate, IoT policy, role and role alias (3600 s)."""
    return iot_device_factory()
