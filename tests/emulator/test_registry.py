"""Contract tests for the one module that reads moto's internals: fail loudly if moto changes."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path
from typing import Callable

import pytest

from awsiot_credentialhelper.emulator import Device, Emulator
from awsiot_credentialhelper.emulator._registry import MotoRegistry

from ._client import fetch


@pytest.fixture
def registry(iot_emulator: Emulator) -> MotoRegistry:
    return MotoRegistry(iot_emulator.account_id, iot_emulator.region)


def der_of(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


def test_certificate_ids_are_sha256_of_der(registry: MotoRegistry, iot_device: Device) -> None:
    der = der_of(iot_device.certificate_pem)
    assert iot_device.certificate_id == hashlib.sha256(der).hexdigest()
    record = registry.find_certificate(der)
    assert record is not None
    assert (record.certificate_id, record.arn, record.status) == (
        iot_device.certificate_id,
        iot_device.certificate_arn,
        "ACTIVE",
    )
    assert record.ca_certificate_id is None


def test_pem_hash_ids_are_found_too(iot_emulator: Emulator, registry: MotoRegistry) -> None:
    """moto's default id is sha256 of the PEM text; a standalone moto server uses it."""
    from moto.core.config import default_user_config  # noqa: PLC0415

    iot = iot_emulator.client("iot")
    default_user_config["iot"]["use_valid_cert"] = False
    try:
        created = iot.create_keys_and_certificate(setAsActive=True)
    finally:
        default_user_config["iot"]["use_valid_cert"] = True
    pem = created["certificatePem"]
    assert created["certificateId"] == hashlib.sha256(pem.encode()).hexdigest()
    record = registry.find_certificate(der_of(pem))
    assert record is not None
    assert record.certificate_id == created["certificateId"]


def test_unknown_certificate(registry: MotoRegistry) -> None:
    assert registry.find_certificate(b"\x30\x03\x02\x01\x00") is None


def test_things_attachments_and_policies(
    iot_emulator: Emulator, registry: MotoRegistry, iot_device_factory: Callable[..., Device]
) -> None:
    device = iot_device_factory(attributes={"Owner": "Alice"})
    thing = registry.thing(device.thing_name)
    assert thing is not None
    assert (thing.name, thing.type_name, dict(thing.attributes)) == (
        device.thing_name,
        "EmulatedDevice",
        {"Owner": "Alice"},
    )
    assert registry.thing("no-such-thing") is None
    assert registry.is_attached(device.certificate_arn, device.thing_name)
    assert not registry.is_attached(device.certificate_arn, "no-such-thing")
    (document,) = registry.policy_documents(device.certificate_arn)
    assert json.loads(document)["Statement"][0]["Resource"] == iot_emulator.role_alias_arn(
        device.role_alias
    )


def test_role_alias_role_and_sts(
    iot_emulator: Emulator, registry: MotoRegistry, iot_device: Device
) -> None:
    alias = registry.role_alias(iot_device.role_alias)
    assert alias is not None
    assert (alias.role_arn, alias.credential_duration_seconds) == (iot_device.role_arn, 3600)
    assert registry.role_alias("no-such-alias") is None
    role = registry.role(alias.role_arn)
    assert role is not None
    assert role.max_session_duration == 3600
    assert "credentials.iot.amazonaws.com" in role.trust_policy
    assert registry.role(alias.role_arn + "-missing") is None
    issued = registry.assume_role(role.arn, iot_device.certificate_id, 900)
    assert issued.access_key_id.startswith("ASIA")
    assert issued.secret_access_key not in repr(issued)
    assert issued.session_token not in repr(issued)


def test_device_repr_hides_the_private_key(iot_device: Device) -> None:
    assert "PRIVATE KEY" in iot_device.private_key_pem
    assert "PRIVATE KEY" not in repr(iot_device)
    assert "private_key_pem" not in repr(iot_device)


def test_clients_ignore_the_users_aws_profile(
    iot_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "a-profile-that-does-not-exist")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    sts = iot_emulator.session().client("sts", endpoint_url=iot_emulator.aws_endpoint_url)
    assert sts.get_caller_identity()["Account"] == iot_emulator.account_id


@pytest.mark.parametrize(
    ("region", "prefix"),
    [
        pytest.param("us-east-1", "arn:aws:iot:us-east-1:", id="aws"),
        pytest.param("cn-north-1", "arn:aws-cn:iot:cn-north-1:", id="aws-cn"),
        pytest.param("us-gov-west-1", "arn:aws-us-gov:iot:us-gov-west-1:", id="aws-us-gov"),
    ],
)
def test_role_alias_arn_names_the_partition(tmp_path: Path, region: str, prefix: str) -> None:
    emulator = Emulator(directory=tmp_path, region=region)  # not started: the ARN is pure
    arn = emulator.role_alias_arn("door")
    assert arn == f"{prefix}{emulator.account_id}:rolealias/door"
    assert arn == MotoRegistry(emulator.account_id, region).role_alias_arn("door")


def test_a_policy_naming_role_alias_arn_grants_in_china(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, region="cn-north-1") as emulator:
        alias = "china-door-role-alias"
        policy = {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": emulator.role_alias_arn(alias),
            },
        }
        device = emulator.provision_device("china-door", role_alias=alias, iot_policy=policy)
        assert fetch(emulator, device).status == 200


def test_valid_certificate_ids_survive_interleaved_emulators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.core.config import default_user_config  # noqa: PLC0415

    from awsiot_credentialhelper.emulator import _moto  # noqa: PLC0415

    # A private switch and config, so that an emulator running in this process (the
    # session fixture) does not mask the order problem.
    monkeypatch.setitem(default_user_config, "iot", {"use_valid_cert": False})
    monkeypatch.setattr(_moto, "_VALID_CERT_SWITCH", _moto._ValidCertSwitch(), raising=False)

    def current() -> object:
        return default_user_config["iot"]["use_valid_cert"]

    first, second = _moto.valid_certificate_ids(), _moto.valid_certificate_ids()
    first.__enter__()  # start A
    second.__enter__()  # start B
    assert current() is True
    first.__exit__(None, None, None)  # stop A: B still needs AWS-style ids
    assert current() is True
    second.__exit__(None, None, None)  # stop B: back to what it was before A
    assert current() is False
