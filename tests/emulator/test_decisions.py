"""Every row of the decision table, through the real mTLS server and moto's real state.

Each test provisions a fresh device on the session's emulator, changes moto's state with
ordinary boto3 calls, and checks the exact status, message and headers a client receives.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest

from awsiot_credentialhelper.emulator import Device, Emulator

from ._client import Answer, fetch
from ._pki import issue, make_ca

CERT_INVALID = (403, "Certificate is invalid on this endpoint", "AccessDeniedException")
BAD_THING = (403, "Invalid thing name passed", "AccessDeniedException")
DENIED = (403, "Access Denied", "AccessDeniedException")
NO_ALIAS = (404, "Role alias does not exist", "ResourceNotFoundException")
NO_ROLE = (
    400,
    "Unable to assume the role, or the role to assume does not exist",
    "InvalidRequestException",
)
TOO_LONG = (
    400,
    "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the role",
    "InvalidRequestException",
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

DeviceFactory = Callable[..., Device]


def assert_error(answer: Answer, expected: tuple[int, str, str]) -> None:
    status, message, error_type = expected
    assert (answer.status, answer.json()) == (status, {"message": message})
    assert answer.headers["x-amzn-errortype"] == error_type
    assert answer.headers["content-type"] == "application/json"
    assert UUID.match(answer.headers["x-amzn-requestid"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- 200 -----------------------------------------------------------------------------------


def test_success_returns_working_credentials(iot_emulator: Emulator, iot_device: Device) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    answer = fetch(iot_emulator, iot_device)

    assert answer.status == 200
    credentials = answer.json()["credentials"]
    assert set(credentials) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}
    assert credentials["accessKeyId"].startswith("ASIA")
    expiration = datetime.datetime.strptime(credentials["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    lifetime = expiration.replace(tzinfo=datetime.timezone.utc) - before
    assert datetime.timedelta(seconds=3590) < lifetime < datetime.timedelta(seconds=3660)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.body))
    assert UUID.match(answer.headers["x-amzn-requestid"])
    assert answer.headers["date"].endswith(" GMT")
    assert "x-amzn-errortype" not in answer.headers

    sts = boto3.client(
        "sts",
        endpoint_url=iot_emulator.aws_endpoint_url,
        region_name=iot_emulator.region,
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
    )
    arn = sts.get_caller_identity()["Arn"]
    role_name = iot_device.role_arn.rsplit("/", 1)[1]
    assert arn == (
        f"arn:aws:sts::{iot_emulator.account_id}:assumed-role/"
        f"{role_name}/{iot_device.certificate_id}"
    )


def test_thing_header_is_optional_by_default(iot_emulator: Emulator, iot_device: Device) -> None:
    assert fetch(iot_emulator, iot_device, thing_name=None).status == 200


def test_duration_follows_the_role_alias(
    iot_emulator: Emulator, iot_device_factory: DeviceFactory
) -> None:
    device = iot_device_factory(credential_duration_seconds=7200)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    expiration = fetch(iot_emulator, device).json()["credentials"]["expiration"]
    parsed = datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ")
    lifetime = parsed.replace(tzinfo=datetime.timezone.utc) - before
    assert datetime.timedelta(seconds=7190) < lifetime < datetime.timedelta(seconds=7260)


# --- 403 certificate ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED", "PENDING_TRANSFER"])
def test_certificate_not_active(iot_emulator: Emulator, iot_device: Device, status: str) -> None:
    assert fetch(iot_emulator, iot_device).status == 200  # the change below is what denies
    iot = iot_emulator.client("iot")
    iot.update_certificate(certificateId=iot_device.certificate_id, newStatus=status)
    assert (
        iot.describe_certificate(certificateId=iot_device.certificate_id)["certificateDescription"][
            "status"
        ]
        == status
    )
    assert_error(fetch(iot_emulator, iot_device), CERT_INVALID)


def test_certificate_reactivated(iot_emulator: Emulator, iot_device: Device) -> None:
    iot = iot_emulator.client("iot")
    iot.update_certificate(certificateId=iot_device.certificate_id, newStatus="INACTIVE")
    assert fetch(iot_emulator, iot_device).status == 403
    iot.update_certificate(certificateId=iot_device.certificate_id, newStatus="ACTIVE")
    assert fetch(iot_emulator, iot_device).status == 200


def test_unregistered_certificate(
    iot_emulator: Emulator, iot_device: Device, tmp_path: Path
) -> None:
    stranger = issue(tmp_path, "stranger")
    answer = fetch(
        iot_emulator,
        iot_device,
        certificate=stranger.certificate_file,
        key=stranger.private_key_file,
    )
    assert_error(answer, CERT_INVALID)


def register_own_certificate(
    emulator: Emulator, device: Device, certificate_pem: str, *, ca_pem: str | None = None
) -> str:
    """Register a certificate made outside moto and give it the device's thing and policy."""
    iot = emulator.client("iot")
    if ca_pem is None:
        registered = iot.register_certificate_without_ca(
            certificatePem=certificate_pem, status="ACTIVE"
        )
    else:
        registered = iot.register_certificate(
            certificatePem=certificate_pem, caCertificatePem=ca_pem, setAsActive=True
        )
    arn: str = registered["certificateArn"]
    iot.attach_policy(policyName=device.policy_name, target=arn)
    iot.attach_thing_principal(thingName=device.thing_name, principal=arn)
    return arn


