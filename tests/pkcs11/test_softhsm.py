"""Real SoftHSM2 tokens through awscrt: selecting the key, and what each mistake looks like."""

from __future__ import annotations

import gc
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from awscrt import io as crt_io

from awsiot_credentialhelper._config import check_key_arguments
from awsiot_credentialhelper._keys import Pkcs11Config, Pkcs11Key, key_source
from awsiot_credentialhelper._transport import (
    create_tls_context,
    crt_error_name,
    load_pkcs11_module,
    tls_options,
)
from awsiot_credentialhelper.exceptions import Pkcs11Error

from .conftest import PIN, PIN_TOKEN, SINGLE_TOKEN, THING_TOKEN, Tokens, issue
from .cryptoki import (
    CKF_USER_PIN_LOCKED,
    CKR_OK,
    CKR_USER_ALREADY_LOGGED_IN,
    Cryptoki,
)

pytestmark = pytest.mark.pkcs11


def _context(tokens: Tokens, ca: trustme.CA, **fields: Any) -> crt_io.ClientTlsContext:
    """Open the token the way the provider does: options from the key, then the context."""
    key = Pkcs11Key(tokens.hsm.config(**fields))
    options = tls_options(key, issue(ca, tokens.ec_key))
    options.min_tls_ver = crt_io.TlsVersion.TLSv1_2
    return create_tls_context(key, options)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"token_label": THING_TOKEN, "private_key_label": "ec_key"}, id="token-ec"),
        pytest.param({"token_label": THING_TOKEN, "private_key_label": "rsa_key"}, id="token-rsa"),
        pytest.param({"token_label": SINGLE_TOKEN}, id="token-only-key-no-label"),
    ],
)
def test_selects_by_labels(tokens: Tokens, ca: trustme.CA, fields: dict[str, Any]) -> None:
    assert isinstance(_context(tokens, ca, user_pin=PIN, **fields), crt_io.ClientTlsContext)


@pytest.mark.parametrize("with_label", [False, True], ids=["slot", "slot-and-token"])
def test_selects_by_slot_id(tokens: Tokens, ca: trustme.CA, with_label: bool) -> None:
    slot = tokens.hsm.slots[THING_TOKEN]
    label = THING_TOKEN if with_label else None
    context = _context(
        tokens, ca, user_pin=PIN, slot_id=slot, token_label=label, private_key_label="rsa_key"
    )
    assert isinstance(context, crt_io.ClientTlsContext)


WRONG_PIN = "13579111"
#: awscrt's own native extension: a shared library with no PKCS#11 entry point.
AWSCRT_EXTENSION = Path(str(getattr(importlib.util.find_spec("_awscrt"), "origin", "")))


@pytest.mark.parametrize(
    ("fields", "crt_error", "message"),
    [
        pytest.param(
            {"token_label": PIN_TOKEN, "user_pin": WRONG_PIN},
            "AWS_ERROR_PKCS11_CKR_PIN_INCORRECT",
            "token 'pin_token' refused the PIN: fix user_pin",
            id="wrong-pin",
        ),
        pytest.param(
            {"token_label": PIN_TOKEN, "user_pin": None},
            "AWS_ERROR_PKCS11_CKR_ARGUMENTS_BAD",
            "needs a PIN to log in: set user_pin",
            id="no-pin",
        ),
        pytest.param(
            {"token_label": "no_such_token"},
            "AWS_ERROR_PKCS11_TOKEN_NOT_FOUND",
            "No PKCS#11 token is labelled 'no_such_token' (or several are): fix token_label",
            id="no-such-token",
        ),
        pytest.param(
            {"slot_id": 4242},
            "AWS_ERROR_PKCS11_TOKEN_NOT_FOUND",
            "No PKCS#11 token is in slot 4242: fix slot_id",
            id="no-such-slot",
        ),
        pytest.param(
            {"slot_id": 4242, "token_label": THING_TOKEN},
            "AWS_ERROR_PKCS11_TOKEN_NOT_FOUND",
            "No PKCS#11 token labelled 'thing_token' is in slot 4242",
            id="token-not-in-slot",
        ),
        pytest.param(
            {},
            "AWS_ERROR_PKCS11_TOKEN_NOT_FOUND",
            "has no token, or several: set token_label",
            id="several-tokens-none-chosen",
        ),
        pytest.param(
            {"token_label": THING_TOKEN, "private_key_label": "no_such_key"},
            "AWS_ERROR_PKCS11_KEY_NOT_FOUND",
            "token 'thing_token' has no private key labelled 'no_such_key'",
            id="no-such-key",
        ),
        pytest.param(
            {"token_label": THING_TOKEN},
            "AWS_ERROR_PKCS11_KEY_NOT_FOUND",
            "holds no private key, or several: set private_key_label",
            id="several-keys-no-label",
        ),
    ],
)
def test_awscrt_reports_each_mistake_at_context_creation(
    tokens: Tokens, ca: trustme.CA, fields: dict[str, Any], crt_error: str, message: str
) -> None:
    fields.setdefault("user_pin", PIN)
    with pytest.raises(Pkcs11Error) as caught:
        _context(tokens, ca, **fields)
    error = caught.value
    assert message in str(error)
    assert crt_error in str(error)
    # What awscrt itself raised: a RuntimeError carrying the name, not an AwsCrtError.
    assert type(error.__cause__) is RuntimeError
    assert crt_error_name(error.__cause__) == crt_error
    for secret in (PIN, WRONG_PIN):
        assert secret not in str(error)
        assert secret not in repr(error)


