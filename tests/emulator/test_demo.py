"""``make demo``: the thermostat walkthrough runs end to end with the real client library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .test_plugin import BOTO3_ON_PY39

DEMO = "awsiot_credentialhelper.emulator.demo"


@pytest.mark.slow
def test_demo_runs_and_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-W", BOTO3_ON_PY39, "-m", DEMO],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "1. Start the emulator" in out
    assert (
        "caller identity: arn:aws:sts::123456789012:assumed-role/Thermostat-dynamodb-access-role/"
        in out
    )
    assert "wrote and read back: temperature=21.5 C, humidity=45 %" in out
    assert "InvalidThingNameError:" in out
    assert "'Invalid thing name passed'" in out
    assert "attach-thing-principal" in out  # the hint
    assert "{'SUCCESS': 1, 'INVALID_THING_NAME': 1}" in out
    assert "PRIVATE KEY" not in out + result.stderr
