"""docs/protecting-keys.md, run: every shell block, then every Python block on a local server."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from awsiot_credentialhelper._pem import load_private_key, read_secret_file

from ..servers import TlsServer
from .softhsm import unavailable_reason

pytestmark = pytest.mark.pkcs11

DOC = Path(__file__).resolve().parents[2] / "docs" / "protecting-keys.md"
_BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text()) if lang == language]


def _sign(ca: trustme.CA, csr_path: Path, certificate_path: Path) -> None:
    """Play AWS IoT's part: sign the request with the test CA."""
    request = x509.load_pem_x509_csr(csr_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_certificate = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    signer: CertificateIssuerPrivateKeyTypes = ca_key  # type: ignore[assignment]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca_certificate.not_valid_before_utc)
        .not_valid_after(ca_certificate.not_valid_after_utc)
        .sign(signer, hashes.SHA256())
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_doc_has_the_blocks_this_test_runs() -> None:
    assert len(_blocks("sh")) == 4
    assert len(_blocks("python")) == 4


def test_walkthrough(tmp_path: Path, server: TlsServer, ca: trustme.CA) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    for tool in ("openssl", "shred", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    home = tmp_path
    shell_env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(_blocks("sh"))],
        cwd=home,
        env=shell_env,
        check=True,
        capture_output=True,
    )

    # What the commands promise: private modes, no key left in a file, a token that exists.
    assert _mode(home / ".softhsm2") == 0o700
    assert _mode(home / ".softhsm2" / "tokens") == 0o700
    for secret in ("thing.pin", "so.pin", "key.password", "device.encrypted.key"):
        assert _mode(home / secret) == 0o600, secret
    for gone in ("device.private.key", "device.pkcs8.pem", "plain.key"):
        assert not (home / gone).exists(), gone

    # Both encrypted forms openssl wrote decrypt with the password file.
    password = read_secret_file(home / "key.password", what="private key password")
    legacy = load_private_key((home / "device.legacy.key").read_bytes(), password=password)
    pkcs8 = load_private_key((home / "device.encrypted.key").read_bytes(), password=password)
    assert legacy.private_numbers() == pkcs8.private_numbers()  # type: ignore[union-attr]

    # AWS IoT's part, then the Python examples in a fresh process (SoftHSM2 reads its
    # configuration once per process, and this one already uses the test session's).
    _sign(ca, home / "device.csr", home / "device.pem.crt")
    _sign(ca, home / "other.csr", home / "other.pem.crt")
    ca.cert_pem.write_to_path(str(home / "AmazonRootCA1.pem"))
    python_env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "SOFTHSM2_CONF": str(home / ".softhsm2" / "softhsm2.conf"),
        "IOT_CREDENTIAL_ENDPOINT": server.endpoint,
        "IOT_ROLE_ALIAS": "test-alias",
        "DEVICE_KEY_PASSWORD": (home / "key.password").read_text().strip(),
    }
    script = "\n".join(_blocks("python")) + "\nprint(credentials.access_key_id)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=home,
        env=python_env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ASIATEST"
    presented = [received.client_certificate for received in server.received]
    token_certificate = x509.load_pem_x509_certificate((home / "device.pem.crt").read_bytes())
    other_certificate = x509.load_pem_x509_certificate((home / "other.pem.crt").read_bytes())
    assert [x509.load_der_x509_certificate(der or b"") for der in presented] == [
        token_certificate,
        token_certificate,
        other_certificate,
    ]
    pin = (home / "thing.pin").read_text().strip()
    assert pin not in done.stdout + done.stderr
