"""Keys generated at test time (EC P-256, RSA-2048), plain and encrypted both ways."""

from __future__ import annotations

import dataclasses
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

PASSWORD = b"correct horse battery staple"


@dataclasses.dataclass(frozen=True)
class KeyForms:
    """One key and its PEM forms."""

    key: PrivateKeyTypes
    plain: bytes
    pkcs8_encrypted: bytes
    legacy_encrypted: bytes


def key_forms(key: PrivateKeyTypes, password: bytes = PASSWORD) -> KeyForms:
    pem, encrypt = serialization.Encoding.PEM, serialization.BestAvailableEncryption(password)
    formats = serialization.PrivateFormat
    return KeyForms(
        key=key,
        plain=key.private_bytes(pem, formats.PKCS8, serialization.NoEncryption()),
        pkcs8_encrypted=key.private_bytes(pem, formats.PKCS8, encrypt),
        legacy_encrypted=key.private_bytes(pem, formats.TraditionalOpenSSL, encrypt),
    )


@pytest.fixture(scope="session", params=["ec-p256", "rsa-2048"])
def forms(request: pytest.FixtureRequest) -> KeyForms:
    key: PrivateKeyTypes = (
        ec.generate_private_key(ec.SECP256R1())
        if request.param == "ec-p256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    return key_forms(key)


def with_legacy_cipher(legacy_pem: bytes, cipher: str) -> bytes:
    """The same legacy PEM claiming another cipher in its DEK-Info header."""
    return re.sub(rb"DEK-Info: [A-Z0-9-]+,", b"DEK-Info: " + cipher.encode() + b",", legacy_pem)
