"""``update`` refreshes at once on SIGHUP (after a certificate rotation) and keeps running."""

from __future__ import annotations

import configparser
import itertools
import os
import signal
import ssl
from pathlib import Path

import trustme

from tests.servers import (
    DeviceFiles,
    Received,
    Reply,
    TlsServer,
    credentials_body,
    issue_device,
    wait_until,
)

from .conftest import Cli, device_flags, signal_until_it_exits, stop


def test_sighup_makes_update_refresh_at_once_and_keep_running(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    counter = itertools.count(1)

    def numbered(_: Received) -> Reply:  # one hour each: no refresh is due during the test
        return Reply(body=credentials_body(key=f"ASIAKEY{next(counter)}"))

    server.set_default(numbered)

    def written() -> str:
        parser = configparser.RawConfigParser()
        if cli.credentials_file.exists():  # written by rename: whole or not at all
            parser.read_string(cli.credentials_file.read_text())
        return parser.get("default", "aws_access_key_id", fallback="")

    with cli.background("update", *flags) as process:
        wait_until(lambda: written() == "ASIAKEY1", what="the first write")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: written() == "ASIAKEY2", what="SIGHUP's refresh")
        assert process.poll() is None, "update keeps running"
        assert server.request_count == 2
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "SIGHUP: refreshing the credentials now." in err
    assert "test-secret-access-key" not in err


def _replace(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(data)
    os.chmod(staged, 0o600)
    os.replace(staged, path)


def test_update_finishes_a_half_done_rotation_without_a_second_signal(
    cli: Cli, server: TlsServer, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    counter = itertools.count(1)
    server.set_default(lambda _: Reply(body=credentials_body(key=f"ASIAKEY{next(counter)}")))
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = issue_device(ca, str(tmp_path / "old"))
    new = issue_device(ca, str(tmp_path / "new"))
    live = DeviceFiles(str(tmp_path / "device.pem.crt"), str(tmp_path / "device.pem.key"), b"", b"")
    _replace(Path(live.certificate_file), old.certificate_pem)
    _replace(Path(live.private_key_file), old.private_key_pem)

    def presented() -> bytes:
        certificate = server.received[-1].client_certificate
        assert certificate is not None
        return certificate

    with cli.background("update", *device_flags(server, live, ca_file)) as process:
        wait_until(lambda: server.request_count == 1, what="the first fetch")
        assert presented() == ssl.PEM_cert_to_DER_cert(old.certificate_pem.decode())
        _replace(Path(live.certificate_file), new.certificate_pem)  # the key is still old
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: server.request_count == 2, what="SIGHUP's refresh")
        assert presented() == ssl.PEM_cert_to_DER_cert(old.certificate_pem.decode())
        _replace(Path(live.private_key_file), new.private_key_pem)  # the rotation completes
        wait_until(lambda: server.request_count == 3, what="the refresh after the rotation")
        assert presented() == ssl.PEM_cert_to_DER_cert(new.certificate_pem.decode())
        _, err = stop(process)
    assert process.returncode == 0, err
    assert err.count("the new files cannot be used yet") == 1
    assert "The certificate or key file changed again: refreshing now." in err


def test_more_signals_while_update_stops_still_end_in_a_clean_stop(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    """The stop waits for a refresh under way (3 s); signals meanwhile and after change
    nothing: update still says it stopped, and exits 0."""
    with cli.background("update", *flags) as process:
        wait_until(lambda: server.request_count == 1, what="the first fetch")
        wait_until(cli.credentials_file.exists, what="the first write")
        server.set_default(Reply(body=credentials_body(), delay=3.0))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: server.request_count == 2, what="SIGHUP's refresh under way")
        signal_until_it_exits(process)
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "Stopped." in err
