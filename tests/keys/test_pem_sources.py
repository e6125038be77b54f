"""Where PEM material comes from: bytes, PEM text in a ``str``, a path; and hostile local input.

A ``str`` holding PEM text is PEM (``os.environ["PRIVATE_KEY_PEM"]`` without ``.encode()``).
Anything that looks like key material is never echoed in a message. Files that are not regular
files, or that are too big to be PEM, are refused before they are read.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._arguments import looks_like_key_material, shown_path
from awsiot_credentialhelper._pem import MAX_PEM_BYTES, read_pem, read_secret_file

from ..conftest import ProviderFactory
from ..servers import DeviceFiles, TlsServer


def _body(pem: bytes) -> str:
    """The base64 body of a PEM block, on one line, as people paste it into a variable."""
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def _chunks(text: str, size: int = 16) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text) - size, size)]


def test_pem_text_in_a_str_is_pem_for_certificate_key_and_ca(
    make_provider: ProviderFactory, device: DeviceFiles, ca: trustme.CA, server: TlsServer
) -> None:
    provider = make_provider(
        certificate=device.certificate_pem.decode(),
        private_key=device.private_key_pem.decode(),
        ca=ca.cert_pem.bytes().decode(),
    )
    assert provider.fetch().access_key_id == "ASIATEST"
    assert "PRIVATE KEY" not in repr(provider)
    assert server.request_count == 1


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("body", id="key-body-without-armour"),
        pytest.param("body-wrapped", id="key-body-in-lines"),
        pytest.param("pem-corrupt", id="corrupt-pem-text"),
    ],
)
@pytest.mark.parametrize("argument", ["certificate", "private_key", "ca"])
def test_key_material_given_as_a_path_is_never_echoed(
    make_provider: ProviderFactory, device: DeviceFiles, value: str, argument: str
) -> None:
    body = _body(device.private_key_pem)
    text = {
        "body": body,
        "body-wrapped": "\n".join(_chunks(body, 64)),
        "pem-corrupt": "-----BEGIN PRIVATE KEY-----\n" + body[:-8] + "\n-----END PRIVATE KEY-",
    }[value]
    with pytest.raises(errors.ConfigurationError) as caught:
        make_provider(**{argument: text})
    message = str(caught.value)
    assert not any(chunk in message for chunk in _chunks(body)), message
    assert _NOT_ECHOED_BECAUSE[value, argument] in message


#: What the refusal of key material says instead: a key body is recognised as such; PEM text
#: that is broken is refused as whatever the argument should have held.
_NOT_ECHOED_BECAUSE = {
    **{
        (value, argument): "looks like key material"
        for value in ("body", "body-wrapped")
        for argument in ("certificate", "private_key", "ca")
    },
    ("pem-corrupt", "certificate"): "not a valid PEM X.509 certificate",
    ("pem-corrupt", "private_key"): "awscrt cannot build a TLS context",
    ("pem-corrupt", "ca"): "holds no '-----BEGIN CERTIFICATE-----' block",
}


def test_paths_are_shown_and_key_material_is_not(device: DeviceFiles) -> None:
    aws_iot_file = "/greengrass/v2/" + "0123456789abcdef" * 4 + "-certificate.pem.crt"
    for path in ("/etc/iot/device.pem.key", aws_iot_file, "C:\\certs\\device.key", "key.pem"):
        assert not looks_like_key_material(path)
        assert shown_path(path) == repr(path)
    body = _body(device.private_key_pem)
    assert looks_like_key_material(body)
    assert looks_like_key_material(device.private_key_pem.decode())
    assert "key material" in shown_path(body)
    assert base64.b64decode(body)  # really a key body, not a stand-in


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(errors.CredentialFileError, match="does not exist") as caught:
        read_pem(str(missing), what="certificate")
    assert repr(str(missing)) in str(caught.value)


@pytest.mark.parametrize("value", [None, 42, 1.5, ["cert.pem"]], ids=repr)
def test_a_source_of_the_wrong_type_is_a_value_error(
    make_provider: ProviderFactory, value: Any
) -> None:
    with pytest.raises(errors.ConfigurationError, match="certificate must be") as caught:
        make_provider(certificate=value)
    assert not isinstance(caught.value, TypeError)


# --- hostile local input ---------------------------------------------------------------------


def test_a_device_file_is_refused_before_reading() -> None:
    """/dev/zero was read until memory ran out."""
    with pytest.raises(errors.CredentialFileError, match="not a regular file") as caught:
        read_pem("/dev/zero", what="certificate")
    assert "'/dev/zero'" in str(caught.value)


def _refused_without_blocking(function: Any, fifo: Path) -> BaseException:
    """Run ``function`` in a thread; if it blocks on the FIFO, free it by opening the far end."""
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(30)  # a bound on hanging, not a speed target
    if thread.is_alive():
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(descriptor)
        thread.join(30)
        pytest.fail("reading the FIFO blocked")
    assert len(outcome) == 1
    return outcome[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "certificate.pem"
    os.mkfifo(fifo)
    error = _refused_without_blocking(lambda: read_pem(str(fifo), what="certificate"), fifo)
    assert isinstance(error, errors.CredentialFileError)
    assert "not a regular file" in str(error)


def test_a_fifo_as_password_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    error = _refused_without_blocking(
        lambda: read_secret_file(str(fifo), what="private key password"), fifo
    )
    assert isinstance(error, errors.CredentialFileError)


def test_a_file_too_big_to_be_pem_is_refused(tmp_path: Path, ca: trustme.CA) -> None:
    """A 200 MB --ca kept awscrt busy for minutes."""
    bundle = tmp_path / "huge-ca.pem"
    block = ca.cert_pem.bytes()
    bundle.write_bytes(block * (MAX_PEM_BYTES // len(block) + 1))
    with pytest.raises(errors.CredentialFileError, match="1 MiB") as caught:
        read_pem(str(bundle), what="CA")
    assert str(bundle) in str(caught.value)


def test_a_bundle_just_under_the_limit_is_read(tmp_path: Path, ca: trustme.CA) -> None:
    bundle = tmp_path / "big-ca.pem"
    block = ca.cert_pem.bytes()
    data = block * (MAX_PEM_BYTES // len(block))
    bundle.write_bytes(data)
    assert read_pem(str(bundle), what="CA") == data
