"""Real aiobotocore and aioboto3 clients against moto, signed with the emulator's credentials."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from awsiot_credentialhelper import IotCredentialProvider, RefreshPolicy
from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.emulator import Device, Emulator

from .conftest import AioProviderFactory

#: Short-lived credentials need margins below the default one-minute floor.
SHORT_LIVED = RefreshPolicy(
    mandatory_floor=timedelta(seconds=1), retry_delay=timedelta(seconds=1), jitter=0
)


def assumed_role_arn(device: Device) -> str:
    role = device.role_arn.split("/")[-1]
    return f"arn:aws:sts::123456789012:assumed-role/{role}/{device.certificate_id}"


def test_sts_s3_and_dynamodb_clients_act_as_the_device(
    make_aio_provider: AioProviderFactory, iot_device: Device, iot_emulator: Emulator
) -> None:
    url = iot_device.aws_endpoint_url
    bucket = f"{iot_device.name}-bucket"
    table_name = f"{iot_device.name}-table"

    async def scenario() -> tuple[str, list[str], dict[str, str]]:
        async with make_aio_provider() as provider:
            session = provider.get_session(region_name="us-east-1")
            async with session.create_client("sts", endpoint_url=url) as sts:
                arn = (await sts.get_caller_identity())["Arn"]
            async with session.create_client("s3", endpoint_url=url) as s3:
                await s3.create_bucket(Bucket=bucket)
                buckets = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
            boto3_like = provider.get_aioboto3_session(region_name="us-east-1")
            async with boto3_like.resource("dynamodb", endpoint_url=url) as dynamodb:
                table = await dynamodb.create_table(
                    TableName=table_name,
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                await table.put_item(Item={"id": "t1", "celsius": "21"})
                item = (await table.get_item(Key={"id": "t1"}))["Item"]
            return arn, buckets, item

    arn, buckets, item = asyncio.run(scenario())
    assert arn == assumed_role_arn(iot_device)
    assert bucket in buckets
    assert item == {"id": "t1", "celsius": "21"}
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}  # one fetch for every client


def test_background_task_refreshes_across_expiry(
    make_aio_provider: AioProviderFactory, iot_device: Device, iot_emulator: Emulator
) -> None:
    iot_emulator.controls.credential_lifetime = 3

    async def scenario() -> tuple[list[str], set[str]]:
        async with make_aio_provider(refresh_policy=SHORT_LIVED) as provider:
            session = provider.get_session(region_name="us-east-1")
            keys: set[str] = set()
            arns: list[str] = []
            async with session.create_client(
                "sts", endpoint_url=iot_device.aws_endpoint_url
            ) as sts:
                deadline = asyncio.get_running_loop().time() + 10
                while len(keys) < 3 and asyncio.get_running_loop().time() < deadline:
                    arns.append((await sts.get_caller_identity())["Arn"])
                    keys.add((await provider.credentials.get()).access_key_id)
                    await asyncio.sleep(0.1)
            return arns, keys

    arns, keys = asyncio.run(scenario())
    assert len(keys) == 3, "three sets of 3-second credentials within 10 s"
    assert set(arns) == {assumed_role_arn(iot_device)}
    assert iot_emulator.stats().by_outcome["SUCCESS"] >= 3


def test_a_refused_device_raises_the_same_error_as_the_sync_provider(
    make_aio_provider: AioProviderFactory,
    sync_provider: Boto3SessionProvider,
    iot_device: Device,
    iot_emulator: Emulator,
) -> None:
    iot_emulator.client("iot").update_certificate(
        certificateId=iot_device.certificate_id, newStatus="INACTIVE"
    )
    with pytest.raises(errors.ProviderError) as sync_error:
        sync_provider.provider.fetch()

    async def scenario() -> None:
        async with make_aio_provider() as provider:
            session = provider.get_session(region_name="us-east-1")
            async with session.create_client(
                "sts", endpoint_url=iot_device.aws_endpoint_url
            ) as sts:
                await sts.get_caller_identity()

    with pytest.raises(errors.ProviderError) as async_error:
        asyncio.run(scenario())
    assert type(async_error.value) is type(sync_error.value)
    assert async_error.value.status_code == sync_error.value.status_code == 403
    assert async_error.value.message == sync_error.value.message


def test_network_errors_are_typed_and_retried_as_in_sync(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    iot_emulator.controls.fail_next(2, status=503)

    async def scenario() -> str:
        async with make_aio_provider(max_attempts=3) as provider:
            return (await provider.credentials.get()).access_key_id

    assert asyncio.run(scenario())
    assert iot_emulator.stats().by_status == {503: 2, 200: 1}


def test_get_session_refuses_two_different_regions(
    make_aio_provider: AioProviderFactory,
) -> None:
    provider = make_aio_provider()
    with pytest.raises(errors.ConflictingOptionsError, match="region="):
        provider.get_session("us-east-1", region_name="eu-west-1")
    assert provider.get_session(region="eu-west-1").get_config_variable("region") == "eu-west-1"


def test_the_session_credentials_show_what_is_held(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    async def scenario() -> tuple[object, ...]:
        async with make_aio_provider() as provider:
            credentials = await provider.get_session(region_name="us-east-1").get_credentials()
            before = (credentials.access_key, credentials.refresh_needed())
            frozen = await credentials.get_frozen_credentials()
            held = await provider.credentials.get()
            return (
                *before,
                frozen.access_key == held.access_key_id == credentials.access_key,
                await credentials.get_secret_key() == held.secret_access_key,
                await credentials.get_token() == held.session_token,
                credentials.refresh_needed(),
                "Secret" not in repr(credentials) and held.session_token not in repr(credentials),
            )

    assert asyncio.run(scenario()) == (None, True, True, True, True, False, True)
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def test_fetch_async_needs_a_transport_with_send_async(
    make_aio_provider: AioProviderFactory,
) -> None:
    class SyncOnly:
        def send(self, request: object, *, timeout: float) -> object:
            raise AssertionError("not called")

        def close(self) -> None:
            pass

    provider = IotCredentialProvider.from_config(
        make_aio_provider().provider.config,
        transport=SyncOnly(),  # type: ignore[arg-type]
    )
    with pytest.raises(errors.ConfigurationError, match="send_async") as caught:
        asyncio.run(provider.fetch_async())
    assert caught.value.setting == "transport"
    provider.close()
