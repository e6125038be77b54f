"""What users see: the command line's error messages end with their troubleshooting link."""

from __future__ import annotations

from awsiot_credentialhelper.exceptions import DOCS_URL

from .conftest import DocDevice


def _settings(doc_device: DocDevice, **changes: str) -> str:
    device = doc_device.device
    values = {
        "endpoint": device.endpoint,
        "role-alias": device.role_alias,
        "certificate": str(device.certificate_file),
        "private-key": str(device.private_key_file),
        "ca": str(device.ca_file),
        **changes,
    }
    return " ".join(f"--{name} {value}" for name, value in values.items())


def test_a_refusal_names_its_entry(doc_device: DocDevice) -> None:
    arguments = _settings(doc_device, **{"role-alias": "another-role-alias"})
    done = doc_device.bash(f"awsiot-credentialhelper credential-process --no-cache {arguments}")
    assert done.returncode == 1
    assert done.stdout == ""
    last = done.stderr.splitlines()[-1]
    assert last.startswith("awsiot-credentialhelper: error: ")
    assert last.endswith(f" see: {DOCS_URL}/troubleshooting#access-denied")


def test_a_configuration_error_names_its_entry(doc_device: DocDevice) -> None:
    arguments = _settings(doc_device, certificate=str(doc_device.home / "missing.pem"))
    done = doc_device.bash(f"awsiot-credentialhelper credential-process --no-cache {arguments}")
    assert done.returncode == 2
    assert done.stderr.rstrip().endswith(f" see: {DOCS_URL}/troubleshooting#credential-file")
