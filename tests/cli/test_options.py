"""Shared options through the console script: precedence, profiles, validation, conflicts.

And two private units that the command line cannot show: the argparse-free fast parse of
``credential-process`` must agree with argparse, and ``Settings`` must not show secrets in its
repr (a traceback or a debugging session would print it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awsiot_credentialhelper.cli import build_parser
from awsiot_credentialhelper.cli._credential_process import _SWITCHES
from awsiot_credentialhelper.cli._options import OPTIONS, fast_parse, resolve
from tests.servers import DeviceFiles, TlsServer

from .conftest import Cli

PARSER = build_parser("credential-process")


def _parse(*arguments: str) -> argparse.Namespace:
    return PARSER.parse_args(["credential-process", *arguments])


def _refused(cli: Cli, *arguments: str, env: dict[str, str] | None = None) -> str:
    """The one-line message of a credential-process run that must exit 2 (configuration)."""
    result = cli.run("credential-process", *arguments, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def _values(flags: list[str]) -> dict[str, str]:
    """``--name=value`` flags as {name: value}."""
    return dict(flag[2:].split("=", 1) for flag in flags)


def _without(flags: list[str], *names: str) -> list[str]:
    return [flag for flag in flags if not flag.startswith(tuple(f"--{name}=" for name in names))]


def _profile(name: str, **keys: str) -> str:
    section = "default" if name == "default" else f"profile {name}"
    return f"[{section}]\n" + "".join(f"iot_{key} = {value}\n" for key, value in keys.items())


# --- where each setting comes from ----------------------------------------------------------


def test_flag_beats_variable_beats_profile(
    cli: Cli, server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    cli.write_config(
        _profile(
            "dev",
            role_alias="p",
            thing_name="p",
            credential_endpoint=server.endpoint,
            certificate=device.certificate_file,
            private_key=device.private_key_file,
            ca=ca_file,
        )
    )
    variables = {"AWSIOT_CREDENTIAL_ROLE_ALIAS": "v", "AWSIOT_CREDENTIAL_THING_NAME": "v"}
    result = cli.run(
        "credential-process", "--profile", "dev", "--role-alias", "f", "--no-cache", env=variables
    )
    assert result.returncode == 0, result.stderr
    ((request),) = server.received  # the endpoint came from the profile
    assert request.path == "/role-aliases/f/credentials"
    assert request.headers["x-amzn-iot-thingname"] == "v"


def test_the_profile_is_named_by_flag_or_variable_and_default_is_a_section(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    cli.write_config(_profile("default", role_alias="d") + _profile("x", role_alias="x"))
    rest = [*_without(flags, "role-alias"), "--no-cache"]
    for profile in ("default", "x"):
        result = cli.run("credential-process", *rest, env={"AWSIOT_CREDENTIAL_PROFILE": profile})
        assert result.returncode == 0, result.stderr
    assert [request.path for request in server.received] == [
        "/role-aliases/d/credentials",
        "/role-aliases/x/credentials",
    ]
    # No profile named: the config file is not read, [default] included.
    assert "Missing setting(s): --role-alias" in _refused(cli, *rest)
    assert server.request_count == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "the AWS config file '{file}' does not exist", id="missing-file"),
        pytest.param(
            "[profile other]\n",
            "The AWS config file '{file}' has no [profile dev] section",
            id="missing-profile",
        ),
        pytest.param(
            "key = outside\n[profile dev]\n",
            "The AWS config file '{file}' is malformed at line 1",
            id="malformed",
        ),
    ],
)
def test_profile_problems_are_configuration_errors(
    cli: Cli, text: str | None, message: str
) -> None:
    if text is not None:
        cli.write_config(text)
    assert message.format(file=cli.config_file) in _refused(cli, "--profile", "dev")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"aws_secret_access_key = SECRET\n", "malformed at line 1", id="malformed"),
        pytest.param(
            b"[profile dev]\naws_secret_access_key = \xffSECRET\n", "not UTF-8", id="not-utf-8"
        ),
    ],
)
def test_a_config_file_problem_is_named_without_its_content(
    cli: Cli, content: bytes, message: str
) -> None:
    cli.config_file.parent.mkdir(parents=True)
    cli.config_file.write_bytes(content)
    stderr = _refused(cli, "--profile", "dev")
    assert message in stderr
    assert "SECRET" not in stderr
    assert "xff" not in stderr


# --- values are checked, naming where they came from ----------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AWSIOT_CREDENTIAL_TIMEOUT", "soon", "must be a number, got 'soon'"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "0", "above 0"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "1e10", "at most 86400"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "inf", "at most 86400"),
        ("AWSIOT_CREDENTIAL_TIMEOUT", "nan", "got nan"),
        ("AWSIOT_CREDENTIAL_PKCS11_SLOT_ID", "-1", "must be positive"),
        ("AWSIOT_CREDENTIAL_NO_VERIFY_PEER", "perhaps", "must be true or false"),
    ],
)
def test_values_are_validated_naming_their_source(
    cli: Cli, variable: str, value: str, message: str
) -> None:
    stderr = _refused(cli, env={variable: value})
    assert f"${variable} " in stderr
    assert message in stderr


def test_a_timeout_flag_out_of_range_names_the_flag(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    """--timeout 1e10 crashed every fetch with OverflowError (awscrt takes 32-bit milliseconds)."""
    stderr = _refused(cli, *flags, "--timeout", "1e10")
    assert "--timeout must be a number of seconds above 0 and at most 86400" in stderr
    assert "got 10000000000.0" in stderr
    result = cli.run("credential-process", *flags, "--timeout", "86400")
    assert result.returncode == 0, result.stderr


def test_no_verify_peer_from_the_flag_or_a_true_variable(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    """The library warns whenever the server's identity goes unchecked: that tells which."""
    warning = "WARNING: verify_peer=False: the server's identity is NOT checked."
    runs = {
        "flag": cli.run("credential-process", *flags, "--no-cache", "--no-verify-peer"),
        "yes": cli.run(
            "credential-process", *flags, "--no-cache",
            env={"AWSIOT_CREDENTIAL_NO_VERIFY_PEER": "yes"},
        ),
        "0": cli.run(
            "credential-process", *flags, "--no-cache",
            env={"AWSIOT_CREDENTIAL_NO_VERIFY_PEER": "0"},
        ),
        "unset": cli.run("credential-process", *flags, "--no-cache"),
    }  # fmt: skip
    assert {name: run.returncode for name, run in runs.items()} == dict.fromkeys(runs, 0)
    assert {name: warning in run.stderr for name, run in runs.items()} == {
        "flag": True,
        "yes": True,
        "0": False,
        "unset": False,
    }


