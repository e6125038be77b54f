"""Key-store fixtures say exactly why a stack is unavailable: a library, or a command's stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from .softhsm import SoftHsm
from .softhsm import unavailable_reason as softhsm_unavailable
from .stack import StackUnavailableError, unloadable
from .swtpm import SoftwareTpm
from .swtpm import unavailable_reason as tpm_unavailable


def test_unloadable_names_only_the_libraries_the_loader_cannot_find() -> None:
    missing = "libtss2-tcti-no-such-tcti.so.0"
    assert unloadable(["libc.so.6", missing]) == [missing]


@pytest.mark.pkcs11
def test_a_tpm_stack_that_cannot_start_names_the_command_and_its_stderr(tmp_path: Path) -> None:
    reason = tpm_unavailable()
    if reason is not None:
        pytest.skip(reason)
    tpm = SoftwareTpm(tmp_path)
    (tmp_path / "state").rmdir()
    (tmp_path / "state").write_text("swtpm needs a directory here")
    try:
        with pytest.raises(StackUnavailableError) as caught:
            tpm.start()
    finally:
        tpm.stop()
    message = str(caught.value)
    assert message.startswith("`swtpm socket` failed: exited with status 1: ")
    assert "Not a directory" in message  # swtpm's own words, from its stderr


@pytest.mark.pkcs11
def test_a_failing_softhsm2_util_names_the_command_and_its_stderr(tmp_path: Path) -> None:
    reason = softhsm_unavailable()
    if reason is not None:
        pytest.skip(reason)
    hsm = SoftHsm(tmp_path)
    with pytest.raises(StackUnavailableError) as caught:
        hsm.util("--delete-token", "--token", "no_such_token")
    assert str(caught.value) == (
        "`softhsm2-util --delete-token` failed: "
        "ERROR: Could not find a token using --serial or --token."
    )
