"""The Credential Provider's HTTP exchange as pure functions: build the request, read the reply.

Nothing here touches the network, so every status, header and malformed body can be tested
directly; the transport carries bytes to and from these functions.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, Optional

from ._credentials import Credentials, parse_expiration
from ._lifetime import LIFETIME_SLACK_SECONDS, MAX_LIFETIME_SECONDS
from .exceptions import (
    AccessDeniedError,
    CertificateRejectedError,
    CredentialDurationError,
    ExpiredCredentialsError,
    ImplausibleCredentialsError,
    InvalidThingNameError,
    ProviderError,
    RoleAliasNotFoundError,
    RoleAssumptionError,
    ServiceUnavailableError,
    ThrottledError,
    UnexpectedResponseError,
)

__all__ = [
    "CLOCK_SKEW_TOLERANCE",
    "Request",
    "Response",
    "build_request",
    "parse_response",
    "validate_role_alias",
    "validate_thing_name",
]

logger = logging.getLogger(__name__)

#: The ``Date`` header has one-second resolution and the request takes time; below this the
#: difference between clocks is noise, above it we trust the server's clock and say so.
CLOCK_SKEW_TOLERANCE = timedelta(seconds=5)

# ASCII classes matched in full: ``\w`` takes any Unicode letter and ``$`` a trailing newline,
# which would reach the request line and fail as "not valid HTTP".
_ROLE_ALIAS = re.compile(r"[A-Za-z0-9_=,@-]{1,128}")
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_MAX_MESSAGE = 200  # characters of a non-JSON body quoted in an error

# The service's documented refusals, by (status, message): our class for each.
_KNOWN_REFUSALS: dict[tuple[int, str], type[ProviderError]] = {
    (403, "certificate is invalid on this endpoint"): CertificateRejectedError,
    (403, "invalid thing name passed"): InvalidThingNameError,
    (403, "access denied"): AccessDeniedError,
    (404, "role alias does not exist"): RoleAliasNotFoundError,
    (400, "unable to assume the role, or the role to assume does not exist"): RoleAssumptionError,
}


class Request(NamedTuple):
    """One GET to the provider."""

    path: str
    headers: tuple[tuple[str, str], ...]


class Response(NamedTuple):
    """What came back: header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def validate_role_alias(role_alias: str) -> str:
    """Return ``role_alias`` if it is a valid alias name (it goes into the URL path unescaped)."""
    if not _ROLE_ALIAS.fullmatch(role_alias):
        raise ValueError(
            f"Role alias {role_alias!r} is not valid: 1-128 letters, digits or '_=,@-'."
        )
    return role_alias


def validate_thing_name(thing_name: str) -> str:
    """Return ``thing_name`` if AWS IoT could have such a thing (it goes into a header)."""
    if not _THING_NAME.fullmatch(thing_name):
        raise ValueError(f"Thing name {thing_name!r} is not valid: 1-128 letters, digits or ':_-'.")
    return thing_name


def build_request(
    *, host_header: str, role_alias: str, thing_name: Optional[str], user_agent: str
) -> Request:
    """The GET that asks for ``role_alias``'s credentials (``Host`` is required: without it the
    service answers 500)."""
    headers = [
        ("Host", host_header),
        ("Accept", "application/json"),
        ("User-Agent", user_agent),
    ]
    if thing_name:
        headers.append(("x-amzn-iot-thingname", thing_name))
    return Request(path=f"/role-aliases/{role_alias}/credentials", headers=tuple(headers))


def parse_response(
    response: Response,
    *,
    local_now: datetime,
    endpoint: str,
    role_alias: str,
    thing_name: Optional[str] = None,
) -> Credentials:
    """Turn the provider's answer into :class:`Credentials`, or raise the matching error.

    ``local_now`` is when the answer arrived by this device's clock; the server's ``Date``
    header, when present, measures how far off that clock is.

    Raises:
        ProviderError: a subclass per documented refusal, throttling and 5xx, and
            :class:`UnexpectedResponseError` for anything else (never a JSON or key error).
        ImplausibleCredentialsError: by the server's own ``Date``, the credentials live longer
            than the service ever issues them for.
        ExpiredCredentialsError: the credentials were already expired by the server's clock.
    """
    if response.status != 200:
        raise refusal(response, endpoint=endpoint, role_alias=role_alias, thing_name=thing_name)
    dated = _server_time(response.headers)
    server_now = dated or local_now
    skew = server_now - local_now
    if abs(skew) < CLOCK_SKEW_TOLERANCE:
        skew = timedelta(0)
        server_now = local_now
    else:
        logger.warning(
            "This device's clock is %+.0f s off the server's (Date: %s); refreshing by the "
            "server's clock. Set the device clock (NTP) to silence this.",
            -skew.total_seconds(),
            response.headers.get("date"),
        )
    fields = _credential_fields(response, endpoint=endpoint, role_alias=role_alias)
    expiration = parse_expiration(fields["expiration"])
    if expiration is None:
        raise _unexpected(response, endpoint, role_alias, "its 'expiration' is not ISO 8601")
    expiration = _plausible_expiration(
        expiration, server_now, dated=dated is not None, endpoint=endpoint, role_alias=role_alias
    )
    return Credentials(
        access_key_id=fields["accessKeyId"],
        secret_access_key=fields["secretAccessKey"],
        session_token=fields["sessionToken"],
        expiration=expiration,
        issued_at=server_now,
        clock_skew=skew,
    )


