"""One spelling per setting across the four surfaces, the old ones still read, and the README's
one table saying so; errors from the library say where their value came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from awsiot_credentialhelper.cli import _environment as env
from awsiot_credentialhelper.cli._options import OPTIONS
from tests.servers import DeviceFiles, Reply, TlsServer, error_body

from .conftest import Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> dict[str, list[set[str]]]:
    """README's settings table: the flag cell's first flag -> the names in backticks, by cell."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Settings") : text.index("## Command line")]
    rows: dict[str, list[set[str]]] = {}
    for line in section.splitlines():
        if not line.startswith("| `") and not line.startswith("| |"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        found = [re.findall(r"`([^`]+)`", cell) for cell in cells[:4]]
        flags = [name for name in found[1] if name.startswith("--")]
        rows[flags[0] if flags else cells[0]] = [set(names) for names in found]
    return rows


@pytest.mark.parametrize("option", OPTIONS, ids=[option.name for option in OPTIONS])
def test_the_readme_table_has_every_spelling_of_every_setting(option: object) -> None:
    from awsiot_credentialhelper.cli._options import Option  # noqa: PLC0415

    assert isinstance(option, Option)
    argument, flags, variables, keys = _table()[option.flag]
    assert argument == {option.argument}
    assert flags == {option.flag, *option.aliases}
    assert {option.env, *option.env_aliases} <= variables
    assert keys == {option.profile_key, *option.profile_aliases}


def test_every_variable_the_cli_reads_is_in_the_readme() -> None:
    documented = set().union(*(cells[2] for cells in _table().values()))
    names = {value for name, value in vars(env).items() if name.startswith("CLI_")}
    names |= {old for olds in env.ALIASES.values() for old in olds}
    assert names <= documented


def test_names_follow_the_library_argument() -> None:
    for option in OPTIONS:
        base = option.argument.rsplit(".", 1)[-1]
        if option.name == "no_verify_peer":
            base = "no_verify_peer"  # the CLI's switch says what it does
        elif option.name.endswith("_file"):
            base += "_file"  # a file holding the secret argument
        assert option.flag == "--" + base.replace("_", "-"), option.name
        assert option.env == "AWSIOT_CREDENTIAL_" + base.upper(), option.name
        assert option.profile_key == "iot_" + base, option.name


def _refused(cli: Cli, *arguments: str, env: dict[str, str] | None = None) -> str:
    result = cli.run("credential-process", *arguments, env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("given", "named"),
    [
        pytest.param(("--private-key-label=k",), "--private-key-label", id="flag"),
        pytest.param(("--key-label=k",), "--key-label", id="old-flag"),
        pytest.param(
            {"AWSIOT_CREDENTIAL_PRIVATE_KEY_LABEL": "k"},
            "$AWSIOT_CREDENTIAL_PRIVATE_KEY_LABEL",
            id="variable",
        ),
        pytest.param(
            {"AWSIOT_CREDENTIAL_PKCS11_KEY_LABEL": "k"},
            "$AWSIOT_CREDENTIAL_PKCS11_KEY_LABEL",
            id="old-variable",
        ),
        pytest.param(
            {"AWSIOT_CREDENTIAL_PRIVATE_KEY_LABEL": "k", "AWSIOT_CREDENTIAL_PKCS11_KEY_LABEL": "o"},
            "$AWSIOT_CREDENTIAL_PRIVATE_KEY_LABEL",
            id="new-variable-first",
        ),
        pytest.param("iot_private_key_label", "key iot_private_key_label", id="profile-key"),
        pytest.param("iot_key_label", "key iot_key_label", id="old-profile-key"),
    ],
)
def test_each_spelling_of_a_setting_is_read_and_named_as_given(
    cli: Cli, flags: list[str], given: object, named: str
) -> None:
    arguments = list(flags)
    variables: dict[str, str] = {}
    if isinstance(given, tuple):
        arguments += given
    elif isinstance(given, dict):
        variables = given
    else:
        cli.write_config(f"[profile dev]\n{given} = k\n")
        arguments += ["--profile", "dev"]
    stderr = _refused(cli, *arguments, env=variables)
    assert f"{named} given without --pkcs11-lib" in stderr


def test_old_and_new_pin_spellings(cli: Cli, flags: list[str], tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    pin_file.chmod(0o600)
    token = [*(f for f in flags if not f.startswith("--private-key=")), "--pkcs11-lib=/lib.so"]
    for flag in ("--user-pin-file", "--pin-file"):
        for variable in ("AWSIOT_CREDENTIAL_USER_PIN", "AWSIOT_CREDENTIAL_PKCS11_PIN"):
            stderr = _refused(cli, *token, f"{flag}={pin_file}", env={variable: "1"})
            assert f"set both in ${variable} and by {flag}: keep one" in stderr
            assert "1234" not in stderr


def test_both_profile_keys_of_the_endpoint_work(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    rest = [flag for flag in flags if not flag.startswith("--endpoint=")]
    for key in ("iot_endpoint", "iot_credential_endpoint"):
        cli.write_config(f"[profile dev]\n{key} = {server.endpoint}\n")
        result = cli.run("credential-process", *rest, "--profile=dev", "--no-cache")
        assert result.returncode == 0, result.stderr
    assert server.request_count == 2


def test_max_attempts_reaches_the_provider(cli: Cli, server: TlsServer, flags: list[str]) -> None:
    server.set_default(Reply(status=503, body=error_body("down")))
    result = cli.run("credential-process", *flags, "--no-cache", "--max-attempts=1")
    assert result.returncode == 1, result.stderr
    assert server.request_count == 1
    stderr = _refused(cli, *flags, env={"AWSIOT_CREDENTIAL_MAX_ATTEMPTS": "11"})
    assert "$AWSIOT_CREDENTIAL_MAX_ATTEMPTS must be a whole number from 1 to 10" in stderr


def test_a_library_error_says_where_its_value_came_from(
    cli: Cli, flags: list[str], tmp_path: Path, device: DeviceFiles
) -> None:
    rest = [flag for flag in flags if not flag.startswith("--certificate=")]
    missing = tmp_path / "missing.pem"
    stderr = _refused(cli, *rest, f"--certificate={missing}")
    assert f"The certificate file '{missing}' does not exist. (from --certificate)" in stderr
    stderr = _refused(cli, *rest, env={"AWSIOT_CREDENTIAL_CERTIFICATE": str(missing)})
    assert "does not exist. (from $AWSIOT_CREDENTIAL_CERTIFICATE)" in stderr
    stderr = _refused(cli, *flags, "--thing-name=bad thing")
    assert "(from --thing-name)" in stderr


def test_an_encrypted_key_without_a_password_says_how_to_give_one(
    cli: Cli, flags: list[str], tmp_path: Path, device: DeviceFiles
) -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    key = serialization.load_pem_private_key(device.private_key_pem, password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw-4417"),
        )
    )
    encrypted.chmod(0o600)
    rest = [flag for flag in flags if not flag.startswith("--private-key=")]
    stderr = _refused(cli, *rest, f"--private-key={encrypted}")
    assert "The private key is encrypted: give its password (private_key_password)." in stderr
    assert "(set it in $AWSIOT_CREDENTIAL_PRIVATE_KEY_PASSWORD, or with " in stderr
    result = cli.run(
        "credential-process",
        *rest,
        f"--private-key={encrypted}",
        "--no-cache",
        env={"AWSIOT_CREDENTIAL_PRIVATE_KEY_PASSWORD": "pw-4417"},
    )
    assert result.returncode == 0, result.stderr


def test_help_shows_the_new_spelling_and_the_old_one(cli: Cli) -> None:
    out = cli.run("credential-process", "--help").stdout
    assert "--private-key-label LABEL" in out
    assert "also --key-label" in out
    assert "--user-pin-file PATH" in out
    assert "--max-attempts N" in out
