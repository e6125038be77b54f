"""The command line with a key inside a SoftHSM2 token: URI and flag forms, PIN sources, check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec

from tests.pkcs11.conftest import issue
from tests.pkcs11.softhsm import SoftHsm, unavailable_reason
from tests.servers import TlsServer

from .conftest import Cli

pytestmark = pytest.mark.pkcs11

PIN = "975310"
TOKEN = "cli_token"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return SoftHsm(tmp_path_factory.mktemp("cli-softhsm"))


def test_credential_process_and_check_sign_inside_the_token(
    cli: Cli, hsm: SoftHsm, *, ca: trustme.CA, ca_file: str, server: TlsServer, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    hsm.init_token(TOKEN, pin=PIN)
    hsm.import_key(key, token=TOKEN, label="device_key", key_id="01", pin=PIN)
    certificate = tmp_path / "hsm.pem.crt"
    certificate.write_bytes(issue(ca, key))
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    common = [
        f"--endpoint={server.endpoint}",
        "--role-alias=test-alias",
        f"--certificate={certificate}",
        f"--ca={ca_file}",
    ]
    env = {"SOFTHSM2_CONF": str(hsm.conf)}
    uri = f"pkcs11:token={TOKEN};object=device_key?module-path={hsm.module}"

    by_uri = cli.run(
        "credential-process", *common, "--no-cache", f"--private-key={uri}",
        env={**env, "AWSIOT_CREDENTIAL_PKCS11_PIN": PIN},
    )  # fmt: skip
    assert by_uri.returncode == 0, by_uri.stderr
    assert json.loads(by_uri.stdout)["AccessKeyId"] == "ASIATEST"

    # The URI in the variable may hold the PIN; the module may come from the flag instead.
    uri_with_pin = f"pkcs11:token={TOKEN};object=device_key?pin-value={PIN}"
    by_uri_and_module = cli.run(
        "credential-process", *common, "--no-cache", f"--pkcs11-lib={hsm.module}",
        env={**env, "AWSIOT_CREDENTIAL_PRIVATE_KEY": uri_with_pin},
    )  # fmt: skip
    assert by_uri_and_module.returncode == 0, by_uri_and_module.stderr
    assert PIN not in by_uri_and_module.stderr

    flags = [f"--pkcs11-lib={hsm.module}", f"--token-label={TOKEN}", "--key-label=device_key"]
    by_flags = cli.run("credential-process", *common, *flags, f"--pin-file={pin_file}", env=env)
    assert by_flags.returncode == 0, by_flags.stderr
    assert server.request_count == 3

    checked = cli.run("check", "--json", *common, *flags, f"--pin-file={pin_file}", env=env)
    steps = {step["name"]: step for step in json.loads(checked.stdout)["steps"]}
    assert checked.returncode == 0, checked.stdout
    assert steps["private_key"]["status"] == "ok"
    assert "PKCS#11 module" in steps["private_key"]["detail"]
    assert steps["request"]["status"] == "ok"

    wrong_pin = cli.run(
        "credential-process", *common, *flags, "--no-cache",
        env={**env, "AWSIOT_CREDENTIAL_PKCS11_PIN": "000000"},
    )  # fmt: skip
    assert wrong_pin.returncode == 2, wrong_pin.stderr  # a configuration error
    assert f"The PKCS#11 token '{TOKEN}' refused the PIN" in wrong_pin.stderr
    assert "Traceback" not in wrong_pin.stderr
    assert "000000" not in wrong_pin.stderr
    checked_wrong = cli.run(
        "check", "--json", *common, *flags, env={**env, "AWSIOT_CREDENTIAL_PKCS11_PIN": "000000"}
    )
    wrong_steps = {step["name"]: step for step in json.loads(checked_wrong.stdout)["steps"]}
    assert wrong_steps["request"]["status"] == "fail"
    assert "000000" not in checked_wrong.stdout + checked_wrong.stderr
    assert PIN not in by_flags.stderr + checked.stdout + checked.stderr
