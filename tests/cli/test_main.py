"""The command line as a whole: help with examples on every command, version, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from awsiot_credentialhelper import __version__
from awsiot_credentialhelper.cli import main

from .conftest import Cli

#: Every command the README documents; the emulator's help is its own (test_emulator_...).
COMMANDS = ("credential-process", "serve", "update", "check")


def test_help_of_every_command_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    """``main``, the console script's entry point, in this process: one interpreter start, not
    five."""
    for command in COMMANDS:
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "examples:" in out, command
        assert "exit codes:" in out, command
        assert "--endpoint" in out, command
        assert "$AWSIOT_CREDENTIAL_ENDPOINT" in out, command
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n    {command}" in out for command in (*COMMANDS, "emulator"))
    assert "3  network error" in out


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["serve", "--mode", "nope"]) == 2
    capsys.readouterr()


def test_version_and_module_entry_point(cli: Cli) -> None:
    result = cli.run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"awsiot-credentialhelper {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "awsiot_credentialhelper.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert module.stdout == result.stdout


def test_emulator_is_delegated(cli: Cli) -> None:
    result = cli.run("emulator", "--help")
    assert result.returncode == 0, result.stderr
    assert "awsiot-credentialhelper emulator" in result.stdout


def test_emulator_without_its_extra_exits_2_with_the_pip_command() -> None:
    # A module set to None in sys.modules is what Python reports as not installed.
    code = (
        "import sys\n"
        "sys.modules['moto'] = None\n"
        "from awsiot_credentialhelper.cli import main\n"
        "sys.exit(main(['emulator', '--dir', '.']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "pip install 'awsiot-credentialhelper[emulator]'" in result.stderr
