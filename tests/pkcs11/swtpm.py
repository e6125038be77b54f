"""A software TPM 2.0 (swtpm) behind tpm2-abrmd, with tpm2-pkcs11 tokens, for tests.

Chain: swtpm (TCP on loopback, two free ports) <- tpm2-abrmd on a private D-Bus session bus (the
resource manager that flushes objects; without it ``tpm2_ptool`` runs the TPM out of object
slots) <- tpm2-tools/``tpm2_ptool`` and the tpm2-pkcs11 module. tpm2-pkcs11 reads
``TPM2_PKCS11_TCTI`` and ``TPM2_PKCS11_STORE`` at ``C_Initialize``. Every process started here is
stopped by its own pid. What is missing, or what failed to start, raises
:class:`~.stack.StackUnavailableError` naming it (the library, or the command and its stderr).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from awsiot_credentialhelper._keys import Pkcs11Config

from .stack import StackUnavailableError, failure, unloadable

MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/pkcs11/libtpm2_pkcs11.so",
)
#: Each program the stack runs, and the Debian package that installs it.
PROGRAMS = {
    "swtpm": "swtpm",
    "tpm2-abrmd": "tpm2-abrmd",
    "dbus-daemon": "dbus-daemon",
    "tpm2_ptool": "libtpm2-pkcs11-tools",
    "tpm2_getcap": "tpm2-tools",
    "tpm2_dictionarylockout": "tpm2-tools",
}
#: TCTI libraries, loaded by name at run time, so no package depends on them: tabrmd by
#: tpm2-tools, tpm2_ptool and tpm2-pkcs11 (to reach tpm2-abrmd), swtpm by tpm2-abrmd.
LIBRARIES = {
    "libtss2-tcti-tabrmd.so.0": "libtss2-tcti-tabrmd0",
    "libtss2-tcti-swtpm.so.0": "libtss2-tcti-swtpm0",
}
TCTI = "tabrmd:bus_type=session"
#: How long tpm2-abrmd may take to register on the bus and reach swtpm.
START_TIMEOUT = 15.0


def find_module() -> Optional[str]:
    return next((path for path in MODULE_CANDIDATES if os.path.isfile(path)), None)


def unavailable_reason() -> Optional[str]:
    """Why the TPM tests cannot run here, or ``None`` when they can."""
    missing = {
        program: package
        for program, package in PROGRAMS.items()
        if shutil.which(program) is None and not _sbin(program)
    }
    if find_module() is None:
        missing["libtpm2_pkcs11.so"] = "libtpm2-pkcs11-1"
    missing.update((library, LIBRARIES[library]) for library in unloadable(list(LIBRARIES)))
    if not missing:
        return None
    packages = " ".join(sorted(set(missing.values())))
    return (
        f"TPM 2.0 test stack not installed: missing {', '.join(missing)} "
        f"(scripts/bootstrap.sh installs them; by hand: apt-get install {packages})"
    )


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
        self._stderr: dict[subprocess.Popen[bytes], IO[bytes]] = {}
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
        if not self.bus_address:
            self._raise_if_exited()
        self._spawn(
            _sbin("tpm2-abrmd") or "tpm2-abrmd",
            "--session",
            "--allow-root",
            f"--tcti=swtpm:host=127.0.0.1,port={port}",
            env=self.environ(),
        )
        self._wait_for_abrmd()
        self.ptool("init")

    def _wait_for_abrmd(self) -> None:
        """Poll with ``tpm2_getcap`` until tpm2-abrmd answers; fail at once if a daemon exits."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            probe = self._run("tpm2_getcap", "handles-transient", check=False)
            if probe.returncode == 0:
                return
            self._raise_if_exited()
            if time.monotonic() > deadline:
                raise StackUnavailableError(
                    f"tpm2-abrmd did not come up within {START_TIMEOUT:g} s: "
                    f"{failure(probe.args, probe.stderr)}; "
                    f"tpm2-abrmd's stderr: {self._stderr_of(self._processes[-1]) or '(none)'}"
                )
            time.sleep(0.1)

    def _raise_if_exited(self) -> None:
        for process in self._processes:
            if process.poll() is not None:
                raise failure(
                    [str(arg) for arg in process.args],  # type: ignore[union-attr]
                    f"exited with status {process.returncode}: {self._stderr_of(process)}",
                )

    def _stderr_of(self, process: subprocess.Popen[bytes]) -> str:
        file = self._stderr[process]
        file.seek(0)
        return file.read().decode(errors="replace").strip()

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
            self._stderr[process].close()

    def _spawn(
        self,
        *command: str,
        env: Optional[dict[str, str]] = None,
        stdout: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        stderr = (self.directory / f"{Path(command[0]).name}.stderr").open("w+b")
        process = subprocess.Popen(
            command, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        self._processes.append(process)
        self._stderr[process] = stderr
        return process

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, env=self.environ(), capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise failure(command, done.stderr or done.stdout)
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
