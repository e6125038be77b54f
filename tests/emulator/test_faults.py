"""Test controls (faults, latency, clock skew), counters and the request log."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import logging
import ssl
import threading
import uuid
from typing import Any

import pytest

from awsiot_credentialhelper.emulator import Controls, Device, Emulator
from awsiot_credentialhelper.emulator import _app as app_module
from awsiot_credentialhelper.emulator._registry import MotoRegistry

from ._client import Answer, connect, credentials_path, fetch, request


def ask(emulator: Emulator, device: Device) -> Answer:
    return fetch(emulator, device)


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        pytest.param(429, "ThrottlingException", "Rate exceeded", id="429"),
        pytest.param(500, "InternalFailureException", "Internal failure", id="500"),
        pytest.param(503, "ServiceUnavailableException", "Service unavailable", id="503"),
    ],
)
def test_fail_next_then_recover(
    iot_emulator: Emulator, iot_device: Device, status: int, error_type: str, message: str
) -> None:
    iot_emulator.controls.fail_next(2, status=status)
    first, second, third = (ask(iot_emulator, iot_device) for _ in range(3))
    for answer in (first, second):
        assert (answer.status, answer.json()) == (status, {"message": message})
        assert answer.headers["x-amzn-errortype"] == error_type
    assert third.status == 200
    assert iot_emulator.stats().by_outcome == {"FAULT_RESPOND": 2, "SUCCESS": 1}
    assert iot_emulator.controls.pending_faults() == 0


def test_fail_next_with_a_custom_body(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.fail_next(status=502, body="<html>Bad Gateway</html>")
    answer = ask(iot_emulator, iot_device)
    assert (answer.status, answer.body) == (502, b"<html>Bad Gateway</html>")
    assert "x-amzn-errortype" not in answer.headers


def test_garbage_body(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.garbage_next()
    answer = ask(iot_emulator, iot_device)
    assert answer.status == 200
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError or UnicodeDecodeError
        json.loads(answer.body)


def test_truncated_body(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.truncate_next()
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        connection.request("GET", credentials_path(iot_device.role_alias))
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        assert (caught.value.expected or 0) > 0
    finally:
        connection.close()
    assert ask(iot_emulator, iot_device).status == 200


def test_disconnect_mid_response(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.disconnect_next()
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError, ssl.SSLError)):
            request(connection, credentials_path(iot_device.role_alias))
    finally:
        connection.close()
    assert ask(iot_emulator, iot_device).status == 200
    assert iot_emulator.stats().by_outcome == {"FAULT_DISCONNECT": 1, "SUCCESS": 1}
    # No status line went out, so none is recorded (0, as RequestRecord documents).
    assert [r.status for r in iot_emulator.requests()] == [0, 200]
    assert iot_emulator.stats().by_status == {0: 1, 200: 1}


def test_latency_is_added_to_every_answer(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.latency = 0.2
    assert ask(iot_emulator, iot_device).status == 200
    (record,) = iot_emulator.requests()
    assert record.handling_seconds >= 0.2  # a lower bound only: sleeping never takes less


def parse_expiration(answer: Answer) -> datetime.datetime:
    text = answer.json()["credentials"]["expiration"]
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )


def test_clock_skew_shifts_date_and_expiration(iot_emulator: Emulator, iot_device: Device) -> None:
    true_now = datetime.datetime.now(datetime.timezone.utc)
    iot_emulator.controls.clock_skew = datetime.timedelta(hours=2)
    answer = ask(iot_emulator, iot_device)
    reported = email.utils.parsedate_to_datetime(answer.headers["date"])
    assert abs(reported - (true_now + datetime.timedelta(hours=2))) < datetime.timedelta(minutes=1)
    expected_expiry = true_now + datetime.timedelta(hours=2, seconds=3600)
    assert abs(parse_expiration(answer) - expected_expiry) < datetime.timedelta(minutes=1)


def test_clock_skew_accepts_seconds(iot_emulator: Emulator) -> None:
    iot_emulator.controls.clock_skew = -90
    assert iot_emulator.controls.clock_skew == datetime.timedelta(seconds=-90)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: setattr(c, "latency", -1), id="negative-latency"),
        pytest.param(lambda c: setattr(c, "latency", 61), id="huge-latency"),
        pytest.param(lambda c: setattr(c, "clock_skew", 10**10), id="absurd-skew"),
        pytest.param(lambda c: c.fail_next(0), id="zero-count"),
        pytest.param(lambda c: c.fail_next(status=99), id="bad-status"),
    ],
)
def test_controls_refuse_nonsense(change: object) -> None:
    controls = Controls()
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        change(controls)  # type: ignore[operator]


def test_faults_are_consumed_in_order(iot_emulator: Emulator, iot_device: Device) -> None:
    controls = iot_emulator.controls
    controls.fail_next(status=503)
    controls.garbage_next()
    assert controls.pending_faults() == 2
    assert ask(iot_emulator, iot_device).status == 503
    assert ask(iot_emulator, iot_device).body.startswith(b"<html>")
    assert ask(iot_emulator, iot_device).status == 200


def test_reset_restores_normal_service(iot_emulator: Emulator, iot_device: Device) -> None:
    iot_emulator.controls.fail_next(5)
    iot_emulator.controls.latency = 0.05
    assert ask(iot_emulator, iot_device).status == 500
    iot_emulator.reset()
    assert iot_emulator.stats().total == 0
    assert iot_emulator.requests() == []
    assert iot_emulator.controls.latency == 0
    assert ask(iot_emulator, iot_device).status == 200


def test_counters_and_request_log_hold_no_secrets(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    good = ask(iot_emulator, iot_device)
    fetch(iot_emulator, iot_device, thing_name="not-my-thing")
    secret = good.json()["credentials"]["secretAccessKey"]
    token = good.json()["credentials"]["sessionToken"]

    stats = iot_emulator.stats()
    assert stats.total == 2
    assert stats.by_outcome == {"SUCCESS": 1, "INVALID_THING_NAME": 1}
    assert stats.by_status == {200: 1, 403: 1}
    assert stats.by_thing == {iot_device.thing_name: 1, "not-my-thing": 1}
    assert stats.by_role_alias == {iot_device.role_alias: 2}

    first, second = iot_emulator.requests()
    assert first.request_id == good.headers["x-amzn-requestid"]
    assert first.certificate_id == iot_device.certificate_id
    assert (first.method, first.path) == ("GET", credentials_path(iot_device.role_alias))
    assert (second.status, second.thing_name) == (403, "not-my-thing")
    log_text = repr(iot_emulator.requests()) + repr(stats)
    assert secret not in log_text
    assert token not in log_text


#: A valid policy that neither allows nor denies the credential request.
UNRELATED_POLICY = json.dumps(
    {"Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}}
)


def test_requests_stay_correct_while_moto_state_changes(
    iot_emulator: Emulator, iot_device: Device
) -> None:
    """Server threads read moto's dicts while this test's thread rewrites them."""
    iot = iot_emulator.client("iot")
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            while not stop.is_set():
                name = f"churn-{uuid.uuid4().hex[:8]}"
                iot.create_thing(thingName=name)
                iot.attach_thing_principal(thingName=name, principal=iot_device.certificate_arn)
                iot.create_policy(policyName=name, policyDocument=UNRELATED_POLICY)
                iot.attach_policy(policyName=name, target=iot_device.certificate_arn)
                iot.detach_policy(policyName=name, target=iot_device.certificate_arn)
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        statuses = {ask(iot_emulator, iot_device).status for _ in range(30)}
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive()
    assert errors == []
    assert statuses == {200}


def test_each_request_is_logged_without_secrets(
    iot_emulator: Emulator, iot_device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awsiot_credentialhelper.emulator")
    answer = ask(iot_emulator, iot_device)
    secret = answer.json()["credentials"]["secretAccessKey"]
    (line,) = [r.getMessage() for r in caplog.records if "-> 200 SUCCESS" in r.getMessage()]
    assert f"thing={iot_device.thing_name}" in line
    assert iot_device.certificate_id in line
    assert secret not in caplog.text


def _raise(*_: object, **__: object) -> Any:
    raise RuntimeError("simulated bug")


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param((app_module, "decide"), id="decide"),
        pytest.param((MotoRegistry, "assume_role"), id="moto-sts"),
    ],
)
def test_an_internal_error_is_a_journaled_500(
    iot_emulator: Emulator,
    iot_device: Device,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    broken: tuple[object, str],
) -> None:
    caplog.set_level(logging.INFO, logger="awsiot_credentialhelper.emulator")
    monkeypatch.setattr(*broken, _raise)
    answer = ask(iot_emulator, iot_device)
    assert (answer.status, answer.json()) == (500, {"message": "Internal failure"})
    assert answer.headers["x-amzn-errortype"] == "InternalFailureException"
    [record] = iot_emulator.requests()
    assert (record.status, record.outcome) == (500, "INTERNAL_FAILURE")
    assert record.request_id == answer.headers["x-amzn-requestid"]
    assert record.thing_name == iot_device.thing_name
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "simulated bug" in caplog.text
    monkeypatch.undo()
    assert ask(iot_emulator, iot_device).status == 200


def test_a_fault_header_that_cannot_be_framed_is_a_plain_500(
    iot_emulator: Emulator, iot_device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    """h11 refuses a line break in a header, where the old writer sent an extra header line."""
    iot_emulator.controls.fail_next(status=502, error_type="Oops\r\nInjected: yes")
    answer = ask(iot_emulator, iot_device)
    assert (answer.status, answer.json()) == (500, {"message": "Internal failure"})
    assert "injected" not in answer.headers
    assert answer.headers["connection"] == "close"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "Cannot send the answer (the answer cannot be framed: Illegal header value); "
        "answering a plain 500 instead"
    ]
    assert ask(iot_emulator, iot_device).status == 200


@pytest.mark.parametrize("status", [101, 204])
def test_a_fault_status_without_a_body_in_http_goes_out_as_is(
    iot_emulator: Emulator, iot_device: Device, status: int
) -> None:
    """h11 sends no 1xx final answer and no 204 body: those faults are written by hand."""
    iot_emulator.controls.fail_next(status=status, body="{}")
    connection = connect(iot_emulator, iot_device.certificate_file, iot_device.private_key_file)
    try:
        connection.request("GET", credentials_path(iot_device.role_alias))
        assert connection.getresponse().status == status
    finally:
        connection.close()
    assert ask(iot_emulator, iot_device).status == 200
