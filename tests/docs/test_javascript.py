"""docs/other-sdks.md's JavaScript lines, run on Node.js with the AWS SDK for JavaScript v3
against the emulator and moto: the profile, serve's environment, and how to see the helper's
error behind "Could not load credentials from any providers".

The SDK is installed once by npm into tests/docs/js/node_modules (git-ignored; the versions
are pinned in tests/docs/js/package.json), under a lock so that xdist workers share it.
Without Node.js 20 or later (the SDK's minimum) the tests skip, and under ``CI=true`` fail, so
that CI cannot lose them to a machine without it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from awsiot_credentialhelper.exceptions import DOCS_URL

from ..conftest import on_ci
from .blocks import blocks
from .conftest import DocDevice

PAGE = "other-sdks.md"
JS = Path(__file__).resolve().parent / "js"
NPM_TIMEOUT = 300.0
#: The SDK versions of package.json need Node.js 20 or later ("engines").
MIN_NODE = 20


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The SDK's node_modules, installed on first use (a few seconds), then reused."""
    missing = _missing_node()
    if missing:
        if on_ci():
            pytest.fail(f"CI=true: the JavaScript lines must run, but {missing}")
        pytest.skip(f"the JavaScript lines are not run: {missing}")
    modules = JS / "node_modules"
    stamp = modules / ".installed-from-package.json"
    with (JS / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = (JS / "package.json").read_text()
        if not stamp.is_file() or stamp.read_text() != wanted:
            subprocess.run(
                ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--silent"],
                cwd=JS,
                check=True,
                timeout=NPM_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
            stamp.write_text(wanted)
    return modules


def _missing_node() -> str:
    """Why Node.js cannot run the SDK here, or '' when it can."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are not installed (Node.js 20 or later is needed)"
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()  # v20.20.2
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        return f"Node.js {version} is older than the SDK's minimum, {MIN_NODE}"
    return ""


def _js(index: int) -> str:
    return blocks(PAGE, "js")[index]


def _node_e() -> str:
    (found,) = [b for b in blocks(PAGE, "sh") if b.startswith("node -e")]
    return found


def _profile() -> str:
    (profile,) = blocks(PAGE, "ini")
    return profile


def _prepare(doc_device: DocDevice, node_modules: Path) -> None:
    """Node resolves ES module imports from the script's directory upwards only."""
    os.symlink(node_modules, doc_device.home / "node_modules")
    doc_device.write_config(_profile())


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "js")) == 2
    assert "fromProcess" in _js(0)
    assert "fromProcess" not in _js(1)


def test_from_process_with_the_profile(doc_device: DocDevice, node_modules: Path) -> None:
    _prepare(doc_device, node_modules)
    (doc_device.home / "device.mjs").write_text(doc_device.substitute(_js(0)))
    done = doc_device.bash("node device.mjs")
    assert done.returncode == 0, done.stderr
    assert doc_device.arn_prefix in done.stdout


def test_the_default_chain_finds_serve(doc_device: DocDevice, node_modules: Path) -> None:
    _prepare(doc_device, node_modules)
    (doc_device.home / "chain.mjs").write_text(doc_device.substitute(_js(1)))
    (block,) = [
        b
        for b in blocks(PAGE, "sh")
        if b.startswith("awsiot-credentialhelper serve --profile device --port 0")
    ]
    serve = "\n".join(line for line in block.splitlines() if not line.startswith("aws "))
    done = doc_device.bash(serve + "\nnode chain.mjs\n")
    assert done.returncode == 0, done.stderr
    assert doc_device.arn_prefix in done.stdout


def test_the_helpers_own_error_is_shown(doc_device: DocDevice, node_modules: Path) -> None:
    _prepare(doc_device, node_modules)
    broken = _profile().replace("device-role-alias", "another-role-alias")
    (doc_device.home / ".aws" / "config").write_text(doc_device.substitute(broken))
    done = doc_device.bash(_node_e())
    assert done.returncode == 0, done.stderr
    assert "HTTP 403 'Access Denied'" in done.stderr
    assert f"see: {DOCS_URL}/troubleshooting#access-denied" in done.stderr
