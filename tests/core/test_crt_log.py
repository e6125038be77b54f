"""awscrt's native log: on stderr with credentials redacted, however often it is asked for.

awscrt's logger is process-global and can be initialised once per process, so every test that
turns it on runs a small script in a child process and reads that child's whole stderr.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Optional

import pytest

from awsiot_credentialhelper._crt_log import _Forwarder, _LineStream, redact
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.emulator import Device, Emulator
from awsiot_credentialhelper.exceptions import ConfigurationError

from ..servers import DeviceFiles

_ROOT = Path(__file__).parents[2]


def run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this interpreter (the venv's) and capture stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(_ROOT),
    )


# --- secrets never reach stderr ------------------------------------------------------------

_AWS_CALLS = """
    import json, os, sys
    from awscrt.io import LogLevel
    from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

    device = json.loads(sys.argv[1])
    with open(device["private_key_file"], "rb") as handle:
        private_key = handle.read()  # as bytes, like 1.x's README example
    with Boto3SessionProvider(
        device["endpoint"], device["role_alias"], device["thing_name"],
        device["certificate_file"], private_key, ca=device["ca_file"],
        awscrt_log_level=getattr(LogLevel, sys.argv[2]), trust_env=False,
    ) as provider:
        session = provider.get_session(region=device["region"])
        sts = session.client("sts", endpoint_url=device["aws_endpoint_url"])
        assert sts.get_caller_identity()["Arn"].startswith("arn:aws:sts::")
        dynamodb = session.client("dynamodb", endpoint_url=device["aws_endpoint_url"])
        dynamodb.list_tables()
        frozen = session.get_credentials().get_frozen_credentials()
    descriptor = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"token": frozen.token, "secret": frozen.secret_key}, handle)
"""


def _device_json(device: Device) -> str:
    return json.dumps(
        {
            "endpoint": device.endpoint,
            "role_alias": device.role_alias,
            "thing_name": device.thing_name,
            "certificate_file": str(device.certificate_file),
            "private_key_file": str(device.private_key_file),
            "ca_file": str(device.ca_file),
            "region": device.region,
            "aws_endpoint_url": device.aws_endpoint_url,
        }
    )


@pytest.mark.parametrize("level", ["Debug", "Trace"])
def test_awscrt_log_shows_no_secret_but_still_logs(
    iot_emulator: Emulator, iot_device: Device, tmp_path: Path, level: str
) -> None:
    """1.x's documented ``awscrt_log_level=LogLevel.Debug`` with real STS and DynamoDB calls."""
    secrets_file = tmp_path / "secrets.json"
    result = run_child(_AWS_CALLS, _device_json(iot_device), level, str(secrets_file))
    assert result.returncode == 0, result.stderr[-3000:]
    secrets = json.loads(secrets_file.read_text())
    stderr = result.stderr
    assert len(secrets["token"]) > 100
    key_lines = iot_device.private_key_pem.splitlines()[1:-1]
    # Names only, so that a failure does not print the secret it found.
    leaked = [name for name, value in secrets.items() if value in stderr]
    leaked += [f"key line {n}" for n, line in enumerate(key_lines) if line in stderr]
    assert leaked == []
    assert "PRIVATE KEY" not in stderr
    assert re.search(r"Signature=[0-9a-f]", stderr) is None
    # awscrt still logs: the signer's canonical request, with the token's value replaced.
    assert "[AuthSigning]" in stderr
    assert "\nx-amz-security-token:<redacted>\n" in stderr
    assert "Signature=<redacted>" in stderr
    assert f"[{level.upper()}]" in stderr
    assert "[tls-handler]" in stderr
    assert result.stdout == ""


# --- the logger is process-global ----------------------------------------------------------


def test_a_second_provider_changes_the_level_instead_of_crashing(device: DeviceFiles) -> None:
    result = run_child(
        """
        import sys
        from awscrt.io import LogLevel
        from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

        for level in (LogLevel.Error, LogLevel.Info):
            provider = Boto3SessionProvider(
                "127.0.0.1:1", "alias", "thing", sys.argv[1], sys.argv[2],
                awscrt_log_level=level, max_attempts=1,
            )
            try:
                provider.provider.fetch()  # refused: awscrt logs it
            except Exception:
                pass
            provider.close()
        """,
        device.certificate_file,
        device.private_key_file,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Both refusals logged; the second provider's fetch also logs at Info: the level went up.
    assert result.stderr.count("AWS_IO_SOCKET_CONNECTION_REFUSED") >= 2
    assert "[INFO]" in result.stderr


def test_logging_the_application_set_up_itself_is_kept(device: DeviceFiles, tmp_path: Path) -> None:
    """The application's own ``init_logging`` wins; the provider only raises the level."""
    own_log = tmp_path / "awscrt.log"
    result = run_child(
        """
        import logging, sys
        from awscrt import io
        from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
        io.init_logging(io.LogLevel.Error, sys.argv[3])
        Boto3SessionProvider(
            "localhost:1", "alias", "thing", sys.argv[1], sys.argv[2],
            awscrt_log_level=io.LogLevel.Info,
        ).close()
        """,
        device.certificate_file,
        device.private_key_file,
        str(own_log),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing edge-triggered epoll" in own_log.read_text()
    assert "[INFO]" not in result.stderr
    assert "keeping its destination" in result.stdout


def test_lines_show_while_the_process_runs(device: DeviceFiles) -> None:
    """awscrt buffers its file in 4 KiB blocks; a quiet log's lines still come out, not at exit."""
    script = """
        import sys
        from awscrt.io import LogLevel
        from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

        with Boto3SessionProvider(
            "localhost:1", "alias", "thing", sys.argv[1], sys.argv[2],
            awscrt_log_level=LogLevel.Info,
        ):
            sys.stdin.read()  # until the test has seen the log line
    """
    device_files = [device.certificate_file, device.private_key_file]
    seen: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *device_files],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(_ROOT),
    ) as child:
        assert child.stdin is not None
        assert child.stderr is not None
        stderr = child.stderr

        def read_lines() -> None:
            for line in stderr:
                seen.put(line)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        try:
            line = ""
            while "Initializing edge-triggered epoll" not in line:
                line = seen.get(timeout=60)  # a guard against hanging, not a measurement
        finally:
            child.stdin.close()
            reader.join(timeout=60)
    assert child.returncode == 0


