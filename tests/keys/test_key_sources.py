"""Choosing the key source, reading awscrt's error names, and the PKCS#11 error table.

Nothing here loads SoftHSM2: it keeps the configuration of its first load for the whole process,
and tests/pkcs11 must be the one to load it.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest
import trustme
from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError

from awsiot_credentialhelper._config import check_key_arguments
from awsiot_credentialhelper._keys import PemKey, key_source
from awsiot_credentialhelper._pkcs11 import Pkcs11Config, map_pkcs11_error
from awsiot_credentialhelper._transport import create_tls_context, crt_error_name, tls_options
from awsiot_credentialhelper.exceptions import (
    ConflictingOptionsError,
    KeyMismatchError,
    Pkcs11Error,
)

from ..servers import DeviceFiles

SECRET_PIN = "9731-secret-pin"
MISSING_MODULE = "/nonexistent/libpkcs11.so"


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        pytest.param(AwsCrtError(1049, "AWS_IO_DNS_QUERY_FAILED", "m"), "AWS_IO_DNS_QUERY_FAILED"),
        pytest.param(
            RuntimeError(
                "1117 (AWS_ERROR_PKCS11_CKR_PIN_INCORRECT): A PKCS#11 (Cryptoki) library "
                "function failed with return value CKR_PIN_INCORRECT"
            ),
            "AWS_ERROR_PKCS11_CKR_PIN_INCORRECT",
            id="native-runtime-error",
        ),
        pytest.param(RuntimeError("1033 (AWS_IO_TLS_CTX_ERROR)"), "AWS_IO_TLS_CTX_ERROR"),
        pytest.param(RuntimeError("This transport is closed."), None, id="not-awscrt"),
        pytest.param(ValueError("1117 (AWS_ERROR_X): y"), None, id="not-a-runtime-error"),
        pytest.param(RuntimeError("x 1117 (AWS_ERROR_X): y"), None, id="prefix"),
    ],
)
def test_crt_error_name(exc: BaseException, name: Optional[str]) -> None:
    assert crt_error_name(exc) == name


def _config(**fields: Any) -> Pkcs11Config:
    return Pkcs11Config(pkcs11_lib=MISSING_MODULE, user_pin=SECRET_PIN, **fields)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        pytest.param("CKR_PIN_INCORRECT", _config(token_label="t"), "token 't' refused the PIN"),
        pytest.param("CKR_PIN_LOCKED", _config(slot_id=3), "slot 3 is locked after too many"),
        pytest.param("CKR_PIN_EXPIRED", _config(), "user PIN has expired"),
        pytest.param("CKR_PIN_LEN_RANGE", _config(), "too long or too short"),
        pytest.param("CKR_PIN_INVALID", _config(), "characters the token does not accept"),
        pytest.param("CKR_USER_PIN_NOT_INITIALIZED", _config(), "has no user PIN yet"),
        pytest.param("CKR_ARGUMENTS_BAD", Pkcs11Config(MISSING_MODULE), "needs a PIN"),
        pytest.param("CKR_ARGUMENTS_BAD", _config(), "failed; check the module's own logs"),
        pytest.param("CKR_SLOT_ID_INVALID", _config(slot_id=7), "No PKCS#11 token is in slot 7"),
        pytest.param("CKR_TOKEN_NOT_PRESENT", _config(), "has no token, or several"),
        pytest.param("KEY_TYPE_UNSUPPORTED", _config(), "use an RSA or EC key"),
        pytest.param("VERSION_UNSUPPORTED", _config(), "Cryptoki version"),
        pytest.param("CKR_DEVICE_REMOVED", _config(), "was removed"),
        pytest.param("CKR_FUNCTION_FAILED", _config(), "failed; check the module's own logs"),
    ],
)
def test_pkcs11_error_table(name: str, config: Pkcs11Config, message: str) -> None:
    error = map_pkcs11_error(f"AWS_ERROR_PKCS11_{name}", config)
    assert isinstance(error, Pkcs11Error)
    assert message in str(error)
    assert f"AWS_ERROR_PKCS11_{name}" in str(error)
    assert SECRET_PIN not in str(error)


@pytest.mark.parametrize("name", ["AWS_IO_TLS_CTX_ERROR", "AWS_IO_SOCKET_TIMEOUT"])
def test_other_errors_are_not_pkcs11s(name: str) -> None:
    assert map_pkcs11_error(name, _config()) is None


def test_a_failure_that_is_not_the_keys_becomes_an_awscrt_error(device: DeviceFiles) -> None:
    key = PemKey(device.private_key_pem, device.certificate_pem, origin="test key")
    options = tls_options(key, device.certificate_pem)
    options.override_default_trust_store(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(AwsCrtError) as caught:
        create_tls_context(key, options)
    assert caught.value.name == "AWS_IO_TLS_CTX_ERROR"
    assert caught.value.code == 1033
    assert type(caught.value.__cause__) is RuntimeError


def test_a_good_pem_key_opens(device: DeviceFiles) -> None:
    key = PemKey(device.private_key_pem, device.certificate_pem, origin="test key")
    context = create_tls_context(key, tls_options(key, device.certificate_pem))
    assert isinstance(context, crt_io.ClientTlsContext)


URI = f"pkcs11:token=t;object=k?module-path={MISSING_MODULE}&pin-value={SECRET_PIN}"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            {"private_key": b"pem", "pkcs11": _config()}, "Both private_key and pkcs11", id="both"
        ),
        pytest.param({"private_key": URI, "pkcs11": _config()}, "Both", id="uri-and-pkcs11"),
        pytest.param({"private_key": None, "pkcs11": None}, "Neither", id="neither"),
        pytest.param(
            {"private_key": None, "pkcs11": _config(), "password": b"pw"},
            "private_key_password applies to a PEM private key",
            id="password-for-token",
        ),
        pytest.param(
            {"private_key": URI, "pkcs11": None, "password": b"pw"},
            "private_key_password applies to a PEM private key",
            id="password-for-uri",
        ),
    ],
)
def test_key_argument_conflicts(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConflictingOptionsError, match=message) as caught:
        check_key_arguments(**arguments)
    assert SECRET_PIN not in str(caught.value)


def test_key_source_reads_a_uri_as_a_token(device: DeviceFiles) -> None:
    """The URI reaches Pkcs11Key: it is the module path that is refused, not a PEM parse."""
    key = check_key_arguments(URI, None)
    assert key == Pkcs11Config(MISSING_MODULE, SECRET_PIN, None, "t", "k")
    with pytest.raises(Pkcs11Error, match=r"'/nonexistent/libpkcs11.so' does not exist") as caught:
        key_source(key, certificate_pem=device.certificate_pem)
    assert SECRET_PIN not in str(caught.value)


@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
def test_key_source_pem(device: DeviceFiles, as_path: bool) -> None:
    source: Any = device.private_key_file if as_path else device.private_key_pem
    key = key_source(check_key_arguments(source, None), certificate_pem=device.certificate_pem)
    assert isinstance(key, PemKey)
    expected = (
        f"private key file {device.private_key_file!r}" if as_path else "private key given as bytes"
    )
    assert key.describe() == expected
    assert key.explain_crt_error("AWS_IO_TLS_CTX_ERROR") is None


def test_key_source_wrong_key_for_the_certificate(device: DeviceFiles, ca: trustme.CA) -> None:
    other = ca.issue_cert("other.example")
    key = key_source(other.private_key_pem.bytes(), certificate_pem=device.certificate_pem)
    with pytest.raises(KeyMismatchError, match="does not match the certificate"):
        create_tls_context(key, tls_options(key, device.certificate_pem))
