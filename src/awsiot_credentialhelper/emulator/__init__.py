"""A local AWS IoT Core Credential Provider, backed by moto, for tests, demos and CI.

Install the extra (``pip install 'awsiot-credentialhelper[emulator]'``), then::

    from awsiot_credentialhelper.emulator import Emulator

    with Emulator(directory="/tmp/emu", region="us-east-1") as emu:
        device = emu.provision_device("sensor-1")

The names below load on first use, so importing this package (as the pytest plugin does at
start-up) does not import moto, flask or pyOpenSSL. See ``docs/emulator.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._decide import Outcome
    from ._emulator import Emulator
    from ._faults import Controls
    from ._journal import RequestRecord, Stats
    from ._provision import Device, DeviceOptions, assume_role_policy

__all__ = [
    "Controls",
    "Device",
    "DeviceOptions",
    "Emulator",
    "Outcome",
    "RequestRecord",
    "Stats",
    "assume_role_policy",
]

_HOMES = {
    "Controls": "._faults",
    "Device": "._provision",
    "DeviceOptions": "._provision",
    "Emulator": "._emulator",
    "Outcome": "._decide",
    "RequestRecord": "._journal",
    "Stats": "._journal",
    "assume_role_policy": "._provision",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
