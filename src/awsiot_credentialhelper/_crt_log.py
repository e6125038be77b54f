"""awscrt's native log on stderr, with credentials redacted.

Why not ``awscrt.io.init_logging(level, "stderr")``: botocore signs every request with awscrt's
SigV4 signer when awscrt is installed, and awscrt logs the canonical request, session token
included, at Info level and below. So awscrt writes into a pipe instead (``/dev/fd/N``, which
awscrt opens as a file path: Linux only) and a daemon thread copies it to stderr line by line
through :func:`redact`.

awscrt's logger is process-global and can be initialised once per process: the first call here
initialises it, later calls only change its level. If the application initialised it itself,
its destination is kept (unredacted: the application's choice) and only the level changes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import threading
from typing import Callable, Optional

from ._transport import CrtLogLevel, crt_log_level, init_crt_logging, set_crt_log_level
from .exceptions import ConfigurationError

__all__ = ["REDACTED", "redact", "send_to_stderr"]

logger = logging.getLogger(__name__)

#: What a secret value becomes.
REDACTED = "<redacted>"
_PEM_REDACTED = "<redacted PEM>"

# --- redaction: pure functions ---------------------------------------------------------------

# Names whose value is a secret, as header (``name: value``), query or ``key=value`` (``name=``),
# JSON or repr (``"name": "value"``). ``credential`` and ``signature`` are SigV4's
# ``Credential=``/``Signature=`` (a signature replays its request for minutes).
_SENSITIVE_FIELDS = (
    r"x-amz-security-token|x-amz-signature|x-amz-credential|aws_session_token"
    r"|aws_secret_access_key|session[_-]?token|secret[_-]?access[_-]?key|secret[_-]?key"
    r"|signature|credential|token|password|passphrase|user[_-]?pin|pin"
)
# The lookahead on the names' first letters lets the regex skip most positions at once (6x).
_FIRST_LETTERS = "".join(sorted({name[0] for name in _SENSITIVE_FIELDS.split("|")}))
_SECRET_VALUE = re.compile(
    rf"""(?i)(?=[{_FIRST_LETTERS}])(\b(?:{_SENSITIVE_FIELDS})["']?[ \t]*[:=][ \t]*["']?)"""
    r"""[^\s"',;&]+"""
)
# A secret access key is 40 base64 characters; session tokens and PEM lines are longer.
_LONG_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40,}={0,2}")
_HEX = frozenset("0123456789abcdefABCDEF")
_PEM_INLINE = re.compile(r"-----BEGIN[^-\r\n]*-----.*?-----END[^-\r\n]*-----")
_PEM_BEGIN = re.compile(r"-----BEGIN[^-\r\n]*-----")
_PEM_END = re.compile(r"-----END[^-\r\n]*-----")
# What may sit between a BEGIN and an END line: base64, blanks, RFC 1421 headers (Proc-Type:).
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s]*|[A-Za-z][A-Za-z0-9-]*:.*\s*")


def _long_run(match: re.Match[str]) -> str:
    """Redact a long base64 run, except hex: SHA-256 digests are what one debugs signing with."""
    return match.group(0) if _HEX.issuperset(match.group(0)) else REDACTED


def _redact_values(text: str) -> str:
    text = _SECRET_VALUE.sub(rf"\g<1>{REDACTED}", text)
    return _LONG_BASE64.sub(_long_run, text)


