"""The 1.x-compatible boto3 API: real sessions, real signed requests, no network until needed."""

from __future__ import annotations

import http.server
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider, Pkcs11Config

from ..servers import DeviceFiles, Reply, TlsServer, error_body


class _RecordingAws(http.server.BaseHTTPRequestHandler):
    """Stands in for an AWS API on loopback: records the Authorization header, answers STS."""

    authorizations: list[str] = []  # noqa: RUF012 - shared by design, reset per fixture

    def do_POST(self) -> None:
        self.authorizations.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = (
            b"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012"
            b":assumed-role/r/c</Arn><UserId>U</UserId><Account>123456789012</Account>"
            b"</GetCallerIdentityResult></GetCallerIdentityResponse>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def aws_api() -> Iterator[tuple[str, list[str]]]:
    _RecordingAws.authorizations = []
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingAws)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", _RecordingAws.authorizations
    finally:
        api.shutdown()
        api.server_close()
        thread.join(5)


@pytest.fixture
def session_provider(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> Iterator[Boto3SessionProvider]:
    # The 1.x positional signature: endpoint, role_alias, thing_name, certificate, private_key.
    provider = Boto3SessionProvider(
        server.endpoint,
        "test-alias",
        "test-thing",
        device.certificate_file,
        device.private_key_pem,
        ca=ca_file,
        trust_env=False,
    )
    yield provider
    provider.close()


def test_signed_requests_use_the_device_credentials(
    session_provider: Boto3SessionProvider, server: TlsServer, aws_api: tuple[str, list[str]]
) -> None:
    url, authorizations = aws_api
    session = session_provider.get_session(region="us-east-1")
    sts = session.client("sts", endpoint_url=url)
    assert server.request_count == 0  # no network call until the first API call
    identity = sts.get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert "Credential=ASIATEST/" in authorizations[0]
    assert "/us-east-1/sts/aws4_request" in authorizations[0]
    sts.get_caller_identity()
    assert server.request_count == 1  # cached, not fetched per call


def test_region_and_region_name_both_work(session_provider: Boto3SessionProvider) -> None:
    assert session_provider.get_session(region="eu-west-1").region_name == "eu-west-1"
    assert session_provider.get_session(region_name="ap-south-1").region_name == "ap-south-1"
    with pytest.raises(errors.ConflictingOptionsError, match="disagree"):
        session_provider.get_session(region="eu-west-1", region_name="us-east-1")


@pytest.fixture
def no_region_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No region in the environment or in an (empty) AWS config file; returns that file."""
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return config


@pytest.mark.parametrize(
    ("variables", "config", "region", "source"),
    [
        pytest.param({}, "", "us-east-1", "default", id="default-as-1x"),
        pytest.param({"AWS_REGION": "eu-west-3"}, "", "eu-west-3", "AWS_REGION", id="aws-region"),
        pytest.param(
            {"AWS_DEFAULT_REGION": "ap-south-1"}, "", "ap-south-1", "botocore", id="default-region"
        ),
        pytest.param(
            {"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "ap-south-1"},
            "",
            "eu-west-3",
            "AWS_REGION",
            id="aws-region-first",
        ),
        pytest.param({}, "[default]\nregion = sa-east-1\n", "sa-east-1", "botocore", id="profile"),
    ],
)
def test_a_local_endpoint_without_region_takes_boto3s_settings_then_us_east_1(  # noqa: PLR0917
    session_provider: Boto3SessionProvider,
    no_region_settings: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variables: dict[str, str],
    config: str,
    region: str,
    source: str,
) -> None:
    """1.x used us-east-1 for localhost; 2.x raised InvalidEndpointError."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    no_region_settings.write_text(config)
    with caplog.at_level(logging.DEBUG, logger="awsiot_credentialhelper"):
        assert session_provider.get_session().region_name == region
    (message,) = [r.getMessage() for r in caplog.records if "region" in r.getMessage()]
    assert region in message
    assert source in message


def test_a_named_profiles_region_is_used(
    session_provider: Boto3SessionProvider, no_region_settings: Path
) -> None:
    no_region_settings.write_text("[profile device]\nregion = ca-central-1\n")
    assert session_provider.get_session(profile_name="device").region_name == "ca-central-1"


def test_the_endpoints_region_beats_the_environment(
    device: DeviceFiles, no_region_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    provider = Boto3SessionProvider(
        "abc123.credentials.iot.us-west-2.amazonaws.com",
        "alias",
        "thing",
        device.certificate_pem,
        device.private_key_pem,
    )
    with provider:  # constructed only: nothing is fetched from the placeholder endpoint
        assert provider.get_session().region_name == "us-west-2"
        assert provider.get_session("eu-central-1").region_name == "eu-central-1"


def test_the_constructors_region_beats_the_endpoints(device: DeviceFiles) -> None:
    provider = Boto3SessionProvider(
        "abc123.credentials.iot.us-west-2.amazonaws.com",
        "alias",
        "thing",
        device.certificate_pem,
        device.private_key_pem,
        region="eu-north-1",
    )
    with provider:
        assert provider.get_session().region_name == "eu-north-1"
        assert provider.get_session(region_name="us-east-2").region_name == "us-east-2"


def test_region_comes_from_a_standard_endpoint(device: DeviceFiles) -> None:
    provider = Boto3SessionProvider(
        "abc123.credentials.iot.us-west-2.amazonaws.com",
        "alias",
        "thing",
        device.certificate_pem,
        device.private_key_pem,
    )
    with provider:
        assert provider.get_session().region_name == "us-west-2"


def test_sessions_share_one_credential_cache(
    session_provider: Boto3SessionProvider, server: TlsServer
) -> None:
    first = session_provider.get_session(region="us-east-1").get_credentials()
    second = session_provider.get_session(region="us-west-2").get_credentials()
    assert first is not None
    assert second is not None
    assert first.get_frozen_credentials().access_key == "ASIATEST"
    assert second.get_frozen_credentials().access_key == "ASIATEST"
    assert server.request_count == 1


def test_environment_credentials_do_not_override_the_device(
    session_provider: Boto3SessionProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    credentials = session_provider.get_session(region="us-east-1").get_credentials()
    assert credentials is not None
    assert credentials.get_frozen_credentials().access_key == "ASIATEST"
    assert credentials.method == "custom-iot-credential-provider"


def test_provider_errors_reach_the_api_call_typed(
    session_provider: Boto3SessionProvider, server: TlsServer, aws_api: tuple[str, list[str]]
) -> None:
    server.set_default(Reply(status=403, body=error_body("Invalid thing name passed")))
    sts = session_provider.get_session(region="us-east-1").client("sts", endpoint_url=aws_api[0])
    with pytest.raises(errors.InvalidThingNameError, match="attach-thing-principal"):
        sts.get_caller_identity()


def test_old_valueerror_handlers_still_catch_everything(device: DeviceFiles) -> None:
    with pytest.raises(ValueError, match="Neither private_key nor pkcs11"):
        Boto3SessionProvider("localhost:1", "alias", "thing", device.certificate_file)
    with pytest.raises(ValueError, match="Both"):
        Boto3SessionProvider(
            "localhost:1",
            "alias",
            "thing",
            device.certificate_file,
            private_key=device.private_key_file,
            pkcs11=Pkcs11Config(pkcs11_lib="/x.so"),
        )


@pytest.mark.parametrize(
    ("pkcs11", "error", "message"),
    [
        pytest.param(
            {"pkcs11_lib": "/nonexistent/lib.so", "user_pin": "8642", "slot_id": 1},
            errors.Pkcs11Error,
            "'/nonexistent/lib.so' does not exist",
            id="read-as-a-config",
        ),
        pytest.param(
            {"user_pin": "8642"},
            errors.ConfigurationError,
            "PKCS#11 library path must be provided",
            id="no-lib",
        ),
        pytest.param(
            {"pkcs11_lib": "/x.so", "pin": "8642"},
            errors.ConfigurationError,
            "keys Pkcs11Config does not take: pin",
            id="unknown-key",
        ),
    ],
)
def test_a_1x_pkcs11_dict_is_accepted(
    device: DeviceFiles, pkcs11: dict[str, object], error: type[ValueError], message: str
) -> None:
    """1.x's Pkcs11Config was a TypedDict: a plain dict is a valid 1.x argument."""
    with pytest.raises(error, match=message) as caught:
        Boto3SessionProvider("localhost:1", "alias", "thing", device.certificate_file, None, pkcs11)
    assert "8642" not in str(caught.value)


def test_no_secret_in_any_log_even_at_trace(tmp_path: str, ca: trustme.CA) -> None:
    """awscrt's Trace log goes to stderr; stdout stays clean; no secret anywhere."""
    script = textwrap.dedent(
        """
        import logging, sys, tempfile, trustme
        from awscrt.io import LogLevel
        from tests.servers import Reply, TlsServer, credentials_body, issue_device
        from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        ca = trustme.CA()
        device = issue_device(ca, tempfile.mkdtemp())
        with TlsServer(ca, default=Reply(body=credentials_body())) as server:
            provider = Boto3SessionProvider(
                server.endpoint, "alias", "thing", device.certificate_file,
                device.private_key_pem, ca=ca.cert_pem.bytes(), awscrt_log_level=LogLevel.Trace,
                trust_env=False,
            )
            session = provider.get_session(region="us-east-1")
            frozen = session.get_credentials().get_frozen_credentials()
            assert frozen.secret_key == "test-secret-access-key"
            sys.stderr.write("KEY:" + device.private_key_pem.decode().splitlines()[1] + "\\n")
            provider.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[2]),
    )
    assert result.stdout == ""
    before, _, after = result.stderr.rpartition("KEY:")
    key_line, _, rest = after.partition("\n")
    logged = before + rest  # awscrt's log reaches stderr from a thread: lines may follow KEY:
    assert "[TRACE]" in logged  # awscrt really logged, to stderr
    assert "Fetched credentials ASIATEST" in logged
    for secret in ("test-secret-access-key", "test-session-token", key_line):
        assert secret not in logged
