"""The credential lifetime test aid (``controls.credential_lifetime``)."""

from __future__ import annotations

import datetime
import math
from typing import Any, Callable

import pytest

from awsiot_credentialhelper.emulator import Controls, Device, Emulator

from ._client import Answer, fetch

UTC = datetime.timezone.utc


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def expiration_of(answer: Answer) -> datetime.datetime:
    text = answer.json()["credentials"]["expiration"]
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def whole_second(moment: datetime.datetime) -> datetime.datetime:
    """The answer's expiration drops fractions of a second."""
    return moment.replace(microsecond=0)


def sts_expiration(emulator: Emulator, access_key_id: str) -> datetime.datetime:
    """When moto's STS says these credentials expire (moto internals, as in test_registry.py)."""
    from moto.sts.models import sts_backends  # noqa: PLC0415

    assumed = sts_backends[emulator.account_id]["aws"].get_assumed_role_from_access_key(
        access_key_id
    )
    assert assumed is not None
    expiration: datetime.datetime = assumed.expiration
    return expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)


@pytest.mark.parametrize("lifetime", [1, 60, 150])
def test_credentials_live_as_long_as_the_control_says(
    iot_emulator: Emulator, iot_device: Device, lifetime: int
) -> None:
    """The answer's expiration and the STS credentials' own expiry agree, below 900 s too."""
    iot_emulator.controls.credential_lifetime = lifetime
    before = now()
    answer = fetch(iot_emulator, iot_device)
    after = now()
    assert answer.status == 200
    span = datetime.timedelta(seconds=lifetime)
    assert whole_second(before) + span <= expiration_of(answer) <= after + span
    key = answer.json()["credentials"]["accessKeyId"]
    assert before + span <= sts_expiration(iot_emulator, key) <= after + span


def test_the_role_alias_duration_is_ignored_and_comes_back(
    iot_emulator: Emulator, iot_device_factory: Callable[..., Device]
) -> None:
    device = iot_device_factory(credential_duration_seconds=7200)
    iot_emulator.controls.credential_lifetime = 150
    before = now()
    short = fetch(iot_emulator, device)
    iot_emulator.controls.credential_lifetime = None
    long = fetch(iot_emulator, device)
    after = now()
    assert expiration_of(short) <= after + datetime.timedelta(seconds=150)
    assert expiration_of(long) >= whole_second(before) + datetime.timedelta(seconds=7200)


def test_the_alias_is_still_checked_against_the_role(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    """The override changes what is issued, not the configuration the service checks."""
    iot_emulator.client("iot").update_role_alias(
        roleAlias=iot_device.role_alias, credentialDurationSeconds=7200
    )
    iot_emulator.controls.credential_lifetime = 60
    answer = fetch(iot_emulator, iot_device)
    assert answer.status == 400
    assert "exceeds the MaxSessionDuration" in answer.message


def test_clock_skew_still_shifts_a_short_expiration(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    iot_emulator.controls.credential_lifetime = 60
    iot_emulator.controls.clock_skew = datetime.timedelta(hours=1)
    before = now()
    answer = fetch(iot_emulator, iot_device)
    after = now()
    span = datetime.timedelta(hours=1, seconds=60)
    assert whole_second(before) + span <= expiration_of(answer) <= after + span


def test_reset_returns_to_the_alias_duration() -> None:
    controls = Controls()
    assert controls.credential_lifetime is None
    controls.credential_lifetime = 43200
    assert controls.credential_lifetime == 43200
    controls.reset()
    assert controls.credential_lifetime is None


@pytest.mark.parametrize(
    ("seconds", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-60, ValueError, id="negative"),
        pytest.param(43201, ValueError, id="beyond-12-hours"),
        pytest.param(1.5, TypeError, id="fraction"),
        pytest.param(math.nan, TypeError, id="nan"),
        pytest.param("60", TypeError, id="text"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_lifetimes_that_are_not_whole_seconds_in_range_are_refused(
    seconds: Any, error: type[Exception]
) -> None:
    controls = Controls()
    with pytest.raises(error, match="credential_lifetime"):
        controls.credential_lifetime = seconds
    assert controls.credential_lifetime is None