class _LineRedactor:
    """Redacts one line at a time, remembering whether a PEM block is still open.

    Lines keep their line endings. A block's lines are dropped from its BEGIN to its END line;
    a line that cannot belong to a PEM body (a new log line) closes the block early, so a
    BEGIN without an END never swallows the rest of the log.
    """

    def __init__(self) -> None:
        self._in_pem = False
        self._held_newline = ""

    def line(self, line: str) -> str:
        """``line`` redacted; ``""`` for a line inside a PEM block."""
        if not self._in_pem:
            return self._outside_pem(line)
        end = _PEM_END.search(line)
        if end:
            self._in_pem = False
            return self._outside_pem(line[end.end() :])
        if _PEM_BODY.fullmatch(line):
            return ""
        self._in_pem = False
        return self._held_newline + self._outside_pem(line)

    def text(self, text: str) -> str:
        """``text``, any number of lines, redacted.

        Without PEM in sight, one pass over the whole text: no pattern but PEM's crosses a
        line end, and one regex call costs less than a Python loop over the lines.
        """
        if not self._in_pem and "-----BEGIN" not in text:
            return _redact_values(text)
        return "".join(self.line(line) for line in text.splitlines(keepends=True))

    def finish(self) -> str:
        """The end of a block left open when the text ends."""
        newline, self._held_newline = (self._held_newline if self._in_pem else ""), ""
        self._in_pem = False
        return newline

    def _outside_pem(self, line: str) -> str:
        line = _PEM_INLINE.sub(_PEM_REDACTED, line)
        begin = _PEM_BEGIN.search(line)
        if begin is None:
            return _redact_values(line)
        self._in_pem = True
        self._held_newline = line[len(line.rstrip("\r\n")) :]
        return _redact_values(line[: begin.start()]) + _PEM_REDACTED


def redact(text: str) -> str:
    """``text`` with every credential it may contain replaced by ``<redacted>``.

    Replaced: the values of session-token, secret-key, password and PIN fields, of SigV4's
    ``Credential=`` and ``Signature=``, of ``X-Amz-Security-Token``/``-Signature``/
    ``-Credential`` headers and query parameters; whole PEM blocks (``<redacted PEM>``), even
    across lines; any other run of 40 or more base64 characters, which may be key material
    (hex-only runs, such as SHA-256 digests, stay). Redacting twice changes nothing more.
    """
    redactor = _LineRedactor()
    return redactor.text(text) + redactor.finish()


# --- the byte stream from awscrt --------------------------------------------------------------

# awscrt's lines are short; one with no newline after this many bytes is dropped rather than
# split, since a split could cut a secret in two pieces that no pattern recognises.
_MAX_LINE = 1 << 20
_TOO_LONG = b"<an awscrt log line over 1 MiB was dropped>\n"


