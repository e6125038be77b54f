"""Certificates made at test time for "bring your own certificate" cases (never committed)."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM text and as files."""

    certificate_pem: str
    private_key_pem: str
    certificate_file: Path
    private_key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclasses.dataclass(frozen=True)
class TestCa:
    """A CA that can sign device certificates with any validity window."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def make_ca() -> TestCa:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("test device CA"))
        .issuer_name(_name("test device CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return TestCa(key, certificate)


def issue(
    directory: Path,
    name: str,
    *,
    ca: Optional[TestCa] = None,
    not_before: datetime.timedelta = datetime.timedelta(days=-1),
    not_after: datetime.timedelta = datetime.timedelta(days=30),
) -> Issued:
    """Issue a device certificate valid from NOW+not_before to NOW+not_after.

    Without ``ca`` the certificate is self-signed.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name = ca.certificate.subject if ca else _name(name)
    signer = ca.key if ca else key
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + not_before)
        .not_valid_after(NOW + not_after)
        .sign(signer, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    private_key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file = directory / f"{name}.pem"
    private_key_file = directory / f"{name}.key"
    certificate_file.write_text(certificate_pem)
    private_key_file.write_text(private_key_pem)
    private_key_file.chmod(0o600)
    return Issued(certificate_pem, private_key_pem, certificate_file, private_key_file)
