"""``serve`` through the console script, with botocore's own container and IMDS providers."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest
from botocore.credentials import (
    ContainerMetadataFetcher,
    ContainerProvider,
    InstanceMetadataFetcher,
    InstanceMetadataProvider,
)
from botocore.exceptions import CredentialRetrievalError

from awsiot_credentialhelper import Credentials, RefreshPolicy
from awsiot_credentialhelper.cli._serve import (
    IDLE_TIMEOUT,
    IMDS_POLICY,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_HEAD,
    REQUEST_TIMEOUT,
    CredentialSource,
    CredentialsServer,
    TokenStore,
)
from awsiot_credentialhelper.exceptions import ConnectionClosedError, ServiceUnavailableError
from tests.servers import Reply, TlsServer, error_body

from .conftest import RUN_TIMEOUT, Cli, stop

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device, Emulator

AWS = str(Path(sys.executable).with_name("aws"))

_SECRETS = ("test-secret-access-key", "test-session-token")


class Lines:
    """Reads a process's stdout in a thread, so a test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)

    def next(self, timeout: float = 30.0) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("serve printed nothing in time") from None


def _wait_until_serving(url: str, *, imds: bool = False, token: str = "") -> None:
    """Poll until the first fetch has landed (the server answers 503 until then)."""
    headers = {"Authorization": token}
    path = "/credentials"
    if imds:
        ttl = {"x-aws-ec2-metadata-token-ttl-seconds": "60"}
        headers = {
            "x-aws-ec2-metadata-token": _request(url, "PUT", "/latest/api/token", ttl)[1].decode()
        }
        path = "/latest/meta-data/iam/security-credentials/test-alias"
    deadline = time.monotonic() + 20
    while _request(url, path=path, headers=headers)[0] != 200:
        assert time.monotonic() < deadline, "serve never got credentials"
        time.sleep(0.05)


def _default_chain(cli: Cli, exports: dict[str, str]) -> list[str]:
    """What botocore's default credential chain finds with these exports, in a fresh process."""
    code = (
        "import botocore.session\n"
        "credentials = botocore.session.Session().get_credentials()\n"
        "print(credentials.method, credentials.get_frozen_credentials().access_key)\n"
    )
    env = cli.environment(exports)
    env.pop("AWS_EC2_METADATA_DISABLED")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _exports(lines: Lines, count: int) -> dict[str, str]:
    exports = {}
    for _ in range(count):
        line = lines.next().strip()
        assert line.startswith("export "), line
        name, _, value = line[len("export ") :].partition("=")
        exports[name] = value
    return exports


