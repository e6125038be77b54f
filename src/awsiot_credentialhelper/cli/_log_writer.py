"""Log lines of long-running commands written by a thread of their own, never blocking.

``serve`` and ``update`` run for months, their stderr a pipe to whatever started them. If that
reader stops reading, the pipe fills (64 KiB on Linux) and every ``write`` to it blocks: a log
call in the credential refresh or in ``serve``'s event loop would then stop both, and a device
would lose its credentials over a log collector. So records go into a bounded queue, a writer
thread copies them to stderr, and a record that finds the queue full is dropped and counted;
the count is written when the writer catches up.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

__all__ = ["BackgroundHandler"]

#: Records waiting for the writer; past this, new ones are dropped (a few MB at most).
CAPACITY = 10_000
#: How long the last lines may take at exit before they are given up (a blocked stderr).
EXIT_WAIT = 2.0


class BackgroundHandler(logging.Handler):
    """Hands records to ``target`` on a writer thread; drops and counts what does not fit."""

    def __init__(self, target: logging.Handler, capacity: int = CAPACITY) -> None:
        super().__init__()
        self._target = target
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(capacity)
        self._drop_lock = threading.Lock()
        self._dropped = 0  # records dropped since the writer last reported them
        threading.Thread(target=self._write, name="awsiot-log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._drop_lock:
                self._dropped += 1

    def flush(self) -> None:
        """Wait, at most :data:`EXIT_WAIT`, for the writer to write what is queued."""
        deadline = time.monotonic() + EXIT_WAIT
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._queue.all_tasks_done.wait(left)

    def _write(self) -> None:
        while True:
            record = self._queue.get()
            try:
                self._report_drops(record)
                self._target.handle(record)
            finally:
                self._queue.task_done()

    def _report_drops(self, before: logging.LogRecord) -> None:
        with self._drop_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            self._target.handle(
                logging.LogRecord(
                    before.name,
                    logging.WARNING,
                    __file__,
                    0,
                    "%d log lines were dropped: stderr was not being read.",
                    (dropped,),
                    None,
                )
            )
