"""systemd's notify protocol (``sd_notify``): one datagram to the Unix socket in ``NOTIFY_SOCKET``.

Implemented here instead of depending on a binding: the protocol is a ``socket.sendto`` of
``KEY=value`` lines (see ``man sd_notify``). With ``Type=notify`` systemd starts the units
ordered after ``serve`` only once it sent ``READY=1``, and restarts it when the pings that
``WatchdogSec=`` asks for (``WATCHDOG_USEC``) stop coming.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Optional

from . import _environment as env

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; does nothing without ``NOTIFY_SOCKET``.

    Attributes:
        watchdog_interval: Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``),
            or ``None`` when systemd asked for none (or asked another process).
    """

    def __init__(self, address: Optional[str], watchdog_interval: Optional[float] = None) -> None:
        self._address = address
        self.watchdog_interval = watchdog_interval if address else None
        self._socket: Optional[socket.socket] = None  # opened by the first notify()
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> Notifier:
        """The notifier systemd's variables ask for (read now, not at import)."""
        environ = os.environ if environ is None else environ
        address = environ.get(env.NOTIFY_SOCKET) or None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        return cls(address, _watchdog_interval(environ))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> None:
        """Send ``lines`` as one datagram; a failure is logged once and never raised."""
        if self._address is None:
            return
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                logger.warning("Cannot notify systemd at %s: %s.", self._address, exc.strerror)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(environ: Mapping[str, str]) -> Optional[float]:
    """Half the ``WATCHDOG_USEC`` systemd set for this process, as systemd recommends."""
    text = environ.get(env.WATCHDOG_USEC, "")
    pid = environ.get(env.WATCHDOG_PID, "")
    if not text.isdigit() or int(text) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # meant for another process (e.g. a shell that exec'd us is fine: same pid)
    return int(text) / 2_000_000