class _LineStream:
    """Turns the bytes awscrt writes into whole, redacted lines.

    awscrt writes through a buffered ``FILE``, so a read can end in the middle of a line;
    the start of that line waits here for its end.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._dropping = False
        self._redactor = _LineRedactor()

    def feed(self, chunk: bytes) -> bytes:
        """The redacted lines that ``chunk`` completes (possibly none)."""
        self._partial += chunk
        out = b""
        end = self._partial.rfind(b"\n")
        if end >= 0:
            complete = bytes(self._partial[: end + 1])
            del self._partial[: end + 1]
            if self._dropping:
                self._dropping = False
                out = _TOO_LONG
                complete = complete[complete.find(b"\n") + 1 :]
            out += self._redact(complete)
        if len(self._partial) > _MAX_LINE:
            self._partial.clear()
            self._dropping = True
        return out

    def finish(self) -> bytes:
        """What is left, redacted; an unfinished last line comes out ended.

        The newline keeps whatever is written next (by Python at exit, say) on its own line.
        """
        rest = self._redact(bytes(self._partial)) + self._redactor.finish().encode()
        if self._dropping:
            rest = _TOO_LONG
        self._partial.clear()
        self._dropping = False
        return rest if rest.endswith(b"\n") or not rest else rest + b"\n"

    def _redact(self, data: bytes) -> bytes:
        return self._redactor.text(data.decode("utf-8", "replace")).encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Forwarder:
    """Copies a pipe to ``out_fd`` through :class:`_LineStream`, on a daemon thread.

    The thread must keep reading whatever happens: when the pipe is full, awscrt's logging
    thread blocks. So output errors (stderr closed, a broken pipe) drop the output, never
    the thread; only a pipe that cannot be read any more (closed, or every writer gone) ends
    it, calling ``on_close``. Reads are non-blocking and made under ``_lock``, so
    :meth:`drain` can empty the pipe from another thread without reordering lines.
    ``os.read``, ``os.write`` and ``poll`` release the GIL; the Python work per read is a
    few regex passes over at most 16 KiB (well under a millisecond each).
    """

    _CHUNK = 1 << 14

    def __init__(
        self, read_fd: int, out_fd: int = 2, on_close: Optional[Callable[[], object]] = None
    ) -> None:
        self._read_fd = read_fd
        self._out_fd = out_fd
        self._on_close = on_close
        self._lines = _LineStream()
        self._lock = threading.Lock()
        os.set_blocking(read_fd, False)
        self.thread = threading.Thread(
            target=self._run, name="awsiot-credentialhelper-awscrt-log", daemon=True
        )

    def start(self) -> None:
        """Start the reader thread."""
        self.thread.start()

    def drain(self) -> None:
        """Copy out everything the pipe holds now, including an unfinished last line."""
        with self._lock:
            self._copy_available()
            self._emit(self._lines.finish())

    def _run(self) -> None:
        import select  # noqa: PLC0415 - only the log needs it

        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        open_ = True
        while open_:
            poller.poll()
            try:
                with self._lock:
                    open_ = self._copy_available()
            except Exception:  # a dead reader would block awscrt: keep going
                logger.debug("the awscrt log reader recovered from an error", exc_info=True)
        if self._on_close is not None:
            self._on_close()

    def _copy_available(self) -> bool:
        """Copy what can be read without waiting; False once the pipe cannot be read."""
        while True:
            try:
                chunk = os.read(self._read_fd, self._CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            self._emit(self._lines.feed(chunk))

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        # stderr closed, a broken pipe, a full disk: the line is lost, the reader is not.
        with contextlib.suppress(OSError):
            _write_all(self._out_fd, data)


# --- flushing awscrt's FILE --------------------------------------------------------------------

# awscrt's file writer never flushes, and C stdio buffers a pipe in 4 KiB blocks: without a
# flush, a quiet log's last lines would wait for 4 KiB more, and be lost at exit. The only
# handle on awscrt's FILE is C's fflush(NULL), which flushes every output stream (harmless:
# they would be flushed later anyway). It runs on its own thread: it takes each FILE's lock,
# and awscrt's logging thread holds that lock while it waits for room in the pipe, which
# only the reader thread can make.
_FLUSH_INTERVAL = 0.2  # seconds; how late a line may show
_EXIT_FLUSH_WAIT = 2.0  # seconds; bounded, so that a stuck stream cannot hang the exit


def _c_fflush() -> Optional[Callable[[], None]]:
    """C's ``fflush(NULL)``, or None if this platform's C library cannot be loaded."""
    try:
        import ctypes  # noqa: PLC0415 - only the log needs it

        fflush = ctypes.CDLL(None).fflush
    except (ImportError, OSError, AttributeError):
        return None
    fflush.argtypes = [ctypes.c_void_p]
    fflush.restype = ctypes.c_int
    return lambda: fflush(None)


class _Flusher:
    """Calls ``flush`` every :data:`_FLUSH_INTERVAL`, and on request, on a daemon thread."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._changed = threading.Condition()
        self._requested = False
        self._started = 0
        self._finished = 0
        self.thread = threading.Thread(
            target=self._run, name="awsiot-credentialhelper-awscrt-log-flush", daemon=True
        )

    def start(self) -> None:
        """Start the flushing thread."""
        self.thread.start()

    def flush_now(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for a flush that starts after this call."""
        with self._changed:
            wanted = self._started + 1
            self._requested = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._finished >= wanted, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._requested, _FLUSH_INTERVAL)
                self._requested = False
                self._started += 1
                number = self._started
            with contextlib.suppress(Exception):
                self._flush()
            with self._changed:
                self._finished = number
                self._changed.notify_all()


# --- process-global state -----------------------------------------------------------------------

#: Where a pipe's write end can be opened by path (the same directory on Linux).
_FD_DIRECTORIES = ("/dev/fd", "/proc/self/fd")

_lock = threading.Lock()
_state = "off"  # "off", "ours" (our pipe), "theirs" (the application's), "unavailable"


def send_to_stderr(level: object) -> None:
    """Send awscrt's log, at ``level`` and above, to stderr with credentials redacted.

    The first call in a process sets awscrt's logger up; later ones change its level. If the
    application set it up itself, its destination is kept and only the level changes. Where
    awscrt cannot write into a pipe (outside Linux), awscrt's log stays off: a warning says so
    once, since the unredacted alternative would show session tokens.

    Raises:
        ConfigurationError: ``level`` is not an ``awscrt.io.LogLevel``.
    """
    global _state  # noqa: PLW0603 - awscrt's logger is process-global; so is this
    crt_level = _log_level(level)
    with _lock:
        if _state == "off":
            _state = _set_up(crt_level)
        elif _state == "unavailable":
            pass
        elif _set_level(crt_level):
            logger.debug("awscrt's log level is now %s", crt_level.name)
        else:
            logger.debug("awscrt's log level stays: changing it needs awscrt 0.28.4 or newer")


def _log_level(level: object) -> CrtLogLevel:
    try:
        return crt_log_level(level)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"awscrt_log_level must be an awscrt.io.LogLevel, not {level!r}."
        ) from None


def _set_level(level: CrtLogLevel) -> bool:
    return set_crt_log_level(level)


def _set_up(level: CrtLogLevel) -> str:
    """Initialise awscrt's logger into a redacting pipe; the new state."""
    if _set_level(level):
        logger.debug(
            "awscrt's log was already initialised by the application: keeping its "
            "destination, which this library does not redact; level %s",
            level.name,
        )
        return "theirs"
    directory = _fd_directory()
    if directory is None:
        return _unavailable("this platform cannot open a pipe by path (/dev/fd)")
    read_fd, write_fd = os.pipe()
    try:
        init_crt_logging(level, f"{directory}/{write_fd}")
    except RuntimeError as exc:
        os.close(read_fd)
        if _set_level(level):  # another thread initialised it in the meantime
            return "theirs"
        return _unavailable(f"awscrt could not open the pipe ({type(exc).__name__})")
    finally:
        os.close(write_fd)  # awscrt opened its own descriptor on the pipe
    _start_forwarding(read_fd)
    logger.debug("awscrt's log goes to stderr, redacted; level %s", level.name)
    return "ours"


def _fd_directory() -> Optional[str]:
    if not sys.platform.startswith("linux"):
        return None
    return next((path for path in _FD_DIRECTORIES if os.path.isdir(path)), None)


def _unavailable(reason: str) -> str:
    logger.warning(
        "awscrt_log_level is ignored: awscrt's log shows session tokens, and %s to redact "
        "them, so it stays off.",
        reason,
    )
    return "unavailable"


def _start_forwarding(read_fd: int) -> None:
    # If the pipe can no longer be read, quiet awscrt rather than let the pipe fill.
    forwarder = _Forwarder(read_fd, on_close=lambda: _set_level(CrtLogLevel.NoLogs))
    forwarder.start()
    fflush = _c_fflush()
    flusher = None
    if fflush is not None:
        flusher = _Flusher(fflush)
        flusher.start()
    atexit.register(_at_exit, forwarder, flusher)


def _at_exit(forwarder: _Forwarder, flusher: Optional[_Flusher]) -> None:
    """Quiet awscrt, then copy out the log's last lines.

    Daemon threads stop during finalisation; lines awscrt logged after that would fill the
    pipe and block awscrt's logging thread, and C's exit() flush with it. So the level drops
    to NoLogs first: what was logged before the exit comes out, nothing after.
    """
    _set_level(CrtLogLevel.NoLogs)
    if flusher is not None:
        flusher.flush_now(_EXIT_FLUSH_WAIT)
    forwarder.drain()
