"""A software TPM 2.0 (swtpm) behind tpm2-abrmd, with tpm2-pkcs11 tokens, for tests.

Chain: swtpm (TCP on loopback, two free ports) <- tpm2-abrmd on a private D-Bus session bus (the
resource manager that flushes objects; without it ``tpm2_ptool`` runs the TPM out of object
slots) <- tpm2-tools/``tpm2_ptool`` and the tpm2-pkcs11 module. tpm2-pkcs11 reads
``TPM2_PKCS11_TCTI`` and ``TPM2_PKCS11_STORE`` at ``C_Initialize``. Every process started here is
stopped by its own pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from awsiot_credentialhelper._keys import Pkcs11Config

MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/pkcs11/libtpm2_pkcs11.so",
)
TOOLS = ("swtpm", "tpm2-abrmd", "dbus-daemon", "tpm2_ptool", "tpm2_getcap")
TCTI = "tabrmd:bus_type=session"


def find_module() -> Optional[str]:
    return next((path for path in MODULE_CANDIDATES if os.path.isfile(path)), None)


def unavailable_reason() -> Optional[str]:
    """Why the TPM tests cannot run here, or ``None`` when they can."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not _sbin(tool)]
    if find_module() is None:
        missing.append("libtpm2_pkcs11.so")
    if missing:
        return (
            f"TPM 2.0 test stack not installed (missing {', '.join(missing)}): apt-get install "
            "swtpm swtpm-tools tpm2-tools tpm2-abrmd dbus libtpm2-pkcs11-1 libtpm2-pkcs11-tools"
        )
    return None


def _sbin(tool: str) -> Optional[str]:
    path = f"/usr/sbin/{tool}"
    return path if os.access(path, os.X_OK) else None


def _free_port_pair() -> int:
    """A port p with p and p+1 free on loopback (swtpm's server and control ports)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port > 65000:
            continue
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free loopback ports")


class SoftwareTpm:
    """swtpm + a private D-Bus + tpm2-abrmd + a tpm2-pkcs11 store, all under ``directory``."""

    def __init__(self, directory: Path) -> None:
        module = find_module()
        if module is None:
            raise RuntimeError(unavailable_reason())
        self.module = module
        self.directory = directory
        self.store = directory / "store"
        self.store.mkdir(mode=0o700)
        (directory / "state").mkdir(mode=0o700)
        self._processes: list[subprocess.Popen[bytes]] = []
        self.bus_address = ""

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "TPM2TOOLS_TCTI": TCTI,
            "TPM2_PKCS11_TCTI": TCTI,
            "TPM2_PKCS11_STORE": str(self.store),
            # The TSS and tpm2-pkcs11 print every TPM refusal on stderr otherwise.
            "TSS2_LOG": "all+NONE",
            "TPM2_PKCS11_LOG_LEVEL": "0",
        }

    def start(self) -> None:
        port = _free_port_pair()
        self._spawn(
            "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.directory / 'state'}",
            "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
            "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
            "--flags", "not-need-init,startup-clear",
        )  # fmt: skip
        bus = self._spawn(
            "dbus-daemon", "--session", "--nofork", "--print-address=1", stdout=subprocess.PIPE
        )
        assert bus.stdout is not None
        self.bus_address = bus.stdout.readline().decode().strip()
        self._spawn(
            _sbin("tpm2-abrmd") or "tpm2-abrmd",
            "--session",
            "--allow-root",
            f"--tcti=swtpm:host=127.0.0.1,port={port}",
            env=self.environ(),
        )
        deadline = time.monotonic() + 15
        while self._run("tpm2_getcap", "handles-transient", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("tpm2-abrmd did not come up within 15 s")
            time.sleep(0.1)
        self.ptool("init")

    def stop(self) -> None:
        """Stop the clients before the TPM they talk to: abrmd, then D-Bus, then swtpm."""
        for process in reversed(self._processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            if process.stdout is not None:
                process.stdout.close()

    def _spawn(
        self,
        *command: str,
        env: Optional[dict[str, str]] = None,
        stdout: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command, env=env, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._processes.append(process)
        return process

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, env=self.environ(), capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr or done.stdout}")
        return done

    def ptool(self, *args: str) -> str:
        return self._run("tpm2_ptool", *args, f"--path={self.store}").stdout

    def add_token(self, label: str, *, pin: str, so_pin: str = "sopin-1234") -> None:
        self.ptool(
            "addtoken", "--pid=1", f"--sopin={so_pin}", f"--userpin={pin}", f"--label={label}"
        )

    def import_key(self, key: PrivateKeyTypes, *, token: str, label: str, pin: str) -> None:
        """Import ``key`` (its PEM exists only for the import); the TPM wraps it from then on."""
        path = self.directory / f"{label}.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
            algorithm = "ecc" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"
            self.ptool(
                "import", f"--label={token}", f"--key-label={label}", f"--userpin={pin}",
                f"--privkey={path}", f"--algorithm={algorithm}",
            )  # fmt: skip
        finally:
            path.unlink()

    def in_lockout(self) -> bool:
        output = self._run("tpm2_getcap", "properties-variable").stdout
        return any(line.split() == ["inLockout:", "1"] for line in output.splitlines())

    def clear_lockout(self) -> None:
        self._run("tpm2_dictionarylockout", "--clear-lockout")

    def config(self, **fields: object) -> Pkcs11Config:
        return Pkcs11Config(pkcs11_lib=self.module, **fields)  # type: ignore[arg-type]
