"""``check`` on working and broken setups: the matching step fails with its hint and exit code."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest
import trustme

from tests.servers import DeviceFiles, Reply, TlsServer, credentials_body

from .conftest import Cli

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device


def _check(cli: Cli, *arguments: str, env: Optional[Mapping[str, str]] = None) -> tuple[int, Any]:
    result = cli.run("check", "--json", "--timeout=5", *arguments, env=env)
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.returncode
    return result.returncode, {step["name"]: step for step in document["steps"]}


def _emulated(device: Device, **overrides: str) -> list[str]:
    values = {
        "endpoint": device.endpoint,
        "role-alias": device.role_alias,
        "thing-name": device.thing_name,
        "certificate": str(device.certificate_file),
        "private-key": str(device.private_key_file),
        "ca": str(device.ca_file),
        "region": device.region,
    }
    values.update(overrides)
    return [f"--{name}={value}" for name, value in values.items()]


def test_a_working_setup_passes_every_step_in_text_and_json(cli: Cli, iot_device: Device) -> None:
    text = cli.run("check", *_emulated(iot_device))
    assert text.returncode == 0, text.stdout + text.stderr
    assert "✓ Credential request: credentials ASIA" in text.stdout
    assert "✓ Server certificate: trusted by your CA" in text.stdout
    assert "all checks passed (exit code 0)" in text.stdout
    code, steps = _check(cli, *_emulated(iot_device))
    assert code == 0
    assert [steps[name]["status"] for name in ("dns", "tcp", "tls", "request", "clock")] == [
        "ok"
    ] * 5


_ALLOW_ANY_ALIAS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate", "Resource": "*"}],
}
_CONNECT_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
}

#: case -> (failing step, exit code, words of its hint)
_BROKEN = {
    "unknown-thing": ("request", 1, "attach-thing-principal"),
    "missing-alias": ("request", 1, "describe-role-alias"),
    "missing-policy": ("request", 1, "iot:AssumeRoleWithCertificate"),
    "wrong-key": ("key_match", 2, "created together"),
    "wrong-ca": ("tls", 3, "signed the SERVER"),
    "ca-not-pem": ("ca", 2, "AmazonRootCA1.pem"),
}


@pytest.mark.parametrize("case", list(_BROKEN))
def test_each_broken_setup_fails_its_step_with_a_hint(
    cli: Cli, iot_device_factory: Callable[..., Device], ca_file: str, case: str
) -> None:
    overrides: dict[str, str] = {}
    if case == "missing-alias":  # a policy for any alias, so the service gets as far as 404
        device = iot_device_factory(iot_policy=_ALLOW_ANY_ALIAS)
        overrides["role-alias"] = "no-such-alias"
    elif case == "missing-policy":
        device = iot_device_factory(iot_policy=_CONNECT_ONLY)
    else:
        device = iot_device_factory()
    if case == "unknown-thing":
        overrides["thing-name"] = "no-such-thing"
    elif case == "wrong-key":
        overrides["private-key"] = str(iot_device_factory().private_key_file)
    elif case == "wrong-ca":
        overrides["ca"] = ca_file  # the test CA, which did not sign the emulator's server
    elif case == "ca-not-pem":
        overrides["ca"] = str(device.certificate_file.with_name("not-a-ca.pem"))
        Path(overrides["ca"]).write_text("not a certificate\n")
    step, code, hint = _BROKEN[case]
    result_code, steps = _check(cli, *_emulated(device, **overrides))
    assert result_code == code
    assert steps[step]["status"] == "fail"
    assert hint in steps[step]["hint"]
    failed = [name for name, value in steps.items() if value["status"] == "fail"]
    assert failed == [step], "only the broken step fails"


def test_expired_certificate_and_open_key_permissions(
    cli: Cli, ca: trustme.CA, ca_file: str, server: TlsServer, tmp_path: Path
) -> None:
    leaf = ca.issue_cert(
        "old.example",
        not_before=datetime(2020, 1, 1, tzinfo=timezone.utc),
        not_after=datetime.now(timezone.utc) - timedelta(days=3),
    )
    certificate, key = tmp_path / "old.crt", tmp_path / "old.key"
    leaf.cert_chain_pems[0].write_to_path(str(certificate))
    leaf.private_key_pem.write_to_path(str(key))
    os.chmod(key, 0o644)
    code, steps = _check(
        cli,
        f"--endpoint={server.endpoint}",
        "--role-alias=a",
        f"--certificate={certificate}",
        f"--private-key={key}",
        f"--ca={ca_file}",
    )
    assert steps["certificate"]["status"] == "warn", "this device's clock is not the judge"
    assert "EXPIRED 3 days ago by this device's clock" in steps["certificate"]["detail"]
    assert steps["key_permissions"]["status"] == "warn"
    assert steps["key_permissions"]["hint"] == f"chmod 600 {key}"
    # The loopback server refuses the expired certificate in the handshake, as AWS IoT does.
    assert code == 3
    assert steps["request"]["status"] == "fail"
    assert "looks expired by this device's clock" in steps["request"]["detail"]
    assert server.request_count == 0


def test_missing_settings_and_unreachable_endpoint(
    cli: Cli, device: DeviceFiles, ca_file: str, server: TlsServer
) -> None:
    code, steps = _check(cli)
    assert code == 2
    assert "--endpoint, $AWSIOT_CREDENTIAL_ENDPOINT" in steps["settings"]["hint"]

    endpoint = server.endpoint
    server.stop()
    code, steps = _check(
        cli,
        f"--endpoint={endpoint}",
        "--role-alias=a",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={ca_file}",
    )
    assert code == 3
    assert steps["tcp"]["status"] == "fail"
    assert steps["dns"]["status"] == "ok"


def test_server_refusing_the_client_certificate_is_told_apart_from_an_untrusted_server(
    cli: Cli, ca: trustme.CA, ca_file: str, device: DeviceFiles
) -> None:
    with TlsServer(ca, client_ca=trustme.CA()) as picky:  # trusts another CA for clients
        code, steps = _check(
            cli,
            f"--endpoint={picky.endpoint}",
            "--role-alias=a",
            f"--certificate={device.certificate_file}",
            f"--private-key={device.private_key_file}",
            f"--ca={ca_file}",
        )
    assert code == 3
    assert steps["tls"]["status"] == "ok"
    assert steps["request"]["status"] == "fail"
    assert "refused this device's certificate" in steps["request"]["detail"]
    assert "ACTIVE" in steps["request"]["hint"]


def test_clock_skew_from_the_server_date_is_reported(
    cli: Cli, server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    ahead = datetime.now(timezone.utc) + timedelta(minutes=10)
    server.set_default(
        Reply(
            body=credentials_body(now=ahead),
            headers=(("Date", format_datetime(ahead, usegmt=True)),),
        )
    )
    code, steps = _check(
        cli,
        f"--endpoint={server.endpoint}",
        "--role-alias=a",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={ca_file}",
    )
    assert code == 0
    assert steps["clock"]["status"] == "warn"
    assert "behind the server" in steps["clock"]["detail"]
    assert "NTP" in steps["clock"]["hint"]


def test_the_text_report_falls_back_to_ascii_marks(
    cli: Cli, server: TlsServer, device: DeviceFiles, ca_file: str, tmp_path: Path
) -> None:
    """Where stdout cannot encode the check marks (a C locale, a serial console), words."""
    missing_key = tmp_path / "missing.pem.key"
    result = cli.run(
        "check",
        "--timeout=5",
        f"--endpoint={server.endpoint}",
        "--role-alias=a",
        f"--certificate={device.certificate_file}",
        f"--private-key={missing_key}",
        f"--ca={ca_file}",
        env={"PYTHONIOENCODING": "ascii"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.isascii()
    assert result.stdout.startswith("[ok] Required settings: all present\n")
    assert "\n[FAIL] " in result.stdout
    assert "\n    hint: " in result.stdout
    assert result.stdout.endswith("some checks failed (exit code 2)\n")


def test_an_endpoint_that_is_not_utf_8_fails_its_step(
    cli: Cli, device: DeviceFiles, ca_file: str
) -> None:
    """Bytes that are not UTF-8 reach argv as surrogates; they crashed a fetch."""
    endpoint = os.fsdecode(b"bad\xff:1")
    code, steps = _check(
        cli,
        f"--endpoint={endpoint}",
        "--role-alias=a",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={ca_file}",
    )
    assert code == 2
    assert steps["endpoint"]["status"] == "fail"
    assert "not ASCII" in steps["endpoint"]["detail"]
    assert steps["request"]["status"] == "skip"


def test_a_key_body_in_the_variable_is_never_printed(
    cli: Cli, device: DeviceFiles, ca_file: str, server: TlsServer
) -> None:
    """The key without its armour, in the variable: not a path, and not shown, in text or JSON."""
    body = "".join(
        line for line in device.private_key_pem.decode().splitlines() if "-----" not in line
    )
    arguments = (
        f"--endpoint={server.endpoint}",
        "--role-alias=a",
        f"--certificate={device.certificate_file}",
        f"--ca={ca_file}",
    )
    variables = {"AWSIOT_CREDENTIAL_PRIVATE_KEY": body}
    code, steps = _check(cli, *arguments, env=variables)
    assert code == 2
    assert steps["private_key"]["status"] == "fail"
    assert "looks like key material" in steps["private_key"]["detail"]
    for result in (
        cli.run("check", "--json", *arguments, env=variables),
        cli.run("check", *arguments, env=variables),
    ):
        printed = result.stdout + result.stderr
        assert not any(body[i : i + 16] in printed for i in range(0, len(body) - 16, 16))
