"""The awscrt error table: every failure name becomes the class that says who must act."""

from __future__ import annotations

import pytest

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._endpoint import parse_endpoint
from awsiot_credentialhelper._transport import translate_crt_error


@pytest.mark.parametrize(
    ("name", "error_class", "retryable"),
    [
        ("AWS_IO_DNS_INVALID_NAME", errors.ConnectError, True),
        ("AWS_IO_DNS_QUERY_FAILED", errors.ConnectError, True),
        ("AWS_IO_SOCKET_CONNECTION_REFUSED", errors.ConnectError, True),
        ("AWS_IO_SOCKET_TIMEOUT", errors.ConnectTimeoutError, True),
        ("AWS_IO_SOCKET_NO_ROUTE_TO_HOST", errors.ConnectError, True),
        ("AWS_IO_TLS_NEGOTIATION_TIMEOUT", errors.ConnectTimeoutError, True),
        ("AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE", errors.TlsHandshakeError, False),
        ("AWS_ERROR_HTTP_PROXY_CONNECT_FAILED", errors.ConnectError, True),
        ("AWS_ERROR_HTTP_CONNECTION_CLOSED", errors.ConnectionClosedError, True),
        ("AWS_IO_SOCKET_CLOSED", errors.ConnectionClosedError, True),
        ("AWS_ERROR_HTTP_PROTOCOL_ERROR", errors.ConnectionClosedError, True),
        ("AWS_ERROR_SOMETHING_NEW", errors.NetworkError, True),
    ],
)
def test_crt_errors_map_to_our_classes(
    name: str, error_class: type[errors.NetworkError], retryable: bool
) -> None:
    error = translate_crt_error(name, parse_endpoint("h.credentials.iot.us-east-1.amazonaws.com"))
    assert type(error) is error_class
    assert error.retryable is retryable
    assert error.crt_error == name
    assert name in str(error)
    assert error.endpoint == "h.credentials.iot.us-east-1.amazonaws.com"
