"""Encrypted private keys: decrypted in memory, password from a value, a variable or a file."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Callable, Optional, Union

import pytest
from awscrt import io as crt_io
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from awsiot_credentialhelper._keys import PemKey
from awsiot_credentialhelper._pem import (
    load_private_key,
    read_pem,
    read_secret_file,
    resolve_password,
)
from awsiot_credentialhelper._transport import tls_options
from awsiot_credentialhelper.exceptions import (
    ConfigurationError,
    CredentialFileError,
    CredentialHelperError,
    EncryptedKeyError,
    InvalidPemError,
)

from ..conftest import ProviderFactory
from ..servers import DeviceFiles
from .conftest import PASSWORD, KeyForms, key_forms, with_legacy_cipher

SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
AES_256_CBC_OID = bytes.fromhex("060960864801650304012a")
AES_256_GCM_OID = bytes.fromhex("060960864801650304012e")


def _public(pem: bytes, password: Optional[bytes]) -> bytes:
    return load_private_key(pem, password=password).public_key().public_bytes(*SPKI)


def _with_pkcs8_cipher_oid(encrypted_pem: bytes, old: bytes, new: bytes) -> bytes:
    """The same encrypted PKCS#8 key claiming another cipher OID in its PBES2 parameters."""
    body = b"".join(line for line in encrypted_pem.splitlines() if not line.startswith(b"-----"))
    der = base64.b64decode(body)
    assert old in der
    encoded = base64.encodebytes(der.replace(old, new))
    return (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + encoded
        + b"-----END ENCRYPTED PRIVATE KEY-----\n"
    )


@pytest.mark.parametrize("form", ["pkcs8_encrypted", "legacy_encrypted"])
def test_decrypts_both_formats_in_memory(forms: KeyForms, form: str) -> None:
    pem: bytes = getattr(forms, form)
    assert b"ENCRYPTED" in pem
    assert _public(pem, PASSWORD) == forms.key.public_key().public_bytes(*SPKI)


Mangle = Callable[[KeyForms], bytes]


@pytest.mark.parametrize(
    ("mangle", "password", "message"),
    [
        pytest.param(
            lambda f: f.pkcs8_encrypted, b"Tr0ub4dor&3", "password is wrong", id="pkcs8-wrong"
        ),
        pytest.param(
            lambda f: f.legacy_encrypted, b"Tr0ub4dor&3", "password is wrong", id="legacy-wrong"
        ),
        pytest.param(lambda f: f.pkcs8_encrypted, None, "is encrypted: give", id="pkcs8-none"),
        pytest.param(lambda f: f.legacy_encrypted, None, "is encrypted: give", id="legacy-none"),
        pytest.param(lambda f: f.pkcs8_encrypted, b"", "password is empty", id="pkcs8-empty"),
        pytest.param(lambda f: f.plain, PASSWORD, "not encrypted: drop", id="plain-with-password"),
        pytest.param(
            lambda f: with_legacy_cipher(f.legacy_encrypted, "DES-CBC"),
            PASSWORD,
            "cipher DES-CBC, which this system",
            id="legacy-des",
        ),
        pytest.param(
            lambda f: with_legacy_cipher(f.legacy_encrypted, "BF-CBC"),
            PASSWORD,
            "cipher BF-CBC, which this system",
            id="legacy-blowfish",
        ),
        pytest.param(
            lambda f: _with_pkcs8_cipher_oid(f.pkcs8_encrypted, AES_256_CBC_OID, AES_256_GCM_OID),
            PASSWORD,
            "2.16.840.1.101.3.4.1.46",
            id="pkcs8-aes-gcm",
        ),
    ],
)
def test_each_failure_has_its_own_message(
    forms: KeyForms, mangle: Mangle, password: Optional[bytes], message: str
) -> None:
    with pytest.raises(EncryptedKeyError) as caught:
        load_private_key(mangle(forms), password=password)
    assert message in str(caught.value)
    assert caught.value.__cause__ is None
    assert not any(secret in str(caught.value) for secret in ("Tr0ub4dor", PASSWORD.decode()))