def _request(
    url: str, method: str = "GET", path: str = "/", headers: Optional[dict[str, str]] = None
) -> tuple[int, bytes]:
    host_port = url.split("//", 1)[1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def serve_container(
    cli: Cli, server: TlsServer, flags: list[str]
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    with cli.background("serve", "--port", "0", *flags) as process:
        yield process, _exports(Lines(process), 2)


def test_container_mode_serves_botocore_and_guards_the_token(
    cli: Cli, serve_container: tuple[subprocess.Popen[str], dict[str, str]], server: TlsServer
) -> None:
    process, exports = serve_container
    url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    token_file = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/credentials")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text()
    assert len(token) >= 43  # 256 random bits, base64url
    _wait_until_serving(url.rsplit("/", 1)[0], token=token)

    credentials = ContainerProvider(environ=exports).load()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("ASIATEST", "test-secret-access-key")
    assert _default_chain(cli, exports) == ["container-role", "ASIATEST"]

    base, path = url.rsplit("/", 1)[0], "/credentials"
    assert _request(base, path=path)[0] == 401
    assert _request(base, path=path, headers={"Authorization": token + "x"})[0] == 403
    status, body = _request(
        base, path=path, headers={"Authorization": token, "X-Forwarded-For": "10.0.0.1"}
    )
    assert status == 400
    assert b"X-Forwarded-For" in body
    assert _request(base, path="/other", headers={"Authorization": token})[0] == 404
    assert _request(base, method="POST", path=path, headers={"Authorization": token})[0] == 405
    status, body = _request(base, path=path, headers={"Authorization": token})
    assert status == 200
    assert set(json.loads(body)) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert server.request_count == 1, "every answer came from memory"

    _, err = stop(process)
    assert process.returncode == 0, err
    assert "GET /credentials 200 127.0.0.1" in err
    assert "GET /credentials 403 127.0.0.1" in err
    assert token not in err
    assert not any(secret in err for secret in _SECRETS)
    assert not token_file.exists(), "the default token file is removed on exit"


def test_imds_mode_serves_botocore_without_expiry_extension(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    with cli.background("serve", "--mode", "imds", "--host", "::1", "--port", "0", *flags) as (
        process
    ):
        url = _exports(Lines(process), 1)["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        assert url.startswith("http://[::1]:")
        _wait_until_serving(url, imds=True)
        fetcher = InstanceMetadataFetcher(
            timeout=2, num_attempts=1, config={"ec2_metadata_service_endpoint": url}
        )
        credentials = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
        assert credentials is not None
        assert credentials.get_frozen_credentials().access_key == "ASIATEST"
        assert _default_chain(cli, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}) == [
            "iam-role",
            "ASIATEST",
        ]
        # More than 25 minutes were left, so botocore kept the real expiry.
        metadata = fetcher.retrieve_iam_role_credentials()
        expiry = datetime.strptime(metadata["expiry_time"], "%Y-%m-%dT%H:%M:%SZ")
        assert credentials._expiry_time == expiry.replace(tzinfo=timezone.utc)  # type: ignore[attr-defined]

        ttl = "x-aws-ec2-metadata-token-ttl-seconds"
        assert _request(url, "PUT", "/latest/api/token")[0] == 400
        assert _request(url, "PUT", "/latest/api/token", {ttl: "0"})[0] == 400
        assert _request(url, "PUT", "/latest/api/token", {ttl: "21601"})[0] == 400
        assert _request(url, "PUT", "/latest/api/token", {ttl: "\u00b2"})[0] == 400  # isdigit
        forwarded = {ttl: "60", "X-Forwarded-For": "10.0.0.1"}
        assert _request(url, "PUT", "/latest/api/token", forwarded)[0] == 400
        status, token = _request(url, "PUT", "/latest/api/token", {ttl: "60"})
        assert status == 200
        listing = "/latest/meta-data/iam/security-credentials/"
        assert _request(url, path=listing)[0] == 401
        assert _request(url, path=listing, headers={"x-aws-ec2-metadata-token": "nope"})[0] == 401
        good = {"x-aws-ec2-metadata-token": token.decode()}
        assert _request(url, path=listing, headers=good) == (200, b"test-alias")
        assert _request(url, path=listing + "other-role", headers=good)[0] == 404
        status, body = _request(url, path=listing + "test-alias", headers=good)
        assert status == 200
        assert json.loads(body)["Code"] == "Success"
        _, err = stop(process)
    assert process.returncode == 0, err
    assert token.decode() not in err


def _raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes; read everything until the server closes the connection."""
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    received = b""
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_http_framing_pipelining_head_and_oversized_heads(
    serve_container: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _, exports = serve_container
    url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
    _wait_until_serving(url.rsplit("/", 1)[0], token=token)
    host = url.split("//", 1)[1].split("/", 1)[0]
    get = f"GET /credentials HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n".encode()
    head = f"HEAD /credentials HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    # Three requests in one write, the last closing: three answers, in order, one connection.
    replies = _raw_exchange(url, get + b"\r\n" + head + get + b"Connection: close\r\n\r\n")
    heads = replies.split(b"HTTP/1.1 ")[1:]
    assert [part[:3] for part in heads] == [b"200", b"405", b"200"]
    assert heads[1].endswith(b"\r\n\r\n"), "a HEAD answer has no body"
    assert heads[2].count(b"ASIATEST") == 1
    # A request head beyond the limit: 431, then the connection is closed; whether it came
    # whole in one read or is still incomplete past the limit.
    huge = b"GET /credentials HTTP/1.1\r\nX-Filler: " + b"a" * 20000
    assert _raw_exchange(url, huge + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert _raw_exchange(url, huge).startswith(b"HTTP/1.1 431")
    # Two Host headers (the first naming this server): refused, not "the first wins".
    twice = get + f"Host: attacker.example:{_port_of(url)}\r\n\r\n".encode()
    assert _raw_exchange(url, twice).startswith(b"HTTP/1.1 400")


def test_provider_down_at_start_gives_503_then_recovers(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    # The first fetch (3 attempts) fails; the retry a second later succeeds.
    server.queue(*[Reply(status=500, body=error_body("InternalFailure"))] * 3)
    with cli.background("serve", "--port", "0", *flags) as process:
        exports = _exports(Lines(process), 2)
        token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
        base = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0]
        status, body = _request(base, path="/credentials", headers={"Authorization": token})
        if status == 503:
            document = json.loads(body)
            assert document["Code"] == "CredentialsUnavailable"
            assert "No credentials yet" in document["Message"]
        deadline = time.monotonic() + 20
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, body = _request(base, path="/credentials", headers={"Authorization": token})
        assert status == 200
        assert json.loads(body)["AccessKeyId"] == "ASIATEST"
        stop(process)
    assert process.returncode == 0


def test_a_provider_that_stays_down_never_yields_empty_credentials(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    server.set_default(Reply(status=403, body=error_body("Access Denied")))
    with cli.background("serve", "--port", "0", *flags) as process:
        exports = _exports(Lines(process), 2)
        token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
        base = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0]
        deadline = time.monotonic() + 10
        while server.request_count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        status, body = _request(base, path="/credentials", headers={"Authorization": token})
        assert status == 503
        assert "Access Denied" in json.loads(body)["Message"]
        fetcher = ContainerMetadataFetcher(sleep=lambda _: None)
        with pytest.raises(CredentialRetrievalError):
            ContainerProvider(environ=exports, fetcher=fetcher).load()  # type: ignore[arg-type]
        _, err = stop(process)
    assert process.returncode == 0
    assert "Background credential refresh failed; there are no credentials yet" in err


def test_refuses_non_loopback_addresses(cli: Cli, flags: list[str]) -> None:
    result = cli.run("serve", "--host", "0.0.0.0", "--port", "0", *flags)  # noqa: S104
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
    result = cli.run("serve", "--port", "70000", *flags)
    assert result.returncode == 2
    assert "not a port number 0-65535" in result.stderr


# --- the pieces, with injected clocks --------------------------------------------------------


def test_token_store_is_bounded_and_expires_tokens() -> None:
    now = [0.0]
    store = TokenStore(limit=3, clock=lambda: now[0])
    short = store.issue(10)
    longer = [store.issue(100), store.issue(200)]
    assert store.valid(short)
    newest = store.issue(300)  # evicts the earliest-expiring token
    assert len(store) == 3
    assert not store.valid(short)
    assert all(store.valid(token) for token in [*longer, newest])
    now[0] = 150.0
    assert not store.valid(longer[0])
    assert store.valid(longer[1])
    assert not store.valid("")
    assert not store.valid(None)


def _credentials(now: datetime, lifetime: timedelta) -> Credentials:
    return Credentials("ASIA", "secret", "token", now + lifetime, now)


def test_source_keeps_serving_last_good_credentials_then_503_when_expired() -> None:
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    clock = [start]
    answers: list[Any] = [_credentials(start, timedelta(hours=1))]

    def fetch() -> Credentials:
        answer = answers.pop(0) if answers else None
        if answer is None:
            raise ServiceUnavailableError(
                status_code=503, message="down", endpoint="e", role_alias="a"
            )
        assert isinstance(answer, Credentials)
        return answer

    source = CredentialSource(fetch, policy=IMDS_POLICY, clock=lambda: clock[0])
    source.start()
    try:
        deadline = time.monotonic() + 10
        while source.current()[0] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first, _ = source.current()
        assert first is not None
        clock[0] = start + timedelta(minutes=50)  # refreshes fail from now on
        assert source.current()[0] is first, "last good credentials while still valid"
        clock[0] = start + timedelta(minutes=59, seconds=30)  # under a minute left
        credentials, reason = source.current()
        assert credentials is None
        assert "expired" in reason
    finally:
        source.stop()


# --- hostile local requests (DNS rebinding, proxies) and the token file ----------------------


def _port_of(url: str) -> int:
    return int(url.split("//", 1)[1].split("/", 1)[0].rpartition(":")[2])


#: Host values a web page can make a browser send after DNS rebinding, or that name another
#: server: all refused.
_FOREIGN_HOSTS = [
    "attacker.example:{port}",
    "attacker.example",
    "localhost.attacker.example:{port}",
    "127.0.0.1.attacker.example:{port}",
    "127.0.0.1:{other}",
    "localhost:{other}",
    "localhost",  # no port: only right when the server is on port 80
    "127.0.0.1",
    "[::1]",
    "0.0.0.0:{port}",
    "10.0.0.1:{port}",
    "[::1]{port}",
    "127.0.0.1:+{port}",
    "",
]
#: Host values local clients send (botocore sends the URL's host and port).
_LOCAL_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}", "[::1]:{port}"]


def _hosts(templates: list[str], port: int) -> list[str]:
    return [template.format(port=port, other=port + 1) for template in templates]


def test_imds_mode_answers_only_requests_that_name_this_server(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    with cli.background("serve", "--mode", "imds", "--port", "0", *flags) as process:
        url = _exports(Lines(process), 1)["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        port = _port_of(url)
        _wait_until_serving(url, imds=True)
        ttl = {"x-aws-ec2-metadata-token-ttl-seconds": "60"}
        put = "/latest/api/token"
        listing = "/latest/meta-data/iam/security-credentials/"
        for host in _hosts(_FOREIGN_HOSTS, port):
            status, body = _request(url, "PUT", put, {**ttl, "Host": host})
            assert status == 403, host
            assert b"Host" in body
        for host in _hosts(_LOCAL_HOSTS, port):
            status, token = _request(url, "PUT", put, {**ttl, "Host": host})
            assert status == 200, host
        good = {"x-aws-ec2-metadata-token": token.decode()}
        status, body = _request(
            url, path=listing + "test-alias", headers={**good, "Host": f"attacker.example:{port}"}
        )
        assert status == 403
        assert b"ASIATEST" not in body
        # Relayed requests are refused whichever header says so.
        for relayed in ({"Forwarded": "for=10.0.0.1"}, {"X-Forwarded-For": "10.0.0.1"}):
            status, body = _request(url, path=listing + "test-alias", headers={**good, **relayed})
            assert status == 400
            assert b"ASIATEST" not in body
        # No Host at all (HTTP/1.0 allows that; no SDK does it): refused too.
        raw = f"GET {listing}test-alias HTTP/1.0\r\nx-aws-ec2-metadata-token: {token.decode()}\r\n"
        assert _raw_exchange(url, raw.encode() + b"\r\n").startswith(b"HTTP/1.1 403")
        # botocore, pointed at localhost, still gets its credentials.
        local_url = f"http://localhost:{port}/"
        fetcher = InstanceMetadataFetcher(
            timeout=2, num_attempts=1, config={"ec2_metadata_service_endpoint": local_url}
        )
        credentials = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
        assert credentials is not None
        assert credentials.get_frozen_credentials().access_key == "ASIATEST"
        _, err = stop(process)
    assert process.returncode == 0, err


def test_container_mode_applies_the_same_host_rule(
    serve_container: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _, exports = serve_container
    url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    base = url.rsplit("/", 1)[0]
    port = _port_of(base)
    token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
    _wait_until_serving(base, token=token)
    for host in _hosts(_FOREIGN_HOSTS, port):
        status, body = _request(
            base, path="/credentials", headers={"Authorization": token, "Host": host}
        )
        assert status == 403, host
        assert b"ASIATEST" not in body
    for host in _hosts(_LOCAL_HOSTS, port):
        headers = {"Authorization": token, "Host": host}
        assert _request(base, path="/credentials", headers=headers)[0] == 200, host
    relayed = {"Authorization": token, "Forwarded": "for=10.0.0.1;proto=http"}
    assert _request(base, path="/credentials", headers=relayed)[0] == 400
    # botocore's container provider accepts localhost URLs; it sends that name as the Host.
    local = {
        **exports,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://localhost:{port}/credentials",
    }
    credentials = ContainerProvider(environ=local).load()
    assert credentials is not None
    assert credentials.get_frozen_credentials().access_key == "ASIATEST"


def test_an_explicit_token_file_is_removed_at_exit(
    cli: Cli, server: TlsServer, flags: list[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "run" / "serve.token"
    token_file.parent.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    left_behind = token_file.parent / f".serve.token.{finished.pid}.0badc0de.tmp"
    left_behind.write_text("a token from a serve killed while writing it")
    with cli.background("serve", "--port", "0", "--token-file", str(token_file), *flags) as (
        process
    ):
        exports = _exports(Lines(process), 2)
        assert exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(token_file)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        _, err = stop(process)
    assert process.returncode == 0, err
    assert not token_file.exists()
    assert list(token_file.parent.iterdir()) == [], "no temporary file either, ours or older"


def test_a_token_file_rewritten_by_someone_else_is_left_alone(
    cli: Cli, server: TlsServer, flags: list[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "serve.token"
    with cli.background("serve", "--port", "0", "--token-file", str(token_file), *flags) as (
        process
    ):
        _exports(Lines(process), 2)
        token_file.write_text("another server's token")  # e.g. a second serve, same path
        _, err = stop(process)
    assert process.returncode == 0, err
    assert token_file.read_text() == "another server's token"


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        pytest.param("missing/serve.token", "No such file or directory", id="missing-directory"),
        pytest.param("a-directory", "Is a directory", id="directory"),
    ],
)
def test_an_unwritable_token_file_is_a_clear_error(
    cli: Cli, flags: list[str], tmp_path: Path, name: str, cause: str
) -> None:
    (tmp_path / "a-directory").mkdir()
    path = tmp_path / name
    result = cli.run("serve", "--port", "0", "--token-file", str(path), *flags)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert cause in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("mode", ["container", "imds"])
def test_the_aws_cli_gets_credentials_from_serve_at_localhost(
    cli: Cli, iot_emulator: Emulator, iot_device: Device, mode: str
) -> None:
    """The real AWS CLI, told to use ``localhost``, passes the Host rule in both modes."""
    device = iot_device
    flags = [
        f"--endpoint={device.endpoint}",
        f"--role-alias={device.role_alias}",
        f"--thing-name={device.thing_name}",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={device.ca_file}",
    ]
    with cli.background("serve", "--mode", mode, "--port", "0", *flags) as process:
        exports = _exports(Lines(process), 2 if mode == "container" else 1)
        variable = next(iter(exports))  # the URL comes first
        exports[variable] = exports[variable].replace("127.0.0.1", "localhost")
        env = cli.environment(
            {
                **exports,
                "AWS_ENDPOINT_URL": iot_emulator.aws_endpoint_url,
                "AWS_DEFAULT_REGION": device.region,
            }
        )
        env.pop("AWS_EC2_METADATA_DISABLED")
        result = subprocess.run(
            [AWS, "sts", "get-caller-identity", "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
        assert device.role_arn.split("/")[-1] in json.loads(result.stdout)["Arn"]
        _, err = stop(process)
    assert process.returncode == 0, err
    assert " 200 127.0.0.1" in err


def test_source_survives_any_exception_and_recovers_after_failures_in_a_row() -> None:
    """serve's first fetch once died on an untranslated exception, answering 503 forever."""
    start = datetime.now(timezone.utc)
    failures: list[BaseException] = [
        RuntimeError("an awscrt error nobody mapped"),
        ServiceUnavailableError(status_code=503, message="down", endpoint="e", role_alias="a"),
        ConnectionClosedError("dropped", endpoint="e"),
    ]

    def fetch() -> Credentials:
        if failures:
            raise failures.pop(0)
        return _credentials(datetime.now(timezone.utc), timedelta(hours=1))

    quick = RefreshPolicy(
        retry_delay=timedelta(seconds=0.05), max_retry_delay=timedelta(seconds=0.2)
    )
    before = set(threading.enumerate())
    source = CredentialSource(fetch, policy=quick)
    source.start()
    try:
        reasons = set()
        deadline = time.monotonic() + 20
        while source.current()[0] is None and time.monotonic() < deadline:
            reasons.add(source.current()[1])
            time.sleep(0.01)
        credentials, _ = source.current()
        assert credentials is not None
        assert credentials.issued_at >= start
        assert not failures, "every failure was followed by another attempt"
        assert any("an unexpected RuntimeError" in reason for reason in reasons) or any(
            "down" in reason for reason in reasons
        )
        assert not any("awscrt error nobody mapped" in reason for reason in reasons)
    finally:
        source.stop()
    assert not set(threading.enumerate()) - before, "no thread is left behind after stop()"


# --- HTTP/1.1 framing (h11), on a server in this process -------------------------------------

_TOKEN = "test-container-token"


class LocalServer:
    """serve's HTTP server in this process: a real loopback socket, its own event-loop thread.

    Requests cross the socket for real; being in the process lets a test run the timeout
    sweep as if seconds had passed, instead of waiting for them.
    """

    def __init__(self, session_token: str = "token") -> None:  # noqa: S107 - a test value
        def fetch() -> Credentials:
            now = datetime.now(timezone.utc)
            return Credentials("ASIA", "secret", session_token, now + timedelta(hours=1), now)

        self.source = CredentialSource(fetch, policy=RefreshPolicy())
        self.server = CredentialsServer(
            "127.0.0.1",
            0,
            mode="container",
            source=self.source,
            role_name="test-alias",
            container_token=_TOKEN,
        )
        self.url = self.server.base_url
        self.host = self.url.split("//", 1)[1]
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopped: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()))

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._ready.set()
        await self.server.serve(self._stopped)

    def start(self) -> None:
        self.source.start()
        self._thread.start()
        assert self._ready.wait(10), "the event loop did not start"
        deadline = time.monotonic() + 10
        while self.source.current()[0] is None:
            assert time.monotonic() < deadline, "no credentials"
            time.sleep(0.01)

    def in_loop(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in the event-loop thread and return its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(function), self._loop)
        return future.result(10)

    def sweep(self, later: float) -> None:
        """Run the connections' timeout checks as if ``later`` seconds had passed."""

        def check() -> None:
            now = time.monotonic() + later
            for connection in list(self.server.connections):
                connection.check_timeouts(now)

        self.in_loop(check)

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread.is_alive():
            self._thread.join(10)
        self.server.close()
        self.source.stop()


async def _call(function: Callable[[], Any]) -> Any:
    return function()


@pytest.fixture
def local() -> Iterator[LocalServer]:
    server = LocalServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _statuses(replies: bytes) -> list[int]:
    return [int(part[:3]) for part in replies.split(b"HTTP/1.1 ")[1:]]


_GET = "GET /credentials HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
_LAST = _GET + "Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("request_text", "status", "survives"),
    [
        # Where the hand-written parser answered otherwise, its answer is in the comment.
        pytest.param(_GET + "Content-Length: 5\r\n\r\nhello", 200, True, id="get-body-dropped"),
        pytest.param(  # was 411
            _GET + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            200,
            True,
            id="chunked-get-body-dropped",
        ),
        pytest.param(
            _GET + f"Content-Length: {MAX_BODY + 1}\r\n\r\n", 413, False, id="content-length-413"
        ),
        pytest.param(  # was 411; the body stops past the limit: no unread byte resets the socket
            _GET + f"Transfer-Encoding: chunked\r\n\r\n{MAX_BODY + 1:x}\r\n" + "a" * (MAX_BODY + 1),
            413,
            False,
            id="chunked-413",
        ),
        pytest.param(  # was 411
            _GET + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            False,
            id="content-length-and-chunked",
        ),
        pytest.param(  # was 411
            _GET + "Transfer-Encoding: gzip\r\n\r\n", 501, False, id="transfer-encoding-not-chunked"
        ),
        pytest.param(  # was 400
            _GET + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            200,
            True,
            id="identical-content-lengths",
        ),
        pytest.param(
            _GET + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
            False,
            id="conflicting-content-lengths",
        ),
        pytest.param(  # was 200: the first one won
            _GET + "Authorization: {token}\r\n\r\n", 400, False, id="two-authorization-headers"
        ),
        pytest.param(  # was 403 (the Host rule)
            "GET /credentials HTTP/1.1\r\nAuthorization: {token}\r\n\r\n",
            400,
            False,
            id="http-1.1-without-host",
        ),
        pytest.param(  # was kept alive
            "GET /credentials HTTP/1.0\r\nHost: {host}\r\nAuthorization: {token}\r\n"
            "Connection: keep-alive\r\n\r\n",
            200,
            False,
            id="http-1.0-keep-alive-closes",
        ),
        pytest.param(  # was skipped
            "\r\n" + _GET + "\r\n", 400, False, id="empty-line-before-request"
        ),
        pytest.param("GET /credentials HTTP/2.0\r\nHost: {host}\r\n\r\n", 505, False, id="http-2"),
        pytest.param(  # was 400: a folded line is joined to the header before it
            _GET + "X-Folded: a\r\n b\r\n\r\n", 200, True, id="folded-header"
        ),
        pytest.param(  # was 400
            "GET /credentials HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n x\r\n\r\n",
            403,
            True,
            id="folded-authorization-is-another-token",
        ),
        pytest.param(
            _GET + "Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 200, True, id="upgrade-ignored"
        ),
        pytest.param(  # h11 quotes the line in its reason: the answer must not
            _GET + "X-Bad : {token}\r\n\r\n", 400, False, id="malformed-header-line"
        ),
        pytest.param(  # was 404
            "GET /cr\u00e9dentials HTTP/1.1\r\nHost: {host}\r\n\r\n",
            400,
            False,
            id="non-ascii-target",
        ),
    ],
)
def test_http_framing_decisions(
    local: LocalServer, request_text: str, status: int, survives: bool
) -> None:
    """How h11 and serve's own rules frame requests: one answer, then the connection survives
    (a following request is answered) or is closed."""
    data = request_text + (_LAST if survives else "")
    data = data.replace("{host}", local.host).replace("{token}", _TOKEN)
    replies = _raw_exchange(local.url, data.encode("latin-1"))
    assert _statuses(replies) == ([status, 200] if survives else [status])
    assert _TOKEN.encode() not in replies


