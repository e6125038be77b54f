"""Reading the provider's answers: every documented refusal, and everything malformed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._protocol import Response, build_request, parse_response

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"


def _ok(expiration: str = "2026-01-02T04:04:05Z", **headers: str) -> Response:
    body = {
        "credentials": {
            "accessKeyId": "ASIAEXAMPLE",
            "secretAccessKey": SECRET,
            "sessionToken": TOKEN,
            "expiration": expiration,
        }
    }
    return Response(200, dict(headers), json.dumps(body).encode())


def _parse(response: Response) -> object:
    return parse_response(
        response, local_now=NOW, endpoint="ep:443", role_alias="alias", thing_name="thing"
    )


def test_success_gives_aware_credentials() -> None:
    credentials = parse_response(_ok(), local_now=NOW, endpoint="ep", role_alias="alias")
    assert credentials.access_key_id == "ASIAEXAMPLE"
    assert credentials.secret_access_key == SECRET
    assert credentials.session_token == TOKEN
    assert credentials.expiration == datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone.utc)
    assert credentials.lifetime == timedelta(hours=1)
    assert credentials.clock_skew == timedelta(0)
    assert SECRET not in repr(credentials)
    assert TOKEN not in repr(credentials)


@pytest.mark.parametrize(
    ("status", "message", "error_class", "hint"),
    [
        (
            403,
            "Certificate is invalid on this endpoint",
            errors.CertificateRejectedError,
            "registered and ACTIVE",
        ),
        (403, "Invalid thing name passed", errors.InvalidThingNameError, "attach-thing-principal"),
        (403, "Access Denied", errors.AccessDeniedError, "iot:AssumeRoleWithCertificate"),
        (404, "Role alias does not exist", errors.RoleAliasNotFoundError, "describe-role-alias"),
        (
            400,
            "Unable to assume the role, or the role to assume does not exist",
            errors.RoleAssumptionError,
            "credentials.iot.amazonaws.com",
        ),
        (
            400,
            "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the "
            "role",
            errors.CredentialDurationError,
            "max-session-duration",
        ),
        (429, "Rate exceeded", errors.ThrottledError, "throttled"),
        (500, "Internal failure", errors.ServiceUnavailableError, "retried"),
        (503, "Service Unavailable", errors.ServiceUnavailableError, "retried"),
        (418, "I'm a teapot", errors.UnexpectedResponseError, "describe-endpoint"),
        (403, "Forbidden by a corporate proxy", errors.UnexpectedResponseError, "proxy"),
    ],
    ids=lambda value: value if isinstance(value, (int, str)) and len(str(value)) < 12 else None,
)
def test_each_refusal_has_its_class_attributes_and_hint(
    status: int, message: str, error_class: type[errors.ProviderError], hint: str
) -> None:
    response = Response(
        status,
        {"x-amzn-errortype": "AccessDeniedException", "x-amzn-requestid": "req-123"},
        json.dumps({"message": message}).encode(),
    )
    with pytest.raises(error_class) as caught:
        _parse(response)
    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, ValueError)
    assert (error.status_code, error.message) == (status, message)
    assert (error.error_type, error.request_id) == ("AccessDeniedException", "req-123")
    assert (error.endpoint, error.role_alias, error.thing_name) == ("ep:443", "alias", "thing")
    assert hint in str(error)
    assert "req-123" in str(error)
    assert error.retryable == (status == 429 or status >= 500)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        pytest.param(b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", id="html"),
        pytest.param(b'{"message": "Access Den', '{"message": "Access Den', id="truncated-json"),
        pytest.param(b"", "(empty body)", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", "garbage", id="binary"),
        pytest.param(b'["not", "an", "object"]', '["not", "an", "object"]', id="json-list"),
        pytest.param(b'{"message": 42}', '{"message": 42}', id="message-not-text"),
        pytest.param(b"x" * 5000, "...", id="huge"),
    ],
)
def test_odd_error_bodies_never_crash_the_mapping(body: bytes, shown: str) -> None:
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        _parse(Response(502, {}, body))
    assert shown in caught.value.message
    assert len(caught.value.message) <= 210


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(b"not json", "not JSON", id="not-json"),
        pytest.param(b"{}", "no 'credentials'", id="no-credentials"),
        pytest.param(b'{"credentials": []}', "no 'credentials'", id="credentials-not-object"),
        pytest.param(
            json.dumps({"credentials": {"accessKeyId": "A", "secretAccessKey": SECRET}}).encode(),
            "lacks sessionToken, expiration",
            id="missing-fields",
        ),
        pytest.param(
            json.dumps(
                {
                    "credentials": {
                        "accessKeyId": "A",
                        "secretAccessKey": SECRET,
                        "sessionToken": TOKEN,
                        "expiration": "tomorrow",
                    }
                }
            ).encode(),
            "not ISO 8601",
            id="bad-expiration",
        ),
    ],
)
def test_malformed_success_is_unexpected_and_never_quotes_secrets(body: bytes, why: str) -> None:
    with pytest.raises(errors.UnexpectedResponseError, match=why) as caught:
        _parse(Response(200, {"x-amzn-requestid": "r1"}, body))
    assert SECRET not in str(caught.value)
    assert caught.value.request_id == "r1"


def test_server_date_measures_clock_skew(caplog: pytest.LogCaptureFixture) -> None:
    server_now = NOW + timedelta(hours=2)  # this device's clock is two hours behind
    response = _ok(expiration="2026-01-02T05:19:05Z", date=format_datetime(server_now, usegmt=True))
    credentials = parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")
    assert credentials.clock_skew == timedelta(hours=2)
    assert credentials.issued_at == server_now
    assert credentials.lifetime == timedelta(minutes=15)
    assert credentials.remaining(NOW) == timedelta(minutes=15)
    assert "-7200 s off the server's" in caplog.text


@pytest.mark.parametrize(
    "date",
    [
        "Fri, 02 Jan 2026 05:04:05 GMT",  # IMF-fixdate, what servers send
        "Friday, 02-Jan-26 05:04:05 GMT",  # RFC 850, obsolete
        "Fri Jan  2 05:04:05 2026",  # asctime, obsolete
    ],
    ids=["imf-fixdate", "rfc850", "asctime"],
)
def test_every_http_date_form_is_read(date: str) -> None:
    response = _ok(expiration="2026-01-02T05:19:05Z", date=date)
    credentials = parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")
    assert credentials.clock_skew == timedelta(hours=2)


@pytest.mark.parametrize(
    "date",
    ["Fri, 32 Jan 2026 05:04:05 GMT", "Fri, 02 Jan 2026 25:04:05 GMT", "yesterday", "0"],
)
def test_an_unreadable_date_is_ignored(date: str) -> None:
    credentials = parse_response(_ok(date=date), local_now=NOW, endpoint="ep", role_alias="a")
    assert (credentials.issued_at, credentials.clock_skew) == (NOW, timedelta(0))


def test_small_differences_are_noise() -> None:
    response = _ok(date=format_datetime(NOW + timedelta(seconds=2), usegmt=True))
    credentials = parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")
    assert credentials.clock_skew == timedelta(0)


def test_credentials_expired_by_the_servers_clock_are_an_error_not_a_refresh_loop() -> None:
    server_now = NOW + timedelta(hours=3)
    response = _ok(date=format_datetime(server_now, usegmt=True))  # expires NOW + 1 h
    with pytest.raises(errors.ExpiredCredentialsError, match="before the server's own time"):
        parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")


def test_request_carries_host_and_optional_thing_header() -> None:
    request = build_request(
        host_header="h:8443", role_alias="alias", thing_name="t", user_agent="ua"
    )
    assert request.path == "/role-aliases/alias/credentials"
    assert ("Host", "h:8443") in request.headers
    assert ("x-amzn-iot-thingname", "t") in request.headers
    without = build_request(host_header="h", role_alias="a", thing_name=None, user_agent="ua")
    assert all(name != "x-amzn-iot-thingname" for name, _ in without.headers)


def _dated(expiration: datetime, date: datetime) -> Response:
    return _ok(
        expiration=expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        date=format_datetime(date, usegmt=True),
    )


@pytest.mark.parametrize(
    ("expiration", "date"),
    [
        pytest.param(datetime(9999, 12, 31, tzinfo=timezone.utc), NOW, id="year-9999"),
        pytest.param(
            NOW + timedelta(hours=1),
            datetime(1970, 1, 1, tzinfo=timezone.utc),
            id="date-1970-expiring-in-an-hour",
        ),
        pytest.param(NOW + timedelta(hours=12, minutes=6), NOW, id="just-over-12-hours"),
    ],
)
def test_a_lifetime_beyond_the_services_maximum_by_its_own_date_is_refused(
    expiration: datetime, date: datetime
) -> None:
    with pytest.raises(errors.ImplausibleCredentialsError, match="more than 12 hours") as caught:
        parse_response(_dated(expiration, date), local_now=NOW, endpoint="ep", role_alias="a")
    assert caught.value.retryable  # a later answer may be sane


def test_twelve_hours_by_the_servers_date_are_accepted() -> None:
    expiration = NOW + timedelta(hours=12)
    credentials = parse_response(
        _dated(expiration, NOW), local_now=NOW, endpoint="ep", role_alias="a"
    )
    assert credentials.expiration == expiration
    assert credentials.lifetime == timedelta(hours=12)


def test_without_a_date_credentials_are_held_for_at_most_twelve_hours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = _ok(expiration="9999-12-31T00:00:00Z")
    credentials = parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")
    assert credentials.expiration == NOW + timedelta(hours=12)
    assert credentials.lifetime == timedelta(hours=12)
    assert "no Date header" in caplog.text


def test_expired_without_a_date_names_the_devices_clock() -> None:
    response = _ok(expiration=(NOW - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    with pytest.raises(errors.ExpiredCredentialsError, match="this device's time") as caught:
        parse_response(response, local_now=NOW, endpoint="ep", role_alias="a")
    assert caught.value.retryable
