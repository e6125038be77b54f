"""docs/service.md, run: readiness and metrics, a rotation with SIGHUP, the systemd unit (verified
and its ExecStart run with a real notify socket), and the container files' serve command lines."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError

from tests.netns import SERVER_ADDRESS, created_namespace
from tests.servers import DeviceFiles, Reply, TlsServer, credentials_body, wait_until

from ..conftest import on_ci
from .blocks import blocks
from .conftest import DocDevice

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Emulator

PAGE = "service.md"
SCRIPT = str(Path(sys.executable).with_name("awsiot-credentialhelper"))


def _profile() -> str:
    return blocks(PAGE, "ini")[0]


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign] # systemd keys are case-sensitive
    parser.read_string(blocks(PAGE, "ini")[1])
    return parser


def _shell(starting: str) -> str:
    (found,) = [b for b in blocks(PAGE, "sh") if b.startswith(starting)]
    return found


def _session_names(output: str) -> list[str]:
    """The session names (certificate ids) of every get-caller-identity document in ``output``."""
    documents = re.findall(r"^\{\n.*?^\}$", output, re.MULTILINE | re.DOTALL)
    return [json.loads(document)["Arn"].rsplit("/", 1)[1] for document in documents]


def _assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def _files_in_home(doc_device: DocDevice) -> Path:
    """Copies of the device's files in HOME/iot, standing in for every /etc/iot path."""
    directory = doc_device.home / "iot"
    directory.mkdir()
    device = doc_device.device
    shutil.copyfile(device.certificate_file, directory / "device.pem.crt")
    shutil.copyfile(device.private_key_file, directory / "device.pem.key")
    shutil.copyfile(device.ca_file, directory / "AmazonRootCA1.pem")
    for example in (
        "/etc/iot/device.pem.crt",
        "/etc/iot/device.pem.key",
        "/etc/iot/AmazonRootCA1.pem",
    ):
        del doc_device.values[example]
    doc_device.values["/etc/iot/"] = f"{directory}/"
    return directory


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks(PAGE, "sh")) == 2
    assert len(blocks(PAGE, "ini")) == 2
    assert "iot_endpoint = c1example.credentials.iot.eu-west-1.amazonaws.com" in _profile()


def test_wait_healthz_and_metrics(doc_device: DocDevice) -> None:
    doc_device.write_config(_profile())
    done = doc_device.bash(_shell("awsiot-credentialhelper serve --profile device --port 0"))
    _assert_ok(done)
    assert _session_names(done.stdout) == [doc_device.device.certificate_id]
    health = json.loads(next(line for line in done.stdout.splitlines() if '"Healthy"' in line))
    assert set(health) == {"Code", "Expiration"}
    assert 'awsiot_credentialhelper_fetches_total{outcome="success"} 1.0' in done.stdout


def test_a_rotation_by_rename_and_sighup(doc_device: DocDevice, iot_emulator: Emulator) -> None:
    rotated = iot_emulator.add_certificate(doc_device.device)
    _files_in_home(doc_device)
    doc_device.write_config(_profile())
    shutil.copyfile(rotated.certificate_file, doc_device.home / "new.pem.crt")
    shutil.copyfile(rotated.private_key_file, doc_device.home / "new.pem.key")
    serve = _shell("awsiot-credentialhelper serve --profile device --port 0")
    rotate = _shell("install -m 0644 new.pem.crt")
    # The page's kill line names serve by pidof; here it is this script's own serve.
    rotate = rotate.replace('"$(pidof -s awsiot-credentialhelper)"', "$serve_pid")
    assert "$serve_pid" in rotate
    served = (
        'curl -s -H "Authorization: $(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" '
        '"$AWS_CONTAINER_CREDENTIALS_FULL_URI"'
    )
    script = (
        serve.replace("> iot-credentials.env &", "> iot-credentials.env & serve_pid=$!")
        + f"before=$({served})\n"
        + rotate
        + f'until [ "$({served})" != "$before" ]; do sleep 0.1; done\n'
        + "aws sts get-caller-identity --region eu-west-1\n"
    )
    done = doc_device.bash(script)
    _assert_ok(done)
    assert _session_names(done.stdout) == [
        doc_device.device.certificate_id,
        rotated.certificate_id,
    ]


