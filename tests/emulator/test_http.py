"""Request-head parsing and response rendering, as pure functions."""

from __future__ import annotations

import pytest

from awsiot_credentialhelper.emulator._decide import Decision, Outcome
from awsiot_credentialhelper.emulator._http import (
    HttpError,
    HttpResponse,
    json_response,
    parse_head,
    render_head,
)
from awsiot_credentialhelper.emulator._registry import IssuedCredentials


def test_parse_a_credentials_request() -> None:
    request = parse_head(
        b"GET /role-aliases/my%2Dalias/credentials?x=1 HTTP/1.1\r\n"
        b"Host: localhost\r\nX-Amzn-IoT-ThingName:  dev1 \r\nAccept: */*"
    )
    assert request.method == "GET"
    assert request.path == "/role-aliases/my-alias/credentials"
    assert request.headers["x-amzn-iot-thingname"] == "dev1"
    assert request.keep_alive
    assert request.content_length == 0


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("HTTP/1.1", "", True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keep_alive(version: str, connection: str, keep_alive: bool) -> None:
    head = f"GET / {version}\r\nConnection: {connection}".encode()
    assert parse_head(head).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(b"GARBAGE", 400, id="no-spaces"),
        pytest.param(b"GET /", 400, id="no-version"),
        pytest.param(b"GET / HTTP/2.0", 400, id="http2"),
        pytest.param(b"G(T / HTTP/1.1", 400, id="bad-method"),
        pytest.param(b"GET http://x/ HTTP/1.1", 400, id="absolute-form"),
        pytest.param(b"GET / HTTP/1.1\r\nno colon", 400, id="bad-header"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Name: x", 400, id="space-in-name"),
    ],
)
def test_parse_refuses_malformed_heads(head: bytes, status: int) -> None:
    with pytest.raises(HttpError) as caught:
        parse_head(head)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Content-Length: -1", 400),
        (b"Content-Length: lots", 400),
        (b"Transfer-Encoding: chunked", 501),
    ],
)
def test_content_length_problems(header: bytes, status: int) -> None:
    request = parse_head(b"GET / HTTP/1.1\r\n" + header)
    with pytest.raises(HttpError) as caught:
        _ = request.content_length
    assert caught.value.status == status


def test_render_json_response() -> None:
    response = json_response(403, {"message": "Access Denied"}, (("x-amzn-RequestId", "r1"),))
    head = render_head(response).decode()
    assert head.startswith("HTTP/1.1 403 Forbidden\r\n")
    assert "Content-Type: application/json\r\n" in head
    assert "x-amzn-RequestId: r1\r\n" in head
    assert f"Content-Length: {len(response.body)}\r\n" in head
    assert head.endswith("\r\n\r\n")
    assert response.body == b'{"message":"Access Denied"}'


def test_render_announces_a_given_length_and_close() -> None:
    response = HttpResponse(status=599, headers=(), body=b"abc", close=True)
    head = render_head(response, content_length=10).decode()
    assert head.startswith("HTTP/1.1 599 Unknown\r\n")
    assert "Content-Length: 10\r\n" in head
    assert "Connection: close\r\n" in head


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"


def test_reprs_hide_credentials() -> None:
    credentials = IssuedCredentials("ASIAEXAMPLE", SECRET, TOKEN)
    payload = {"credentials": {"secretAccessKey": SECRET, "sessionToken": TOKEN}}
    for value in (
        json_response(200, payload),
        credentials,
        Decision(Outcome.SUCCESS, "c0ffee", credentials, 3600),
    ):
        text = repr(value)
        assert SECRET not in text
        assert TOKEN not in text
    assert "status=200" in repr(json_response(200, payload))
