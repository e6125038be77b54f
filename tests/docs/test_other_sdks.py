"""docs/other-sdks.md, run: each way of handing the device's credentials to the AWS CLI
(credential_process, serve in container and IMDS modes, update) against the emulator and moto."""

from __future__ import annotations

import json
import re
import stat
import subprocess

from .blocks import blocks
from .conftest import DocDevice

PAGE = "other-sdks.md"


def _profile() -> str:
    (profile,) = blocks(PAGE, "ini")
    return profile


def _shell(starting: str) -> str:
    """The page's one sh block that starts with ``starting``."""
    (found,) = [b for b in blocks(PAGE, "sh") if b.startswith(starting)]
    return found


def _identities(output: str) -> list[str]:
    """The ARNs of every `aws sts get-caller-identity` JSON document in ``output``."""
    return [json.loads(m)["Arn"] for m in re.findall(r"^\{\n.*?^\}$", output, re.M | re.S)]


def _assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "sh")) == 6
    assert "credential_process = awsiot-credentialhelper credential-process" in _profile()


def test_credential_process_profile_checks_and_serves_the_aws_cli(doc_device: DocDevice) -> None:
    doc_device.write_config(_profile())
    done = doc_device.bash(_shell("awsiot-credentialhelper check"))
    _assert_ok(done)
    assert "all checks passed (exit code 0)" in done.stdout
    (arn,) = _identities(done.stdout)
    assert doc_device.arn_prefix in arn


def test_serve_container_mode_and_the_token_for_old_sdks(doc_device: DocDevice) -> None:
    doc_device.write_config(_profile())
    serve = _shell("awsiot-credentialhelper serve --profile device --port 0")
    old_sdks = _shell("export AWS_CONTAINER_AUTHORIZATION_TOKEN=")
    done = doc_device.bash(serve + old_sdks)
    _assert_ok(done)
    arns = _identities(done.stdout)
    assert len(arns) == 2, done.stdout
    assert all(doc_device.arn_prefix in arn for arn in arns)
    exports = (doc_device.home / "iot-credentials.env").read_text()
    assert re.fullmatch(
        r"export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127\.0\.0\.1:\d+/credentials\n"
        r"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=\S+\n",
        exports,
    )


def test_serve_imds_mode(doc_device: DocDevice) -> None:
    doc_device.write_config(_profile())
    done = doc_device.bash(
        _shell("awsiot-credentialhelper serve --profile device --mode imds"),
        env={"AWS_EC2_METADATA_DISABLED": None},
    )
    _assert_ok(done)
    (arn,) = _identities(done.stdout)
    assert doc_device.arn_prefix in arn


def test_update_writes_a_private_profile_the_aws_cli_reads(doc_device: DocDevice) -> None:
    doc_device.write_config(_profile())
    done = doc_device.bash(_shell("awsiot-credentialhelper update"))
    _assert_ok(done)
    (arn,) = _identities(done.stdout)
    assert doc_device.arn_prefix in arn
    credentials = doc_device.home / ".aws" / "credentials"
    assert "[device-static]" in credentials.read_text()
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
