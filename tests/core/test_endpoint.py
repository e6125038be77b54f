"""Endpoint forms and the region each one names."""

from __future__ import annotations

from typing import Optional

import pytest

from awsiot_credentialhelper._endpoint import parse_endpoint
from awsiot_credentialhelper.exceptions import InvalidEndpointError


@pytest.mark.parametrize(
    ("text", "host", "port", "region"),
    [
        pytest.param(
            "c2abc123.credentials.iot.us-west-2.amazonaws.com",
            "c2abc123.credentials.iot.us-west-2.amazonaws.com",
            443,
            "us-west-2",
            id="standard",
        ),
        pytest.param(
            "data.credentials.iot-fips.us-gov-west-1.amazonaws.com",
            "data.credentials.iot-fips.us-gov-west-1.amazonaws.com",
            443,
            "us-gov-west-1",
            id="fips-govcloud",
        ),
        pytest.param(
            "cl2wym6klmhng.credentials.iot.cn-north-1.amazonaws.com.cn",
            "cl2wym6klmhng.credentials.iot.cn-north-1.amazonaws.com.cn",
            443,
            "cn-north-1",
            id="china",
        ),
        pytest.param(
            "https://ABC.credentials.iot.eu-central-1.amazonaws.com/",
            "abc.credentials.iot.eu-central-1.amazonaws.com",
            443,
            "eu-central-1",
            id="url-and-case",
        ),
        pytest.param("localhost:8443", "localhost", 8443, None, id="local-port"),
        pytest.param("127.0.0.1:9000", "127.0.0.1", 9000, None, id="ipv4-port"),
        pytest.param("[::1]:8443", "::1", 8443, None, id="ipv6-port"),
    ],
)
def test_parse_endpoint(text: str, host: str, port: int, region: Optional[str]) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.host, endpoint.port, endpoint.region) == (host, port, region)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("a1b2c3-ats.iot.us-east-1.amazonaws.com", "data endpoint", id="data-ats"),
        pytest.param("a3lk6rh9gr0knb.ats.iot.cn-north-1.amazonaws.com.cn", "data", id="data-china"),
        pytest.param("s3.us-east-1.amazonaws.com", "not a Credential Provider", id="other-aws"),
        pytest.param("", "not a host name", id="empty"),
        pytest.param("https://host/path", "not a host name", id="path"),
    ],
)
def test_bad_endpoints_say_how_to_find_the_right_one(text: str, fragment: str) -> None:
    with pytest.raises(InvalidEndpointError, match=fragment) as caught:
        parse_endpoint(text)
    assert "describe-endpoint --endpoint-type iot:CredentialProvider" in str(caught.value)


def test_port_out_of_range() -> None:
    with pytest.raises(InvalidEndpointError, match="outside 1-65535"):
        parse_endpoint("host:99999")


def test_local_endpoints_name_no_region() -> None:
    """boto3_session then takes boto3's region settings, else us-east-1 (as 1.x did)."""
    assert parse_endpoint("x.credentials.iot.us-west-2.amazonaws.com").region == "us-west-2"
    assert parse_endpoint("localhost:8443").region is None


@pytest.mark.parametrize(
    ("text", "authority"),
    [("[::1]:8443", "[::1]:8443"), ("localhost", "localhost"), ("h:443", "h")],
)
def test_authority_is_the_host_header(text: str, authority: str) -> None:
    assert parse_endpoint(text).authority == authority


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("127.0.0.1:8443", True),
        ("[::1]:8443", True),
        ("[2001:db8::1]", True),
        ("localhost", False),
        ("1.2.3", False),
        ("256.1.1.1", False),
        ("1.2.3.4.example.com", False),
    ],
)
def test_ip_literals(text: str, literal: bool) -> None:
    assert parse_endpoint(text).is_ip_literal is literal


@pytest.mark.parametrize(
    ("text", "region"),
    [
        pytest.param(
            "my_endpoint.credentials.iot.us-west-2.amazonaws.com", "us-west-2", id="1x-docs"
        ),
        pytest.param(
            "your_endpoint.credentials.iot.us-west-2.amazonaws.com", "us-west-2", id="yours"
        ),
        pytest.param(
            "cicd_testing.credentials.iot.us-west-2.amazonaws.com", "us-west-2", id="1x-ci"
        ),
        pytest.param(
            "My_Endpoint.credentials.iot-fips.us-east-1.amazonaws.com", "us-east-1", id="fips"
        ),
        pytest.param("x_y.credentials.iot.cn-north-1.amazonaws.com.cn", "cn-north-1", id="china"),
    ],
)
def test_any_single_label_prefix_is_accepted(text: str, region: str) -> None:
    """Prefixes are not ours to judge: DNS says whether they exist (constructed, never fetched)."""
    assert parse_endpoint(text).region == region


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(".credentials.iot.us-west-2.amazonaws.com", "empty label", id="empty-prefix"),
        pytest.param("a..credentials.iot.us-west-2.amazonaws.com", "empty label", id="empty-label"),
        pytest.param("my endpoint.credentials.iot.us-west-2.amazonaws.com", "space", id="space"),
        pytest.param("user@x.credentials.iot.us-west-2.amazonaws.com", "'@'", id="at"),
        pytest.param("a/b.credentials.iot.us-west-2.amazonaws.com", "not a host name", id="slash"),
        pytest.param("ünïcode.credentials.iot.us-west-2.amazonaws.com", "ASCII", id="non-ascii"),
        pytest.param("bad\udcff.credentials.iot.us-west-2.amazonaws.com", "ASCII", id="non-utf-8"),
        pytest.param("localhost\n:8443", "control", id="newline"),
    ],
)
def test_hosts_that_cannot_be_are_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(InvalidEndpointError, match=fragment) as caught:
        parse_endpoint(text)
    str(caught.value).encode("ascii")  # a message any log can carry


def test_a_data_endpoint_with_an_underscore_is_still_told_apart() -> None:
    with pytest.raises(InvalidEndpointError, match="data endpoint"):
        parse_endpoint("my_prefix-ats.iot.us-east-1.amazonaws.com")