def test_describe_and_repr_name_the_key_never_the_pin(tokens: Tokens) -> None:
    key = Pkcs11Key(
        tokens.hsm.config(user_pin=PIN, slot_id=7, token_label="tok", private_key_label="k")
    )
    expected = f"PKCS#11 module {tokens.hsm.module}, token 'tok', slot 7, key 'k'"
    assert key.describe() == expected
    assert repr(key) == f"Pkcs11Key({expected})"
    assert PIN not in repr(key)
    assert key.explain_crt_error("AWS_IO_SOCKET_TIMEOUT") is None


def test_options_are_built_without_touching_the_token(tokens: Tokens, ca: trustme.CA) -> None:
    key = Pkcs11Key(tokens.hsm.config(token_label="no_such_token", user_pin=PIN))
    assert isinstance(tls_options(key, issue(ca, tokens.ec_key)), crt_io.TlsContextOptions)


def test_library_path_missing(tmp_path: Path) -> None:
    with pytest.raises(Pkcs11Error, match=r"does not exist: set pkcs11_lib"):
        Pkcs11Key(tokens_config(tmp_path / "nope.so"))


@pytest.mark.parametrize(
    ("make", "crt_error", "message"),
    [
        pytest.param(
            lambda tmp: _write(tmp / "module.so", b"\x7fELF not really"),
            "AWS_IO_SHARED_LIBRARY_LOAD_FAILURE",
            "not a shared library for this machine",
            id="not-a-shared-library",
        ),
        pytest.param(
            lambda _tmp: AWSCRT_EXTENSION,
            "AWS_IO_SHARED_LIBRARY_FIND_SYMBOL_FAILURE",
            "shared library without C_GetFunctionList",
            id="shared-library-not-pkcs11",
        ),
    ],
)
def test_a_file_that_is_not_a_pkcs11_module(
    tmp_path: Path, make: Any, crt_error: str, message: str
) -> None:
    with pytest.raises(Pkcs11Error) as caught:
        load_pkcs11_module(str(make(tmp_path)))
    assert message in str(caught.value)
    assert crt_error in str(caught.value)


