"""SoftHSM2 tokens for the whole session, with EC P-256 and RSA-2048 keys, and certificates.

Skips, with the reason, when SoftHSM2 is not installed or its tokens cannot be made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import NameOID

from .softhsm import SoftHsm, unavailable_reason
from .stack import StackUnavailableError

PIN = "246810"
#: Holds the EC key ``ec_key`` (id 01) and the RSA key ``rsa_key`` (id 02).
THING_TOKEN = "thing_token"
#: Holds one EC key, ``only_key``, so no key label is needed.
SINGLE_TOKEN = "single_token"
#: Takes the wrong PINs, so a token that locks would not break the other tests.
PIN_TOKEN = "pin_token"


@dataclasses.dataclass(frozen=True)
class Tokens:
    """The session's SoftHSM2 and the keys it holds (kept here only to issue certificates)."""

    hsm: SoftHsm
    ec_key: PrivateKeyTypes
    rsa_key: PrivateKeyTypes
    only_key: PrivateKeyTypes
    pin_key: PrivateKeyTypes


def _loaded_modules() -> str:
    try:
        return Path("/proc/self/maps").read_text()
    except OSError:
        return ""


@pytest.fixture(scope="session")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tokens]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    if "libsofthsm2" in _loaded_modules():
        pytest.fail(
            "libsofthsm2 was loaded before SOFTHSM2_CONF was set: it keeps its first config"
        )
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    try:
        keys = _make_tokens(hsm)
    except StackUnavailableError as exc:
        pytest.skip(str(exc))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(hsm.conf))
        yield keys


def _make_tokens(hsm: SoftHsm) -> Tokens:
    """The three tokens, with their keys imported (no key file left behind)."""
    keys = Tokens(
        hsm=hsm,
        ec_key=ec.generate_private_key(ec.SECP256R1()),
        rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        only_key=ec.generate_private_key(ec.SECP256R1()),
        pin_key=ec.generate_private_key(ec.SECP256R1()),
    )
    for label in (THING_TOKEN, SINGLE_TOKEN, PIN_TOKEN):
        hsm.init_token(label, pin=PIN)
    hsm.import_key(keys.ec_key, token=THING_TOKEN, label="ec_key", key_id="01", pin=PIN)
    hsm.import_key(keys.rsa_key, token=THING_TOKEN, label="rsa_key", key_id="02", pin=PIN)
    hsm.import_key(keys.only_key, token=SINGLE_TOKEN, label="only_key", key_id="01", pin=PIN)
    hsm.import_key(keys.pin_key, token=PIN_TOKEN, label="pin_key", key_id="01", pin=PIN)
    assert not list(hsm.directory.glob("*.pem")), "key files must be gone after import"
    return keys


def issue(ca: trustme.CA, key: PrivateKeyTypes, name: str = "hsm-device.example") -> bytes:
    """A client certificate from the test CA for ``key``'s public half, as PEM."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_certificate = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    assert isinstance(ca_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    signer: CertificateIssuerPrivateKeyTypes = ca_key
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)
