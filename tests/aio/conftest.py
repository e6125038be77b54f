"""Async providers for the emulator's devices; each test drives its own event loop(s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from awsiot_credentialhelper.aio import AioBoto3SessionProvider
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.emulator import Device

AioProviderFactory = Callable[..., AioBoto3SessionProvider]


def device_settings(device: Device) -> dict[str, Any]:
    """The provider arguments for ``device``, as the docs write them."""
    return {
        "endpoint": device.endpoint,
        "role_alias": device.role_alias,
        "thing_name": device.thing_name,
        "certificate": str(device.certificate_file),
        "private_key": str(device.private_key_file),
        "ca": str(device.ca_file),
        "trust_env": False,
    }


@pytest.fixture
def make_aio_provider(iot_device: Device) -> Iterator[AioProviderFactory]:
    """Async providers for ``iot_device``; each test closes what it opened with ``aclose``,
    and whatever is left is closed here (its loop is gone: only the transport remains)."""
    made: list[AioBoto3SessionProvider] = []

    def factory(**options: Any) -> AioBoto3SessionProvider:
        settings = device_settings(iot_device)
        settings.update(options)
        provider = AioBoto3SessionProvider(**settings)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.provider.close()


@pytest.fixture
def sync_provider(iot_device: Device) -> Iterator[Boto3SessionProvider]:
    provider = Boto3SessionProvider(**device_settings(iot_device))
    yield provider
    provider.close()
