"""The immutable value one fetch produces, and its standard serialisations."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

__all__ = ["Credentials", "format_expiration", "parse_expiration"]


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Temporary AWS credentials from the IoT Credential Provider: immutable, compared by value.

    Times are timezone-aware UTC. ``issued_at`` is the server's time when the answer was made
    (from its ``Date`` header, or the local clock without one), and ``clock_skew`` is how far
    the server's clock was ahead of this device's (negative when behind); refresh decisions use
    ``local now + clock_skew`` so that a device without a real-time clock still refreshes on time.
    The ``repr`` holds neither the secret access key nor the session token.
    """

    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    session_token: str = dataclasses.field(repr=False)
    expiration: datetime
    issued_at: datetime
    clock_skew: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        for name, moment in (("expiration", self.expiration), ("issued_at", self.issued_at)):
            if moment.tzinfo is None:
                raise ValueError(f"Credentials.{name} must be timezone-aware, got {moment!r}")

    @property
    def lifetime(self) -> timedelta:
        """How long these credentials were valid for when issued."""
        return self.expiration - self.issued_at

    def remaining(self, now: datetime) -> timedelta:
        """Time left before expiry at local time ``now``, judged by the server's clock."""
        return self.expiration - (now + self.clock_skew)

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
