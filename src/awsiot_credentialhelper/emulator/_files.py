"""Write a file atomically with its permissions set from the start: the emulator's one writer.

Keys, certificates and ``emulator.json`` all go through :func:`write_private_file`, so no
file is ever readable wider than its mode, and no reader ever sees half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_private_file"]


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` with ``mode``, replacing any older file atomically.

    The data goes to a temporary file in the same directory whose mode is set before the
    first byte is written (whatever the umask), is flushed to disk, and then replaces
    ``path`` in one ``os.replace``: readers see the old file or the whole new one.

    Args:
        path: The file to write; its directory must exist.
        data: The whole content.
        mode: The permission bits, e.g. ``0o600`` for keys or ``0o644`` for certificates.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)  # mkstemp creates 0600; set the final mode before writing
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