def test_legacy_wrong_password_that_decrypts_to_garbage_is_still_a_wrong_password(
    forms: KeyForms,
) -> None:
    """Legacy PEM has no MAC: find a wrong password whose padding happens to check out."""
    for attempt in range(5000):
        candidate = f"wrong-{attempt}".encode()
        try:
            serialization.load_pem_private_key(forms.legacy_encrypted, password=candidate)
        except ValueError as error:
            if "Incorrect password" not in str(error):
                break
    else:
        pytest.fail("no wrong password decrypted to garbage in 5000 tries")
    with pytest.raises(EncryptedKeyError, match="password is wrong"):
        load_private_key(forms.legacy_encrypted, password=candidate)


def test_not_a_key_is_invalid_pem_not_an_encryption_error() -> None:
    with pytest.raises(InvalidPemError, match="not a valid PEM private key"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_password_may_be_str_or_bytes_or_unicode() -> None:
    forms = key_forms(ec.generate_private_key(ec.SECP256R1()), "pässwörd".encode())
    for value in ("pässwörd", "pässwörd".encode()):
        secret = resolve_password(value)
        assert secret == "pässwörd".encode()
        assert _public(forms.pkcs8_encrypted, secret) == _public(forms.plain, None)


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_password_from_file_strips_one_newline(
    tmp_path: Path, forms: KeyForms, ending: bytes
) -> None:
    path = tmp_path / "password"
    path.write_bytes(PASSWORD + ending)
    path.chmod(0o600)
    assert read_secret_file(path, what="password") == PASSWORD
    assert read_secret_file(str(path), what="password") == PASSWORD


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        pytest.param(None, CredentialFileError, "does not exist", id="missing"),
        pytest.param(b"\n", CredentialFileError, "is empty", id="empty"),
    ],
)
def test_password_file_errors(
    tmp_path: Path, content: Optional[bytes], error: type[Exception], message: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        read_secret_file(path, what="private key password")


def test_password_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "password"
    path.write_bytes(PASSWORD)
    path.chmod(0o640)
    assert read_secret_file(path, what="private key password") == PASSWORD
    assert "chmod 600" in caplog.text
    assert PASSWORD.decode() not in caplog.text


def test_no_password_is_none() -> None:
    assert resolve_password(None) is None


@pytest.mark.parametrize("value", [42, ["pw"]], ids=["int", "list"])
def test_a_password_of_another_type_is_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigurationError, match="private_key_password must be a str or bytes"):
        resolve_password(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", b""])
def test_empty_password_value(value: Union[str, bytes]) -> None:
    with pytest.raises(EncryptedKeyError, match="empty"):
        resolve_password(value)


# --- through awscrt and the provider ---------------------------------------------------------


def test_pem_key_hands_awscrt_the_decrypted_key(device: DeviceFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(device.private_key_pem, None)
    encrypted = key_forms(key).pkcs8_encrypted
    before = sorted(tmp_path.rglob("*"))
    pem_key = PemKey(encrypted, device.certificate_pem, origin="test key", password=PASSWORD)
    crt_io.ClientTlsContext(tls_options(pem_key, device.certificate_pem))
    assert sorted(tmp_path.rglob("*")) == before
    assert repr(pem_key) == "PemKey(test key)"


@pytest.mark.parametrize("form", ["pkcs8_encrypted", "legacy_encrypted"])
@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
def test_fetch_with_an_encrypted_key(
    make_provider: ProviderFactory, device: DeviceFiles, tmp_path: Path, form: str, as_path: bool
) -> None:
    key = serialization.load_pem_private_key(device.private_key_pem, None)
    pem: bytes = getattr(key_forms(key), form)
    source: Union[str, bytes] = pem
    if as_path:
        path = tmp_path / "device.key.enc"
        path.write_bytes(pem)
        source = str(path)
    provider = make_provider(private_key=source, private_key_password=PASSWORD.decode())
    assert provider.fetch().access_key_id == "ASIATEST"


def test_fetch_with_a_wrong_password_fails_before_the_network(
    make_provider: ProviderFactory, device: DeviceFiles
) -> None:
    key = serialization.load_pem_private_key(device.private_key_pem, None)
    with pytest.raises(EncryptedKeyError, match="password is wrong") as caught:
        make_provider(private_key=key_forms(key).pkcs8_encrypted, private_key_password="nope")
    assert isinstance(caught.value, (CredentialHelperError, ValueError))
    assert "nope" not in str(caught.value)


def test_read_pem_then_load_round_trip(tmp_path: Path, forms: KeyForms) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(forms.legacy_encrypted)
    assert _public(read_pem(str(path), what="private key"), PASSWORD) == _public(forms.plain, None)
