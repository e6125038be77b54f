"""Read certificate, key and CA material from a path or from bytes, and check it before use."""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import datetime
from typing import TYPE_CHECKING, Optional, Union

from ._arguments import is_pem_text, looks_like_key_material, shown_path
from ._der import CertificateDates, read_certificate_dates
from .exceptions import (
    ConfigurationError,
    CredentialFileError,
    EncryptedKeyError,
    InvalidPemError,
    KeyMismatchError,
)

if TYPE_CHECKING:
    # cryptography is imported by the functions that need it: a fetch does not (see _der).
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import types as key_types

__all__ = [
    "MAX_PEM_BYTES",
    "PemSource",
    "certificate_dates",
    "check_key_matches",
    "check_source",
    "check_validity",
    "expiry_note",
    "is_encrypted",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "pem_origin",
    "read_at_most",
    "read_pem",
    "read_secret_file",
    "resolve_password",
]

logger = logging.getLogger(__name__)

#: Where PEM material comes from: ``bytes`` are the PEM itself, and so is a ``str`` holding a
#: ``-----BEGIN`` line; any other ``str`` or a path-like object is the path of a file holding it.
#: (1.x took every ``str`` as a path and quoted a PEM one whole in its error.)
PemSource = Union[bytes, str, "os.PathLike[str]"]

#: The largest PEM file read: a certificate chain or a CA bundle (the system's, 200 certificates,
#: is about 220 KB) fits many times over; a bigger file is a mistake that would cost minutes.
MAX_PEM_BYTES = 1024 * 1024

_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")
_DEK_INFO = rb"^DEK-Info: *([A-Za-z0-9-]{1,40}),"  # compiled on first use: errors only


def read_pem(source: PemSource, *, what: str) -> bytes:
    """Return the PEM bytes of ``source``, reading the file when it is a path.

    Raises:
        ConfigurationError: ``source`` is not bytes, a ``str`` or a path.
        CredentialFileError: the file is missing, unreadable, not a regular file, too big, or
            the "path" is key material (which is never shown).
        InvalidPemError: the content holds no PEM block.
    """
    check_source(source, what=what)
    origin = pem_origin(source, what=what)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif is_pem_text(source):
        assert isinstance(source, str)  # noqa: S101 - is_pem_text says so
        # PEM is ASCII: anything else becomes "?" and fails to parse, with our message.
        data = source.encode("utf-8", "replace")
    else:
        path = os.fspath(source)
        if looks_like_key_material(os.fsdecode(path)):
            raise CredentialFileError(
                f"The {what} is not a file path (it looks like key material; not shown): pass "
                "the PEM text with its -----BEGIN and -----END lines, or the path of the file."
            )
        data, _ = _read_file(os.path.expanduser(path), origin)
    if b"-----BEGIN " not in data:
        raise InvalidPemError(
            f"The {origin} is not PEM (no '-----BEGIN' line): pass the PEM text itself (bytes "
            "or str) or the path of a PEM file."
        )
    return data


def check_source(source: object, *, what: str) -> None:
    """Refuse, as a ``ValueError``, a ``source`` that is neither PEM nor a path (``None``, 42).

    Raises:
        ConfigurationError: naming ``what`` and the type given.
    """
    if not isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        raise ConfigurationError(
            f"{what} must be PEM bytes, PEM text or a file path, got {type(source).__name__}."
        )


