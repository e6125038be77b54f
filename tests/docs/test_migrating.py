"""docs/migrating.md, run: the 1.x code (before) and the 2.x code (after), against the emulator."""

from __future__ import annotations

import subprocess
import sys

from .blocks import blocks
from .conftest import DocDevice

PAGE = "migrating.md"


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "python")) == 4
    assert len(blocks(PAGE, "python", with_unrun=True)) == 5


def test_before_and_after_both_run(doc_device: DocDevice) -> None:
    script = doc_device.substitute("\n".join(blocks(PAGE, "python")))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=doc_device.home,
        env=doc_device.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before, after, refused, typed = done.stdout.splitlines()
    assert doc_device.arn_prefix in before
    assert doc_device.arn_prefix in after
    assert refused.startswith("refused: ")
    assert "HTTP 403 'Access Denied'" in refused
    assert typed == "403 another-role-alias access-denied"