@pytest.mark.parametrize(
    ("window", "expected_status"),
    [
        pytest.param((-10, 30), 200, id="valid"),
        pytest.param((-10, -1), 403, id="expired"),
        pytest.param((1, 30), 403, id="not-yet-valid"),
    ],
)
def test_own_certificate_validity_window(
    iot_emulator: Emulator,
    iot_device: Device,
    tmp_path: Path,
    window: tuple[int, int],
    expected_status: int,
) -> None:
    not_before, not_after = window
    own = issue(
        tmp_path,
        unique("own"),
        not_before=datetime.timedelta(days=not_before),
        not_after=datetime.timedelta(days=not_after),
    )
    register_own_certificate(iot_emulator, iot_device, own.certificate_pem)
    answer = fetch(
        iot_emulator, iot_device, certificate=own.certificate_file, key=own.private_key_file
    )
    assert answer.status == expected_status
    if expected_status == 403:
        assert_error(answer, CERT_INVALID)


def test_own_certificate_with_crlf_pem_is_found(
    iot_emulator: Emulator, iot_device: Device, tmp_path: Path
) -> None:
    own = issue(tmp_path, unique("crlf"))
    register_own_certificate(iot_emulator, iot_device, own.certificate_pem.replace("\n", "\r\n"))
    for _ in range(2):  # the second lookup is served from the DER index
        answer = fetch(
            iot_emulator, iot_device, certificate=own.certificate_file, key=own.private_key_file
        )
        assert answer.status == 200


def test_certificate_of_an_inactive_ca(
    iot_emulator: Emulator, iot_device: Device, tmp_path: Path
) -> None:
    ca = make_ca()
    iot = iot_emulator.client("iot")
    ca_id = iot.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=ca.pem, setAsActive=True
    )["certificateId"]
    own = issue(tmp_path, unique("ca-issued"), ca=ca)
    register_own_certificate(iot_emulator, iot_device, own.certificate_pem, ca_pem=ca.pem)

    def ask() -> Answer:
        return fetch(
            iot_emulator, iot_device, certificate=own.certificate_file, key=own.private_key_file
        )

    assert ask().status == 200
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    assert_error(ask(), CERT_INVALID)


# --- 403 thing name ----------------------------------------------------------------------------


def test_unknown_thing(iot_emulator: Emulator, iot_device: Device) -> None:
    assert_error(fetch(iot_emulator, iot_device, thing_name=unique("ghost")), BAD_THING)


def test_thing_not_attached(iot_emulator: Emulator, iot_device_factory: DeviceFactory) -> None:
    mine, other = iot_device_factory(), iot_device_factory()
    assert_error(fetch(iot_emulator, mine, thing_name=other.thing_name), BAD_THING)


def test_thing_detached(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.client("iot").detach_thing_principal(
        thingName=iot_device.thing_name, principal=iot_device.certificate_arn
    )
    assert_error(fetch(iot_emulator, iot_device), BAD_THING)


def test_strict_mode_requires_the_thing_header(tmp_path: Path) -> None:
    with Emulator(directory=tmp_path, require_thing_name=True) as strict:
        device = strict.provision_device(unique("strict"))
        assert_error(fetch(strict, device, thing_name=None), BAD_THING)
        assert fetch(strict, device).status == 200


# --- 403 policy ----------------------------------------------------------------------------------


def test_no_policy_attached(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.client("iot").detach_policy(
        policyName=iot_device.policy_name, target=iot_device.certificate_arn
    )
    assert_error(fetch(iot_emulator, iot_device), DENIED)


def test_policy_for_another_alias(
    iot_emulator: Emulator, iot_device_factory: DeviceFactory
) -> None:
    device = iot_device_factory()
    other = iot_device_factory()
    assert_error(fetch(iot_emulator, device, role_alias=other.role_alias), DENIED)


def test_explicit_deny_in_a_second_policy(iot_emulator: Emulator, iot_device: Device) -> None:
    iot = iot_emulator.client("iot")
    name = unique("deny")
    iot.create_policy(
        policyName=name,
        policyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Action": "iot:AssumeRoleWithCertificate",
                        "Resource": "arn:aws:iot:*:*:rolealias/*${iot:Connection.Thing.ThingName}*",
                    }
                ],
            }
        ),
    )
    iot.attach_policy(policyName=name, target=iot_device.certificate_arn)
    assert_error(fetch(iot_emulator, iot_device), DENIED)
    # Without the thing header the variable is unresolved, so the Deny does not apply.
    assert fetch(iot_emulator, iot_device, thing_name=None).status == 200


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": {
                        "Effect": "Deny",
                        "Action": "iot:*",
                        "Resource": "*",
                        "Condition": {"NumericEquals": {"iot:Connection.Thing.Attributes[n]": 1}},
                    },
                }
            ),
            id="deny-with-unsupported-operator",
        ),
    ],
)
def test_unreadable_policy_fails_closed(
    iot_emulator: Emulator, iot_device: Device, document: str
) -> None:
    # The device's own policy still allows; a policy the emulator cannot read must deny.
    iot = iot_emulator.client("iot")
    name = unique("broken")
    iot.create_policy(policyName=name, policyDocument=document)  # moto does not validate
    iot.attach_policy(policyName=name, target=iot_device.certificate_arn)
    assert_error(fetch(iot_emulator, iot_device), DENIED)


