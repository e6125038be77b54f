"""Read certificate, key and CA material from a path or from bytes, and check it before use."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import types as key_types

from .exceptions import (
    CertificateExpiredError,
    CredentialFileError,
    EncryptedKeyError,
    InvalidPemError,
    KeyMismatchError,
)

__all__ = [
    "PemSource",
    "check_key_matches",
    "load_certificate",
    "load_private_key",
    "read_pem",
]

logger = logging.getLogger(__name__)

#: Where PEM material comes from: ``bytes`` are the PEM itself; ``str`` or a path-like object is
#: the path of a file holding it. (The 1.x API used the same convention.)
PemSource = Union[bytes, str, "os.PathLike[str]"]

_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def read_pem(source: PemSource, *, what: str) -> bytes:
    """Return the PEM bytes of ``source``, reading the file when it is a path.

    Raises:
        CredentialFileError: the file is missing or unreadable.
        InvalidPemError: the content holds no PEM block.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        origin = f"the {what} bytes"
    else:
        path = Path(source).expanduser()
        origin = f"{what} file {str(path)!r}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CredentialFileError(f"The {origin} does not exist.") from None
        except IsADirectoryError:
            raise CredentialFileError(f"The {origin} is a directory, not a file.") from None
        except PermissionError:
            raise CredentialFileError(
                f"The {origin} is not readable by this user (uid {os.getuid()}): fix its "
                "permissions or run as its owner."
            ) from None
        except OSError as exc:
            raise CredentialFileError(f"Cannot read the {origin}: {exc.strerror}.") from None
    if b"-----BEGIN " not in data:
        raise InvalidPemError(
            f"The {origin} is not PEM (no '-----BEGIN' line). Pass the PEM text itself as bytes, "
            "or a file path as str."
        )
    return data


def load_certificate(pem: bytes, *, what: str = "certificate") -> x509.Certificate:
    """Parse the first certificate in ``pem``.

    Raises:
        InvalidPemError: no parseable certificate.
    """
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidPemError(
            f"The {what} is not a valid PEM X.509 certificate (expected '-----BEGIN "
            "CERTIFICATE-----')."
        ) from None


def check_validity(certificate: x509.Certificate, now: datetime) -> None:
    """Refuse an expired device certificate; warn about one not valid yet (clock may be wrong).

    Raises:
        CertificateExpiredError: ``now`` is past the certificate's notAfter.
    """
    not_after = certificate.not_valid_after_utc
    if now > not_after:
        raise CertificateExpiredError(
            f"The device certificate expired on {not_after:%Y-%m-%d %H:%M} UTC (serial "
            f"{certificate.serial_number:x}); issue and register a new one. If it is not really "
            "expired, this device's clock is wrong."
        )
    if now < certificate.not_valid_before_utc:
        logger.warning(
            "The device certificate is not valid until %s UTC by this device's clock; "
            "if the clock is wrong, the provider will still accept it.",
            certificate.not_valid_before_utc.strftime("%Y-%m-%d %H:%M"),
        )


def load_private_key(
    pem: bytes, *, password: Union[bytes, None] = None
) -> key_types.PrivateKeyTypes:
    """Parse a PEM private key, decrypting it in memory when it is encrypted.

    Raises:
        EncryptedKeyError: encrypted without a password, wrong password, or a password for a
            key that is not encrypted.
        InvalidPemError: not a parseable private key.
    """
    encrypted = any(marker in pem for marker in _ENCRYPTED_MARKERS)
    if encrypted and password is None:
        raise EncryptedKeyError(
            "The private key is encrypted: give its password (private_key_password=..., or the "
            "CLI's --private-key-password-file)."
        )
    if not encrypted and password is not None:
        raise EncryptedKeyError(
            "A password was given but the private key is not encrypted: drop the password."
        )
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except TypeError:
        raise EncryptedKeyError("The private key is encrypted but no password was given.") from None
    except ValueError as exc:
        if encrypted:
            raise EncryptedKeyError(
                "Cannot decrypt the private key: the password is wrong, or the key uses a cipher "
                "this system's OpenSSL does not support."
            ) from None
        raise InvalidPemError(
            "The private key is not a valid PEM private key (expected '-----BEGIN PRIVATE KEY-----',"
            " '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----')."
        ) from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for odd keys
        raise InvalidPemError(f"The private key cannot be used: {type(exc).__name__}.") from None


def check_key_matches(certificate: x509.Certificate, key: key_types.PrivateKeyTypes) -> None:
    """Raise unless ``key`` is the private half of ``certificate``'s public key.

    Raises:
        KeyMismatchError: the two do not belong together.
    """
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise KeyMismatchError(
            "The private key does not match the certificate's public key: pass the key that was "
            f"created with this certificate (certificate subject {certificate.subject.rfc4514_string()!r})."
        )


def utcnow() -> datetime:
    """The one place the library reads the wall clock."""
    return datetime.now(timezone.utc)