def test_an_endpoint_that_is_not_utf_8_is_a_configuration_error(cli: Cli, flags: list[str]) -> None:
    """Bytes in argv that are not UTF-8 reach the program as surrogates; they crashed a fetch."""
    endpoint = os.fsdecode(b"bad\xff:1")
    stderr = _refused(cli, *_without(flags, "endpoint"), f"--endpoint={endpoint}")
    assert "not ASCII" in stderr


# --- secrets: refused where every user could see them, never shown ---------------------------


def test_a_pin_in_a_pkcs11_uri_stays_off_the_command_line(cli: Cli) -> None:
    uri = "pkcs11:token=t;object=k?module-path=/lib/p11.so&pin-value=135790"
    stderr = _refused(cli, "--private-key", uri)
    assert "--private-key holds a pkcs11: URI with pin-value" in stderr
    assert "visible to every user" in stderr
    assert "135790" not in stderr


def test_a_key_body_in_the_variable_is_refused_and_never_shown(
    cli: Cli, flags: list[str], device: DeviceFiles
) -> None:
    """The key without its armour in $AWSIOT_CREDENTIAL_PRIVATE_KEY: not a path, not echoed."""
    body = "".join(
        line for line in device.private_key_pem.decode().splitlines() if "-----" not in line
    )
    stderr = _refused(
        cli, *_without(flags, "private-key"), env={"AWSIOT_CREDENTIAL_PRIVATE_KEY": body}
    )
    assert "looks like key material" in stderr
    assert not any(body[i : i + 16] in stderr for i in range(0, len(body) - 16, 16))


def test_a_malformed_proxy_names_its_variable_without_the_password(
    cli: Cli, flags: list[str]
) -> None:
    stderr = _refused(cli, *flags, env={"AWSIOT_CREDENTIAL_PROXY": "http://u:s3cret@[::1"})
    assert "The proxy $AWSIOT_CREDENTIAL_PROXY 'http://u:***@[::1' does not parse" in stderr
    assert "s3cret" not in stderr


# --- PKCS#11 settings: one key source, one PIN source ---------------------------------------


def test_a_pem_key_and_a_pkcs11_module_conflict_naming_both(cli: Cli, flags: list[str]) -> None:
    stderr = _refused(cli, *flags, "--pkcs11-lib=/lib.so")
    assert "Both --private-key" in stderr
    assert "and --pkcs11-lib" in stderr
    assert "keep one" in stderr


def test_a_slot_without_a_module_is_refused(cli: Cli, flags: list[str]) -> None:
    assert "--slot-id given without --pkcs11-lib" in _refused(cli, *flags, "--slot-id=1")


