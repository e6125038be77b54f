"""The emulator against this library's real client (awscrt): faults look like the real thing."""

from __future__ import annotations

import datetime

import pytest

from awsiot_credentialhelper import IotCredentialProvider
from awsiot_credentialhelper.emulator import Device, Emulator
from awsiot_credentialhelper.exceptions import (
    AccessDeniedError,
    CertificateRejectedError,
    RoleAliasNotFoundError,
    ThrottledError,
)

from ._client import fetch


def provider_for(device: Device, **overrides: object) -> IotCredentialProvider:
    options: dict[str, object] = {
        "endpoint": device.endpoint,
        "role_alias": device.role_alias,
        "thing_name": device.thing_name,
        "certificate": str(device.certificate_file),
        "private_key": str(device.private_key_file),
        "ca": str(device.ca_file),
        "trust_env": False,
        "timeout": 20.0,
    }
    options.update(overrides)
    return IotCredentialProvider(**options)  # type: ignore[arg-type]


def test_client_retries_through_a_503(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.fail_next(1, status=503)
    with provider_for(iot_device) as provider:
        credentials = provider.fetch()
    assert credentials.access_key_id.startswith("ASIA")
    assert iot_emulator.stats().by_outcome == {"FAULT_RESPOND": 1, "SUCCESS": 1}


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        pytest.param("inactive", CertificateRejectedError, id="certificate"),
        pytest.param("detach-policy", AccessDeniedError, id="policy"),
        pytest.param("wrong-alias", AccessDeniedError, id="alias-not-allowed"),
    ],
)
def test_client_maps_refusals(
    iot_emulator: Emulator, iot_device: Device, break_it: str, error: type[Exception]
) -> None:
    iot = iot_emulator.client("iot")
    overrides: dict[str, object] = {}
    if break_it == "inactive":
        iot.update_certificate(certificateId=iot_device.certificate_id, newStatus="INACTIVE")
    elif break_it == "detach-policy":
        iot.detach_policy(policyName=iot_device.policy_name, target=iot_device.certificate_arn)
    else:
        overrides["role_alias"] = "someone-elses-alias"
    with provider_for(iot_device, **overrides) as provider, pytest.raises(error):
        provider.fetch()
    assert iot_emulator.stats().total == 1  # 4xx are not retried


def test_client_sees_a_missing_alias(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.client("iot").delete_role_alias(roleAlias=iot_device.role_alias)
    with provider_for(iot_device) as provider, pytest.raises(RoleAliasNotFoundError):
        provider.fetch()


def test_client_sees_throttling_as_throttled_error(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    # One token, the next 100 s later: the second request is throttled whatever the timing.
    iot_emulator.controls.max_requests_per_second = 0.01
    assert fetch(iot_emulator, iot_device).status == 200
    provider = provider_for(iot_device, max_attempts=1)  # a 429 is not retried
    with provider, pytest.raises(ThrottledError) as caught:
        provider.fetch()
    error = caught.value
    assert (error.status_code, error.message) == (429, "Rate exceeded")
    assert error.error_type == "ThrottlingException"
    assert error.retryable
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1, "THROTTLED": 1}
    assert error.request_id == iot_emulator.requests()[-1].request_id


def test_client_sees_a_short_credential_lifetime(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    iot_emulator.controls.credential_lifetime = 150
    before = datetime.datetime.now(datetime.timezone.utc)
    with provider_for(iot_device) as provider:
        credentials = provider.fetch()
    after = datetime.datetime.now(datetime.timezone.utc)
    span = datetime.timedelta(seconds=150)
    assert before.replace(microsecond=0) + span <= credentials.expiration <= after + span
    assert credentials.lifetime <= span  # issued_at: the Date header, taken after the expiration