# --- systemd --------------------------------------------------------------------------------


def test_the_unit_is_a_hardened_notify_service_that_systemd_accepts(tmp_path: Path) -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["WatchdogSec"]) > 0
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert option in service, option
    if shutil.which("systemd-analyze") is None:
        missing = "no systemd-analyze (scripts/bootstrap.sh installs systemd)"
        if on_ci():
            pytest.fail(f"CI=true: the unit must be verified, but there is {missing}")
        pytest.skip(f"{missing}: the unit's command line is still run below")
    text = blocks(PAGE, "ini")[1].replace("/usr/local/bin/awsiot-credentialhelper", SCRIPT)
    path = tmp_path / "awsiot-credentialhelper.service"
    path.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "awsiot-credentialhelper.service" not in done.stderr, done.stderr


def test_the_units_command_line_notifies_systemd_and_reloads(doc_device: DocDevice) -> None:
    service = _unit()["Service"]
    config = doc_device.home / "aws-config"
    config.write_text(doc_device.substitute(_profile()))
    run_dir = doc_device.home / "run" / "awsiot-credentialhelper"  # RuntimeDirectory=
    run_dir.mkdir(mode=0o750)
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/usr/local/bin/awsiot-credentialhelper"
    token_file = run_dir / "serve.token"
    argv = [SCRIPT, *(_local(arg, token_file) for arg in argv[1:])]
    name, _, value = service["Environment"].partition("=")
    assert (name, value) == ("AWS_CONFIG_FILE", "/etc/iot/aws-config")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(doc_device.home / "notify.sock"))
    notify.settimeout(30)
    environ = {
        **doc_device.env,
        name: str(config),
        "NOTIFY_SOCKET": str(doc_device.home / "notify.sock"),
        "WATCHDOG_USEC": str(int(service["WatchdogSec"]) * 1_000_000),
    }
    process = subprocess.Popen(
        argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        received = _until(notify, "READY=1")
        assert "WATCHDOG=1" in received
        health = subprocess.run(
            [SCRIPT, "wait", "--url", _url(process), "--timeout", "10"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stderr
        assert token_file.stat().st_mode & 0o777 == 0o600
        process.send_signal(signal.SIGHUP)  # ExecReload
        time.sleep(0.2)
        assert process.poll() is None, "reload keeps it running"
        process.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in _until(notify, "STOPPING=1")
        _, err = process.communicate(timeout=30)
    finally:
        notify.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "SIGHUP" in err


def _local(argument: str, token_file: Path) -> str:
    """The unit's paths and port, made local to the test (port 0: any free one)."""
    if argument == "9911":
        return "0"
    if argument == "/run/awsiot-credentialhelper/serve.token":
        return str(token_file)
    return argument


def _url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    prefix = "export AWS_CONTAINER_CREDENTIALS_FULL_URI="
    assert line.startswith(prefix), line
    return line[len(prefix) :].strip()


def _until(notify: socket.socket, wanted: str) -> list[str]:
    """Datagrams' lines until one is ``wanted``."""
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while wanted not in lines:
        assert time.monotonic() < deadline, f"no {wanted}: {lines}"
        lines += notify.recv(4096).decode().split("\n")
    return lines


# --- container files ------------------------------------------------------------------------


def _serve_line(text: str) -> list[str]:
    """The arguments of the one ``awsiot-credentialhelper serve`` command in ``text``."""
    (line,) = re.findall(r"awsiot-credentialhelper (serve [^\n\"&]*)", text)
    return shlex.split(line)


def _environment_lines(text: str) -> dict[str, str]:
    """``-e NAME=value`` (docker run) or ``NAME: value`` (compose) lines of AWS_ variables."""
    pairs = re.findall(r"(AWS_CONTAINER_[A-Z_]+)(?:=|: )(\S+)", text)
    return dict(pairs)


def _container_blocks() -> tuple[str, str, str]:
    (docker,) = [b for b in blocks(PAGE, "sh", with_unrun=True) if b.startswith("docker network")]
    compose, kubernetes = blocks(PAGE, "yaml", with_unrun=True)
    return docker, compose, kubernetes


def test_the_docker_lines_serve_a_container_network_inside_a_namespace(
    ca: trustme.CA, device: DeviceFiles, ca_file: str, tmp_path: Path
) -> None:
    docker, compose, _ = _container_blocks()
    arguments = _serve_line(docker)
    assert _serve_line(compose) == [
        a.replace("/run/awsiot-credentialhelper/", "/run/iot/") for a in arguments
    ], "Compose runs serve with the same flags"
    client = _environment_lines(docker)
    assert _environment_lines(compose.split("application:")[1]) == client
    token_file = tmp_path / "serve.token"
    local = {"9911": "0", "/run/awsiot-credentialhelper/serve.token": str(token_file)}
    arguments = [local.get(argument, argument) for argument in arguments]
    with created_namespace() as namespace:
        endpoint = namespace.run(lambda: TlsServer(ca, default=Reply(body=credentials_body())))
        with endpoint:
            config = tmp_path / "aws-config"
            config.write_text(
                "[profile device]\n"
                f"iot_endpoint = {endpoint.endpoint}\n"
                "iot_role_alias = test-alias\n"
                f"iot_certificate = {device.certificate_file}\n"
                f"iot_private_key = {device.private_key_file}\n"
                f"iot_ca = {ca_file}\n"
            )
            environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AWSIOT_"))}
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace.name, SCRIPT, *arguments],
                env={**environ, "AWS_CONFIG_FILE": str(config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                port = _url(process).split(":")[2].split("/")[0]
                # What the application container gets: the page's lines, its port this one's,
                # and the token file mounted where the page mounts it (here: in place).
                environ = {
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": client[
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
                    ].replace(":9911/", f":{port}/"),
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
                }
                assert client["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == "/run/iot/serve.token"
                wait_until(token_file.exists, what="the token file")
                frozen = namespace.run(lambda: _fetch_with_botocore(environ))
                assert frozen == "ASIATEST"
            finally:
                process.send_signal(signal.SIGTERM)
                _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"Listening on {SERVER_ADDRESS}, which is not a loopback address" in err


def _fetch_with_botocore(environ: dict[str, str]) -> str:
    """botocore's container provider, polling while serve has no credentials yet (503)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            loaded = ContainerProvider(environ=environ).load()
            assert loaded is not None
            return str(loaded.get_frozen_credentials().access_key)
        except CredentialRetrievalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_kubernetes_sidecar_args_probe_and_environment(doc_device: DocDevice) -> None:
    yaml = pytest.importorskip("yaml")
    _, _, kubernetes = _container_blocks()
    pod = yaml.safe_load(kubernetes)
    (sidecar,) = pod["spec"]["initContainers"]
    (application,) = pod["spec"]["containers"]
    assert sidecar["restartPolicy"] == "Always", "a native sidecar"
    assert "--allow-non-loopback" not in sidecar["args"], "a pod's containers share loopback"
    # The pod's paths, made local: the config, and the token volume both containers mount.
    config = doc_device.home / "aws-config"
    config.write_text(doc_device.substitute(_profile()))
    token_dir = doc_device.home / "run" / "iot"
    token_dir.mkdir()
    local = {"9911": "0", "/run/iot/serve.token": str(token_dir / "serve.token")}
    (setting,) = sidecar["env"]
    assert (setting["name"], setting["value"]) == ("AWS_CONFIG_FILE", "/etc/iot/aws-config")
    process = subprocess.Popen(
        [SCRIPT, *(local.get(str(argument), str(argument)) for argument in sidecar["args"])],
        env={**doc_device.env, "AWS_CONFIG_FILE": str(config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _url(process).split(":")[2].split("/")[0]
        probe = [
            SCRIPT if part == "awsiot-credentialhelper" else part.replace(":9911", f":{port}")
            for part in sidecar["startupProbe"]["exec"]["command"]
        ]

        def probe_passes() -> bool:  # the kubelet runs it every periodSeconds
            done = subprocess.run(probe, capture_output=True, timeout=30, check=False)
            return done.returncode == 0

        wait_until(probe_passes, interval=0.2, what="the startup probe to pass")
        environ = {
            item["name"]: local.get(item["value"], item["value"]).replace(":9911/", f":{port}/")
            for item in application["env"]
        }
        assert environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
        assert _fetch_with_botocore(environ).startswith("ASIA")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
