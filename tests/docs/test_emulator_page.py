"""docs/emulator.md, run: its Python API example, and the test controls it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from awsiot_credentialhelper.emulator import Emulator

from .blocks import blocks

PAGE = "emulator.md"


def test_the_python_api_example_fetches_and_calls_moto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = blocks(PAGE, "python")[0]
    assert 'directory="/tmp/emu"' in example
    code = example.replace('"/tmp/emu"', repr(str(tmp_path / "emu")))
    exec(compile(code, PAGE, "exec"), {})  # noqa: S102 - the page's own code
    printed = capsys.readouterr().out
    assert re.fullmatch(
        r"arn:aws:sts::123456789012:assumed-role/sensor-1-role/[0-9a-f]{64}\n", printed
    ), printed


def test_the_controls_it_shows_exist_and_take_effect(iot_emulator: Emulator) -> None:
    throttling, lifetime = (b for b in blocks(PAGE, "python") if b.startswith("emu.controls."))
    namespace = {"emu": iot_emulator}
    exec(compile(throttling, PAGE, "exec"), namespace)  # noqa: S102
    exec(compile(lifetime, PAGE, "exec"), namespace)  # noqa: S102
    assert iot_emulator.controls.max_requests_per_second == 50
    assert iot_emulator.controls.credential_lifetime == 60
