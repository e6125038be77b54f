"""RFC 7512 PKCS#11 URIs: what is accepted, what is refused and why, and that PINs never leak."""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from awsiot_credentialhelper._pkcs11 import Pkcs11Config, is_pkcs11_uri, parse_pkcs11_uri
from awsiot_credentialhelper.exceptions import Pkcs11Error

LIB = "/usr/lib/softhsm/libsofthsm2.so"
Q = f"?module-path={LIB}"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param(
            f"pkcs11:token=hsm_thing;object=thing_key;type=private{Q}&pin-value=1234",
            Pkcs11Config(LIB, "1234", token_label="hsm_thing", private_key_label="thing_key"),
            id="token-object-type",
        ),
        pytest.param(
            f"pkcs11:slot-id=1197343514{Q}",
            Pkcs11Config(LIB, slot_id=1197343514),
            id="slot-id-no-pin",
        ),
        pytest.param(
            f"pkcs11:token=My%20Token;object=k%C3%A9y%3B1{Q}",
            Pkcs11Config(LIB, token_label="My Token", private_key_label="kéy;1"),
            id="percent-decoding-utf8",
        ),
        pytest.param(
            f"PKCS11:object=a&b{Q}",
            Pkcs11Config(LIB, private_key_label="a&b"),
            id="scheme-case-and-ampersand-in-path",
        ),
        pytest.param(
            "pkcs11:object=k?module-path=/opt/my%20hsm/lib.so",
            Pkcs11Config("/opt/my hsm/lib.so", private_key_label="k"),
            id="encoded-module-path",
        ),
        pytest.param(
            f"pkcs11:{Q}&pin-value=a%26b%3Dc",
            Pkcs11Config(LIB, "a&b=c"),
            id="empty-path-encoded-pin",
        ),
        pytest.param(f"pkcs11:{Q}", Pkcs11Config(LIB), id="match-anything"),
        pytest.param(
            f"pkcs11:slot-id=0;token=t{Q}",
            Pkcs11Config(LIB, slot_id=0, token_label="t"),
            id="slot-and-token",
        ),
    ],
)
def test_parses(uri: str, expected: Pkcs11Config) -> None:
    assert parse_pkcs11_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("pkcs12:token=t", "must start with 'pkcs11:'", id="wrong-scheme"),
        pytest.param("pkcs11:token=t", "no module-path", id="no-module-path"),
        pytest.param(f"pkcs11:token=t;token=u{Q}", "repeats the attribute 'token'", id="dup-path"),
        pytest.param(
            f"pkcs11:token=t{Q}&module-path=/x", "repeats the attribute 'module-path'", id="dup-q"
        ),
        pytest.param(f"pkcs11:type=cert{Q}", "type='cert'", id="type-cert"),
        pytest.param(f"pkcs11:id=%01{Q}", "'id' is not supported", id="id"),
        pytest.param(f"pkcs11:serial=12{Q}", "'serial' is not supported", id="serial"),
        pytest.param(f"pkcs11:model=m{Q}", "'model' is not supported", id="model"),
        pytest.param(
            f"pkcs11:library-version=1{Q}", "'library-version' is not supported", id="lib-version"
        ),
        pytest.param(
            "pkcs11:token=t?module-name=softhsm2",
            "'module-name' is not supported",
            id="module-name",
        ),
        pytest.param(f"pkcs11:x-vendor=1{Q}", "path attribute 'x-vendor' is unknown", id="vendor"),
        pytest.param(
            f"pkcs11:token=t{Q}&foo=1", "query attribute 'foo' is unknown", id="unknown-q"
        ),
        pytest.param(
            f"pkcs11:module-path={LIB}", "path attribute 'module-path' is unknown", id="q-in-path"
        ),
        pytest.param(
            "pkcs11:token=t?object=k&module-path=/x", "query attribute 'object'", id="p-in-query"
        ),
        pytest.param(f"pkcs11:token=a b{Q}", "must be percent-encoded", id="space"),
        pytest.param(f"pkcs11:token=a%2{Q}", "must be percent-encoded", id="short-escape"),
        pytest.param(f"pkcs11:token=a%zz{Q}", "must be percent-encoded", id="bad-escape"),
        pytest.param(f"pkcs11:token=a/b{Q}", "must be percent-encoded", id="slash-in-path"),
        pytest.param(f"pkcs11:token=%ff{Q}", "not UTF-8", id="not-utf8"),
        pytest.param(f"pkcs11:token=t{Q}#frag", "no fragment", id="fragment"),
        pytest.param(f"pkcs11:token{Q}", "not a lowercase name=value", id="no-equals"),
        pytest.param(f"pkcs11:token=t;{Q}", "not a lowercase name=value", id="trailing-semicolon"),
        pytest.param(f"pkcs11:TOKEN=t{Q}", "not a lowercase name=value", id="uppercase-name"),
        pytest.param(f"pkcs11:token={Q}", "empty token=", id="empty-token"),
        pytest.param(f"pkcs11:object={Q}", "empty object=", id="empty-object"),
        pytest.param(f"pkcs11:slot-id=x1{Q}", "slot-id='x1'", id="slot-not-number"),
        pytest.param(f"pkcs11:slot-id=-1{Q}", "decimal number", id="slot-negative"),
        pytest.param(f"pkcs11:slot-id={2**64}{Q}", "decimal number", id="slot-too-big"),
        pytest.param(f"pkcs11:slot-id=%D9%A1{Q}", "decimal number", id="slot-arabic-digit"),
        pytest.param(f"pkcs11:slot-id={'9' * 5000}{Q}", "decimal number", id="slot-5000-digits"),
        pytest.param(
            f"pkcs11:{Q}&pin-value=1&pin-source=file:/p", "both pin-source and pin-value", id="2pin"
        ),
        pytest.param(f"pkcs11:{Q}&pin-source=|cat", "must be a file: URI", id="pin-command"),
        pytest.param(
            f"pkcs11:{Q}&pin-source=file://host/p", "must name a local file", id="pin-remote"
        ),
        pytest.param(f"pkcs11:{Q}&pin-source=file:p", "absolute path", id="pin-relative"),
        pytest.param(f"pkcs11:{Q}&pin-source=file://", "must name a local file", id="pin-no-path"),
    ],
)
def test_refuses(uri: str, message: str) -> None:
    with pytest.raises(Pkcs11Error) as caught:
        parse_pkcs11_uri(uri)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_from_uri_is_the_public_spelling() -> None:
    uri = f"pkcs11:token=t;object=k{Q}&pin-value=1234"
    assert Pkcs11Config.from_uri(uri) == parse_pkcs11_uri(uri)
    assert Pkcs11Config.from_uri("pkcs11:token=t", default_module_path=LIB).pkcs11_lib == LIB