def test_without_dev_fd_the_log_stays_off_and_says_so_once(device: DeviceFiles) -> None:
    result = run_child(
        """
        import sys
        from awscrt.io import LogLevel
        from awsiot_credentialhelper import _crt_log
        from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

        _crt_log._FD_DIRECTORIES = ()  # as outside Linux
        for _ in range(2):
            Boto3SessionProvider(
                "localhost:1", "alias", "thing", sys.argv[1], sys.argv[2],
                awscrt_log_level=LogLevel.Trace,
            ).close()
        """,
        device.certificate_file,
        device.private_key_file,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("awscrt_log_level is ignored") == 1
    assert "[TRACE]" not in result.stderr


@pytest.mark.parametrize("level", ["Debug", 99, [5]], ids=["name", "number", "list"])
def test_a_level_that_is_not_a_loglevel_is_a_configuration_error(
    device: DeviceFiles, level: object
) -> None:
    # Refused before awscrt is touched, so this can run in the test process.
    with pytest.raises(ConfigurationError, match=r"must be an awscrt\.io\.LogLevel"):
        Boto3SessionProvider(
            "localhost:1",
            "alias",
            "thing",
            device.certificate_file,
            device.private_key_file,
            awscrt_log_level=level,
        )


# --- redact(): a pure function --------------------------------------------------------------

_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDx+7bm3Q=="
_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R\n"

_CASES = [
    pytest.param(
        f"x-amz-security-token:{_TOKEN}\n",
        "x-amz-security-token:<redacted>\n",
        id="canonical-request-header",
    ),
    pytest.param(
        "X-Amz-Security-Token: abc123\n", "X-Amz-Security-Token: <redacted>\n", id="http-header"
    ),
    pytest.param(
        "Authorization: AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260101/us-east-1/sts/"
        f"aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={_SIGNATURE}",
        "Authorization: AWS4-HMAC-SHA256 Credential=<redacted>, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=<redacted>",
        id="authorization",
    ),
    pytest.param(
        "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20260101%2Fus-east-1"
        "&X-Amz-Security-Token=IQo%2Fab%3D&X-Amz-Signature=abcdef&x=1 HTTP/1.1",
        "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<redacted>"
        "&X-Amz-Security-Token=<redacted>&X-Amz-Signature=<redacted>&x=1 HTTP/1.1",
        id="presigned-query",
    ),
    pytest.param(
        f'{{"credentials":{{"accessKeyId":"ASIAEXAMPLE","secretAccessKey":"{_SECRET_KEY}",'
        '"sessionToken":"tok","expiration":"2026-01-01T00:00:00Z"}}',
        '{"credentials":{"accessKeyId":"ASIAEXAMPLE","secretAccessKey":"<redacted>",'
        '"sessionToken":"<redacted>","expiration":"2026-01-01T00:00:00Z"}}',
        id="provider-json",
    ),
    pytest.param(
        '{"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s", "Token": "t"}',
        '{"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "<redacted>", "Token": "<redacted>"}',
        id="container-json",
    ),
    pytest.param(
        "aws_secret_access_key = s3cr3t\naws_session_token = tok\n",
        "aws_secret_access_key = <redacted>\naws_session_token = <redacted>\n",
        id="credentials-file",
    ),
    pytest.param(
        "AWS_SESSION_TOKEN=tok AWS_SECRET_ACCESS_KEY=key",
        "AWS_SESSION_TOKEN=<redacted> AWS_SECRET_ACCESS_KEY=<redacted>",
        id="environment",
    ),
    pytest.param(
        "{'user_pin': '1234', 'password': 'hunter2', 'token_label': 'tok'}",
        "{'user_pin': '<redacted>', 'password': '<redacted>', 'token_label': 'tok'}",
        id="repr",
    ),
    pytest.param(
        f"key: -----BEGIN PRIVATE KEY-----\n{_KEY_BODY}-----END PRIVATE KEY----- loaded\n",
        "key: <redacted PEM> loaded\n",
        id="pem-across-lines",
    ),
    pytest.param(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B\n"
        f"\n{_KEY_BODY}-----END RSA PRIVATE KEY-----\n",
        "<redacted PEM>\n",
        id="pem-with-headers",
    ),
    pytest.param(
        '"pem": "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"',
        '"pem": "<redacted PEM>\\n"',
        id="pem-escaped-in-one-line",
    ),
    pytest.param(
        "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
        "-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n",
        "<redacted PEM>\n<redacted PEM>\n",
        id="pem-chain",
    ),
    pytest.param(
        f"-----BEGIN EC PRIVATE KEY-----\n{_KEY_BODY}[INFO] [tls-handler] - next record\n",
        "<redacted PEM>\n[INFO] [tls-handler] - next record\n",
        id="pem-without-end-closes-at-next-record",
    ),
    pytest.param(
        f"pem -----BEGIN PRIVATE KEY-----\n{_KEY_BODY}", "pem <redacted PEM>\n", id="pem-cut-off"
    ),
    pytest.param(f"blob {_TOKEN} end", "blob <redacted> end", id="long-base64"),
    pytest.param(_SECRET_KEY, "<redacted>", id="secret-key-alone"),
    pytest.param(_SECRET_KEY[:39], _SECRET_KEY[:39], id="shorter-run-stays"),
    pytest.param(f"x-amz-content-sha256:{_SHA256}\n", None, id="sha256-digest-stays"),
    pytest.param(
        "[INFO] [2026-11-30T19:47:26Z] [00007f8400dbdb80] [AuthSigning] - (id=0x55865837b050) "
        "Signing successfully built canonical request for algorithm SigV4, with contents \n"
        "host;x-amz-date;x-amz-security-token\n20261130/us-east-1/s3/aws4_request\n",
        None,
        id="ordinary-log-stays",
    ),
    pytest.param("", None, id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), _CASES)
def test_redact(text: str, expected: Optional[str]) -> None:
    assert redact(text) == (text if expected is None else expected)


@pytest.mark.parametrize(("text", "expected"), _CASES)
def test_redacting_twice_changes_nothing_more(text: str, expected: Optional[str]) -> None:
    assert redact(redact(text)) == redact(text)


# --- the byte stream: whole lines, whatever the chunks ---------------------------------------

_STREAM = "".join(str(case.values[0]) + "\n" for case in _CASES) + "café ünïcode\nno newline"


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1 << 20])
def test_chunks_come_out_as_redact_would(size: int) -> None:
    data = _STREAM.encode()
    stream = _LineStream()
    out = b"".join(stream.feed(data[i : i + size]) for i in range(0, len(data), size))
    # The unfinished last line comes out ended.
    assert (out + stream.finish()).decode() == redact(_STREAM) + "\n"


