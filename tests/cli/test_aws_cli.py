"""The AWS CLI itself, with a ``credential_process`` profile, against the emulator and moto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .conftest import RUN_TIMEOUT, SCRIPT, Cli

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device, Emulator

AWS = str(Path(sys.executable).with_name("aws"))


def test_aws_cli_uses_the_profile_and_the_second_command_hits_the_cache(
    cli: Cli, iot_emulator: Emulator, iot_device: Device
) -> None:
    device = iot_device
    cli.write_config(
        "[profile device]\n"
        f"credential_process = {SCRIPT} credential-process --profile device\n"
        f"region = {device.region}\n"
        f"iot_credential_endpoint = {device.endpoint}\n"
        f"iot_role_alias = {device.role_alias}\n"
        f"iot_thing_name = {device.thing_name}\n"
        f"iot_certificate = {device.certificate_file}\n"
        f"iot_private_key = {device.private_key_file}\n"
        f"iot_ca = {device.ca_file}\n"
    )
    env = cli.environment({"AWS_ENDPOINT_URL": iot_emulator.aws_endpoint_url})

    def caller_identity() -> dict[str, str]:
        result = subprocess.run(
            [AWS, "sts", "get-caller-identity", "--profile", "device", "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
        identity: dict[str, str] = json.loads(result.stdout)
        return identity

    before = iot_emulator.stats().total
    first = caller_identity()
    assert iot_emulator.stats().total == before + 1
    assert device.role_arn.split("/")[-1] in first["Arn"]  # the role behind the alias
    second = caller_identity()
    assert second == first
    assert iot_emulator.stats().total == before + 1, "the second command came from the cache"
