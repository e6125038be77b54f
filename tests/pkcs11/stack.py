"""What the key-store fixtures raise when SoftHSM2 or the TPM stack cannot start.

The fixtures turn it into a skip whose reason names what is missing, or the command that
failed and its stderr (under ``CI=true`` tests/conftest.py turns that skip into a failure).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

#: How much of a failed command's stderr a skip reason quotes (its end says why).
STDERR_TAIL = 800


class StackUnavailableError(RuntimeError):
    """A key store's software is missing or did not start; the message says which and why."""


def failure(command: Sequence[str], stderr: str) -> StackUnavailableError:
    """The error for ``command`` failing: its first two words (no PINs) and its stderr's end."""
    tail = stderr.strip()[-STDERR_TAIL:] or "(no stderr)"
    return StackUnavailableError(f"`{' '.join(command[:2])}` failed: {tail}")


def unloadable(libraries: Sequence[str]) -> list[str]:
    """The shared libraries the dynamic loader cannot load, as ``dlopen`` would find them.

    Checked in a child process, so nothing is loaded into the test process: a TCTI library
    is found by name at run time (no package depends on it), so a file check is not enough.
    """
    probe = (
        "import ctypes, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        ctypes.CDLL(name)\n"
        "    except OSError:\n"
        "        print(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *libraries],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.split()
