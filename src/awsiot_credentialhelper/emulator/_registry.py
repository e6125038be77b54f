"""Read the IoT, IAM and STS state the decision needs straight from moto's in-process backends.

This is the one module that touches moto's internals (``iot_backends``, ``iam_backends``,
``sts_backends`` and their attributes); the contract tests in ``tests/emulator`` fail loudly
when a moto release changes them. Reads run on server threads while tests mutate the same
dicts through moto's HTTP API, so every iteration copies first and retries once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any, Optional, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = [
    "CertificateRecord",
    "IssuedCredentials",
    "MotoRegistry",
    "RoleAliasRecord",
    "RoleRecord",
    "ThingRecord",
    "partition_of",
    "role_alias_arn",
]

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class CertificateRecord:
    """A registered certificate, as the decision needs it."""

    certificate_id: str
    arn: str
    status: str
    ca_certificate_id: Optional[str]
    ca_status: Optional[str]


@dataclasses.dataclass(frozen=True)
class ThingRecord:
    """A thing's name, type and attributes."""

    name: str
    type_name: Optional[str]
    attributes: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class RoleAliasRecord:
    """A role alias: the role it names and how long its credentials live."""

    alias: str
    role_arn: str
    credential_duration_seconds: int


@dataclasses.dataclass(frozen=True)
class RoleRecord:
    """An IAM role's trust policy (JSON text) and maximum session duration."""

    arn: str
    trust_policy: str
    max_session_duration: int


@dataclasses.dataclass(frozen=True)
class IssuedCredentials:
    """Temporary credentials minted by moto's STS; the repr hides the secrets."""

    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    session_token: str = dataclasses.field(repr=False)


def partition_of(region: str) -> str:
    """The ARN partition of ``region``: ``aws``, ``aws-cn``, ``aws-us-gov`` ..."""
    from moto.utilities.utils import get_partition  # noqa: PLC0415 - moto is optional

    return str(get_partition(region))


def role_alias_arn(region: str, account_id: str, alias: str) -> str:
    """The ARN an IoT policy names for ``alias`` in this account and region."""
    return f"arn:{partition_of(region)}:iot:{region}:{account_id}:rolealias/{alias}"


def _copy_retrying(read: Callable[[], _T]) -> _T:
    """Run ``read`` (which copies a moto dict); retry once if a writer changed it meanwhile."""
    try:
        return read()
    except RuntimeError as exc:
        if "changed size during iteration" not in str(exc) and "mutated" not in str(exc):
            raise
        return read()


def _der_of_pem(pem: str) -> Optional[bytes]:
    try:
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    except ValueError:
        return None  # moto stores whatever text it was given


