"""Code written for awsiot-credentialhelper 1.x keeps working.

Written the way 1.x's own tests were (``tests/test_file_based_session.py``,
``tests/test_pkcs11_session.py``): keyword arguments as its docs show them, its positional order,
its placeholder endpoints, ``get_session()`` without a region, ``except ValueError``, and a
trustme mTLS server on loopback. Placeholder ``*.amazonaws.com`` endpoints are only constructed:
nothing here is fetched from them.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme

from awsiot_credentialhelper.boto3_session import Boto3SessionProvider, Pkcs11Config

from ..servers import DeviceFiles, Reply, TlsServer, error_body

#: 1.x's docs and tests wrote endpoints like these; AWS never issues such prefixes, but DNS (not
#: the library) is the judge of that.
PLACEHOLDER = "my_endpoint.credentials.iot.us-west-2.amazonaws.com"


def test_get_session_with_files(device: DeviceFiles) -> None:
    """1.x: ``test_get_session_with_files``, with its placeholder endpoint."""
    session = Boto3SessionProvider(
        endpoint=PLACEHOLDER,
        role_alias="iot_role_alias",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        thing_name="my_iot_thing_name",
    )
    with session:
        assert session.get_session().region_name == "us-west-2"
        assert session.get_session(region_name="us-west2").region_name == "us-west2"
        assert session.get_session(region="eu-central-1").region_name == "eu-central-1"


@pytest.mark.parametrize(
    "endpoint",
    [
        "your_endpoint.credentials.iot.us-west-2.amazonaws.com",
        "cicd_testing.credentials.iot.us-west-2.amazonaws.com",
        "my_endpoint.credentials.iot-fips.us-east-1.amazonaws.com",
        "my_endpoint.credentials.iot.cn-north-1.amazonaws.com.cn",
    ],
)
def test_placeholder_prefixes_are_accepted(device: DeviceFiles, endpoint: str) -> None:
    region = endpoint.split(".")[3]
    with Boto3SessionProvider(
        endpoint,
        "iot_role_alias",
        "my_iot_thing_name",
        device.certificate_pem,
        device.private_key_pem,
    ) as session:
        assert session.get_session().region_name == region


def test_local_endpoint_without_region_gets_us_east_1(device: DeviceFiles) -> None:
    """1.x: "pytest, set to default (all roads lead to N. Virginia)"."""
    with Boto3SessionProvider(
        endpoint="localhost:7939",
        role_alias="iot_role_alias",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        thing_name="my_iot_thing_name",
    ) as session:
        assert session.get_session().region_name == "us-east-1"


def test_local_endpoint_takes_the_region_boto3_would(
    device: DeviceFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with Boto3SessionProvider(
        "localhost:7939", "a", "t", device.certificate_file, device.private_key_file
    ) as session:
        assert session.get_session().region_name == "eu-west-1"


def test_valid_credentials_positional_order(
    server: TlsServer, device: DeviceFiles, ca: trustme.CA
) -> None:
    """1.x's positional order: endpoint, role_alias, thing_name, certificate, private_key,
    pkcs11, ca, awscrt_log_level, verify_peer; ``get_session()`` on the emulator-style
    ``127.0.0.1:PORT`` endpoint, without a region."""
    provider = Boto3SessionProvider(
        server.endpoint,
        "iot_role_alias",
        "my_iot_thing_name",
        device.certificate_file,
        device.private_key_file,
        None,
        ca.cert_pem.bytes(),
        None,
        True,
    )
    with provider:
        session = provider.get_session()
        assert session.region_name == "us-east-1"
        credentials = session.get_credentials()
        assert credentials is not None
        assert credentials.get_frozen_credentials().access_key == "ASIATEST"
    assert server.received[0].path == "/role-aliases/iot_role_alias/credentials"


def test_ca_as_a_path_and_key_as_pem_text(
    server: TlsServer, device: DeviceFiles, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1.x's docs showed ``ca="/opt/certs/AmazonCA1.pem"``; keys often come from a variable."""
    monkeypatch.setenv("PRIVATE_KEY_PEM", device.private_key_pem.decode())
    with Boto3SessionProvider(
        endpoint=server.endpoint,
        role_alias="iot_role_alias",
        thing_name="my_iot_thing_name",
        certificate=device.certificate_pem.decode(),
        private_key=os.environ["PRIVATE_KEY_PEM"],
        ca=ca_file,
    ) as provider:
        credentials = provider.get_session().get_credentials()
        assert credentials is not None
        assert credentials.get_frozen_credentials().secret_key == "test-secret-access-key"


