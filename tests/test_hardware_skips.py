"""Under ``CI=true`` a skipped hardware-key test fails with its reason; elsewhere it skips.

Checked on a small suite in a child pytest that uses tests/conftest.py's hook, the way
`make test` on CI would meet a machine without SoftHSM2 or the TPM stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import pytest

@pytest.fixture(scope="session")
def stack():
    pytest.skip("`tpm2-abrmd --session` failed: no TCTI")

@pytest.mark.pkcs11
def test_in_body():
    pytest.skip("missing libtss2-tcti-tabrmd.so.0")

@pytest.mark.pkcs11
def test_in_fixture(stack):
    pass

def test_not_hardware():
    pytest.skip("no IPv6 loopback here")

@pytest.mark.pkcs11
@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    raise AssertionError
"""


def _run_suite(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    pkcs11: hardware keys\n")
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"
    )
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_on_ci_a_skipped_hardware_test_fails_with_its_reason(tmp_path: Path, ci: str) -> None:
    result = _run_suite(tmp_path, ci)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 skipped, 1 xfailed, 1 error" in out
    must_run = "CI=true: this pkcs11 (hardware-key) test must run, but skipped: "
    assert f"{must_run}missing libtss2-tcti-tabrmd.so.0" in out
    assert f"{must_run}`tpm2-abrmd --session` failed: no TCTI" in out
    assert "SKIPPED [1] test_suite.py:17: no IPv6 loopback here" in out


@pytest.mark.parametrize("ci", ["", "false"])
def test_elsewhere_a_hardware_test_may_skip(tmp_path: Path, ci: str) -> None:
    result = _run_suite(tmp_path, ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped, 1 xfailed" in result.stdout
    assert "must run" not in result.stdout