@pytest.mark.parametrize(("extra", "statuses"), [(0, [200, 200]), (1, [431])], ids=["fits", "over"])
def test_the_head_limit_is_exact(local: LocalServer, extra: int, statuses: list[int]) -> None:
    """A head of MAX_HEAD bytes, blank line included, is read; one byte more is refused."""
    start = _GET.replace("{host}", local.host).replace("{token}", _TOKEN) + "X-Filler: "
    filler = "a" * (MAX_HEAD - len(start) - len("\r\n\r\n") + extra)
    head = start + filler + "\r\n\r\n"
    assert len(head) == MAX_HEAD + extra
    # Nothing after a refused head: a byte left unread when the server closes resets the socket.
    last = _LAST.replace("{host}", local.host).replace("{token}", _TOKEN) if not extra else ""
    assert _statuses(_raw_exchange(local.url, (head + last).encode())) == statuses


def test_pipelined_requests_beyond_one_heads_worth_are_all_answered(local: LocalServer) -> None:
    """h11 is given at most MAX_HEAD bytes at a time while it waits for a head: requests
    pipelined past that (and heads cut across that boundary) are still read in order."""
    one = _GET.replace("{host}", local.host).replace("{token}", _TOKEN) + "\r\n"
    count = 3 * MAX_HEAD // len(one)
    last = _LAST.replace("{host}", local.host).replace("{token}", _TOKEN)
    replies = _raw_exchange(local.url, (one * count + last).encode())
    assert _statuses(replies) == [200] * (count + 1)


