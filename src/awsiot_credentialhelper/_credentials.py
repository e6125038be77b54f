"""The immutable value one fetch produces, and its standard serialisations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, Optional

__all__ = ["Credentials", "format_expiration", "parse_expiration"]

#: Credentials' fields in the order its constructor takes them (``__slots__`` is sorted).
_FIELDS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "expiration",
    "issued_at",
    "clock_skew",
)


class Credentials:
    """Temporary AWS credentials from the IoT Credential Provider: immutable, compared by value.

    Times are timezone-aware UTC. ``issued_at`` is the server's time when the answer was made
    (from its ``Date`` header, or the local clock without one), and ``clock_skew`` is how far
    the server's clock was ahead of this device's (negative when behind); refresh decisions use
    ``local now + clock_skew`` so that a device without a real-time clock still refreshes on time.
    The ``repr`` holds neither the secret access key nor the session token.

    (A hand-written class rather than a dataclass: importing ``dataclasses`` costs a one-shot
    ``credential-process`` run about 10 ms.)
    """

    __slots__ = (
        "access_key_id",
        "clock_skew",
        "expiration",
        "issued_at",
        "secret_access_key",
        "session_token",
    )
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    issued_at: datetime
    clock_skew: timedelta

    def __init__(  # noqa: PLR0917 - positional, as the dataclass it replaces was
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str,
        expiration: datetime,
        issued_at: datetime,
        clock_skew: timedelta = timedelta(0),
    ) -> None:
        for name, moment in (("expiration", expiration), ("issued_at", issued_at)):
            if moment.tzinfo is None:
                raise ValueError(f"Credentials.{name} must be timezone-aware, got {moment!r}")
        assign = object.__setattr__  # our own __setattr__ refuses
        assign(self, "access_key_id", access_key_id)
        assign(self, "secret_access_key", secret_access_key)
        assign(self, "session_token", session_token)
        assign(self, "expiration", expiration)
        assign(self, "issued_at", issued_at)
        assign(self, "clock_skew", clock_skew)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Credentials are immutable: cannot set {name!r}.")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Credentials are immutable: cannot delete {name!r}.")

    def _values(self) -> tuple[object, ...]:
        """The fields in ``__init__``'s order."""
        return tuple(getattr(self, name) for name in _FIELDS)

    def __reduce__(self) -> tuple[type[Credentials], tuple[object, ...]]:
        # copy and pickle rebuild through __init__, since __setattr__ refuses.
        return Credentials, self._values()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, expiration={self.expiration!r}, "
            f"issued_at={self.issued_at!r}, clock_skew={self.clock_skew!r})"
        )

    @property
    def lifetime(self) -> timedelta:
        """How long these credentials were valid for when issued."""
        return self.expiration - self.issued_at

    def remaining(self, now: datetime) -> timedelta:
        """Time left before expiry at local time ``now``, judged by the server's clock."""
        return self.expiration - (now + self.clock_skew)

    def to_botocore_metadata(self) -> dict[str, str]:
        """The dict botocore's ``RefreshableCredentials.create_from_metadata`` expects."""
        return {
            "access_key": self.access_key_id,
            "secret_key": self.secret_access_key,
            "token": self.session_token,
            "expiry_time": format_expiration(self.expiration),
        }

    def to_process_output(self) -> dict[str, Any]:
        """botocore's ``credential_process`` JSON document."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": format_expiration(self.expiration),
        }

    def to_container_output(self) -> dict[str, Any]:
        """The JSON the container-credentials and IMDS protocols serve."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": format_expiration(self.expiration),
        }


def format_expiration(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z``, the form every AWS SDK parses."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiration(text: str) -> Optional[datetime]:
    """Parse the service's ISO 8601 ``expiration``; ``None`` if it is not one."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
