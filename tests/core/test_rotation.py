"""Certificate rotation: files replaced under a provider are used from its next fetch, and a pair
that does not load or match is never used (the previous one stays, logged once)."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.serialization import Encoding

from awsiot_credentialhelper import IotCredentialProvider
from awsiot_credentialhelper._rotation import FileWatch
from tests.servers import DeviceFiles, TlsServer, issue_device

_WARNING = "the new files cannot be used yet"


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` next to ``path``, then rename it into place, as rotation tools do."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(data)
    os.chmod(staged, 0o600)
    os.replace(staged, path)


class Live:
    """The certificate and key files a provider reads, and two identities to put in them."""

    def __init__(self, directory: Path, ca: trustme.CA) -> None:
        (directory / "old").mkdir()
        (directory / "new").mkdir()
        self.old = issue_device(ca, str(directory / "old"))
        self.new = issue_device(ca, str(directory / "new"))
        self.certificate = directory / "device.pem.crt"
        self.key = directory / "device.pem.key"
        self.install(self.old)

    def install(self, device: DeviceFiles, *, key: bool = True) -> None:
        _replace(self.certificate, device.certificate_pem)
        if key:
            _replace(self.key, device.private_key_pem)


@pytest.fixture
def live(tmp_path: Path, ca: trustme.CA) -> Live:
    return Live(tmp_path, ca)


@pytest.fixture
def provider(server: TlsServer, live: Live, ca_file: str) -> Iterator[IotCredentialProvider]:
    with IotCredentialProvider(
        endpoint=server.endpoint,
        role_alias="test-alias",
        certificate=str(live.certificate),
        private_key=str(live.key),
        ca=ca_file,
    ) as made:
        yield made


def _presented(server: TlsServer) -> bytes:
    certificate = server.received[-1].client_certificate
    assert certificate is not None
    return certificate


def test_a_pair_replaced_by_rename_is_used_from_the_next_fetch(
    provider: IotCredentialProvider, server: TlsServer, live: Live
) -> None:
    provider.fetch()
    assert _presented(server) == _der(live.old.certificate_pem)
    live.install(live.new)
    provider.fetch()
    assert _presented(server) == _der(live.new.certificate_pem)
    assert provider.certificate.public_bytes(Encoding.DER) == _der(live.new.certificate_pem)


def test_a_half_done_rotation_keeps_the_old_pair_logs_once_and_retries(
    provider: IotCredentialProvider,
    server: TlsServer,
    live: Live,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="awsiot_credentialhelper")
    provider.fetch()
    live.install(live.new, key=False)  # the certificate is new, the key still the old one
    provider.fetch()
    provider.fetch()
    assert [_presented(server)] * 2 == [r.client_certificate for r in server.received[-2:]]
    assert _presented(server) == _der(live.old.certificate_pem), "never the mismatched pair"
    warnings = [r for r in caplog.records if _WARNING in r.getMessage()]
    assert len(warnings) == 1
    assert "does not match the certificate" in warnings[0].getMessage()
    assert live.new.private_key_pem.decode() not in caplog.text

    _replace(live.key, live.new.private_key_pem)  # the rotation completes
    provider.fetch()
    assert _presented(server) == _der(live.new.certificate_pem)
    assert "the new pair is in use" in caplog.text


def test_a_file_that_is_not_pem_yet_keeps_the_old_pair(
    provider: IotCredentialProvider, server: TlsServer, live: Live
) -> None:
    _replace(live.certificate, b"-----BEGIN CERT")  # cut short
    provider.fetch()
    assert _presented(server) == _der(live.old.certificate_pem)
    live.install(live.old)  # put back as it was: the same pair, a new file
    provider.fetch()
    assert _presented(server) == _der(live.old.certificate_pem)


def test_the_watch_retries_refused_files_after_the_delay_or_a_change(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "certificate.pem"
    path.write_bytes(b"one")
    watch = FileWatch([str(path)], monotonic=lambda: now[0], retry_delay=2.0)
    assert watch.pending() is None, "unchanged files are not read again"
    _replace(path, b"two")
    snapshot = watch.pending()
    assert snapshot is not None
    watch.rejected(snapshot, ValueError("mismatch"))
    assert [watch.rotation_pending] == [True]  # (a list: mypy would narrow the property)
    assert not watch.retry_due(), "nothing changed since they were refused"
    assert watch.pending() is None, "the same refused files wait for the delay"
    now[0] = 2.5
    assert watch.pending() == snapshot
    watch.rejected(snapshot, ValueError("mismatch"))
    _replace(path, b"three")
    assert watch.retry_due()
    changed = watch.pending()
    assert changed is not None
    assert changed != snapshot, "changed files are tried at once"
    watch.loaded(changed)
    assert not watch.rotation_pending
    assert watch.pending() is None
