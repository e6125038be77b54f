"""Create a complete device the way a user would on AWS: public IoT and IAM API calls only.

Every step is an ordinary boto3 call against moto's server, so this module doubles as a
worked example of what an AWS account needs before a device can get credentials: a thing, a
certificate attached to it, an IoT policy allowing ``iot:AssumeRoleWithCertificate``, an IAM
role trusting ``credentials.iot.amazonaws.com`` and a role alias pointing at that role.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from .._private_file import write_private_file

__all__ = [
    "Device",
    "DeviceOptions",
    "add_certificate",
    "assume_role_policy",
    "provision_device",
]

#: The role alias lifetime AWS uses when none is given.
DEFAULT_CREDENTIAL_DURATION = 3600
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Device:
    """Everything a client needs to fetch credentials for one provisioned device.

    The repr hides the private key.

    Attributes:
        name: The name passed to ``provision_device``.
        endpoint: The emulator's ``host:port``, used where the real endpoint would be.
        ca_file: The emulator's CA file, used where AmazonRootCA1.pem would be.
        certificate_file: The device certificate (PEM).
        private_key_file: The device's private key (PEM, mode 0600).
        certificate_pem: The device certificate's PEM text.
        private_key_pem: The private key's PEM text (hidden from repr).
        certificate_id: The IoT certificate id (sha256 of the DER).
        certificate_arn: The IoT certificate ARN.
        thing_name: The thing the certificate is attached to.
        thing_type_name: The thing's type.
        role_alias: The role alias to request.
        role_arn: The IAM role the alias names.
        policy_name: The IoT policy attached to the certificate.
        region: The emulated region.
        aws_endpoint_url: moto's URL, for boto3 clients using the fetched credentials.
    """

    name: str
    endpoint: str
    ca_file: Path
    certificate_file: Path
    private_key_file: Path
    certificate_pem: str
    private_key_pem: str = dataclasses.field(repr=False)
    certificate_id: str
    certificate_arn: str
    thing_name: str
    thing_type_name: str
    role_alias: str
    role_arn: str
    policy_name: str
    region: str
    aws_endpoint_url: str


@dataclasses.dataclass(frozen=True)
class DeviceOptions:
    """How to provision a device; every name defaults to one derived from the device name.

    Attributes:
        thing_type_name: The thing type (created if missing).
        attributes: The thing's attributes.
        role_alias: The role alias name (default ``<name>-role-alias``).
        role_name: The IAM role name (default ``<name>-role``).
        credential_duration_seconds: The alias's credential lifetime (900-43200).
        max_session_duration: The role's MaxSessionDuration (default: the alias duration,
            at least 3600).
        role_policy: An inline policy for the role (what the credentials may do).
        iot_policy: The IoT policy document (default: allow AssumeRoleWithCertificate on
            this alias only).
    """

    thing_type_name: str = "EmulatedDevice"
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    role_alias: Optional[str] = None
    role_name: Optional[str] = None
    credential_duration_seconds: int = DEFAULT_CREDENTIAL_DURATION
    max_session_duration: Optional[int] = None
    role_policy: Optional[Mapping[str, Any]] = None
    iot_policy: Optional[Union[Mapping[str, Any], str]] = None


def assume_role_policy() -> dict[str, Any]:
    """The trust policy that lets the IoT Credential Provider assume a role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "credentials.iot.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def _assume_with_certificate_policy(role_alias_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": role_alias_arn,
            }
        ],
    }


def _ensure_thing_type(iot: Any, name: str) -> None:
    try:
        iot.describe_thing_type(thingTypeName=name)
    except iot.exceptions.ResourceNotFoundException:
        iot.create_thing_type(thingTypeName=name)


