"""awscrt's credentials provider from the session providers: requests signed by awscrt itself."""

from __future__ import annotations

import asyncio
import http.client
import io
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from awscrt import auth as crt_auth
from awscrt import http as crt_http

from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.emulator import Device, Emulator

from .conftest import AioProviderFactory
from .test_sessions import assumed_role_arn

_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"


def caller_arn_signed_by(provider: Any, aws_endpoint_url: str) -> str:
    """POST GetCallerIdentity to moto's STS, signed by awscrt with ``provider``; the ARN."""
    address = urlsplit(aws_endpoint_url)
    request = crt_http.HttpRequest(
        "POST",
        "/",
        crt_http.HttpHeaders(
            [
                ("Host", address.netloc),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Length", str(len(_BODY))),
            ]
        ),
    )
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=provider,
        region="us-east-1",
        service="sts",
    )
    request.body_stream = io.BytesIO(_BODY)
    signed = crt_auth.aws_sign_request(request, config).result(30)
    assert "Authorization" in dict(signed.headers)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.request("POST", "/", body=_BODY, headers=dict(signed.headers))
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    assert answer.status == 200, text
    match = re.search(r"<Arn>([^<]+)</Arn>", text)
    assert match is not None, text
    return match.group(1)


def test_a_request_signed_by_awscrt_is_the_device_s_assumed_role(
    sync_provider: Boto3SessionProvider, iot_device: Device, iot_emulator: Emulator
) -> None:
    provider = sync_provider.awscrt_credentials_provider()
    assert isinstance(provider, crt_auth.AwsCredentialsProvider)
    arn = caller_arn_signed_by(provider, iot_device.aws_endpoint_url)
    assert arn == assumed_role_arn(iot_device)
    # The sessions share the same cache: no second fetch.
    credentials = sync_provider.get_session(region="us-east-1").get_credentials()
    assert credentials is not None
    assert credentials.get_frozen_credentials().access_key
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def test_the_async_provider_serves_awscrt_clients_from_its_loop(
    make_aio_provider: AioProviderFactory, iot_device: Device, iot_emulator: Emulator
) -> None:
    async def scenario() -> str:
        async with make_aio_provider() as provider:
            crt_provider = provider.awscrt_credentials_provider()
            # awscrt asks from its own threads; the fetch runs on this loop meanwhile.
            return await asyncio.get_running_loop().run_in_executor(
                None, caller_arn_signed_by, crt_provider, iot_device.aws_endpoint_url
            )

    assert asyncio.run(scenario()) == assumed_role_arn(iot_device)
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


# awscrt reports a delegate's exception through sys.unraisablehook (and fails the signing).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_refusal_fails_the_signing(
    sync_provider: Boto3SessionProvider, iot_device: Device, iot_emulator: Emulator
) -> None:
    iot_emulator.controls.fail_next(1, status=403)
    with pytest.raises(RuntimeError, match="AWS_AUTH_CREDENTIALS_PROVIDER_DELEGATE_FAILURE"):
        caller_arn_signed_by(
            sync_provider.awscrt_credentials_provider(), iot_device.aws_endpoint_url
        )
    # The next signing fetches again and succeeds.
    arn = caller_arn_signed_by(
        sync_provider.awscrt_credentials_provider(), iot_device.aws_endpoint_url
    )
    assert arn == assumed_role_arn(iot_device)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_on_the_loop_s_own_thread_the_held_credentials_are_served(
    make_aio_provider: AioProviderFactory, iot_device: Device, iot_emulator: Emulator
) -> None:
    async def scenario() -> str:
        async with make_aio_provider() as provider:
            crt_provider = provider.awscrt_credentials_provider()
            # Nothing held yet, and this thread cannot wait for the loop it runs: refused.
            with pytest.raises(RuntimeError, match="DELEGATE_FAILURE"):
                caller_arn_signed_by(crt_provider, iot_device.aws_endpoint_url)
            await provider.credentials.get()
            return caller_arn_signed_by(crt_provider, iot_device.aws_endpoint_url)

    assert asyncio.run(scenario()) == assumed_role_arn(iot_device)
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}
