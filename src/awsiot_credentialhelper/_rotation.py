"""Notice that certificate and key files were replaced (a rotation), and decide when to reload.

Fleets rotate device certificates without restarting what uses them: a rotation tool writes
the new pair next to the old one and renames it into place. The provider asks
:meth:`FileWatch.pending` before each fetch; two ``stat`` calls tell whether either file
changed (device, inode, size, modification time), so an unchanged pair costs no read.

A rotation can be seen half done: the certificate renamed, the key not yet. The provider then
keeps the pair it has and calls :meth:`FileWatch.rejected`; the same files are tried again
only after :data:`RETRY_DELAY` (or at once when they change again), and the reason is logged
once per state of the files, not on every fetch. ``serve`` and ``update`` look at
:meth:`FileWatch.retry_due` every couple of seconds while a rotation is pending, and refresh
as soon as the files change again, rather than at the next scheduled refresh.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Callable, NamedTuple, Optional

from ._clock import monotonic

__all__ = ["RETRY_DELAY", "FileWatch", "Snapshot"]

logger = logging.getLogger(__name__)

#: Seconds before files that failed to load (a pair that does not match, a file half
#: written) are read again, unless they change before.
RETRY_DELAY = 2.0


class _Identity(NamedTuple):
    """What changes when a file is replaced or rewritten; ``None`` fields: it is missing."""

    device: Optional[int]
    inode: Optional[int]
    size: Optional[int]
    mtime_ns: Optional[int]


#: The identities of the watched files, in order.
Snapshot = tuple[_Identity, ...]

_MISSING = _Identity(None, None, None, None)


def _identity(path: str) -> _Identity:
    try:
        info = os.stat(path)
    except OSError:
        return _MISSING
    return _Identity(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class FileWatch:
    """The files a provider was loaded from, and whether they changed since.

    Args:
        paths: The certificate and key files (those given as paths).
        monotonic: The clock for :data:`RETRY_DELAY`, for tests.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        monotonic: Callable[[], float] = monotonic,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.paths = tuple(paths)
        self._monotonic = monotonic
        self._retry_delay = retry_delay
        self._loaded = self.snapshot()
        self._rejected: Optional[Snapshot] = None
        self._retry_at = float("-inf")

    def snapshot(self) -> Snapshot:
        """The files' identities now."""
        return tuple(_identity(path) for path in self.paths)

    def pending(self) -> Optional[Snapshot]:
        """The files' identities if they changed since they were loaded and are worth a try.

        Files that :meth:`rejected` refused are worth a try again once they change, or after
        :data:`RETRY_DELAY`.
        """
        now = self.snapshot()
        if now == self._loaded:
            self._rejected = None  # put back as they were: nothing to retry
            return None
        if now == self._rejected and self._monotonic() < self._retry_at:
            return None
        return now

    def loaded(self, snapshot: Snapshot) -> None:
        """The files as in ``snapshot`` are now in use."""
        if self._rejected is not None:
            logger.info("The rotated certificate and key files are in use now.")
        self._loaded = snapshot
        self._rejected = None

    def rejected(self, snapshot: Snapshot, reason: BaseException) -> None:
        """The files as in ``snapshot`` could not be used; keep the loaded pair, retry later."""
        if snapshot != self._rejected:
            logger.warning(
                "The certificate or key file changed, but the new files cannot be used yet; "
                "the previous certificate stays in use, and the files are read again when they "
                "change (or in %.0f s). Cause: %s",
                self._retry_delay,
                reason,
            )
        self._rejected = snapshot
        self._retry_at = self._monotonic() + self._retry_delay

    @property
    def rotation_pending(self) -> bool:
        """Whether changed files were refused and are still waiting to be usable."""
        return self._rejected is not None

    def retry_due(self) -> bool:
        """Whether refused files have changed since: worth a fetch now. Two ``stat`` calls
        while a rotation is pending; none otherwise."""
        rejected = self._rejected
        return rejected is not None and self.snapshot() != rejected
