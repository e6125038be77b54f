"""Run the installed ``awsiot-credentialhelper`` script as users do, in a sealed environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.servers import DeviceFiles, TlsServer

#: The console script pip generated from ``[project.scripts]``.
SCRIPT = str(Path(sys.executable).with_name("awsiot-credentialhelper"))
#: No CLI run in these tests may take longer than this.
RUN_TIMEOUT = 60.0

_DROPPED_PREFIXES = ("AWSIOT_", "AWS_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


class Cli:
    """Runs the console script with a private HOME, cache, AWS config and credentials file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.cache_dir = home / ".cache" / "awsiot-credentialhelper"
        self.config_file = home / ".aws" / "config"
        self.credentials_file = home / ".aws" / "credentials"
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.upper().startswith(_DROPPED_PREFIXES)
            and key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "XDG_CACHE_HOME")
            and key != "XDG_RUNTIME_DIR"
        }
        environ.update(
            HOME=str(home),
            AWS_CONFIG_FILE=str(self.config_file),
            AWS_SHARED_CREDENTIALS_FILE=str(self.credentials_file),
            AWS_EC2_METADATA_DISABLED="true",
            COLUMNS="100",
        )
        self.env = environ

    def environment(self, extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        return {**self.env, **(extra or {})}

    def run(
        self,
        *arguments: str,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = RUN_TIMEOUT,
        prefix: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, SCRIPT, *arguments],
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    @contextlib.contextmanager
    def background(
        self, *arguments: str, env: Optional[Mapping[str, str]] = None
    ) -> Iterator[subprocess.Popen[str]]:
        """Start a long-running command; it is always stopped (SIGTERM, then SIGKILL)."""
        process = subprocess.Popen(
            [SCRIPT, *arguments],
            env=self.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            yield process
        finally:
            stop(process)

    def write_config(self, text: str) -> None:
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(text)


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> tuple[str, str]:
    """SIGTERM, wait, SIGKILL if needed; return what was left on stdout and stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=timeout)
    return out or "", err or ""


def signal_until_it_exits(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, SIGINT and SIGHUP every 50 ms until ``process`` exits (or ``timeout``): what
    an impatient supervisor or user may do while a command stops."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
        time.sleep(0.05)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home)


def device_flags(server: TlsServer, device: DeviceFiles, ca_file: str) -> list[str]:
    """The flags that point the CLI at a TlsServer with a test device."""
    return [
        f"--endpoint={server.endpoint}",
        "--role-alias=test-alias",
        "--thing-name=test-thing",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={ca_file}",
    ]


@pytest.fixture
def flags(server: TlsServer, device: DeviceFiles, ca_file: str) -> list[str]:
    return device_flags(server, device, ca_file)