def tokens_config(path: Path) -> Pkcs11Config:
    return Pkcs11Config(pkcs11_lib=str(path), user_pin=PIN)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_module_that_fails_to_initialise(tokens: Tokens, tmp_path: Path) -> None:
    """SoftHSM2 with a missing token directory fails C_Initialize (in a fresh process)."""
    conf = tmp_path / "broken.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'missing'}\n")
    script = (
        "from awsiot_credentialhelper._transport import load_pkcs11_module\n"
        "from awsiot_credentialhelper.exceptions import Pkcs11Error\n"
        "try:\n"
        f"    load_pkcs11_module({tokens.hsm.module!r})\n"
        "except Pkcs11Error as exc:\n"
        "    print(exc)\n"
    )
    env = {**tokens.hsm.environ(), "SOFTHSM2_CONF": str(conf)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert "failed to initialise (AWS_ERROR_PKCS11_CKR_GENERAL_ERROR)" in done.stdout
    assert "SOFTHSM2_CONF" in done.stdout


def test_wrong_pins_do_not_lock_softhsm2(tokens: Tokens, ca: trustme.CA) -> None:
    """SoftHSM2 has no lockout (it only raises CKF_USER_PIN_COUNT_LOW); hardware tokens do."""
    cryptoki = Cryptoki(tokens.hsm.module)
    slot = tokens.hsm.slots[PIN_TOKEN]
    for _ in range(10):
        with pytest.raises(Pkcs11Error, match="refused the PIN"):
            _context(tokens, ca, token_label=PIN_TOKEN, user_pin=WRONG_PIN)
    assert not cryptoki.token_flags(slot) & CKF_USER_PIN_LOCKED
    context = _context(tokens, ca, token_label=PIN_TOKEN, user_pin=PIN)
    assert isinstance(context, crt_io.ClientTlsContext)


def test_session_and_login_last_exactly_as_long_as_the_context(
    tokens: Tokens, ca: trustme.CA
) -> None:
    cryptoki = Cryptoki(tokens.hsm.module)
    slot = tokens.hsm.slots[SINGLE_TOKEN]
    assert cryptoki.login_result(slot, PIN) == CKR_OK
    context = _context(tokens, ca, token_label=SINGLE_TOKEN, user_pin=PIN)
    assert cryptoki.login_result(slot, PIN) == CKR_USER_ALREADY_LOGGED_IN
    del context
    gc.collect()
    assert cryptoki.login_result(slot, PIN) == CKR_OK


def test_a_wrong_pin_goes_unnoticed_while_the_token_is_logged_in(
    tokens: Tokens, ca: trustme.CA
) -> None:
    """PKCS#11 login belongs to the token and the process, not to one session: while one
    context holds it, awscrt's C_Login answers CKR_USER_ALREADY_LOGGED_IN for any PIN."""
    first = _context(tokens, ca, token_label=SINGLE_TOKEN, user_pin=PIN)
    second = _context(tokens, ca, token_label=SINGLE_TOKEN, user_pin=WRONG_PIN)
    assert isinstance(second, crt_io.ClientTlsContext)
    del first, second
    gc.collect()
    with pytest.raises(Pkcs11Error, match="refused the PIN"):
        _context(tokens, ca, token_label=SINGLE_TOKEN, user_pin=WRONG_PIN)


def test_a_failed_open_leaves_no_session(tokens: Tokens, ca: trustme.CA) -> None:
    cryptoki = Cryptoki(tokens.hsm.module)
    with pytest.raises(Pkcs11Error, match="no private key labelled"):
        _context(tokens, ca, token_label=SINGLE_TOKEN, user_pin=PIN, private_key_label="x")
    gc.collect()
    assert cryptoki.login_result(tokens.hsm.slots[SINGLE_TOKEN], PIN) == CKR_OK


@pytest.mark.parametrize(
    ("query", "key_label"),
    [
        pytest.param("pin-value=" + PIN, "ec_key", id="pin-value"),
        pytest.param("pin-source=file:{pin_file}", "rsa_key", id="pin-source"),
    ],
)
def test_a_pkcs11_uri_as_the_private_key(
    tokens: Tokens, ca: trustme.CA, tmp_path: Path, query: str, key_label: str
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    uri = (
        f"pkcs11:token={THING_TOKEN};object={key_label};type=private"
        f"?module-path={tokens.hsm.module}&{query.format(pin_file=pin_file)}"
    )
    key_pem = tokens.ec_key if key_label == "ec_key" else tokens.rsa_key
    certificate_pem = issue(ca, key_pem)
    key = key_source(check_key_arguments(uri, None), certificate_pem=certificate_pem)
    assert isinstance(key, Pkcs11Key)
    assert PIN not in repr(key)
    context = create_tls_context(key, tls_options(key, certificate_pem))
    assert isinstance(context, crt_io.ClientTlsContext)