def test_invalid_credentials(server: TlsServer, device: DeviceFiles, ca: trustme.CA) -> None:
    """1.x: any non-200 answer is a ``ValueError``."""
    server.set_default(Reply(status=404, body=error_body("Role alias does not exist")))
    with Boto3SessionProvider(
        endpoint=server.endpoint,
        role_alias="iot_role_alias",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        thing_name="my_iot_thing_name",
        ca=ca.cert_pem.bytes(),
    ) as provider:
        credentials = provider.get_session().get_credentials()
        assert credentials is not None
        with pytest.raises(ValueError, match="Role alias does not exist"):
            credentials.get_frozen_credentials()


def test_expired_fixture_certificates_are_tried(
    server: TlsServer, ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1.x's suite wrote 30-day certificates once and kept them: they expire. Construction and
    get_session() still work; the server's refusal says why."""
    start = datetime.now(timezone.utc) - timedelta(days=40)
    leaf = ca.issue_cert(
        "rsa2048.valid.example.com", not_before=start, not_after=start + timedelta(30)
    )
    certificate, key = tmp_path / "old.pem", tmp_path / "old.key"
    leaf.cert_chain_pems[0].write_to_path(str(certificate))
    leaf.private_key_pem.write_to_path(str(key))
    with caplog.at_level(logging.WARNING, logger="awsiot_credentialhelper"):
        provider = Boto3SessionProvider(
            endpoint=server.endpoint,
            role_alias="iot_role_alias",
            certificate=str(certificate),
            private_key=str(key),
            thing_name="my_iot_thing_name",
            ca=ca.cert_pem.bytes(),
        )
    assert "by this device's clock" in caplog.text
    with provider:
        credentials = provider.get_session().get_credentials()
        assert credentials is not None
        with pytest.raises(ValueError, match="looks expired by this device's clock"):
            credentials.get_frozen_credentials()


# --- 1.x's tests/test_pkcs11_session.py ------------------------------------------------------


def test_privatekey_pkcs_mutually_excluded(tmp_path: Path) -> None:
    """Both and neither are refused before the certificate is even read."""
    missing = str(tmp_path / "not-read.pem")
    with pytest.raises(ValueError, match="Neither private_key nor pkcs11"):
        Boto3SessionProvider(
            endpoint="localhost:8888",
            role_alias="iot_role_alias",
            certificate=missing,
            thing_name="my_iot_thing_name",
            verify_peer=False,
        )
    with pytest.raises(ValueError, match="Both private_key and pkcs11"):
        Boto3SessionProvider(
            endpoint="localhost:8888",
            role_alias="iot_role_alias",
            certificate=missing,
            private_key=missing,
            thing_name="my_iot_thing_name",
            pkcs11=Pkcs11Config(
                pkcs11_lib="tests/assets/fake_pkcs11_module.so", user_pin="1234", slot_id=1
            ),
        )


@pytest.mark.parametrize(
    "pkcs11",
    [
        pytest.param(Pkcs11Config(user_pin="1234", slot_id=1), id="config"),
        pytest.param({"user_pin": "1234", "slot_id": 1}, id="dict"),
    ],
)
def test_missing_pkcs_lib(tmp_path: Path, pkcs11: object) -> None:
    """A programming error: a ValueError (never a TypeError), before any file is read."""
    with pytest.raises(ValueError, match="PKCS#11 library path must be provided") as caught:
        Boto3SessionProvider(
            endpoint="localhost:8888",
            role_alias="iot_role_alias",
            certificate=str(tmp_path / "not-read.pem"),
            thing_name="my_iot_thing_name",
            pkcs11=pkcs11,  # type: ignore[arg-type]
        )
    assert "1234" not in str(caught.value)


def test_invalid_pkcs_lib(device: DeviceFiles) -> None:
    """1.x's words, which users grep their logs for."""
    file_path = "tests/assets/not_a_valid_file"
    with pytest.raises(ValueError, match=f"{file_path} is not a valid file path."):
        Boto3SessionProvider(
            endpoint="localhost:8888",
            role_alias="iot_role_alias",
            certificate=device.certificate_file,
            thing_name="my_iot_thing_name",
            pkcs11=Pkcs11Config(pkcs11_lib=file_path, user_pin="1234", slot_id=1),
        )


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", float("inf")), ("timeout", 1e10), ("max_attempts", 0)],
)
def test_bad_numbers_are_value_errors(device: DeviceFiles, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        Boto3SessionProvider(
            "localhost:8888",
            "iot_role_alias",
            "my_iot_thing_name",
            device.certificate_file,
            device.private_key_file,
            **{option: value},  # type: ignore[arg-type]
        )