def test_policy_variables_and_conditions_follow_thing_changes(
    iot_emulator: Emulator, iot_device_factory: DeviceFactory
) -> None:
    alias_pattern = iot_emulator.role_alias_arn("${iot:Connection.Thing.ThingTypeName}-*")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": alias_pattern,
                "Condition": {
                    "StringEquals": {"iot:Connection.Thing.Attributes[Owner]": "Alice"},
                    "Bool": {"iot:Connection.Thing.IsAttached": "true"},
                },
            }
        ],
    }
    thing_type = unique("Thermostat")
    device = iot_device_factory(
        thing_type_name=thing_type,
        attributes={"Owner": "Alice"},
        role_alias=f"{thing_type}-alias",
        iot_policy=policy,
    )
    assert fetch(iot_emulator, device).status == 200
    assert_error(fetch(iot_emulator, device, thing_name=None), DENIED)  # no thing, no variables

    iot_emulator.client("iot").update_thing(
        thingName=device.thing_name, attributePayload={"attributes": {"Owner": "Mallory"}}
    )
    assert_error(fetch(iot_emulator, device), DENIED)


# --- 404, 400 ------------------------------------------------------------------------------------


def allow_every_alias(emulator: Emulator, device: Device) -> None:
    iot = emulator.client("iot")
    name = unique("all-aliases")
    iot.create_policy(
        policyName=name,
        policyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "iot:AssumeRoleWithCertificate",
                    "Resource": emulator.role_alias_arn("*"),
                },
            }
        ),
    )
    iot.attach_policy(policyName=name, target=device.certificate_arn)


def test_role_alias_missing(iot_emulator: Emulator, iot_device: Device) -> None:
    allow_every_alias(iot_emulator, iot_device)
    assert_error(fetch(iot_emulator, iot_device, role_alias=unique("missing")), NO_ALIAS)


def test_policy_is_checked_before_alias_existence(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    assert_error(fetch(iot_emulator, iot_device, role_alias=unique("missing")), DENIED)


def point_alias_at(emulator: Emulator, device: Device, role_arn: str) -> None:
    emulator.client("iot").update_role_alias(roleAlias=device.role_alias, roleArn=role_arn)


def test_role_missing(iot_emulator: Emulator, iot_device: Device) -> None:
    missing = f"arn:aws:iam::{iot_emulator.account_id}:role/{unique('missing')}"
    point_alias_at(iot_emulator, iot_device, missing)
    assert_error(fetch(iot_emulator, iot_device), NO_ROLE)


@pytest.mark.parametrize(
    "trust",
    [
        pytest.param({"Service": "ec2.amazonaws.com"}, id="other-service"),
        pytest.param({"AWS": "arn:aws:iam::123456789012:root"}, id="account-principal"),
    ],
)
def test_role_not_trusting_the_credential_provider(
    iot_emulator: Emulator, iot_device: Device, trust: dict[str, Any]
) -> None:
    iam = iot_emulator.client("iam")
    arn = iam.create_role(
        RoleName=unique("untrusting"),
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": trust, "Action": "sts:AssumeRole"}],
            }
        ),
    )["Role"]["Arn"]
    point_alias_at(iot_emulator, iot_device, arn)
    assert_error(fetch(iot_emulator, iot_device), NO_ROLE)


def test_duration_beyond_max_session(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.client("iot").update_role_alias(
        roleAlias=iot_device.role_alias, credentialDurationSeconds=7200
    )
    assert_error(fetch(iot_emulator, iot_device), TOO_LONG)
    iot_emulator.client("iam").update_role(
        RoleName=iot_device.role_arn.rsplit("/", 1)[1], MaxSessionDuration=7200
    )
    assert fetch(iot_emulator, iot_device).status == 200