def pem_origin(source: PemSource, *, what: str) -> str:
    """How messages name ``source``: its bytes, its PEM text or its file; never key material."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{what} given as bytes"
    if is_pem_text(source):
        return f"{what} given as PEM text"
    return f"{what} file {shown_path(os.fspath(source))}"


def _read_file(path: Union[str, bytes], origin: str) -> tuple[bytes, int]:
    """The content and mode of ``path``, or a message that says how to fix it (never the content).

    Opened without blocking and checked before reading: a FIFO would block forever, a device
    such as /dev/zero never ends, and a huge file is not PEM (see :data:`MAX_PEM_BYTES`).

    Raises:
        CredentialFileError: missing, not a regular file, too big, or unreadable.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise CredentialFileError(f"The {origin} does not exist.") from None
    except PermissionError:
        raise CredentialFileError(
            f"The {origin} is not readable by this user (uid {_uid()}): fix its "
            "permissions or run as its owner."
        ) from None
    except OSError as exc:
        raise CredentialFileError(f"Cannot read the {origin}: {exc.strerror}.") from None
    except ValueError:  # a NUL character in the path
        raise CredentialFileError(f"The {origin} is not a valid file path.") from None
    try:
        mode = _check_regular(os.fstat(descriptor), origin)
        data = read_at_most(descriptor, MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise CredentialFileError(f"Cannot read the {origin}: {exc.strerror}.") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_PEM_BYTES:  # it grew since fstat
        raise CredentialFileError(_too_big(origin, len(data)))
    return data, mode


def read_at_most(descriptor: int, limit: int) -> bytes:
    """Up to ``limit`` bytes: ``os.read`` may return less than asked, so loop to the end."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(descriptor, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _check_regular(status: os.stat_result, origin: str) -> int:
    """``status.st_mode`` if it is a regular file of at most :data:`MAX_PEM_BYTES`."""
    if stat.S_ISDIR(status.st_mode):
        raise CredentialFileError(f"The {origin} is a directory, not a file.")
    if not stat.S_ISREG(status.st_mode):
        raise CredentialFileError(
            f"The {origin} is not a regular file (a device, FIFO or socket): point the setting "
            "at the file itself."
        )
    if status.st_size > MAX_PEM_BYTES:
        raise CredentialFileError(_too_big(origin, status.st_size))
    return status.st_mode


def _too_big(origin: str, size: int) -> str:
    return (
        f"The {origin} is {size} bytes or more, over the 1 MiB limit for a PEM file, password or "
        "PIN: point the setting at the right file."
    )


def _uid() -> object:
    return os.getuid() if hasattr(os, "getuid") else "?"


def read_secret_file(path: Union[str, os.PathLike[str]], *, what: str) -> bytes:
    """The secret (password, PIN) in a file, without the one trailing newline editors add.

    Warns (without the secret) when other users can read the file.

    Raises:
        CredentialFileError: missing, unreadable, or empty.
    """
    file = os.path.expanduser(os.fspath(path))
    origin = f"{what} file {shown_path(file)}"
    data, mode = _read_file(file, origin)
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    if not data:
        raise CredentialFileError(f"The {origin} is empty.")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("The %s can be read by other users: run chmod 600 on it.", origin)
    return data


def resolve_password(value: Union[str, bytes, None]) -> Optional[bytes]:
    """The password of an encrypted private key as bytes (``str`` is encoded as UTF-8).

    Reading one from an environment variable or a file is the CLI's business (``cli/_options``).

    Raises:
        EncryptedKeyError: the password is empty.
        ConfigurationError: neither ``str`` nor ``bytes``.
    """
    if value is None:
        return None
    if not isinstance(value, (str, bytes, bytearray, memoryview)):
        raise ConfigurationError(
            f"private_key_password must be a str or bytes, got {type(value).__name__}."
        )
    secret = value.encode() if isinstance(value, str) else bytes(value)
    if not secret:
        raise EncryptedKeyError(
            "The private key password is empty: give the real password.",
            setting="private_key_password",
        )
    return secret


def load_certificate(pem: bytes, *, what: str = "certificate") -> x509.Certificate:
    """Parse the first certificate in ``pem``.

    Raises:
        InvalidPemError: no parseable certificate.
    """
    return load_certificates(pem, what=what)[0]


def load_certificates(pem: bytes, *, what: str = "certificate") -> list[x509.Certificate]:
    """Parse every certificate in ``pem`` (a CA bundle holds several).

    Raises:
        InvalidPemError: no certificate, or one that does not parse.
    """
    from cryptography import x509  # noqa: PLC0415 - see TYPE_CHECKING above

    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidPemError(
            f"The {what} is not a valid PEM X.509 certificate (expected '-----BEGIN "
            "CERTIFICATE-----')."
        ) from None


def certificate_dates(pem: bytes) -> CertificateDates:
    """The serial number and validity of the certificate in ``pem``, without cryptography when
    its DER is well-formed.

    Raises:
        InvalidPemError: no parseable certificate.
    """
    dates = read_certificate_dates(pem)
    if dates is not None:
        return dates
    certificate = load_certificate(pem)
    return CertificateDates(
        certificate.serial_number,
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
    )


def check_validity(dates: CertificateDates, now: datetime) -> None:
    """Warn when this device's clock says the certificate is expired or not valid yet.

    The device's clock is not the judge: devices without a real-time clock, and test suites
    with old fixture certificates, may be wrong about the date. The provider decides; when it
    refuses the certificate, :func:`expiry_note` says what this clock thought.
    """
    if now > dates.not_after:
        logger.warning(
            "The device certificate expired on %s UTC by this device's clock (serial %x); "
            "trying anyway: if the clock is wrong the provider accepts it, else issue and "
            "register a new certificate.",
            _when(dates.not_after),
            dates.serial_number,
        )
    elif now < dates.not_before:
        logger.warning(
            "The device certificate is not valid until %s UTC by this device's clock; "
            "if the clock is wrong, the provider will still accept it.",
            _when(dates.not_before),
        )


def expiry_note(dates: CertificateDates, now: datetime) -> Optional[str]:
    """A sentence for a refusal of the certificate, when this device's clock says it expired."""
    if now <= dates.not_after:
        return None
    return (
        f"The certificate looks expired by this device's clock (notAfter "
        f"{_when(dates.not_after)} UTC): issue and register a new one, or set the clock if it "
        "is wrong."
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def is_encrypted(pem: bytes) -> bool:
    """Whether ``pem`` is an encrypted private key (PKCS#8 or legacy OpenSSL encryption)."""
    return any(marker in pem for marker in _ENCRYPTED_MARKERS)


def load_private_key(
    pem: bytes, *, password: Union[bytes, None] = None
) -> key_types.PrivateKeyTypes:
    """Parse a PEM private key, decrypting it in memory when it is encrypted.

    Handles encrypted PKCS#8 (``BEGIN ENCRYPTED PRIVATE KEY``) and legacy OpenSSL encryption
    (``Proc-Type: 4,ENCRYPTED``). Nothing decrypted is written anywhere.

    Raises:
        EncryptedKeyError: encrypted without a password, an empty or wrong password, a cipher
            this system cannot decrypt, or a password for a key that is not encrypted.
        InvalidPemError: not a parseable private key.
    """
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    encrypted = is_encrypted(pem)
    if encrypted and password is None:
        raise EncryptedKeyError(
            "The private key is encrypted: give its password (private_key_password).",
            setting="private_key_password",
        )
    if not encrypted and password is not None:
        raise EncryptedKeyError(
            "A password was given but the private key is not encrypted: drop the password.",
            setting="private_key_password",
        )
    if encrypted and not password:
        raise EncryptedKeyError(
            "The private key password is empty: give the real password.",
            setting="private_key_password",
        )
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if not encrypted:
            raise InvalidPemError(
                "The private key is not a valid PEM private key (expected '-----BEGIN PRIVATE "
                "KEY-----', '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----')."
            ) from None
        # cryptography names an unknown cipher ("Key encrypted with unknown cipher", "Unknown
        # key encryption algorithm: <oid>"). Anything else is a bad password: PKCS#8 says
        # "Incorrect password", while legacy PEM has no MAC, so about one wrong password in 256
        # decrypts to garbage that fails later, with another message.
        reason = str(exc).lower()
        unknown_cipher = isinstance(exc, UnsupportedAlgorithm) or (
            "unknown" in reason and ("cipher" in reason or "algorithm" in reason)
        )
        if not unknown_cipher:
            raise EncryptedKeyError(
                "Cannot decrypt the private key: the password is wrong (or the key file is "
                "corrupt).",
                setting="private_key_password",
            ) from None
        raise EncryptedKeyError(
            f"The private key is encrypted with {_cipher_of(pem, exc)}, which this system's "
            "cryptography/OpenSSL cannot decrypt: re-encrypt it with AES-256-CBC, e.g. "
            "`openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out new.pem`."
        ) from None


def _cipher_of(pem: bytes, exc: Exception) -> str:
    """Name the cipher of an encrypted key for a message: the DEK-Info name, else cryptography's."""
    match = re.search(_DEK_INFO, pem, re.MULTILINE)
    if match:
        return f"cipher {match.group(1).decode('ascii')}"
    return f"an algorithm cryptography does not support ({exc})"


def check_key_matches(certificate: x509.Certificate, key: key_types.PrivateKeyTypes) -> None:
    """Raise unless ``key`` is the private half of ``certificate``'s public key.

    Raises:
        KeyMismatchError: the two do not belong together.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise KeyMismatchError(
            "The private key does not match the certificate's public key: pass the key that was "
            "created with this certificate (certificate subject "
            f"{certificate.subject.rfc4514_string()!r})."
        )