def test_two_pin_sources_conflict(cli: Cli, flags: list[str], tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    pin_file.chmod(0o600)
    stderr = _refused(
        cli,
        *_without(flags, "private-key"),
        "--pkcs11-lib=/lib.so",
        f"--pin-file={pin_file}",
        env={"AWSIOT_CREDENTIAL_PKCS11_PIN": "1"},
    )
    assert "The PKCS#11 PIN is set both in $AWSIOT_CREDENTIAL_PKCS11_PIN and by --pin-file" in (
        stderr
    )
    assert "1234" not in stderr


# --- Settings shows no secret in its repr ----------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "secret", "shown"),
    [
        pytest.param(
            "AWSIOT_CREDENTIAL_PRIVATE_KEY",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "MIIE",
            "<PEM text>",
            id="pem-text",
        ),
        pytest.param(
            "AWSIOT_CREDENTIAL_PRIVATE_KEY",
            "pkcs11:token=t;object=k?module-path=/lib/p11.so&pin-value=135790",
            "135790",
            "pkcs11:token=t;object=k?<query hidden",
            id="pin-in-uri",
        ),
        pytest.param(
            "AWSIOT_CREDENTIAL_PRIVATE_KEY",
            "{key_body}",
            "{key_body_start}",
            "<key material>",
            id="key-body",
        ),
        pytest.param(
            "AWSIOT_CREDENTIAL_PROXY",
            "http://user:hunter2@proxy:3128",
            "hunter2",
            "<proxy URL with credentials>",
            id="proxy-password",
        ),
    ],
)
def test_settings_repr_hides_secrets(
    device: DeviceFiles, variable: str, value: str, secret: str, shown: str
) -> None:
    body = "".join(line for line in device.private_key_pem.decode().splitlines()[1:-1])
    value = value.format(key_body=body)
    secret = secret.format(key_body_start=body[:16])
    result = resolve(_parse(), {variable: value})
    assert getattr(result, "private_key" if "KEY" in variable else "proxy") == value
    assert secret not in repr(result)
    assert shown in repr(result)
    with pytest.raises(AttributeError):
        result.proxy = "http://other:3128"


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


def _by_argparse(arguments: list[str]) -> dict[str, object]:
    expected = vars(_parse(*arguments))
    # argparse converts nothing (types are checked by resolve()), so values match exactly.
    expected.pop("run")
    expected.pop("command")
    return expected


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=8))
def test_fast_parse_never_disagrees_with_argparse(arguments: list[str]) -> None:
    """Whatever it is given, the fast parse declines (``None``: argparse decides) or agrees."""
    fast = fast_parse(arguments, _SWITCHES)
    assert fast is None or fast == _by_argparse(arguments)


_TAKES_VALUE = [option.flag for option in OPTIONS if option.kind != "bool"] + ["--profile"]
_NO_VALUE = [option.flag for option in OPTIONS if option.kind == "bool"]
_NO_VALUE += [*_SWITCHES, "--verbose", "-v", "-vvv"]
_PLAIN_VALUE = st.text(alphabet="ab1:/._= ", min_size=1, max_size=8)
_PLAIN = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(_TAKES_VALUE), _PLAIN_VALUE).map(list),
        st.tuples(st.sampled_from(_TAKES_VALUE), _PLAIN_VALUE).map(lambda p: ["=".join(p)]),
        st.sampled_from(_NO_VALUE).map(lambda flag: [flag]),
    ),
    max_size=6,
).map(lambda items: [word for item in items for word in item])


@settings(max_examples=200, deadline=None)
@given(_PLAIN)
def test_fast_parse_takes_every_plain_command_line(arguments: list[str]) -> None:
    """Exact long flags with values not starting with '-': the fast parse never declines them
    (else the property above would hold of a parser that declines everything)."""
    assert fast_parse(arguments, _SWITCHES) == _by_argparse(arguments)


def test_fast_parse_declines_what_it_does_not_know() -> None:
    for arguments in (["--help"], ["--end", "x"], ["--endpoint"], ["--endpoint", "-x"], ["x"]):
        assert fast_parse(arguments, _SWITCHES) is None
    parsed = fast_parse(["--endpoint", "e", "--no-cache", "-vv", "--profile=p"], _SWITCHES)
    assert parsed is not None
    assert (parsed["endpoint"], parsed["no_cache"], parsed["verbose"]) == ("e", True, 2)
    assert parsed["profile"] == "p"


def test_the_cli_asks_the_library_what_a_key_setting_is() -> None:
    """One pkcs11: test, light enough for the cached path (no awscrt, no typing)."""
    from awsiot_credentialhelper import _pkcs11  # noqa: PLC0415
    from awsiot_credentialhelper.cli import _options  # noqa: PLC0415

    assert _options.is_pkcs11_uri is _pkcs11.is_pkcs11_uri
