"""The ``credential-process`` cache: one 0600 JSON file per settings hash, shared by processes.

The AWS CLI runs ``credential_process`` for every command, so the second command must not pay
for a TLS handshake (or an HSM signature). Entries are written to a temporary file and renamed
into place, so a reader never sees half a file; a ``flock`` on a sibling lock file makes one
process fetch while the others wait and then read its result. Imports stay light on purpose:
the cached path must not load awscrt, botocore or cryptography.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time

from .._lifetime import plausible_remaining
from . import _environment as env
from ._options import Settings, is_pkcs11_uri

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Optional

    from .._credentials import Credentials

__all__ = [
    "CACHE_LIFETIME_FRACTION",
    "CACHE_MAX_MARGIN",
    "CACHE_MIN_MARGIN",
    "CacheEntry",
    "ProcessCache",
    "cache_directory",
    "cache_key",
    "refresh_margin",
]

#: Never hand out cached credentials with less than this many seconds left: the AWS CLI signs
#: every request of a command with them, and a long ``s3 cp`` must not outlive them.
CACHE_MIN_MARGIN = 5 * 60.0
#: Refresh once a quarter of the lifetime is left (15 min of a 1 h alias, matching botocore's
#: advisory window, so botocore does not run us again to refresh what we just gave it) ...
CACHE_LIFETIME_FRACTION = 0.25
#: ... but not earlier than an hour before expiry (12 h credentials are used for 11 h).
CACHE_MAX_MARGIN = 60 * 60.0

#: Stop waiting for another process's fetch after its timeout plus this, then fetch anyway.
LOCK_GRACE = 5.0
_MAX_ENTRY_BYTES = 64 * 1024
#: First line of a cache file; the second is the exact document to print.
_MAGIC = "awsiot-credentialhelper-cache/1"


def refresh_margin(lifetime: float) -> float:
    """Seconds of validity a cached entry must have left to be served."""
    return max(CACHE_MIN_MARGIN, min(lifetime * CACHE_LIFETIME_FRACTION, CACHE_MAX_MARGIN))


def cache_directory(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$AWSIOT_CREDENTIAL_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, plus our name."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(env.CLI_CACHE_DIR)
    if explicit:
        return os.path.expanduser(explicit)
    base = environ.get(env.XDG_CACHE_HOME) or os.path.expanduser("~/.cache")
    return os.path.join(base, "awsiot-credentialhelper")


def cache_key(settings: Settings) -> str:
    """A hash of everything that decides which credentials come back.

    Files are identified by path, size and modification time, so replacing a certificate or
    key starts a new entry. The hash hides the settings; PINs and passwords are not part of it.
    """
    parts: list[str] = []
    for name in (
        "endpoint",
        "role_alias",
        "thing_name",
        "ca",
        "no_verify_peer",
        "pkcs11_lib",
        "slot_id",
        "token_label",
        "key_label",
    ):
        parts.append(f"{name}={getattr(settings, name)!r}")
    for name in ("certificate", "private_key"):
        parts.append(f"{name}={_material_identity(getattr(settings, name))!r}")
    return _sha256_hex("\n".join(parts))[:40]


def _sha256_hex(text: str) -> str:
    # Runs on the cached path, where importing hashlib would load OpenSSL: about 4 ms, a fifth of
    # a bare Python start (bench/cli_startup.py). The builtin module computes the same digest; it
    # is _sha2 since 3.12, and builds that leave it out (FIPS-minded ones) have only hashlib.
    try:
        if sys.version_info >= (3, 12):
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
        else:
            from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        from hashlib import sha256  # noqa: PLC0415
    return str(sha256(text.encode()).hexdigest())


def _material_identity(value: Optional[str]) -> Any:
    if value is None:
        return None
    if "-----BEGIN" in value or is_pkcs11_uri(value):
        return _sha256_hex(value)
    path = os.path.abspath(os.path.expanduser(value))
    try:
        info = os.stat(path)
    except OSError:
        return (path, None)
    return (path, info.st_size, info.st_mtime_ns)


class CacheEntry:
    """Cached credentials: the exact ``credential_process`` JSON, and what freshness needs.

    Times are POSIX seconds; ``clock_skew`` is how far the server's clock was ahead of ours.
    (A plain class, not a NamedTuple: ``typing`` would double the cached path's start-up.)
    """

    __slots__ = ("clock_skew", "document", "expiration", "issued_at")

    def __init__(
        self, document: str, expiration: float, issued_at: float, clock_skew: float
    ) -> None:
        self.document = document
        self.expiration = expiration
        self.issued_at = issued_at
        self.clock_skew = clock_skew

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CacheEntry):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:  # the document holds secrets: never shown
        return f"CacheEntry(expiration={self.expiration}, issued_at={self.issued_at})"

    def _fields(self) -> tuple[str, float, float, float]:
        return (self.document, self.expiration, self.issued_at, self.clock_skew)

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> CacheEntry:
        import json  # noqa: PLC0415 - not needed on the cached path

        return cls(
            json.dumps(credentials.to_process_output()),
            credentials.expiration.timestamp(),
            credentials.issued_at.timestamp(),
            credentials.clock_skew.total_seconds(),
        )

    def fresh(self, now: float) -> bool:
        """Whether enough validity is left (judged by the server's clock) to serve it.

        An entry whose times cannot be right (see :func:`plausible_remaining`), e.g. because
        this device's clock went back since it was written, is never fresh: it is fetched anew.
        """
        remaining = plausible_remaining(self.expiration, self.issued_at, now + self.clock_skew)
        return remaining > refresh_margin(self.expiration - self.issued_at)

    def serialize(self) -> bytes:
        header = f"{_MAGIC} {self.expiration!r} {self.issued_at!r} {self.clock_skew!r}"
        return f"{header}\n{self.document}\n".encode()

    @classmethod
    def parse(cls, data: bytes) -> Optional[CacheEntry]:
        """Parse a cache file; ``None`` for anything unexpected (it is then replaced)."""
        try:
            header, document, rest = data.decode("utf-8").split("\n")
            magic, expiration, issued_at, skew = header.split(" ")
            entry = cls(document, float(expiration), float(issued_at), float(skew))
        except ValueError:
            return None
        if magic != _MAGIC or rest or not document.startswith('{"Version": 1, '):
            return None
        return entry


class ProcessCache:
    """One entry file and its lock file in a private directory."""

    def __init__(self, directory: str, key: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"{key}.cache")
        self.lock_path = os.path.join(directory, f"{key}.lock")

    @classmethod
    def open(cls, settings: Settings) -> Optional[ProcessCache]:
        """The cache for ``settings``, or ``None`` (with a warning) when its directory is unsafe."""
        directory = cache_directory()
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            info = os.lstat(directory)
        except OSError as exc:
            _warn(f"cannot use the cache directory {directory!r} ({exc.strerror}); not caching.")
            return None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            _warn(
                f"the cache directory {directory!r} is not a directory owned by this user; "
                "not caching."
            )
            return None
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IRWXO):
            _warn(
                f"the cache directory {directory!r} is open to other users: run chmod 700 on "
                "it. Not caching."
            )
            return None
        return cls(directory, cache_key(settings))

    def load(self) -> Optional[CacheEntry]:
        """The entry, if the file exists, is ours, private, and parses."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            info = os.fstat(descriptor)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.geteuid()
                or info.st_mode & 0o077
                or info.st_size > _MAX_ENTRY_BYTES
            ):
                return None
            data = os.read(descriptor, _MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(descriptor)
        return CacheEntry.parse(data)

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` atomically (the shared private-file writer); warn if that fails.

        Temporary files that a killed run left behind, secrets and all, are removed first.
        """
        # Imported here: the cached path never stores, and must not pay for these imports.
        from .._private_file import remove_stale_temporaries, write_private_file  # noqa: PLC0415

        remove_stale_temporaries(self.path)
        try:
            write_private_file(self.path, entry.serialize(), existing=None)
        except OSError as exc:
            _warn(f"cannot write the cache file {self.path!r} ({exc.strerror}); not cached.")

    def lock(self, timeout: float) -> CacheLock:
        return CacheLock(self.lock_path, timeout)


class CacheLock:
    """An exclusive ``flock`` that gives up after ``timeout`` seconds rather than hang.

    By default giving up means going on unlocked (a cache only saves work). With
    ``required=True`` it raises :class:`CredentialFileError` instead: a file that several
    writers rewrite whole must never be written unlocked, or one writer's changes are lost.
    """

    def __init__(self, path: str, timeout: float, *, required: bool = False) -> None:
        self._path = path
        self._timeout = timeout
        self._required = required
        self._descriptor: Optional[int] = None

    def __enter__(self) -> CacheLock:
        try:
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            self._give_up(f"cannot open the lock file {self._path!r} ({exc.strerror})")
            return self
        deadline = time.monotonic() + self._timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(descriptor)
                    self._give_up(
                        f"another process has held the lock {self._path!r} for over "
                        f"{self._timeout:.0f} s"
                    )
                    return self
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            self._descriptor = descriptor
            return self

    def _give_up(self, why: str) -> None:
        if self._required:
            from ..exceptions import CredentialFileError  # noqa: PLC0415 - off the cached path

            raise CredentialFileError(f"{why}; nothing was written. Try again.")
        _warn(f"{why}; going on unlocked.")

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None


def _warn(message: str) -> None:
    sys.stderr.write(f"awsiot-credentialhelper: warning: {message}\n")
