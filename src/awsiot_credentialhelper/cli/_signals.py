"""What ``serve`` and ``update`` do with signals once they are stopping."""

from __future__ import annotations

import signal

__all__ = ["ignore_signals_while_exiting"]

#: Signals the long-running commands handle: stop (SIGTERM, SIGINT) and reload (SIGHUP).
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def ignore_signals_while_exiting() -> None:
    """Ignore further stop and reload signals: the command has stopped and is exiting.

    Why: systemd, or a user pressing Ctrl-C twice, may signal again. Restoring the previous
    handlers would let such a signal kill the process before its last log lines are written
    (exit status 143 instead of 0), and so would Python's own exit, which resets the handlers
    it installed to the default action (but leaves ignored signals ignored).
    """
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)
