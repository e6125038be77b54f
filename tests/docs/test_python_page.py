"""docs/python.md, run: every Python block in order, in one process, against the emulator."""

from __future__ import annotations

import subprocess
import sys

from .blocks import blocks
from .conftest import DocDevice

PAGE = "python.md"


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "python")) == 5


def test_every_block_runs_in_order(doc_device: DocDevice) -> None:
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
    lines = done.stdout.splitlines()
    assert doc_device.arn_prefix in lines[0]  # boto3 sessions
    assert lines[1].startswith("ASIA")  # one fetch: key id and expiration
    assert lines[2] == "403 False"  # the refusal's status and retryable
    assert lines[3]  # a request id
    assert lines[4].endswith("see: " + _link("access-denied"))
    assert lines[5].startswith("ASIA")  # RefreshingCredentials.get()
    # moto's S3 answered the call signed with the device's credentials: a list of buckets (moto's
    # state is shared with the other tests of the session, so not necessarily an empty one)
    assert lines[6].startswith("[")
    assert lines[6].endswith("]")
    assert len(lines) == 7


def _link(anchor: str) -> str:
    from awsiot_credentialhelper.exceptions import DOCS_URL  # noqa: PLC0415

    return f"{DOCS_URL}/troubleshooting#{anchor}"
