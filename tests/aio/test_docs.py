"""docs/async.md, run: its examples against the emulator, with an emulated device's values."""

from __future__ import annotations

import re

import pytest

from awsiot_credentialhelper.emulator import Device, Emulator

from ..docs.blocks import blocks

PAGE = "async.md"


def as_emulated(example: str, device: Device) -> str:
    """The example with the page's device replaced by ``device``."""
    values = {
        '"c1example.credentials.iot.us-east-1.amazonaws.com"': repr(device.endpoint),
        '"device-role-alias"': repr(device.role_alias),
        '"sensor-1"': repr(device.thing_name),
        '"/etc/iot/device.pem.crt"': repr(str(device.certificate_file)),
        '"/etc/iot/device.pem.key"': repr(str(device.private_key_file)),
        '"/etc/iot/AmazonRootCA1.pem"': repr(str(device.ca_file)),
    }
    for written, emulated in values.items():
        assert written in example, written
        example = example.replace(written, emulated)
    return example


@pytest.fixture
def moto_for_clients(iot_device: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS clients built without endpoint_url reach moto (botocore reads AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", iot_device.aws_endpoint_url)


def run(example: str) -> None:
    exec(compile(example, PAGE, "exec"), {"__name__": "__docs__"})  # noqa: S102 - the page's


@pytest.mark.usefixtures("moto_for_clients")
def test_the_session_example_calls_sts_and_s3_as_the_device(
    iot_device: Device, iot_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = blocks(PAGE, "python")[0]
    assert "AioBoto3SessionProvider(" in sessions
    run(as_emulated(sessions, iot_device).replace("sensor-1-readings", f"{iot_device.name}-r"))
    arn, keys = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        rf"arn:aws:sts::123456789012:assumed-role/{iot_device.name}-role/[0-9a-f]{{64}}", arn
    )
    assert keys == "['t.json']"
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


@pytest.mark.usefixtures("moto_for_clients")
def test_the_awscrt_example_shares_the_sessions_cache(
    iot_device: Device, iot_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    crt = blocks(PAGE, "python")[1]
    assert "awscrt_credentials_provider()" in crt
    run(as_emulated(crt, iot_device))
    assert capsys.readouterr().out == "True\n"
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def test_only_the_examples_above_run_unmarked() -> None:
    assert len(blocks(PAGE, "python")) == 2
    assert len(blocks(PAGE, "python", with_unrun=True)) == 4
