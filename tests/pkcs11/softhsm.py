"""SoftHSM2 tokens in a private temporary directory, made with the commands the docs show.

SoftHSM2 reads ``SOFTHSM2_CONF`` once, at ``C_Initialize``, and keeps that state for the life of
the process (awscrt never calls ``C_Finalize``); tokens initialised later by ``softhsm2-util`` are
not seen. So every token is created first, then ``SOFTHSM2_CONF`` is set, then awscrt loads the
module. Nothing is written under the user's home or ``/var/lib/softhsm``. A ``softhsm2-util``
that fails raises :class:`~.stack.StackUnavailableError` with its stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from awsiot_credentialhelper._keys import Pkcs11Config

from .stack import failure

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "12345678"


def find_module() -> Optional[str]:
    return next((path for path in MODULE_CANDIDATES if os.path.isfile(path)), None)


def unavailable_reason() -> Optional[str]:
    """Why SoftHSM2 tests cannot run here, or ``None`` when they can."""
    if find_module() is None:
        return (
            "SoftHSM2 is not installed: no libsofthsm2.so in "
            + ", ".join(MODULE_CANDIDATES)
            + " (scripts/bootstrap.sh installs it; by hand: apt-get install libsofthsm2)"
        )
    if shutil.which("softhsm2-util") is None:
        return (
            "SoftHSM2 is not installed: softhsm2-util is not on PATH (`apt-get install softhsm2`)"
        )
    return None


class SoftHsm:
    """A SoftHSM2 configuration whose tokens live under ``directory``."""

    def __init__(self, directory: Path) -> None:
        module = find_module()
        if module is None:
            raise RuntimeError(unavailable_reason())
        self.module = module
        self.directory = directory
        self.token_dir = directory / "tokens"
        self.token_dir.mkdir(mode=0o700, parents=True)
        self.conf = directory / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.token_dir}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
        self.slots: dict[str, int] = {}

    def environ(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def util(self, *args: str) -> str:
        """Run ``softhsm2-util`` against this configuration; its output, or a readable error."""
        return self.run(["softhsm2-util", *args])

    def run(self, command: Sequence[str]) -> str:
        done = subprocess.run(
            list(command), env=self.environ(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise failure(command, done.stderr or done.stdout)
        return done.stdout

    def init_token(self, label: str, *, pin: str, so_pin: str = SO_PIN) -> int:
        """Initialise the next free token; return the slot id SoftHSM2 reassigned it to."""
        output = self.util(
            "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin
        )
        match = re.search(r"reassigned to slot (\d+)", output)
        if match is None:
            raise RuntimeError(f"softhsm2-util did not say which slot {label!r} is in: {output}")
        self.slots[label] = int(match.group(1))
        return self.slots[label]

    def import_key(
        self, key: PrivateKeyTypes, *, token: str, label: str, key_id: str, pin: str
    ) -> None:
        """Import ``key`` through an unencrypted PKCS#8 file that exists only for the import."""
        path = self.directory / f"{label}.pkcs8.pem"
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
            self.util(
                "--import", str(path), "--token", token, "--label", label, "--id", key_id,
                "--pin", pin,
            )  # fmt: skip
        finally:
            path.unlink()

    def config(self, **fields: object) -> Pkcs11Config:
        """A ``Pkcs11Config`` for this module; ``fields`` as in ``Pkcs11Config``."""
        return Pkcs11Config(pkcs11_lib=self.module, **fields)  # type: ignore[arg-type]
