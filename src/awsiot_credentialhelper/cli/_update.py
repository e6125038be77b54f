"""``update``: keep a profile of the AWS shared credentials file filled with fresh credentials.

Each write renders the whole new file in a pure function (``_credentials_file``), writes it to
a 0600 temporary file in the same directory and renames it into place, all under an ``flock``:
readers never see half a file, and concurrent writers never lose each other's profiles.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import stat
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._clock import utcnow
from .._credentials import Credentials, format_expiration
from .._pem import read_at_most
from .._private_file import remove_stale_temporaries, write_private_file
from .._refresh import DEFAULT_REFRESH_POLICY, RefreshingCredentials
from ..exceptions import CredentialFileError, CredentialHelperError
from . import _environment as env
from ._cache import CacheLock
from ._credentials_file import (
    MalformedCredentialsFileError,
    credential_values,
    render_credentials_file,
)
from ._options import add_common_options, build_provider, resolve, setup_logging
from ._signals import ignore_signals_while_exiting

if TYPE_CHECKING:
    import argparse

__all__ = ["configure", "credentials_file_path", "run", "write_credentials"]

logger = logging.getLogger(__name__)

#: How long to wait for another writer's lock before giving up on this write.
LOCK_TIMEOUT = 10.0
#: A credentials file larger than this is refused, not read into memory (a big one holds a
#: few thousand profiles in well under 1 MiB).
MAX_FILE_SIZE = 16 * 1024 * 1024

DESCRIPTION = """\
Write temporary credentials into a profile of the AWS shared credentials file
(--credentials-file, else $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) and keep
them fresh until stopped (SIGTERM or Ctrl-C), refreshing with half their lifetime left;
SIGHUP refreshes at once (after a certificate rotation: changed certificate and key files
are read again before each fetch).
Only aws_access_key_id, aws_secret_access_key, aws_session_token and aws_expiration of that
profile change; every other profile, key and comment stays exactly as it was. A file that
cannot be parsed is never overwritten.

Note: SDKs read this file once per session and never re-read it, so this suits the AWS CLI
and short-lived scripts; long-running programs should use `serve` instead."""

EXAMPLES = """\
examples:
  $ awsiot-credentialhelper update --profile device --once
  $ aws s3 ls --profile device

  # keep [iot] fresh in a custom file, settings from the environment
  $ awsiot-credentialhelper update --credentials-profile iot --credentials-file ./creds
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare this command's options on its subparser."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    add_common_options(parser)
    group = parser.add_argument_group("output")
    group.add_argument(
        "--credentials-file",
        metavar="PATH",
        help=f"file to write (default ${env.AWS_SHARED_CREDENTIALS_FILE} or ~/.aws/credentials)",
    )
    group.add_argument(
        "--credentials-profile",
        metavar="NAME",
        help="profile to write (default: the --profile name, else 'default')",
    )
    group.add_argument("--once", action="store_true", help="write once and exit")
    parser.set_defaults(run=run)


def credentials_file_path(explicit: Optional[str]) -> str:
    """The file to write, following symlinks so that the link itself is kept."""
    chosen = explicit or os.environ.get(env.AWS_SHARED_CREDENTIALS_FILE) or "~/.aws/credentials"
    return os.path.realpath(os.path.expanduser(chosen))