def provision_device(
    name: str,
    *,
    iot: Any,
    iam: Any,
    directory: Path,
    endpoint: str,
    ca_file: Path,
    aws_endpoint_url: str,
    region: str,
    options: DeviceOptions,
) -> Device:
    """Create a thing, certificate, IoT policy, IAM role and role alias for ``name``.

    Args:
        name: The device (and thing) name: letters, digits, ``_`` and ``-``.
        iot: A boto3 IoT client against moto.
        iam: A boto3 IAM client against moto.
        directory: Where the certificate and key files go (created if needed).
        endpoint: The emulator's ``host:port``, recorded in the result.
        ca_file: The emulator's CA file, recorded in the result.
        aws_endpoint_url: moto's URL, recorded in the result.
        region: The emulated region.
        options: Names, durations and policies.
    """
    if not _NAME.match(name):
        raise ValueError(f"device name {name!r} must be 1-64 letters, digits, '_' or '-'")
    role_alias = options.role_alias or f"{name}-role-alias"
    role_name = options.role_name or f"{name}-role"
    duration = options.credential_duration_seconds
    max_session = options.max_session_duration or max(duration, DEFAULT_CREDENTIAL_DURATION)

    _ensure_thing_type(iot, options.thing_type_name)
    iot.create_thing(
        thingName=name,
        thingTypeName=options.thing_type_name,
        attributePayload={"attributes": dict(options.attributes)},
    )
    keys = iot.create_keys_and_certificate(setAsActive=True)
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file = directory / f"{name}.cert.pem"
    private_key_file = directory / f"{name}.private.key"
    write_private_file(certificate_file, keys["certificatePem"].encode("ascii"), mode=0o644)
    write_private_file(private_key_file, keys["keyPair"]["PrivateKey"].encode("ascii"))

    role_arn = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(assume_role_policy()),
        MaxSessionDuration=max_session,
    )["Role"]["Arn"]
    if options.role_policy is not None:
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName=f"{name}-access",
            PolicyDocument=json.dumps(options.role_policy),
        )
    alias_arn = iot.create_role_alias(
        roleAlias=role_alias, roleArn=role_arn, credentialDurationSeconds=duration
    )["roleAliasArn"]

    policy_name = f"{name}-policy"
    document = options.iot_policy or _assume_with_certificate_policy(alias_arn)
    iot.create_policy(
        policyName=policy_name,
        policyDocument=document if isinstance(document, str) else json.dumps(document),
    )
    iot.attach_policy(policyName=policy_name, target=keys["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=keys["certificateArn"])

    return Device(
        name=name,
        endpoint=endpoint,
        ca_file=ca_file,
        certificate_file=certificate_file,
        private_key_file=private_key_file,
        certificate_pem=keys["certificatePem"],
        private_key_pem=keys["keyPair"]["PrivateKey"],
        certificate_id=keys["certificateId"],
        certificate_arn=keys["certificateArn"],
        thing_name=name,
        thing_type_name=options.thing_type_name,
        role_alias=role_alias,
        role_arn=role_arn,
        policy_name=policy_name,
        region=region,
        aws_endpoint_url=aws_endpoint_url,
    )


def add_certificate(device: Device, *, iot: Any, directory: Path) -> Device:
    """A second certificate for ``device``'s thing, with the same IoT policy: what a rotation
    installs. The old certificate stays active; the files are named after the new one's id.

    Args:
        device: A device made by :func:`provision_device`.
        iot: A boto3 IoT client against moto.
        directory: Where the new certificate and key files go (created if needed).

    Returns:
        ``device`` with the new certificate's files, PEM, id and ARN.
    """
    keys = iot.create_keys_and_certificate(setAsActive=True)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{device.name}-{keys['certificateId'][:12]}"
    certificate_file = directory / f"{stem}.cert.pem"
    private_key_file = directory / f"{stem}.private.key"
    write_private_file(certificate_file, keys["certificatePem"].encode("ascii"), mode=0o644)
    write_private_file(private_key_file, keys["keyPair"]["PrivateKey"].encode("ascii"))
    iot.attach_policy(policyName=device.policy_name, target=keys["certificateArn"])
    iot.attach_thing_principal(thingName=device.thing_name, principal=keys["certificateArn"])
    return dataclasses.replace(
        device,
        certificate_file=certificate_file,
        private_key_file=private_key_file,
        certificate_pem=keys["certificatePem"],
        private_key_pem=keys["keyPair"]["PrivateKey"],
        certificate_id=keys["certificateId"],
        certificate_arn=keys["certificateArn"],
    )
