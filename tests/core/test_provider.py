"""IotCredentialProvider against real mTLS servers on loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from awsiot_credentialhelper import IotCredentialProvider, Pkcs11Config
from awsiot_credentialhelper import exceptions as errors

from ..conftest import ProviderFactory, provider_options
from ..servers import (
    DeviceFiles,
    FakeClock,
    Reply,
    TlsServer,
    credentials_body,
    error_body,
    issue_device,
    wait_until,
)


def test_fetch_sends_what_the_service_needs(
    make_provider: ProviderFactory, server: TlsServer
) -> None:
    credentials = make_provider().fetch()
    assert credentials.access_key_id == "ASIATEST"
    assert credentials.expiration.tzinfo is not None
    (request,) = server.received
    assert (request.method, request.path) == ("GET", "/role-aliases/test-alias/credentials")
    assert request.headers["host"] == server.endpoint
    assert request.headers["x-amzn-iot-thingname"] == "test-thing"
    assert request.client_certificate is not None


def test_thing_name_is_optional(make_provider: ProviderFactory, server: TlsServer) -> None:
    make_provider(thing_name=None).fetch()
    assert "x-amzn-iot-thingname" not in server.received[0].headers


def test_material_as_bytes_and_paths_mix(
    make_provider: ProviderFactory, device: DeviceFiles, ca: trustme.CA
) -> None:
    provider = make_provider(
        certificate=device.certificate_pem,
        private_key=Path(device.private_key_file),
        ca=ca.cert_pem.bytes(),
    )
    assert provider.fetch().access_key_id == "ASIATEST"


def test_ipv6_loopback(ca: trustme.CA, device: DeviceFiles, ca_file: str) -> None:
    with TlsServer(ca, host="::1", default=Reply(body=credentials_body())) as server:
        provider = IotCredentialProvider(**provider_options(server, device, ca_file))
        with provider:
            assert provider.fetch().access_key_id == "ASIATEST"
        assert server.request_count == 1


@pytest.fixture
def unclosed_provider(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> Callable[[], IotCredentialProvider]:
    """Providers left to be freed with the frame that made them, as users leave them."""

    def make() -> IotCredentialProvider:
        return IotCredentialProvider(**provider_options(server, device, ca_file))

    return make


# On Python 3.9 the value a generator or coroutine returns waits as a pending StopIteration while
# its frame's locals are freed. Freeing a provider's awscrt resources there once ran awscrt's
# shutdown callback with that exception pending, which swallowed it: the value became None.


def test_a_generator_that_frees_its_provider_returns_its_value(
    unclosed_provider: Callable[[], IotCredentialProvider],
) -> None:
    def steps() -> Generator[None, None, str]:
        provider = unclosed_provider()
        access_key_id = provider.fetch().access_key_id
        yield
        return access_key_id

    for _ in range(5):
        generator = steps()
        next(generator)
        with pytest.raises(StopIteration) as stopped:
            next(generator)
        assert stopped.value.value == "ASIATEST"


def test_a_coroutine_that_frees_its_provider_returns_its_value(
    unclosed_provider: Callable[[], IotCredentialProvider],
) -> None:
    async def scenario() -> str:
        provider = unclosed_provider()
        return (await provider.fetch_async()).access_key_id

    for _ in range(5):
        assert asyncio.run(scenario()) == "ASIATEST"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_fetches_on_its_own_event_loop_thread(
    make_provider: ProviderFactory,
) -> None:
    """awscrt's event-loop thread is not copied into a child: the child makes its own, for its
    own providers and for those its parent made (with a key in a file; a PKCS#11 session does
    not survive fork)."""
    parents = make_provider(max_attempts=1)
    parents.fetch()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child, which reports only through its exit code
        try:
            fetched = [parents.fetch(), make_provider(max_attempts=1).fetch()]
            os._exit(0 if all(credentials.access_key_id for credentials in fetched) else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 20
    while (waited := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if waited == (0, 0):
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the child's fetch hung")
    assert os.waitstatus_to_exitcode(waited[1]) == 0


def test_tls_12_server(ca: trustme.CA, device: DeviceFiles, ca_file: str) -> None:
    with (
        TlsServer(
            ca, default=Reply(body=credentials_body()), maximum_version=ssl.TLSVersion.TLSv1_2
        ) as server,
        IotCredentialProvider(
            endpoint=server.endpoint,
            role_alias="a",
            certificate=device.certificate_file,
            private_key=device.private_key_file,
            ca=ca_file,
            trust_env=False,
        ) as provider,
    ):
        assert provider.fetch().access_key_id == "ASIATEST"


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        pytest.param(
            403,
            "Certificate is invalid on this endpoint",
            errors.CertificateRejectedError,
            id="403-certificate",
        ),
        pytest.param(
            403, "Invalid thing name passed", errors.InvalidThingNameError, id="403-thing"
        ),
        pytest.param(403, "Access Denied", errors.AccessDeniedError, id="403-access"),
        pytest.param(404, "Role alias does not exist", errors.RoleAliasNotFoundError, id="404"),
        pytest.param(
            400,
            "Unable to assume the role, or the role to assume does not exist",
            errors.RoleAssumptionError,
            id="400-role",
        ),
        pytest.param(
            400,
            "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for "
            "the role",
            errors.CredentialDurationError,
            id="400-duration",
        ),
    ],
)
def test_refusals_are_typed_and_never_retried(
    make_provider: ProviderFactory,
    server: TlsServer,
    status: int,
    message: str,
    error_class: type[errors.ProviderError],
) -> None:
    server.set_default(
        Reply(
            status=status,
            body=error_body(message),
            headers=(("x-amzn-RequestId", "rid-1"), ("x-amzn-ErrorType", "SomeException")),
        )
    )
    with pytest.raises(error_class) as caught:
        make_provider().fetch()
    assert (caught.value.request_id, caught.value.error_type) == ("rid-1", "SomeException")
    assert caught.value.role_alias == "test-alias"
    assert server.request_count == 1


def test_503_twice_then_200_is_retried(make_provider: ProviderFactory, server: TlsServer) -> None:
    server.queue(
        Reply(status=503, body=error_body("Service Unavailable")),
        Reply(status=503, body=b"<html>503</html>"),
    )
    assert make_provider(max_attempts=3).fetch().access_key_id == "ASIATEST"
    assert server.request_count == 3


def test_retries_are_bounded(make_provider: ProviderFactory, server: TlsServer) -> None:
    server.set_default(Reply(status=429, body=error_body("Rate exceeded")))
    with pytest.raises(errors.ThrottledError):
        make_provider(max_attempts=2).fetch()
    assert server.request_count == 2


def test_a_stalled_server_times_out(make_provider: ProviderFactory, server: TlsServer) -> None:
    """A stalled reply holds the connection for STALL_LIMIT: only the client's timeout can
    make it a ReadTimeoutError (the server's close would be a ConnectionClosedError)."""
    server.set_default(Reply(stall=True))
    with pytest.raises(errors.ReadTimeoutError, match="no complete answer before the timeout"):
        make_provider(timeout=0.5, max_attempts=1).fetch()


def test_total_timeout_covers_retries(make_provider: ProviderFactory, server: TlsServer) -> None:
    """Five attempts allowed, but the first one uses up the whole timeout: no retry."""
    server.set_default(Reply(stall=True))
    with pytest.raises(errors.ReadTimeoutError):
        make_provider(timeout=0.6, max_attempts=5).fetch()
    assert wait_until(lambda: server.request_count, what="the request read") == 1


def test_connection_closed_mid_response(make_provider: ProviderFactory, server: TlsServer) -> None:
    server.set_default(Reply(body=credentials_body(), truncate_at=60))
    with pytest.raises(errors.ConnectionClosedError) as caught:
        make_provider(max_attempts=1).fetch()
    assert caught.value.retryable


def test_truncated_then_good_answer_recovers(
    make_provider: ProviderFactory, server: TlsServer
) -> None:
    server.queue(Reply(body=credentials_body(), truncate_at=60))
    assert make_provider().fetch().access_key_id == "ASIATEST"
    assert server.request_count == 2


def test_connection_refused(device: DeviceFiles, ca_file: str) -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    provider = IotCredentialProvider(
        endpoint=f"127.0.0.1:{port}",
        role_alias="a",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        ca=ca_file,
        max_attempts=1,
        trust_env=False,
    )
    with provider, pytest.raises(errors.ConnectError, match="refused") as caught:
        provider.fetch()
    assert caught.value.crt_error == "AWS_IO_SOCKET_CONNECTION_REFUSED"


def test_server_certificate_from_another_ca(
    make_provider: ProviderFactory, server: TlsServer
) -> None:
    """s2n, under awscrt, holds a refused handshake for a random 10-30 s (its blinding delay,
    against timing attacks) before it reports the failure: a timeout shorter than that sees the
    handshake unfinished. The same timeout is ample for a handshake with the right CA, first.

    That the failure, once reported, is a TlsHandshakeError with its hint is shown by
    test_client_certificate_the_server_does_not_trust (same awscrt error family, no delay) and
    tests/core/test_transport.py (the table).
    """
    assert make_provider(timeout=2, max_attempts=1).fetch().access_key_id == "ASIATEST"
    with pytest.raises(
        errors.ConnectTimeoutError,
        match=r"127\.0\.0\.1:\d+: no connection and TLS handshake within 2\.0 s\.",
    ):
        make_provider(ca=trustme.CA().cert_pem.bytes(), timeout=2, max_attempts=1).fetch()
    assert server.request_count == 1, "the refused server got no request"


def test_client_certificate_the_server_does_not_trust(
    make_provider: ProviderFactory, tmp_path: Path, server: TlsServer
) -> None:
    stranger = issue_device(trustme.CA(), str(tmp_path), "stranger")
    with pytest.raises(
        errors.TlsHandshakeError, match="refused this device's certificate"
    ) as caught:
        make_provider(
            certificate=stranger.certificate_file,
            private_key=stranger.private_key_file,
            max_attempts=1,
            timeout=5,
        ).fetch()
    assert caught.value.crt_error is not None
    assert caught.value.crt_error.startswith("AWS_IO_TLS_")
    assert not caught.value.retryable
    assert server.request_count == 0
    wait_until(lambda: server.handshake_failures == 1, what="the server's side of the refusal")


def test_verify_peer_false_accepts_any_server(make_provider: ProviderFactory) -> None:
    provider = make_provider(ca=trustme.CA().cert_pem.bytes(), verify_peer=False)
    assert provider.fetch().access_key_id == "ASIATEST"


# --- configuration errors, all at construction --------------------------------------------

CORRUPT_CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


@pytest.fixture
def files(tmp_path: Path, device: DeviceFiles, ca: trustme.CA) -> dict[str, str]:
    other = issue_device(trustme.CA(), str(tmp_path), "other")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    broken_bundle = tmp_path / "bundle.pem"
    broken_bundle.write_bytes(ca.cert_pem.bytes() + CORRUPT_CERTIFICATE)
    return {
        "broken_bundle": str(broken_bundle),
        "missing": str(tmp_path / "missing.pem"),
        "directory": str(tmp_path),
        "not_pem": str(text),
        "other_key": other.private_key_file,
        "certificate": device.certificate_file,
    }


@pytest.mark.parametrize(
    ("overrides", "error_class", "fragment"),
    [
        pytest.param(
            {"certificate": "missing"}, errors.CredentialFileError, "does not exist", id="missing"
        ),
        pytest.param(
            {"private_key": "directory"}, errors.CredentialFileError, "directory", id="dir"
        ),
        pytest.param({"certificate": "not_pem"}, errors.InvalidPemError, "not PEM", id="not-pem"),
        pytest.param(
            {"certificate": CORRUPT_CERTIFICATE},
            errors.InvalidPemError,
            "not a valid PEM X.509",
            id="corrupt-cert",
        ),
        pytest.param(
            {"private_key": "certificate"},
            errors.InvalidPemError,
            "not a valid PEM private key",
            id="cert-as-key",
        ),
        pytest.param(
            {"private_key": "other_key"}, errors.KeyMismatchError, "does not match", id="mismatch"
        ),
        pytest.param({"ca": "not_pem"}, errors.InvalidPemError, "not PEM", id="ca-not-pem"),
        pytest.param(
            {"ca": "broken_bundle"},
            errors.InvalidPemError,
            "CA certificate is not a valid PEM X.509",
            id="ca-bundle-with-a-corrupt-block",
        ),
        pytest.param(
            {"pkcs11": Pkcs11Config(pkcs11_lib="/x.so")},
            errors.ConflictingOptionsError,
            "Both private_key and pkcs11",
            id="both",
        ),
        pytest.param(
            {"private_key": None}, errors.ConflictingOptionsError, "Neither", id="neither"
        ),
        pytest.param(
            {"private_key": None, "pkcs11": Pkcs11Config(pkcs11_lib="/nonexistent/lib.so")},
            errors.Pkcs11Error,
            "does not exist",
            id="pkcs11-missing",
        ),
        pytest.param(
            {"endpoint": "a1-ats.iot.us-east-1.amazonaws.com"},
            errors.InvalidEndpointError,
            "data endpoint",
            id="data-endpoint",
        ),
        pytest.param(
            {"role_alias": "bad/alias"}, errors.ConfigurationError, "Role alias", id="alias"
        ),
        pytest.param(
            {"thing_name": "bad thing"}, errors.ConfigurationError, "Thing name", id="thing"
        ),
        pytest.param({"timeout": 0}, errors.ConfigurationError, "timeout", id="timeout"),
        pytest.param({"max_attempts": 0}, errors.ConfigurationError, "max_attempts", id="attempts"),
        pytest.param(
            {"proxy": "https://proxy:3128"}, errors.ConfigurationError, "not an http", id="proxy"
        ),
    ],
)
def test_configuration_errors_name_the_fix(
    make_provider: ProviderFactory,
    files: dict[str, str],
    overrides: dict[str, object],
    error_class: type[errors.ConfigurationError],
    fragment: str,
) -> None:
    resolved = {
        name: files.get(value, value) if isinstance(value, str) and name != "endpoint" else value
        for name, value in overrides.items()
    }
    with pytest.raises(error_class, match=fragment) as caught:
        make_provider(**resolved)
    assert isinstance(caught.value, ValueError)


def _self_signed(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_a_key_awscrt_cannot_sign_with_is_named(make_provider: ProviderFactory) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(errors.InvalidPemError, match="holds a key of type Ed25519: AWS IoT and"):
        make_provider(certificate=_self_signed(key), private_key=pem)


def test_a_p521_key_is_used(make_provider: ProviderFactory) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    make_provider(certificate=_self_signed(key), private_key=pem).close()


def test_a_file_that_is_not_a_pkcs11_module(
    make_provider: ProviderFactory, files: dict[str, str]
) -> None:
    with pytest.raises(errors.Pkcs11Error, match=r"Cannot load .* as a PKCS#11 module"):
        make_provider(private_key=None, pkcs11=Pkcs11Config(pkcs11_lib=files["not_pem"]))


def _expired_device(ca: trustme.CA) -> tuple[bytes, bytes]:
    long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)
    leaf = ca.issue_cert("old.example", not_before=long_ago, not_after=long_ago + timedelta(1))
    return leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()


def _month_long_device(ca: trustme.CA) -> dict[str, object]:
    """A certificate valid for 30 days, and a device clock a year ahead that says it expired."""
    now = datetime.now(timezone.utc)
    leaf = ca.issue_cert(
        "month.example", not_before=now - timedelta(1), not_after=now + timedelta(30)
    )
    return {
        "certificate": leaf.cert_chain_pems[0].bytes(),
        "private_key": leaf.private_key_pem.bytes(),
        "clock": FakeClock(now + timedelta(days=365)),
    }


def test_a_certificate_expired_by_this_devices_clock_is_tried_with_a_warning(
    make_provider: ProviderFactory,
    ca: trustme.CA,
    server: TlsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A device without a real-time clock may be a year ahead: the provider judges, not it."""
    with caplog.at_level(logging.WARNING, logger="awsiot_credentialhelper"):
        provider = make_provider(**_month_long_device(ca))
    assert "expired on" in caplog.text
    assert "by this device's clock" in caplog.text
    assert provider.fetch().access_key_id == "ASIATEST"
    assert server.request_count == 1


def test_a_refusal_of_a_certificate_expired_by_the_devices_clock_says_so(
    make_provider: ProviderFactory, ca: trustme.CA, server: TlsServer
) -> None:
    server.set_default(
        Reply(status=403, body=error_body("Certificate is invalid on this endpoint"))
    )
    with pytest.raises(errors.CertificateRejectedError) as caught:
        make_provider(**_month_long_device(ca)).fetch()
    message = str(caught.value)
    assert "looks expired by this device's clock" in message
    assert "(notAfter " in message
    assert "describe-certificate" in message  # the refusal's own advice stays
    assert caught.value.status_code == 403


def test_an_expired_certificate_refused_in_the_handshake_says_so(
    make_provider: ProviderFactory, ca: trustme.CA, server: TlsServer
) -> None:
    """Old fixture certificates: 1.x-era test suites, and devices left on a shelf."""
    certificate, key = _expired_device(ca)
    provider = make_provider(certificate=certificate, private_key=key, max_attempts=1)
    with pytest.raises(errors.TlsHandshakeError) as caught:
        provider.fetch()
    assert "looks expired by this device's clock (notAfter 2020-01-02 00:00 UTC)" in str(
        caught.value
    )
    assert server.request_count == 0


def test_a_valid_certificate_refused_gets_no_expiry_note(
    make_provider: ProviderFactory, server: TlsServer
) -> None:
    server.set_default(
        Reply(status=403, body=error_body("Certificate is invalid on this endpoint"))
    )
    with pytest.raises(errors.CertificateRejectedError) as caught:
        make_provider().fetch()
    assert "expired" not in str(caught.value)


def test_private_key_never_in_errors_or_reprs(
    make_provider: ProviderFactory, device: DeviceFiles, files: dict[str, str]
) -> None:
    provider = make_provider(private_key=device.private_key_pem)
    assert "PRIVATE KEY" not in repr(provider)
    with pytest.raises(errors.KeyMismatchError) as caught:
        make_provider(private_key=Path(files["other_key"]).read_bytes())
    assert "PRIVATE KEY" not in str(caught.value)
    assert "hunter2" not in repr(Pkcs11Config(pkcs11_lib="/x.so", user_pin="hunter2"))


def test_close_interrupts_a_backoff_wait(make_provider: ProviderFactory, server: TlsServer) -> None:
    server.set_default(Reply(status=503, body=error_body("down")))
    provider = make_provider(max_attempts=10, timeout=60)
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            provider.fetch()
        except errors.ServiceUnavailableError as error:
            outcome.append(error)

    thread = threading.Thread(target=fetch)
    thread.start()
    wait_until(lambda: server.request_count, what="the first attempt")
    provider.close()
    thread.join(10)
    assert not thread.is_alive()
    # Had close() not ended the wait, the next attempt would have met the closed transport.
    assert [type(error) for error in outcome] == [errors.ServiceUnavailableError]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"role_alias": "alias\n"}, "Role alias", id="alias-newline"),
        pytest.param({"role_alias": "ålias"}, "Role alias", id="alias-non-ascii"),
        pytest.param({"role_alias": "alias\u0660"}, "Role alias", id="alias-arabic-digit"),
        pytest.param({"thing_name": "thing\n"}, "Thing name", id="thing-newline"),
        pytest.param({"thing_name": "thïng"}, "Thing name", id="thing-non-ascii"),
    ],
)
def test_names_are_refused_whole_and_in_ascii(
    make_provider: ProviderFactory,
    server: TlsServer,
    overrides: dict[str, str],
    fragment: str,
) -> None:
    """A trailing newline or a non-ASCII letter would fail later as "not valid HTTP"."""
    with pytest.raises(errors.ConfigurationError, match=fragment):
        make_provider(**overrides)
    assert server.request_count == 0


def test_every_character_an_alias_may_hold_is_accepted(make_provider: ProviderFactory) -> None:
    make_provider(role_alias="Az09_=,@-", thing_name="Az09:_-").close()


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        pytest.param({"timeout": 1e10}, "10000000000.0", id="timeout-1e10"),
        pytest.param({"timeout": float("inf")}, "inf", id="timeout-inf"),
        pytest.param({"timeout": float("nan")}, "nan", id="timeout-nan"),
        pytest.param({"timeout": -1}, "-1", id="timeout-negative"),
        pytest.param({"timeout": 86401}, "86401", id="timeout-over-a-day"),
        pytest.param({"timeout": "30"}, "'30'", id="timeout-str"),
        pytest.param({"timeout": True}, "True", id="timeout-bool"),
        pytest.param({"max_attempts": 0}, "0", id="attempts-0"),
        pytest.param({"max_attempts": 11}, "11", id="attempts-11"),
        pytest.param({"max_attempts": 10**30}, str(10**30), id="attempts-huge"),
        pytest.param({"max_attempts": True}, "True", id="attempts-bool"),
        pytest.param({"max_attempts": 2.5}, "2.5", id="attempts-float"),
    ],
)
def test_timeout_and_attempts_outside_their_range_are_refused(
    make_provider: ProviderFactory, overrides: dict[str, object], shown: str
) -> None:
    """1e10 or inf seconds overflowed awscrt's 32-bit milliseconds on every fetch; nan passed."""
    (name,) = overrides
    with pytest.raises(errors.ConfigurationError) as caught:
        make_provider(**overrides)
    assert name in str(caught.value)
    assert shown in str(caught.value)


def test_the_largest_timeout_and_attempts_are_accepted(
    make_provider: ProviderFactory, server: TlsServer
) -> None:
    assert make_provider(timeout=86400, max_attempts=10).fetch().access_key_id == "ASIATEST"


@pytest.mark.parametrize(
    ("overrides", "error_class", "fragment"),
    [
        pytest.param(
            {"private_key": None}, errors.ConflictingOptionsError, "Neither", id="neither"
        ),
        pytest.param(
            {"pkcs11": Pkcs11Config(pkcs11_lib="/x.so")},
            errors.ConflictingOptionsError,
            "Both",
            id="both",
        ),
        pytest.param(
            {"private_key": None, "pkcs11": Pkcs11Config()},
            errors.ConfigurationError,
            "PKCS#11 library path must be provided",
            id="config-without-lib",
        ),
        pytest.param(
            {"private_key": None, "pkcs11": ["/x.so"]},
            errors.ConfigurationError,
            "pkcs11 must be a Pkcs11Config",
            id="pkcs11-of-another-type",
        ),
        pytest.param(
            {"private_key": None, "pkcs11": {"pkcs11_lib": "/x.so", "pin": "1"}},
            errors.ConfigurationError,
            "pkcs11 has keys Pkcs11Config does not take: pin",
            id="pkcs11-dict-with-an-unknown-key",
        ),
        pytest.param(
            {"private_key": None, "pkcs11": {"user_pin": "1"}},
            errors.ConfigurationError,
            "PKCS#11 library path must be provided",
            id="pkcs11-dict-without-lib",
        ),
        pytest.param(
            {"private_key": Pkcs11Config(pkcs11_lib="/x.so")},
            errors.ConfigurationError,
            "a PKCS#11 token goes in pkcs11=",
            id="token-as-private-key",
        ),
        pytest.param(
            {"private_key_password": 42},
            errors.ConfigurationError,
            "private_key_password must be",
            id="password-type",
        ),
        pytest.param(
            {"private_key": 42}, errors.ConfigurationError, "private_key must be", id="key-type"
        ),
        pytest.param({"ca": 42}, errors.ConfigurationError, "ca must be", id="ca-type"),
    ],
)
def test_argument_errors_come_before_any_file_is_read(
    make_provider: ProviderFactory,
    tmp_path: Path,
    overrides: dict[str, object],
    error_class: type[errors.ConfigurationError],
    fragment: str,
) -> None:
    """A programming error is reported as such, even when the certificate is missing too."""
    with pytest.raises(error_class, match=fragment) as caught:
        make_provider(certificate=str(tmp_path / "missing.pem"), **overrides)
    assert not isinstance(caught.value, errors.CredentialFileError)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://u:s3cret@[::1", id="unclosed-bracket"),
        pytest.param("http://u:pa[s3cret@host:3128", id="bracket-in-password"),
        pytest.param("http://u:s3cret@host:x", id="port-not-a-number"),
        pytest.param("http://u:s3cret@host:99999", id="port-out-of-range"),
        pytest.param("http://u:s3cret@ho st:3128", id="space"),
        pytest.param("http://u:s3cret@h\nx:3128", id="newline"),
        pytest.param("http://u:s3cret@hé:3128", id="non-ascii"),
    ],
)
@pytest.mark.parametrize("given_as", ["argument", "variable"])
def test_a_malformed_proxy_url_is_a_configuration_error_without_its_password(
    make_provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch, url: str, given_as: str
) -> None:
    if given_as == "variable":
        monkeypatch.setenv("HTTPS_PROXY", url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        overrides: dict[str, object] = {"trust_env": True}
    else:
        overrides = {"proxy": url}
    with pytest.raises(errors.ConfigurationError) as caught:
        make_provider(**overrides)
    message = str(caught.value)
    assert ("HTTPS_PROXY" if given_as == "variable" else "proxy=") in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"role_alias": None}, "role_alias must be a str", id="alias-none"),
        pytest.param({"role_alias": b"alias"}, "role_alias must be a str", id="alias-bytes"),
        pytest.param({"thing_name": 42}, "thing_name must be a str", id="thing-int"),
    ],
)
def test_names_of_the_wrong_type_are_value_errors(
    make_provider: ProviderFactory, overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(errors.ConfigurationError, match=fragment):
        make_provider(**overrides)
