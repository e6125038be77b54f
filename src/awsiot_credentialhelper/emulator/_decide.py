"""Decide the Credential Provider's answer to one request, in the service's order of checks.

The order and the messages follow what AWS has been observed to return (see
``docs/emulator.md``, "Fidelity"): certificate, thing name, IoT policy, role alias, role trust,
duration, then credentials from STS.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._policy import PolicyContext, evaluate
from ._registry import CertificateRecord, IssuedCredentials, MotoRegistry
from ._trust import trusts_credential_provider

__all__ = ["ASSUME_ACTION", "Decision", "Outcome", "decide"]

ASSUME_ACTION = "iot:AssumeRoleWithCertificate"


class Outcome(enum.Enum):
    """Every answer the emulated service gives, with its status, message and error type.

    The ``x-amzn-ErrorType`` values other than ``AccessDeniedException`` on a 403 are guesses
    that have not been checked against AWS.
    """

    CERTIFICATE_INVALID = (403, "Certificate is invalid on this endpoint", "AccessDeniedException")
    INVALID_THING_NAME = (403, "Invalid thing name passed", "AccessDeniedException")
    ACCESS_DENIED = (403, "Access Denied", "AccessDeniedException")
    ROLE_ALIAS_NOT_FOUND = (404, "Role alias does not exist", "ResourceNotFoundException")
    ROLE_NOT_ASSUMABLE = (
        400,
        "Unable to assume the role, or the role to assume does not exist",
        "InvalidRequestException",
    )
    DURATION_EXCEEDS_MAX = (
        400,
        "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the role",
        "InvalidRequestException",
    )
    SUCCESS = (200, "", "")

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def message(self) -> str:
        return str(self.value[1])

    @property
    def error_type(self) -> str:
        return str(self.value[2])


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome, who asked, and on success the credentials and their lifetime."""

    outcome: Outcome
    certificate_id: Optional[str] = None
    credentials: Optional[IssuedCredentials] = None
    duration_seconds: Optional[int] = None


def _certificate_usable(
    record: Optional[CertificateRecord], certificate: x509.Certificate, now: datetime.datetime
) -> bool:
    if record is None or record.status != "ACTIVE":
        return False
    if record.ca_certificate_id is not None and record.ca_status != "ACTIVE":
        return False
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def decide(  # noqa: PLR0911 - one return per row of the decision table
    registry: MotoRegistry,
    certificate: x509.Certificate,
    thing_name: Optional[str],
    role_alias: str,
    *,
    now: datetime.datetime,
    require_thing_name: bool = False,
    lifetime: Optional[int] = None,
) -> Decision:
    """Run the service's checks in order and mint credentials if all pass.

    Args:
        registry: Where certificates, things, policies, aliases and roles live.
        certificate: The client certificate presented in the TLS handshake.
        thing_name: The ``x-amzn-iot-thingname`` header, or None if it was not sent.
        role_alias: The alias from the request path.
        now: The server's true time, for the certificate validity check.
        require_thing_name: Refuse requests without the thing header (the AWS docs say the
            header is optional; this switch models the stricter behaviour some report).
        lifetime: A test aid: mint credentials for this many seconds instead of the alias's
            ``credentialDurationSeconds``. The alias's own duration is still checked against
            the role's maximum, as the service checks the configuration it has.
    """
    der = certificate.public_bytes(serialization.Encoding.DER)
    record = registry.find_certificate(der)
    if record is None or not _certificate_usable(record, certificate, now):
        return Decision(Outcome.CERTIFICATE_INVALID)
    cert_id = record.certificate_id

    context = PolicyContext(certificate_id=cert_id)
    if thing_name is not None:
        thing = registry.thing(thing_name)
        if thing is None or not registry.is_attached(record.arn, thing_name):
            return Decision(Outcome.INVALID_THING_NAME, cert_id)
        context = PolicyContext(cert_id, thing.name, thing.type_name, thing.attributes)
    elif require_thing_name:
        return Decision(Outcome.INVALID_THING_NAME, cert_id)

    documents = registry.policy_documents(record.arn)
    resource = registry.role_alias_arn(role_alias)
    if not evaluate(documents, ASSUME_ACTION, resource, context).allowed:
        return Decision(Outcome.ACCESS_DENIED, cert_id)

    alias = registry.role_alias(role_alias)
    if alias is None:
        return Decision(Outcome.ROLE_ALIAS_NOT_FOUND, cert_id)
    role = registry.role(alias.role_arn)
    if role is None or not trusts_credential_provider(role.trust_policy):
        return Decision(Outcome.ROLE_NOT_ASSUMABLE, cert_id)
    if alias.credential_duration_seconds > role.max_session_duration:
        return Decision(Outcome.DURATION_EXCEEDS_MAX, cert_id)

    duration = alias.credential_duration_seconds if lifetime is None else lifetime
    credentials = registry.assume_role(role.arn, cert_id, duration)
    return Decision(Outcome.SUCCESS, cert_id, credentials, duration)
