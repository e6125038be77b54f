"""The pytest plugin: lazy at start-up, and its fixtures work in a user's own test suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import awsiot_credentialhelper.emulator as emulator_package

HEAVY = ("moto", "flask", "OpenSSL", "werkzeug")
#: boto3 1.42+ on Python 3.9 warns on every default-session client, and moto's server makes them.
BOTO3_ON_PY39 = "ignore:Boto3 will no longer support Python 3.9"


def test_importing_the_plugin_and_package_loads_nothing_heavy() -> None:
    code = (
        "import sys, awsiot_credentialhelper.emulator.pytest_plugin, "
        "awsiot_credentialhelper.emulator as e; "
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}); "
        "print(heavy); assert not heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_lists_the_public_api() -> None:
    public = {
        name
        for name in dir(emulator_package)
        if name.isidentifier()
        and not name.startswith("_")
        and not isinstance(getattr(emulator_package, name), types.ModuleType)
    }
    public -= {"annotations", "TYPE_CHECKING", "Any"}
    assert set(emulator_package.__all__) == public
    for name in emulator_package.__all__:
        assert getattr(emulator_package, name).__module__.startswith(emulator_package.__name__)


def test_fixtures_in_a_fresh_test_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import http.client, ssl

            def test_device_gets_credentials(iot_emulator, iot_device):
                context = ssl.create_default_context(cafile=str(iot_device.ca_file))
                context.load_cert_chain(iot_device.certificate_file, iot_device.private_key_file)
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", iot_emulator.port, context=context, timeout=10
                )
                connection.request(
                    "GET",
                    f"/role-aliases/{iot_device.role_alias}/credentials",
                    headers={"x-amzn-iot-thingname": iot_device.thing_name},
                )
                assert connection.getresponse().status == 200
                connection.close()
                assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}

            def test_factory_and_isolation(iot_emulator, iot_device_factory):
                a, b = iot_device_factory(), iot_device_factory(attributes={"Owner": "Bob"})
                assert a.thing_name != b.thing_name
                assert iot_emulator.stats().total == 0  # reset between tests
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-W",
            "error",
            "-W",
            BOTO3_ON_PY39,
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