def test_default_module_path_fills_a_missing_one_only() -> None:
    assert parse_pkcs11_uri("pkcs11:token=t", default_module_path="/d.so").pkcs11_lib == "/d.so"
    assert parse_pkcs11_uri(f"pkcs11:token=t{Q}", default_module_path="/d.so").pkcs11_lib == LIB


def _pin_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "pin"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("content", "pin"),
    [
        pytest.param(b"1234", "1234", id="no-newline"),
        pytest.param(b"1234\n", "1234", id="one-newline"),
        pytest.param(b"1234\r\n", "1234", id="crlf"),
        pytest.param(b"1234\n\n", "1234\n", id="only-one-newline-stripped"),
        pytest.param(b" 12 34 ", " 12 34 ", id="spaces-kept"),
    ],
)
@pytest.mark.parametrize("form", ["file:{}", "file://{}", "file://localhost{}", "{}"])
def test_pin_source_reads_the_file(tmp_path: Path, content: bytes, pin: str, form: str) -> None:
    path = _pin_file(tmp_path, content)
    source = quote(form.format(path), safe="/:")
    config = parse_pkcs11_uri(f"pkcs11:token=t{Q}&pin-source={source}")
    assert config.user_pin == pin
    assert pin not in repr(config)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"\n", "is empty", id="only-newline"),
        pytest.param(b"\xff\xfe1234", "is not UTF-8", id="not-utf8"),
    ],
)
def test_pin_source_errors(tmp_path: Path, setup: Optional[bytes], message: str) -> None:
    path = tmp_path / "pin"
    if setup is not None:
        _pin_file(tmp_path, setup)
    with pytest.raises(Pkcs11Error) as caught:
        parse_pkcs11_uri(f"pkcs11:token=t{Q}&pin-source=file:{path}")
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_pin_source_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(Pkcs11Error, match="is a directory"):
        parse_pkcs11_uri(f"pkcs11:token=t{Q}&pin-source=file:{tmp_path}")