def test_a_line_too_long_to_hold_is_dropped_whole() -> None:
    stream = _LineStream()
    head = stream.feed(b"before\n" + b"A" * ((1 << 20) + 1))
    rest = stream.feed(b"B" * 100 + b"\nafter\n")
    assert head + rest == b"before\n<an awscrt log line over 1 MiB was dropped>\nafter\n"


# --- the reader thread -------------------------------------------------------------------------


def test_reader_copies_redacted_lines_and_ends_with_the_pipe(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    out_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    closed = threading.Event()
    forwarder = _Forwarder(read_fd, out_fd, on_close=closed.set)
    forwarder.start()
    data = _STREAM.encode() * 50
    for i in range(0, len(data), 333):  # writes that cut lines anywhere
        os.write(write_fd, data[i : i + 333])
    os.close(write_fd)
    forwarder.thread.join(timeout=60)
    forwarder.drain()  # the unfinished last line
    os.close(out_fd)
    os.close(read_fd)
    assert closed.is_set()
    assert (tmp_path / "out").read_text() == redact(_STREAM * 50) + "\n"


def _write_when_there_is_room(fd: int, line: bytes) -> None:
    """Write one short line, failing (not hanging) if nothing reads the pipe any more."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    assert poller.poll(60_000), "the pipe stayed full: its reader stopped"  # a hang guard
    os.write(fd, line)  # room for PIPE_BUF bytes: this does not block


def test_reader_keeps_draining_when_stderr_is_broken() -> None:
    """A full pipe would block awscrt's logging thread: the reader never stops reading."""
    read_fd, write_fd = os.pipe()
    broken_read, broken_write = os.pipe()
    os.close(broken_read)  # every write to broken_write now fails with EPIPE
    forwarder = _Forwarder(read_fd, broken_write)
    forwarder.start()
    line = b"[TRACE] " + b"x" * 120 + b"\n"
    for _ in range(8 << 20 // len(line)):  # 8 MiB: more than 100 pipes' worth
        _write_when_there_is_room(write_fd, line)
    os.close(write_fd)
    forwarder.thread.join(timeout=60)
    assert not forwarder.thread.is_alive()
    os.close(read_fd)
    os.close(broken_write)
