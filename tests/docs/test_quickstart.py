"""docs/quickstart.md, run against the emulator: the check, boto3 in five lines, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from .blocks import blocks
from .conftest import DocDevice

PAGE = "quickstart.md"


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "sh")) == 2
    assert len(blocks(PAGE, "python")) == 1


def test_check_passes(doc_device: DocDevice) -> None:
    done = doc_device.bash(blocks(PAGE, "sh")[0])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("all checks passed (exit code 0)\n")


def test_boto3_in_five_lines(doc_device: DocDevice) -> None:
    (script,) = blocks(PAGE, "python")
    done = subprocess.run(
        [sys.executable, "-c", doc_device.substitute(script)],
        cwd=doc_device.home,
        env=doc_device.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert doc_device.arn_prefix in done.stdout


def test_the_command_line_in_five_lines(doc_device: DocDevice) -> None:
    done = doc_device.bash(blocks(PAGE, "sh")[1])
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["Version"] == 1
    assert document["AccessKeyId"].startswith("ASIA")
    assert document["SecretAccessKey"] not in done.stderr
