"""``update``: keep a profile of the AWS shared credentials file filled with fresh credentials.

Each write renders the whole new file in a pure function (``_credentials_file``), writes it to
a 0600 temporary file in the same directory and renames it into place, all under an ``flock``:
readers never see half a file, and concurrent writers never lose each other's profiles.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional

from .. import _environment as env
from .._clock import utcnow
from .._credentials import Credentials, format_expiration
from .._refresh import DEFAULT_REFRESH_POLICY, CredentialCache
from ..exceptions import CredentialFileError, CredentialHelperError
from ._cache import CacheLock
from ._credentials_file import credential_values, render_credentials_file
from ._options import add_common_options, build_provider, resolve, setup_logging

if TYPE_CHECKING:
    import argparse

__all__ = ["configure", "credentials_file_path", "run", "write_credentials"]

logger = logging.getLogger(__name__)

#: How long to wait for another writer's lock before giving up on this write.
LOCK_TIMEOUT = 10.0
#: First wait after a failed refresh; doubles up to :data:`MAX_RETRY_DELAY`.
RETRY_DELAY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(minutes=5)

DESCRIPTION = """\
Write temporary credentials into a profile of the AWS shared credentials file
(--credentials-file, else $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) and keep
them fresh until stopped (SIGTERM or Ctrl-C), refreshing with half their lifetime left.
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
    with CacheLock(os.path.join(directory, f".{name}.lock"), lock_timeout, required=True):
        existing = _read(path)
        rendered = render_credentials_file(existing, profile, values, origin=f"The file {path!r}")
        temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            descriptor = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(rendered.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            _remove(temporary)
            raise CredentialFileError(f"Cannot write {path!r}: {exc.strerror}.") from None


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise CredentialFileError(f"Cannot read {path!r}: {exc.strerror}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from ._credentials_file import MalformedCredentialsFileError  # noqa: PLC0415

        raise MalformedCredentialsFileError(
            f"The file {path!r} is not UTF-8 text; it was left untouched."
        ) from None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        logger.debug("Could not remove %s.", path)


def run(args: Any) -> int:
    """Write once (``--once``) or until SIGTERM/SIGINT; 0 on a clean stop."""
    setup_logging(
        args.verbose, quiet_level=logging.WARNING if args.once else logging.INFO, timestamps=True
    )
    settings = resolve(args)
    path = credentials_file_path(args.credentials_file)
    profile = args.credentials_profile or settings.profile or "default"
    # Refuse a broken file before any network traffic.
    render_credentials_file(
        _read(path), profile, credential_values("x", "x", "x", "x"), origin=f"The file {path!r}"
    )
    with build_provider(settings) as provider:
        if args.once:
            credentials = provider.fetch()
            write_credentials(path, profile, credentials)
            logger.info("Wrote %s to [%s] of %s.", credentials.access_key_id, profile, path)
            return 0
        cache = CredentialCache(provider.fetch, clock=utcnow, background=False)
        return _keep_fresh(cache, path, profile)


def _keep_fresh(cache: CredentialCache, path: str, profile: str) -> int:
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    written: Optional[Credentials] = None
    retry = RETRY_DELAY
    try:
        while not stop.is_set():
            try:
                credentials = cache.get()
            except CredentialHelperError as error:
                if written is None:
                    raise  # the first fetch failing is a setup problem: say so and exit
                logger.error("Refreshing failed; retrying in %s. Cause: %s", retry, error)  # noqa: TRY400
                stop.wait(retry.total_seconds())
                retry = min(retry * 2, MAX_RETRY_DELAY)
                continue
            if credentials is not written:
                write_credentials(path, profile, credentials)
                written = credentials
                logger.info(
                    "Wrote %s to [%s] of %s, valid until %s.",
                    credentials.access_key_id,
                    profile,
                    path,
                    format_expiration(credentials.expiration),
                )
                retry = RETRY_DELAY
                due = _due_in(credentials)
            else:  # an advisory refresh failed; the written credentials are still good
                due = retry
                retry = min(retry * 2, MAX_RETRY_DELAY)
            stop.wait(max(due.total_seconds(), 1.0))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    logger.info("Stopped.")
    return 0


def _due_in(credentials: Credentials) -> timedelta:
    """Time until the refresh policy wants new credentials."""
    margin = DEFAULT_REFRESH_POLICY.advisory_margin(credentials.lifetime)
    return credentials.remaining(utcnow()) - margin
