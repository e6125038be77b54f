"""The emulator CLI as users run it: a real subprocess, stopped with a real signal."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ._client import TIMEOUT, call_with_deadline, held_port, tls_context

STARTUP_TIMEOUT = 60.0


def wait_for_state(process: subprocess.Popen[str], state_file: Path) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if state_file.exists():
            document: dict[str, Any] = json.loads(state_file.read_text())
            return document
        if process.poll() is not None:
            pytest.fail(f"the emulator exited early with {process.returncode}")
        time.sleep(0.1)
    pytest.fail("the emulator did not write emulator.json in time")


def mtls_get(document: dict[str, Any], device: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import http.client  # noqa: PLC0415 - kept next to its only use

    host, _, port = document["endpoint"].rpartition(":")
    context = tls_context(
        document["ca_file"], device["certificate_file"], device["private_key_file"]
    )
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=TIMEOUT)
    try:
        connection.request(
            "GET",
            f"/role-aliases/{device['role_alias']}/credentials",
            headers={"x-amzn-iot-thingname": device["thing_name"]},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled(tmp_path: Path, stop_signal: signal.Signals) -> None:
    command = [sys.executable, "-m", "awsiot_credentialhelper.emulator", "--dir", str(tmp_path)]
    command += ["--device", "kitchen", "--device", "garage", "--region", "eu-west-1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        document = wait_for_state(process, tmp_path / "emulator.json")
        assert set(document) == {"endpoint", "ca_file", "aws_endpoint_url", "region", "devices"}
        assert document["region"] == "eu-west-1"
        assert document["aws_endpoint_url"].startswith("http://127.0.0.1:")
        assert [d["name"] for d in document["devices"]] == ["kitchen", "garage"]
        for device in document["devices"]:
            assert set(device) == {
                "name",
                "thing_name",
                "role_alias",
                "certificate_file",
                "private_key_file",
            }
            status, body = mtls_get(document, device)
            assert status == 200
            assert set(body["credentials"]) >= {"accessKeyId", "expiration"}
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "IoT Credential Provider emulator is running." in stderr
    assert "Emulator stopped." in stderr
    assert not (tmp_path / "emulator.json").exists()
    assert "PRIVATE KEY" not in stderr


#: The console script users run (next to this interpreter in the virtualenv).
SCRIPT = str(Path(sys.executable).with_name("awsiot-credentialhelper"))


def test_cli_flags_throttle_and_shorten_credentials(tmp_path: Path) -> None:
    # 0.01 requests/s: one token, the next one 100 s later, so timing cannot change the counts.
    command = [SCRIPT, "emulator", "--dir", str(tmp_path)]
    command += ["--max-rps", "0.01", "--credential-lifetime", "60"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        document = wait_for_state(process, tmp_path / "emulator.json")
        (device,) = document["devices"]
        before = datetime.datetime.now(datetime.timezone.utc)
        status, body = mtls_get(document, device)
        after = datetime.datetime.now(datetime.timezone.utc)
        assert status == 200
        expiration = datetime.datetime.strptime(
            body["credentials"]["expiration"], "%Y-%m-%dT%H:%M:%SZ"
        ).replace(tzinfo=datetime.timezone.utc)
        minute = datetime.timedelta(seconds=60)
        assert before.replace(microsecond=0) + minute <= expiration <= after + minute
        assert mtls_get(document, device) == (429, {"message": "Rate exceeded"})
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "throttling        429 beyond 0.01 requests/s" in stderr
    assert "credentials live  60 s" in stderr


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        pytest.param(["--max-rps", "0"], "argument --max-rps: must be a positive", id="rps-0"),
        pytest.param(["--max-rps", "-5"], "argument --max-rps: must be a positive", id="rps<0"),
        pytest.param(["--max-rps", "nan"], "argument --max-rps: must be a positive", id="rps-nan"),
        pytest.param(
            ["--max-rps", "lots"], "argument --max-rps: must be a positive", id="rps-text"
        ),
        pytest.param(
            ["--credential-lifetime", "0"], "--credential-lifetime: must be whole", id="life-0"
        ),
        pytest.param(
            ["--credential-lifetime", "1.5"], "--credential-lifetime: must be whole", id="life-1.5"
        ),
        pytest.param(
            ["--credential-lifetime", "43201"],
            "--credential-lifetime: must be whole",
            id="life>12h",
        ),
    ],
)
def test_cli_refuses_bad_control_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], complaint: str
) -> None:
    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as exited:
        main(["--dir", str(tmp_path), *flags])
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything started


def test_cli_refuses_duplicate_devices(tmp_path: Path) -> None:
    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    assert main(["--dir", str(tmp_path), "--device", "a", "--device", "a"]) == 2


def test_cli_reports_a_busy_port(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--dir", str(tmp_path), "--port", str(port)]) == 1


def test_cli_reports_a_busy_moto_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    with held_port() as port:
        status = call_with_deadline(
            lambda: main(["--dir", str(tmp_path), "--moto-port", str(port)])
        )
    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert f"127.0.0.1:{port}" in error
    assert "Traceback" not in error


def test_cli_refuses_an_unknown_region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    assert call_with_deadline(lambda: main(["--dir", str(tmp_path), "--region", "mars-1"])) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: region 'mars-1' is not an AWS IoT region")
    assert error.count("\n") == 1  # one line, no traceback


def test_cli_reports_aws_api_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from awsiot_credentialhelper.emulator import Emulator  # noqa: PLC0415
    from awsiot_credentialhelper.emulator._cli import main  # noqa: PLC0415

    def refuse(*_: object, **__: object) -> None:
        error = {"Error": {"Code": "InvalidRequestException", "Message": "no such thing"}}
        raise ClientError(error, "CreateThing")  # type: ignore[arg-type]

    monkeypatch.setattr(Emulator, "provision_device", refuse)
    assert main(["--dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: An error occurred (InvalidRequestException)")
    assert "no such thing" in error
    assert "Traceback" not in error
    assert not (tmp_path / "emulator.json").exists()
