"""How long credentials can plausibly live: the one rule for every place that holds them.

Stdlib-free and in plain seconds, so that ``credential-process``'s cached path can judge its
file without importing ``datetime`` arithmetic helpers or ``typing``.
"""

from __future__ import annotations

__all__ = ["LIFETIME_SLACK_SECONDS", "MAX_LIFETIME_SECONDS", "plausible_remaining"]

#: The service's longest credential lifetime (a role alias's credentialDurationSeconds is at
#: most 43,200). An answer claiming more is not the Credential Provider's, or its clock is wrong.
MAX_LIFETIME_SECONDS = 12 * 3600.0
#: Allowance for the ``Date`` header's one-second resolution and the time an answer travels.
LIFETIME_SLACK_SECONDS = 300.0


def plausible_remaining(expiration: float, issued_at: float, server_now: float) -> float:
    """Seconds of validity left at ``server_now``, or 0.0 when the times cannot be right.

    All three are POSIX seconds by the server's clock. Implausible means: issued for longer than
    the service ever issues, not after its own issue time, or more time left than the
    credentials ever had, which happens when this device's clock went back after the fetch: the
    real time left is then unknown, so the credentials count as used up.
    """
    lifetime = expiration - issued_at
    if not 0 < lifetime <= MAX_LIFETIME_SECONDS + LIFETIME_SLACK_SECONDS:
        return 0.0
    remaining = expiration - server_now
    if remaining > lifetime + LIFETIME_SLACK_SECONDS:
        return 0.0
    return max(remaining, 0.0)
