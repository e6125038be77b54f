"""Write a file atomically: a temporary file beside it, fsynced, renamed over it.

One writer for every file this package writes: the credentials file (``update``), the server
token (``serve``), the ``credential-process`` cache, and the emulator's keys, certificates and
settings. Readers never see half a file, and no file is readable wider than its mode for an
instant. A file being replaced keeps its owner, group and mode: root updating a user's file
must not take it from that user. A run killed between creating and renaming its temporary file
leaves it behind, secrets and all; the next write to the same file removes it
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from typing import Optional, Union

__all__ = ["STALE_AGE", "private_mode", "remove_stale_temporaries", "write_private_file"]

logger = logging.getLogger(__name__)

#: A temporary file older than this is stale even if a process with the pid in its name is
#: alive: pids are reused. A write takes well under a second.
STALE_AGE = 600.0


def _temporary_pattern(name: str) -> re.Pattern[str]:
    """Exactly the names :func:`write_private_file` gives its temporary files for ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.([0-9]{{1,10}})\.[0-9a-f]{{8}}\.tmp")


def private_mode(existing: Optional[os.stat_result]) -> int:
    """The mode for the new file: the old file's, unless that let every user read it.

    A mode that keeps other users out (0600, 0640, 0660) was chosen on purpose and stays.
    A mode open to all (such as 0644 from the default umask) was not chosen for secrets:
    0600 instead.
    """
    if existing is None:
        return 0o600
    mode = stat.S_IMODE(existing.st_mode) & 0o777
    return 0o600 if mode & 0o007 else mode


def write_private_file(
    path: Union[str, os.PathLike[str]],
    data: bytes,
    *,
    existing: Optional[os.stat_result] = None,
    mode: Optional[int] = None,
) -> None:
    """Replace ``path`` with ``data`` atomically; ``existing`` is the stat of the file replaced.

    The temporary file is created 0600 and only then given the old file's owner, group and
    ``mode`` (by default :func:`private_mode`), so nobody else can open it in between.
    Changing the owner needs root; for others the group is kept when they belong to it, and
    the owner becomes them. ``mode`` is for files that hold no secret (the emulator's
    certificates, 0644).

    Raises:
        OSError: the file cannot be written; the temporary file is gone.
    """
    directory, name = os.path.split(os.fspath(path))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        descriptor = os.open(temporary, flags, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            if existing is not None:
                _take_owner(handle.fileno(), existing)
            os.fchmod(handle.fileno(), private_mode(existing) if mode is None else mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        _unlink(temporary)
        raise


def _take_owner(descriptor: int, existing: os.stat_result) -> None:
    info = os.fstat(descriptor)
    if (info.st_uid, info.st_gid) == (existing.st_uid, existing.st_gid):
        return
    try:
        os.fchown(descriptor, existing.st_uid, existing.st_gid)
    except PermissionError:
        try:  # not root: at least the group, if this user is in it
            os.fchown(descriptor, -1, existing.st_gid)
        except PermissionError:
            logger.debug("Cannot give the new file group %d; it gets ours.", existing.st_gid)


def remove_stale_temporaries(path: str, *, now: Optional[float] = None) -> None:
    """Remove temporary files that writes to ``path`` left behind when they were killed.

    Only regular files named exactly as :func:`write_private_file` names them for ``path``,
    whose process has ended or which are older than :data:`STALE_AGE`. Nothing else in the
    directory is touched, and failures only log.
    """
    directory, name = os.path.split(path)
    pattern = _temporary_pattern(name)
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if _process_alive(int(match.group(1))) and now - info.st_mtime < STALE_AGE:
            continue
        if _unlink(entry.path):
            logger.info("Removed %s, left behind by an interrupted write.", entry.path)


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists; unknowable answers count as alive."""
    if pid <= 0 or pid == os.getpid():
        return True  # kill(0, 0) would signal our process group; and we are alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # EPERM: it exists, under another user
    return True


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:
        logger.debug("Could not remove %s.", path)
        return False
    return True