def test_the_request_log_has_no_query_and_refusals_are_logged(
    local: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awsiot_credentialhelper.cli._serve")
    path = "/credentials?secret=query-value"
    assert _request(local.url, path=path, headers={"Authorization": _TOKEN})[0] == 200
    twice = _GET + "Authorization: {token}\r\n\r\n"
    twice = twice.replace("{host}", local.host).replace("{token}", _TOKEN)
    assert _statuses(_raw_exchange(local.url, twice.encode())) == [400]

    def lines() -> list[str]:  # the request lines among the server's own
        return [r.getMessage() for r in caplog.records if r.msg == "%s %s %s %s"]

    deadline = time.monotonic() + 10
    while len(lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lines() == [
        "GET /credentials 200 127.0.0.1",
        "- - 400 127.0.0.1",
    ]


def test_a_stalled_request_gets_408_and_an_idle_connection_is_closed(local: LocalServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", _port_of(local.url), timeout=10)
    try:
        connection.request("GET", "/credentials", headers={"Authorization": _TOKEN})
        assert connection.getresponse().read()
        assert connection.sock is not None
        local.sweep(REQUEST_TIMEOUT + 1)  # no request under way: nothing to time out
        connection.request("GET", "/credentials", headers={"Authorization": _TOKEN})
        assert connection.getresponse().status == 200
        local.sweep(IDLE_TIMEOUT + 1)
        assert connection.sock.recv(1) == b"", "the idle connection was closed"
    finally:
        connection.close()
    with socket.create_connection(("127.0.0.1", _port_of(local.url)), timeout=10) as sock:
        sock.sendall(f"GET /credentials HTTP/1.1\r\nHost: {local.host}\r\n".encode())
        sock.settimeout(0.05)
        received = b""
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            local.sweep(REQUEST_TIMEOUT + 1)  # until the partial head has arrived
            with contextlib.suppress(socket.timeout):
                received = sock.recv(65536)
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            received += chunk
    assert _statuses(received) == [408]


def test_connections_beyond_the_limit_are_closed_at_once(local: LocalServer) -> None:
    address = ("127.0.0.1", _port_of(local.url))
    held = [socket.create_connection(address, timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        # Answered on the last one: every earlier one was accepted before it.
        held[-1].sendall(f"GET / HTTP/1.1\r\nHost: {local.host}\r\n\r\n".encode())
        assert held[-1].recv(65536).startswith(b"HTTP/1.1 ")
        try:
            answer = _raw_exchange(local.url, _LAST.encode())
        except ConnectionError:  # closed with abort(): a reset, or an end of file
            answer = b""
        assert answer == b"", "one too many is closed unanswered"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while local.in_loop(lambda: len(local.server.connections)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _request(local.url, path="/credentials", headers={"Authorization": _TOKEN})[0] == 200


def test_a_client_that_stops_reading_pauses_its_connection() -> None:
    """Pipelined requests whose answers are not read stop being read, then are read again
    once the client reads: every answer arrives, in order."""
    # 100 answers of 60 kB: 6 MB, more than the kernel's socket buffers hold (the server's
    # send buffer grows to net.ipv4.tcp_wmem's maximum, 4 MB by default).
    local = LocalServer(session_token="t" * 60_000)
    count = 100
    one = _GET.replace("{host}", local.host).replace("{token}", _TOKEN) + "\r\n"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    try:
        local.start()
        sock.connect(("127.0.0.1", _port_of(local.url)))
        sock.sendall((one * count).encode())

        def paused() -> bool:
            return any(
                not connection._transport.is_reading()
                for connection in local.server.connections
                if connection._transport is not None
            )

        deadline = time.monotonic() + 10
        while not local.in_loop(paused):
            assert time.monotonic() < deadline, "the server never stopped reading"
            time.sleep(0.01)
        sock.sendall((one * count).encode())  # read only once reading resumes
        answers, received, marker = 0, b"", b"HTTP/1.1 "
        while answers < 2 * count and (chunk := sock.recv(65536)):
            # Count only where a new marker can be: counting all of it again is quadratic.
            start = max(0, len(received) - len(marker) + 1)
            received += chunk
            answers += received.count(marker, start)
    finally:
        sock.close()
        local.stop()
    assert _statuses(received) == [200] * 2 * count