def test_pin_file_readable_by_others_warns_without_the_pin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _pin_file(tmp_path, b"s3cret-pin\n", mode=0o644)
    assert parse_pkcs11_uri(f"pkcs11:{Q}&pin-source=file:{path}").user_pin == "s3cret-pin"
    assert "chmod 600" in caplog.text
    assert "s3cret-pin" not in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("pkcs11:token=t", id="lower"),
        pytest.param("PKCS11:", id="upper"),
        pytest.param("Pkcs11:object=k", id="mixed"),
    ],
)
def test_is_pkcs11_uri(text: str) -> None:
    assert is_pkcs11_uri(text)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"pkcs11:token=t", id="bytes-are-pem"),
        pytest.param("/etc/key.pem", id="path"),
        pytest.param("pkcs11", id="no-colon"),
        pytest.param(Path("pkcs11:token=t"), id="pathlike"),
        pytest.param(None, id="none"),
    ],
)
def test_is_not_pkcs11_uri(value: object) -> None:
    assert not is_pkcs11_uri(value)


# --- properties -------------------------------------------------------------------------------

labels = st.text(min_size=1, max_size=40)
secret_pins = st.text(alphabet="0123456789abcdef", min_size=10, max_size=20)


@given(token=labels, key=labels, pin=st.text(min_size=1, max_size=20))
def test_round_trip_of_percent_encoded_values(token: str, key: str, pin: str) -> None:
    uri = (
        f"pkcs11:token={quote(token, safe='')};object={quote(key, safe='')};type=private"
        f"?module-path={quote(LIB, safe='/')}&pin-value={quote(pin, safe='')}"
    )
    config = parse_pkcs11_uri(uri)
    assert (config.token_label, config.private_key_label, config.user_pin) == (token, key, pin)


def _error_message(uri: str) -> str:
    """The Pkcs11Error message for ``uri``, or "" when it parses; anything else propagates."""
    try:
        parse_pkcs11_uri(uri)
    except Pkcs11Error as exc:
        return str(exc)
    return ""


@given(rest=st.text(max_size=200))
def test_garbage_raises_only_pkcs11_error(rest: str) -> None:
    _error_message("pkcs11:" + rest)


@given(path=st.text(max_size=100), query=st.text(max_size=100))
def test_garbage_around_a_module_path_raises_only_pkcs11_error(path: str, query: str) -> None:
    _error_message(f"pkcs11:{path}?module-path=/m.so&{query}")


@given(garbage=st.text(max_size=80), pin=secret_pins)
def test_pin_value_never_appears_in_an_error(garbage: str, pin: str) -> None:
    message = _error_message(f"pkcs11:{garbage}?pin-value={pin}&{garbage}")
    assert pin not in message or pin in garbage


@given(pin=secret_pins)
def test_pin_is_not_in_the_repr(pin: str) -> None:
    config = parse_pkcs11_uri(f"pkcs11:token=t{Q}&pin-value={pin}")
    assert config.user_pin == pin
    assert pin not in repr(config)