def _plausible_expiration(
    expiration: datetime, server_now: datetime, *, dated: bool, endpoint: str, role_alias: str
) -> datetime:
    """``expiration`` if the answer's times can be right, else a typed refusal.

    With a ``Date`` header the lifetime is measured by the server's own clock, so an answer
    claiming more than the service's maximum is refused. Without one, only this device's clock
    is left to measure with, and it may be decades off (boards without a real-time clock): the
    credentials are then held for at most the service's maximum from now.
    """
    said = f"{endpoint} issued credentials for {role_alias!r} that expire at {_iso(expiration)}"
    if expiration <= server_now:
        judge = "the server's own time" if dated else "this device's time (no Date header)"
        raise ExpiredCredentialsError(
            f"{said}, before {judge} {_iso(server_now)}; the service's clock or a proxy is broken."
        )
    longest = timedelta(seconds=MAX_LIFETIME_SECONDS)
    if expiration - server_now <= longest + timedelta(seconds=LIFETIME_SLACK_SECONDS):
        return expiration
    if dated:
        raise ImplausibleCredentialsError(
            f"{said}, {_humanize(expiration - server_now)} after the answer's own Date "
            f"{_iso(server_now)}; the service never issues credentials for more than 12 hours, "
            "so the server's clock or a proxy is broken. Refused; a later answer may be sane."
        )
    logger.warning(
        "%s, %s from now by this device's clock, and the answer has no Date header to check "
        "that against; holding them for at most 12 hours.",
        said,
        _humanize(expiration - server_now),
    )
    return server_now + longest


def _iso(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _humanize(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24 / 365.25:.0f} years" if hours > 24 * 365 else f"{hours:.1f} hours"


def refusal(
    response: Response, *, endpoint: str, role_alias: str, thing_name: Optional[str] = None
) -> ProviderError:
    """The typed error for a non-200 answer; never fails on odd bodies."""
    message = _error_message(response.body)
    error_class = _KNOWN_REFUSALS.get((response.status, message.strip().lower()))
    if error_class is None:
        if response.status == 400 and "maxsessionduration" in message.lower():
            error_class = CredentialDurationError
        elif response.status == 429:
            error_class = ThrottledError
        elif 500 <= response.status <= 599:
            error_class = ServiceUnavailableError
        else:
            error_class = UnexpectedResponseError
    return error_class(
        status_code=response.status,
        message=message,
        endpoint=endpoint,
        role_alias=role_alias,
        error_type=response.headers.get("x-amzn-errortype"),
        request_id=response.headers.get("x-amzn-requestid"),
        thing_name=thing_name,
    )


def _error_message(body: bytes) -> str:
    """The service's ``message``, or a short printable excerpt of whatever the body is."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("message", "Message", "errorMessage"):
            value = document.get(key)
            if isinstance(value, str):
                return value
    text = body[: _MAX_MESSAGE * 4].decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if not text:
        return "(empty body)"
    return text[:_MAX_MESSAGE] + ("..." if len(text) > _MAX_MESSAGE else "")


def _credential_fields(response: Response, *, endpoint: str, role_alias: str) -> dict[str, str]:
    try:
        document: Any = json.loads(response.body)
    except ValueError:
        raise _unexpected(response, endpoint, role_alias, "the body is not JSON") from None
    credentials = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(credentials, dict):
        raise _unexpected(response, endpoint, role_alias, "it has no 'credentials' object")
    wanted = ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")
    missing = [key for key in wanted if not isinstance(credentials.get(key), str)]
    if missing or not all(credentials[key] for key in wanted):
        raise _unexpected(
            response, endpoint, role_alias, f"'credentials' lacks {', '.join(missing) or 'values'}"
        )
    return {key: credentials[key] for key in wanted}


def _unexpected(
    response: Response, endpoint: str, role_alias: str, why: str
) -> UnexpectedResponseError:
    # Never quote a 200 body: it may hold a secret key.
    return UnexpectedResponseError(
        status_code=response.status,
        message=f"HTTP 200 but {why}",
        endpoint=endpoint,
        role_alias=role_alias,
        request_id=response.headers.get("x-amzn-requestid"),
    )


def _server_time(headers: Mapping[str, str]) -> Optional[datetime]:
    """The ``Date`` header as an aware datetime; None when absent or unreadable.

    Reads IMF-fixdate (what RFC 9110 has servers send) and the obsolete RFC 850 and asctime
    forms it still has clients accept; a date without a zone is UTC, as all HTTP dates are.
    """
    value = headers.get("date")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):  # TypeError: Python 3.9's "unreadable"
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