def write_credentials(
    path: str, profile: str, credentials: Credentials, *, lock_timeout: float = LOCK_TIMEOUT
) -> None:
    """Set ``profile``'s keys in ``path`` atomically, under a lock, keeping everything else.

    The file keeps its owner, group and mode (see ``_private_file.private_mode``); a new file
    is 0600.

    Raises:
        MalformedCredentialsFileError: the existing file cannot be parsed (left untouched).
        CredentialFileError: the file or its directory cannot be read or written.
    """
    values = credential_values(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        format_expiration(credentials.expiration),
    )
    directory, name = os.path.split(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise CredentialFileError(f"Cannot create {directory!r}: {exc.strerror}.") from None
    lock_path = os.path.join(directory, f".{name}.lock")
    with CacheLock(lock_path, lock_timeout, required=True):
        existing, info = _read(path)
        _give_lock_to_owner(lock_path, info)
        rendered = render_credentials_file(existing, profile, values, origin=f"The file {path!r}")
        # Under the lock no writer of ours is between creating and renaming a temporary file.
        remove_stale_temporaries(path)
        try:
            write_private_file(path, rendered.encode("utf-8"), existing=info)
        except OSError as exc:
            raise CredentialFileError(f"Cannot write {path!r}: {exc.strerror}.") from None


def _give_lock_to_owner(lock_path: str, owner: Optional[os.stat_result]) -> None:
    """Give a lock file this process made (as root) to the credentials file's owner.

    Otherwise that user could no longer open the lock, so no longer update their own file.
    A lock file someone else made keeps its owner.
    """
    if owner is None:
        return
    try:
        info = os.lstat(lock_path)
        ours = info.st_uid == os.geteuid()
        if ours and (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(lock_path, owner.st_uid, owner.st_gid, follow_symlinks=False)
    except OSError as exc:
        logger.debug("Cannot give %s to the file's owner: %s.", lock_path, exc.strerror)


def _read(path: str) -> tuple[str, Optional[os.stat_result]]:
    """The file's text and status, or ``""`` and ``None`` if there is no file yet.

    Opened without blocking and checked before reading: a FIFO would hang the read, and a
    device such as /dev/zero would never end it.

    Raises:
        MalformedCredentialsFileError: the file is not UTF-8.
        CredentialFileError: it cannot be read, is not a regular file, or is too large.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise CredentialFileError(f"Cannot read {path!r}: {exc.strerror}.") from None
    try:
        info = os.fstat(descriptor)
        _check_size_and_type(path, info)
        data = read_at_most(descriptor, MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise CredentialFileError(f"Cannot read {path!r}: {exc.strerror}.") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_FILE_SIZE:  # it grew while we read it
        _check_size_and_type(path, None)
    try:
        return data.decode("utf-8"), info
    except UnicodeDecodeError:
        raise MalformedCredentialsFileError(
            f"The file {path!r} is not UTF-8 text; it was left untouched."
        ) from None


def _check_size_and_type(path: str, info: Optional[os.stat_result]) -> None:
    """Refuse what cannot be a credentials file (``info`` is None: it is over the limit)."""
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise CredentialFileError(
            f"{path!r} is not a regular file: point --credentials-file (or "
            f"{env.AWS_SHARED_CREDENTIALS_FILE}) at a credentials file."
        )
    if info is None or info.st_size > MAX_FILE_SIZE:
        raise CredentialFileError(
            f"{path!r} is larger than {MAX_FILE_SIZE // 2**20} MiB, too large for a credentials "
            "file: check the path. It was left untouched."
        )


def _log_written(credentials: Credentials, profile: str, path: str) -> None:
    """Say what was written: the access key id and expiry, never the secret key or token."""
    logger.info(
        "Wrote %s to [%s] of %s, valid until %s.",
        credentials.access_key_id,
        profile,
        path,
        format_expiration(credentials.expiration),
    )


def run(args: Any) -> int:
    """Write once (``--once``) or until SIGTERM/SIGINT; 0 on a clean stop."""
    setup_logging(args.verbose, quiet_level=logging.INFO, timestamps=True, background=True)
    settings = resolve(args)
    path = credentials_file_path(args.credentials_file)
    profile = args.credentials_profile or settings.profile or "default"
    # Refuse a broken file before any network traffic.
    render_credentials_file(
        _read(path)[0], profile, credential_values("x", "x", "x", "x"), origin=f"The file {path!r}"
    )
    with build_provider(settings) as provider:
        if args.once:
            credentials = provider.fetch()
            write_credentials(path, profile, credentials)
            _log_written(credentials, profile, path)
            return 0
        return _keep_fresh(
            RefreshingCredentials(provider.fetch, clock=utcnow),
            path,
            profile,
            rotation_due=lambda: provider.rotation_retry_due,
        )


def _keep_fresh(
    cache: RefreshingCredentials,
    path: str,
    profile: str,
    *,
    rotation_due: Optional[Callable[[], bool]] = None,
) -> int:
    """Write each new set of credentials the refreshing cache gets, until SIGTERM or SIGINT;
    SIGHUP has the cache refresh at once, and so do certificate and key files refused at a
    fetch (a rotation half done) once they change again.

    The cache's background thread fetches and retries (the same schedule as ``serve``); this
    loop only writes. A write that fails (a full disk, a file made unparseable meanwhile) is
    retried with the same backoff; the first fetch being refused (not a network error) is a
    setup problem and ends the command.
    """
    signals = _Signals(cache)
    previous = signals.install()
    writer = _Writer(path, profile)
    cache.start()
    try:
        while not signals.stopping:
            signals.refresh_if_signalled()
            if rotation_due is not None and rotation_due():
                logger.info("The certificate or key file changed again: refreshing now.")
                cache.refresh_now()
            credentials = cache.wait_for_change(writer.written, timeout=_POLL)
            if credentials is None:
                _raise_if_refused(cache.last_error)
            elif credentials is not writer.written:
                signals.sleep(writer.write(credentials))
    finally:
        cache.stop()
        if signals.stopping:
            ignore_signals_while_exiting()
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    logger.info("Stopped.")
    return 0


class _Signals:
    """SIGTERM and SIGINT stop the writing loop; SIGHUP has the cache refresh at once.

    The handlers only set plain attributes, and the loop acts on them within :data:`_POLL`. A
    handler runs in the main thread between two bytecodes, perhaps while that thread holds the
    lock of an event (``cache.stop`` and ``refresh_now`` set one, and so would a handler that
    set a ``threading.Event``), or inside another handler that does: waiting for that lock
    there would never end (seen with SIGTERM, SIGINT and SIGHUP in quick succession).
    """

    def __init__(self, cache: RefreshingCredentials) -> None:
        self._cache = cache
        self.stopping = False
        self._hangups = 0
        self._handled = 0

    def install(self) -> dict[int, Any]:
        """Install the handlers; return the ones they replace."""
        previous: dict[int, Any] = {
            signum: signal.signal(signum, self._on_stop)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        return previous

    def _on_stop(self, *_: object) -> None:
        self.stopping = True

    def _on_hangup(self, *_: object) -> None:
        self._hangups += 1

    def refresh_if_signalled(self) -> None:
        if self._handled != self._hangups:
            self._handled = self._hangups
            logger.info("SIGHUP: refreshing the credentials now.")
            self._cache.refresh_now()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less once a stop is asked for."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _POLL))


#: How often the writing loop looks at the stop flag while it waits.
_POLL = 1.0


def _raise_if_refused(error: Optional[BaseException]) -> None:
    """Before anything was written: a refusal is a setup problem; a network error may pass."""
    if isinstance(error, CredentialHelperError) and not error.retryable:
        raise error


class _Writer:
    """Writes credentials to the file, backing off after a failed write."""

    def __init__(self, path: str, profile: str) -> None:
        self.path = path
        self.profile = profile
        self.written: Optional[Credentials] = None
        self._failures = 0
        self._backoff = DEFAULT_REFRESH_POLICY.backoff()
        self._rng = random.Random()  # noqa: S311 - backoff jitter

    def write(self, credentials: Credentials) -> float:
        """Write ``credentials``; return how long to wait before trying again (0 if written)."""
        try:
            write_credentials(self.path, self.profile, credentials)
        except CredentialFileError as error:
            self._failures += 1
            delay = self._backoff.delay(self._failures, self._rng)
            log = logger.warning if self._failures == 1 else logger.debug
            log(
                "Writing %s failed (%d in a row); retrying in %.0f s. Cause: %s",
                self.path,
                self._failures,
                delay,
                error,
            )
            return delay
        self.written = credentials
        self._failures = 0
        _log_written(credentials, self.profile, self.path)
        return 0.0
