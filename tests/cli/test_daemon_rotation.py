"""Certificate rotation against the emulator: a second certificate for the same thing, the files
replaced by rename under a running ``serve`` (then SIGHUP), and under a boto3 session (no signal).

moto's STS puts the certificate id in the session name, so ``GetCallerIdentity`` with the
credentials served says which certificate fetched them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from tests.servers import wait_until

from .conftest import Cli, stop
from .test_serve import Lines, _exports, _request

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device, Emulator


class LiveFiles:
    """The certificate and key paths a client is configured with; replaced by rename."""

    def __init__(self, directory: Path, device: Device) -> None:
        directory.mkdir()
        self.certificate = directory / "device.cert.pem"
        self.key = directory / "device.private.key"
        self.install(device)

    def install(self, device: Device, *, key: bool = True) -> None:
        pairs = [(device.certificate_file, self.certificate)]
        if key:
            pairs.append((device.private_key_file, self.key))
        for source, target in pairs:
            staged = target.with_name(target.name + ".new")
            shutil.copyfile(source, staged)
            os.chmod(staged, 0o600)
            os.replace(staged, target)


def _certificate_behind(credentials: dict[str, str], device: Device) -> str:
    """The session name moto's STS gives these credentials: the certificate id."""
    sts = boto3.client(
        "sts",
        endpoint_url=device.aws_endpoint_url,
        region_name=device.region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["Token"],
    )
    return str(sts.get_caller_identity()["Arn"].rsplit("/", 1)[1])


def test_serve_switches_to_a_rotated_certificate_on_sighup_and_finishes_a_half_rotation(
    cli: Cli, iot_emulator: Emulator, iot_device: Device, tmp_path: Path
) -> None:
    rotated = iot_emulator.add_certificate(iot_device)
    assert rotated.certificate_id != iot_device.certificate_id
    live = LiveFiles(tmp_path / "live", iot_device)
    flags = [
        f"--endpoint={iot_device.endpoint}",
        f"--role-alias={iot_device.role_alias}",
        f"--thing-name={iot_device.thing_name}",
        f"--certificate={live.certificate}",
        f"--private-key={live.key}",
        f"--ca={iot_device.ca_file}",
    ]
    with cli.background("serve", "--port", "0", *flags) as process:
        exports = _exports(Lines(process), 2)
        base = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0]
        token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()

        def served() -> dict[str, str]:
            status, body = _request(base, path="/credentials", headers={"Authorization": token})
            return dict(json.loads(body)) if status == 200 else {}

        first = wait_until(served, what="the first credentials")
        assert _certificate_behind(first, iot_device) == iot_device.certificate_id

        # Half a rotation (certificate renamed, key not yet), then SIGHUP: the old pair stays.
        live.install(rotated, key=False)
        process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: served().get("AccessKeyId") not in (None, first["AccessKeyId"]),
            what="the refresh SIGHUP asked for",
        )
        assert _certificate_behind(served(), iot_device) == iot_device.certificate_id

        # The rotation completes, with no second signal: serve sees the refused files change
        # again and refreshes within seconds, not at the next scheduled refresh.
        live.install(rotated)
        wait_until(
            lambda: _certificate_behind(served(), iot_device) == rotated.certificate_id,
            interval=0.2,
            what="credentials of the rotated certificate",
        )
        assert process.poll() is None, "serve keeps running"
        _, err = stop(process)
    assert process.returncode == 0, err
    assert err.count("the new files cannot be used yet") == 1, err
    assert "the new pair is in use" in err
    assert "The certificate or key file changed again: refreshing now." in err
    assert rotated.private_key_pem.strip().splitlines()[1] not in err
    used = [record.certificate_id for record in iot_emulator.requests()]
    assert used[:2] == [iot_device.certificate_id] * 2, "before and after the half rotation"
    assert set(used[2:]) == {rotated.certificate_id}


def test_a_boto3_session_follows_a_rotation_without_a_signal(
    iot_emulator: Emulator, iot_device: Device, tmp_path: Path
) -> None:
    # Credentials of 6 s are refreshed in the background about every 3 s.
    iot_emulator.controls.credential_lifetime = 6
    rotated = iot_emulator.add_certificate(iot_device)
    live = LiveFiles(tmp_path / "live", iot_device)
    with Boto3SessionProvider(
        endpoint=iot_device.endpoint,
        role_alias=iot_device.role_alias,
        thing_name=iot_device.thing_name,
        certificate=str(live.certificate),
        private_key=str(live.key),
        ca=str(iot_device.ca_file),
    ) as provider:
        session = provider.get_session(region_name=iot_device.region)
        sts = session.client("sts", endpoint_url=iot_device.aws_endpoint_url)

        def certificate_in_use() -> str:
            return str(sts.get_caller_identity()["Arn"].rsplit("/", 1)[1])

        assert certificate_in_use() == iot_device.certificate_id
        live.install(rotated)
        wait_until(
            lambda: certificate_in_use() == rotated.certificate_id,
            timeout=20,
            interval=0.2,
            what="the session to use the rotated certificate",
        )
