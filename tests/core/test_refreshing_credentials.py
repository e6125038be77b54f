"""The public refresher: device credentials for code outside boto3 sessions."""

from __future__ import annotations

import threading

import boto3
import botocore.session
import pytest

from awsiot_credentialhelper import (
    IotCredentialProvider,
    RefreshingCredentials,
    install_botocore_credentials,
)

from ..servers import DeviceFiles, TlsServer


def _provider(server: TlsServer, device: DeviceFiles, ca_file: str) -> IotCredentialProvider:
    return IotCredentialProvider(
        endpoint=server.endpoint,
        role_alias="alias",
        thing_name="thing",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        ca=ca_file,
        trust_env=False,
    )


def test_a_botocore_session_you_built_signs_with_device_credentials(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    before = set(threading.enumerate())
    provider = _provider(server, device, ca_file)
    with provider, RefreshingCredentials(provider.fetch) as credentials:
        session = botocore.session.Session()
        install_botocore_credentials(session, credentials)
        installed = session.get_credentials()
        assert installed is not None
        frozen = installed.get_frozen_credentials()
        assert frozen.access_key == credentials.get().access_key_id
        assert frozen.secret_key == "test-secret-access-key"
        wrapped = boto3.Session(botocore_session=session, region_name="us-east-1")
        through_boto3 = wrapped.get_credentials()
        assert through_boto3 is not None
        assert through_boto3.get_frozen_credentials().token == "test-session-token"
        assert server.request_count == 1, "one fetch, shared by every reader"
        assert credentials.current is not None
    assert not set(threading.enumerate()) - before, "leaving the block stopped the refresher"


def test_environment_credentials_do_not_win_over_the_device(
    server: TlsServer, device: DeviceFiles, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-device")
    session = botocore.session.Session()
    provider = _provider(server, device, ca_file)
    with provider, RefreshingCredentials(provider.fetch) as credentials:
        install_botocore_credentials(session, credentials)
        installed = session.get_credentials()
        assert installed is not None
        assert installed.access_key == credentials.get().access_key_id