class MotoRegistry:
    """The emulator's view of one moto account and region, read in-process.

    Args:
        account_id: The moto account (moto's default is ``123456789012``).
        region: The region whose IoT backend holds the certificates and role aliases.
    """

    def __init__(self, account_id: str, region: str) -> None:
        # Imported here so that importing the emulator package does not import moto.
        from moto.iam.models import iam_backends  # noqa: PLC0415
        from moto.iot.models import iot_backends  # noqa: PLC0415
        from moto.sts.models import sts_backends  # noqa: PLC0415

        self.account_id = account_id
        self.region = region
        self.partition = partition_of(region)
        self._iot_backends: Any = iot_backends
        self._iam_backends: Any = iam_backends
        self._sts_backends: Any = sts_backends
        self._der_index: dict[bytes, str] = {}
        self._der_index_lock = threading.Lock()

    # moto creates backends lazily; look them up on each call so a reset is picked up.
    @property
    def _iot(self) -> Any:
        return self._iot_backends[self.account_id][self.region]

    @property
    def _iam(self) -> Any:
        return self._iam_backends[self.account_id][self.partition]

    @property
    def _sts(self) -> Any:
        return self._sts_backends[self.account_id][self.partition]

    def role_alias_arn(self, alias: str) -> str:
        """The ARN an IoT policy names for ``alias``."""
        return role_alias_arn(self.region, self.account_id, alias)

    # --- certificates ---------------------------------------------------------------------

    def find_certificate(self, der: bytes) -> Optional[CertificateRecord]:
        """Find the registered certificate whose DER encoding is ``der``.

        moto ids are sha256(DER) with ``use_valid_cert`` and sha256(PEM text) without it; a
        PEM registered with other formatting (CRLF, no final newline) is found by a scan whose
        result is cached.
        """
        certificates: dict[str, Any] = self._iot.certificates
        for candidate in (
            hashlib.sha256(der).hexdigest(),
            hashlib.sha256(ssl.DER_cert_to_PEM_cert(der).encode()).hexdigest(),
        ):
            fake = certificates.get(candidate)
            if fake is not None:
                return self._certificate_record(fake)
        with self._der_index_lock:
            cached = self._der_index.get(der)
        fake = certificates.get(cached) if cached is not None else None
        if fake is None:
            fake = self._scan_for(der, certificates)
        return self._certificate_record(fake) if fake is not None else None

    def _scan_for(self, der: bytes, certificates: dict[str, Any]) -> Any:
        fakes = _copy_retrying(lambda: list(certificates.values()))
        found = None
        with self._der_index_lock:
            known = set(self._der_index.values())
            for fake in fakes:
                if fake.certificate_id in known:
                    continue
                fake_der = _der_of_pem(fake.certificate_pem)
                if fake_der is not None:
                    self._der_index[fake_der] = fake.certificate_id
                if fake_der == der:
                    found = fake
        return found

    def _certificate_record(self, fake: Any) -> CertificateRecord:
        ca_id: Optional[str] = fake.ca_certificate_id
        ca = self._iot.ca_certificates.get(ca_id) if ca_id else None
        return CertificateRecord(
            certificate_id=fake.certificate_id,
            arn=fake.arn,
            status=fake.status,
            ca_certificate_id=ca_id,
            ca_status=ca.status if ca is not None else None,
        )

    # --- things and policies -----------------------------------------------------------------

    def thing(self, name: str) -> Optional[ThingRecord]:
        """Return the thing called ``name``, if it exists."""
        arn = f"arn:{self.partition}:iot:{self.region}:{self.account_id}:thing/{name}"
        fake = self._iot.things.get(arn)
        if fake is None:
            return None
        thing_type = fake.thing_type
        return ThingRecord(
            name=fake.thing_name,
            type_name=thing_type.thing_type_name if thing_type is not None else None,
            attributes={str(k): str(v) for k, v in dict(fake.attributes).items()},
        )

    def is_attached(self, certificate_arn: str, thing_name: str) -> bool:
        """Whether AttachThingPrincipal linked this certificate and thing."""
        return (certificate_arn, thing_name) in self._iot.principal_things

    def policy_documents(self, certificate_arn: str) -> list[str]:
        """The default-version documents of every IoT policy attached to the certificate."""
        attached = _copy_retrying(lambda: list(self._iot.principal_policies.items()))
        return [
            policy.document for (target, _), (_, policy) in attached if target == certificate_arn
        ]

    # --- role aliases, roles and STS ----------------------------------------------------------

    def role_alias(self, alias: str) -> Optional[RoleAliasRecord]:
        """Return the role alias called ``alias``, if it exists."""
        fake = self._iot.role_aliases.get(alias)
        if fake is None:
            return None
        return RoleAliasRecord(
            alias=fake.role_alias,
            role_arn=fake.role_arn,
            credential_duration_seconds=int(fake.credential_duration_seconds),
        )

    def role(self, arn: str) -> Optional[RoleRecord]:
        """Return the IAM role with this ARN, if it exists in this account."""
        roles = _copy_retrying(lambda: list(self._iam.roles.values()))
        for role in roles:
            if role.arn == arn:
                return RoleRecord(
                    arn=role.arn,
                    trust_policy=str(role.assume_role_policy_document or ""),
                    max_session_duration=int(role.max_session_duration),
                )
        return None

    def assume_role(
        self, role_arn: str, session_name: str, duration_seconds: int
    ) -> IssuedCredentials:
        """Mint credentials with moto's STS, as ``credentials.iot.amazonaws.com`` would.

        moto's in-process backend takes any ``duration_seconds``: the 900 s minimum of the
        real AssumeRole is enforced by botocore's parameter checks and AWS, neither of which
        is on this path. So the short lifetimes of ``Controls.credential_lifetime`` mint STS
        credentials whose own expiry matches the answer's ``expiration`` (a contract test
        fails if a moto release starts refusing or stretching them).
        """
        assumed = self._sts.assume_role(
            region_name=self.region,
            role_session_name=session_name,
            role_arn=role_arn,
            policy=None,
            duration=duration_seconds,
            external_id=None,
        )
        return IssuedCredentials(
            access_key_id=assumed.access_key_id,
            secret_access_key=assumed.secret_access_key,
            session_token=assumed.session_token,
        )
