"""Run a page's blocks as a user would: in a sealed HOME (the CLI tests' environment, see
``tests.cli.conftest.Cli``), against the emulator and moto, with the page's example values
replaced by the emulator device's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Optional

import pytest

from awsiot_credentialhelper.emulator import Device, Emulator
from tests.cli.conftest import Cli

#: The example device every page uses, longest first so that no value is replaced inside another.
EXAMPLE_ENDPOINT = "c1example.credentials.iot.eu-west-1.amazonaws.com"
#: No block may run longer than this; then its whole process group is killed.
RUN_TIMEOUT = 60.0


class DocDevice:
    """An emulator device, the page's example values mapped to it, and a sealed HOME."""

    def __init__(self, device: Device, home: Path) -> None:
        self.device = device
        self.home = home
        self.values = {
            EXAMPLE_ENDPOINT: device.endpoint,
            "/etc/iot/device.pem.crt": str(device.certificate_file),
            "/etc/iot/device.pem.key": str(device.private_key_file),
            "/etc/iot/AmazonRootCA1.pem": str(device.ca_file),
            "device-role-alias": device.role_alias,
            "sensor-1": device.thing_name,
            "eu-west-1": device.region,
        }
        (home / ".aws").mkdir(mode=0o700)
        (home / "run").mkdir(mode=0o700)
        bin_dir = str(Path(sys.executable).parent)  # the console script and `aws`
        self.env = Cli(home).environment(
            {
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_RUNTIME_DIR": str(home / "run"),
                "AWS_ENDPOINT_URL": device.aws_endpoint_url,  # AWS calls go to moto
            }
        )

    @property
    def arn_prefix(self) -> str:
        role_name = self.device.role_arn.rsplit("/", 1)[-1]
        return f":assumed-role/{role_name}/"

    def substitute(self, text: str) -> str:
        for example, real in self.values.items():
            text = text.replace(example, real)
        return text

    def write_config(self, profile_block: str) -> None:
        path = self.home / ".aws" / "config"
        path.write_text(self.substitute(profile_block))

    def bash(
        self, script: str, *, env: Optional[Mapping[str, Optional[str]]] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` (substituted) in bash in HOME; every process it started is stopped."""
        environ = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        stop_jobs = "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n"
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", stop_jobs + self.substitute(script)],
            cwd=self.home,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def doc_device(
    iot_emulator: Emulator, iot_device_factory: Callable[..., Device], tmp_path: Path
) -> DocDevice:
    return DocDevice(iot_device_factory(), tmp_path)
