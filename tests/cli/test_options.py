"""Shared options: precedence, profiles, conflicts, and the argparse-free fast parse."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awsiot_credentialhelper.cli import build_parser
from awsiot_credentialhelper.cli._credential_process import _SWITCHES
from awsiot_credentialhelper.cli._options import (
    OPTIONS,
    Settings,
    fast_parse,
    load_profile,
    pkcs11_config,
    resolve,
)
from awsiot_credentialhelper.exceptions import ConfigurationError, ConflictingOptionsError

PARSER = build_parser("credential-process")


def _parse(*arguments: str) -> argparse.Namespace:
    return PARSER.parse_args(["credential-process", *arguments])


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config"
    path.write_text(text)
    return {"AWS_CONFIG_FILE": str(path)}


def test_flag_beats_variable_beats_profile(tmp_path: Path) -> None:
    environ = _config(
        tmp_path,
        "[profile dev]\niot_role_alias = p\niot_thing_name = p\niot_credential_endpoint = p\n",
    )
    environ.update(AWSIOT_CREDENTIAL_ROLE_ALIAS="v", AWSIOT_CREDENTIAL_THING_NAME="v")
    result = resolve(_parse("--profile", "dev", "--role-alias", "f"), environ)
    assert (result.role_alias, result.thing_name, result.endpoint) == ("f", "v", "p")
    assert result.sources == {
        "role_alias": "--role-alias",
        "thing_name": "$AWSIOT_CREDENTIAL_THING_NAME",
        "endpoint": "profile 'dev' key iot_credential_endpoint",
    }


def test_profile_from_variable_and_default_section(tmp_path: Path) -> None:
    environ = _config(tmp_path, "[default]\niot_role_alias = d\n[profile x]\niot_role_alias = x\n")
    assert resolve(_parse(), {**environ, "AWSIOT_CREDENTIAL_PROFILE": "default"}).role_alias == "d"
    assert resolve(_parse(), {**environ, "AWSIOT_CREDENTIAL_PROFILE": "x"}).role_alias == "x"
    assert resolve(_parse(), environ).role_alias is None  # no profile named: not read


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "does not exist", id="missing-file"),
        pytest.param("[profile other]\n", r"no \[profile dev\] section", id="missing-profile"),
        pytest.param("key = outside\n[profile dev]\n", "malformed at line 1", id="malformed"),
    ],
)
def test_profile_problems_are_configuration_errors(
    tmp_path: Path, text: str | None, message: str
) -> None:
    environ = {"AWS_CONFIG_FILE": str(tmp_path / "config")}
    if text is not None:
        environ = _config(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message):
        load_profile("dev", environ)


def test_malformed_config_message_does_not_quote_the_file(tmp_path: Path) -> None:
    environ = _config(tmp_path, "aws_secret_access_key = SECRET\n")
    with pytest.raises(ConfigurationError) as caught:
        load_profile("dev", environ)
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AWSIOT_CREDENTIAL_TIMEOUT", "soon", "must be a number"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "0", "above 0"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "1e10", "at most 86400"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "inf", "at most 86400"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "nan", "got nan"),
        ("AWSIOT_CREDENTIAL_PKCS11_SLOT_ID", "-1", "must be positive"),
        ("AWSIOT_CREDENTIAL_NO_VERIFY_PEER", "perhaps", "true or false"),
    ],
)
def test_values_are_validated_naming_their_source(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        resolve(_parse(), {variable: value})
    assert variable in str(caught.value)


def test_a_timeout_flag_out_of_range_names_the_flag() -> None:
    """--timeout 1e10 crashed every fetch with OverflowError (awscrt takes 32-bit milliseconds)."""
    with pytest.raises(ConfigurationError, match=r"--timeout must be .* got 10000000000\.0"):
        resolve(_parse("--timeout", "1e10"), {})
    assert resolve(_parse("--timeout", "86400"), {}).timeout == 86400.0


def test_bool_variables() -> None:
    assert resolve(_parse(), {"AWSIOT_CREDENTIAL_NO_VERIFY_PEER": "yes"}).no_verify_peer is True
    assert resolve(_parse(), {"AWSIOT_CREDENTIAL_NO_VERIFY_PEER": "0"}).no_verify_peer is False
    assert resolve(_parse("--no-verify-peer"), {}).no_verify_peer is True


def test_private_key_pem_is_refused_on_the_command_line_but_not_in_a_variable() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigurationError, match="visible to every user"):
        resolve(_parse("--private-key", pem), {})
    result = resolve(_parse(), {"AWSIOT_CREDENTIAL_PRIVATE_KEY": pem})
    assert result.private_key == pem
    assert "MIIE" not in repr(result)
    assert "<PEM text>" in repr(result)


def test_a_pin_in_a_pkcs11_uri_stays_off_the_command_line_and_out_of_reprs() -> None:
    uri = "pkcs11:token=t;object=k?module-path=/lib/p11.so&pin-value=135790"
    with pytest.raises(ConfigurationError, match="pin-value") as caught:
        resolve(_parse("--private-key", uri), {})
    assert "135790" not in str(caught.value)
    result = resolve(_parse(), {"AWSIOT_CREDENTIAL_PRIVATE_KEY": uri})
    assert result.private_key == uri
    assert "135790" not in repr(result)
    assert "pkcs11:token=t;object=k?<query hidden" in repr(result)


def test_settings_are_immutable_and_repr_hides_proxy_passwords() -> None:
    result = Settings(proxy="http://user:hunter2@proxy:3128", role_alias="a")
    assert "hunter2" not in repr(result)
    with pytest.raises(AttributeError):
        result.role_alias = "b"


def test_pkcs11_conflicts_name_both_options(tmp_path: Path) -> None:
    both = Settings(
        private_key="/k.pem",
        pkcs11_lib="/lib.so",
        sources={"private_key": "--private-key", "pkcs11_lib": "--pkcs11-lib"},
    )
    with pytest.raises(ConflictingOptionsError, match=r"--private-key.*--pkcs11-lib"):
        pkcs11_config(both, {})
    with pytest.raises(ConflictingOptionsError, match="--slot-id given without --pkcs11-lib"):
        pkcs11_config(Settings(slot_id=1), {})
    assert pkcs11_config(Settings(private_key="/k.pem"), {}) is None


def test_pkcs11_options_and_uri_become_one_config(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    pin_file.chmod(0o600)
    from_options = pkcs11_config(
        Settings(pkcs11_lib="/lib.so", token_label="t", key_label="k", pin_file=str(pin_file)),
        {},
    )
    assert from_options is not None
    assert (from_options.token_label, from_options.private_key_label) == ("t", "k")
    assert from_options.user_pin == "1234"
    from_uri = pkcs11_config(
        Settings(private_key="pkcs11:token=t;object=k", pkcs11_lib="/lib.so"),
        {"AWSIOT_CREDENTIAL_PKCS11_PIN": "9999"},
    )
    assert from_uri is not None
    assert (from_uri.pkcs11_lib, from_uri.token_label, from_uri.user_pin) == (
        "/lib.so",
        "t",
        "9999",
    )
    assert "9999" not in repr(from_uri)
    with pytest.raises(ConflictingOptionsError, match="keep one"):
        pkcs11_config(
            Settings(pkcs11_lib="/lib.so", pin_file=str(pin_file)),
            {"AWSIOT_CREDENTIAL_PKCS11_PIN": "1"},
        )


# --- the fast parse agrees with argparse ----------------------------------------------------

_WORDS = st.sampled_from(
    [
        *(option.flag for option in OPTIONS),
        "--profile",
        "--no-cache",
        "-v",
        "-vv",
        "--verbose",
        "--end",
        "-h",
        "--",
        "value",
        "-1",
        "a b",
        "",
        "--endpoint=x",
        "--no-cache=1",
        "--timeout=2",
        "--slot-id=3",
        "--profile=dev",
        "=",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=8))
def test_fast_parse_never_disagrees_with_argparse(arguments: list[str]) -> None:
    fast = fast_parse(arguments, _SWITCHES)
    if fast is None:
        return  # argparse decides
    expected = vars(_parse(*arguments))
    # argparse converts nothing (types are checked by resolve()), so values match exactly.
    expected.pop("run")
    expected.pop("command")
    assert fast == expected


def test_fast_parse_declines_what_it_does_not_know() -> None:
    for arguments in (["--help"], ["--end", "x"], ["--endpoint"], ["--endpoint", "-x"], ["x"]):
        assert fast_parse(arguments, _SWITCHES) is None
    parsed = fast_parse(["--endpoint", "e", "--no-cache", "-vv", "--profile=p"], _SWITCHES)
    assert parsed is not None
    assert (parsed["endpoint"], parsed["no_cache"], parsed["verbose"]) == ("e", True, 2)
    assert parsed["profile"] == "p"


@pytest.mark.parametrize("text", ["pkcs11:token=t", "PKCS11:x", "pkcs11", "/k.pem", "", "p"])
def test_the_cheap_uri_test_agrees_with_the_library(text: str) -> None:
    from awsiot_credentialhelper._pkcs11_uri import is_pkcs11_uri as library  # noqa: PLC0415
    from awsiot_credentialhelper.cli._options import is_pkcs11_uri  # noqa: PLC0415

    assert is_pkcs11_uri(text) == library(text)


def test_an_endpoint_that_is_not_utf_8_is_a_configuration_error(tmp_path: Path) -> None:
    """What ``--endpoint`` holds when argv had bytes that are not UTF-8 (surrogates)."""
    from awsiot_credentialhelper.cli._options import build_provider  # noqa: PLC0415
    from awsiot_credentialhelper.exceptions import InvalidEndpointError  # noqa: PLC0415

    settings = Settings(
        endpoint="bad\udcff:1",
        role_alias="a",
        certificate=str(tmp_path / "c.pem"),
        private_key=str(tmp_path / "k.pem"),
    )
    with pytest.raises(InvalidEndpointError, match="not ASCII"):
        build_provider(settings, {})


def test_a_key_body_never_shows_in_settings_or_in_errors(tmp_path: Path) -> None:
    """The key without armour in $AWSIOT_CREDENTIAL_PRIVATE_KEY: not a path, and never echoed."""
    import trustme  # noqa: PLC0415

    from awsiot_credentialhelper.cli._options import build_provider  # noqa: PLC0415

    leaf = trustme.CA().issue_cert("device.example")
    certificate = tmp_path / "device.pem"
    leaf.cert_chain_pems[0].write_to_path(str(certificate))
    body = "".join(
        line for line in leaf.private_key_pem.bytes().decode().splitlines() if "-----" not in line
    )
    settings = resolve(
        _parse(),
        {
            "AWSIOT_CREDENTIAL_PRIVATE_KEY": body,
            "AWSIOT_CREDENTIAL_ENDPOINT": "localhost:1",
            "AWSIOT_CREDENTIAL_ROLE_ALIAS": "a",
            "AWSIOT_CREDENTIAL_CERTIFICATE": str(certificate),
        },
    )
    assert body[:16] not in repr(settings)
    assert "<key material>" in repr(settings)
    with pytest.raises(ConfigurationError, match="looks like key material") as caught:
        build_provider(settings, {})
    assert not any(body[i : i + 16] in str(caught.value) for i in range(0, len(body) - 16, 16))


def test_an_unreadable_config_file_is_named_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"[profile dev]\naws_secret_access_key = \xffSECRET\n")
    with pytest.raises(ConfigurationError, match="not UTF-8") as caught:
        load_profile("dev", {"AWS_CONFIG_FILE": str(path)})
    assert "SECRET" not in str(caught.value)
    assert "\\xff" not in str(caught.value)


def test_a_malformed_proxy_names_its_variable_without_the_password(tmp_path: Path) -> None:
    from awsiot_credentialhelper.cli._options import build_provider  # noqa: PLC0415

    settings = resolve(
        _parse("--endpoint=localhost:1", "--role-alias=a", f"--certificate={tmp_path / 'c'}"),
        {
            "AWSIOT_CREDENTIAL_PROXY": "http://u:s3cret@[::1",
            "AWSIOT_CREDENTIAL_PRIVATE_KEY": str(tmp_path / "k"),
        },
    )
    with pytest.raises(ConfigurationError, match=r"\$AWSIOT_CREDENTIAL_PROXY") as caught:
        build_provider(settings, {})
    assert "s3cret" not in str(caught.value)
