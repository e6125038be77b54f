"""A network namespace a test creates for itself, and a way into it from the test process.

Tests that bind an address other than loopback do it only inside such a namespace, with a veth
pair of its own: nothing there is reachable from outside. ``setns`` affects only the calling
thread, and a socket stays in the namespace it was created in, so :meth:`Namespace.run` lets
the test process create servers and clients inside while the rest of it stays outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Callable, TypeVar

import pytest

_T = TypeVar("_T")
_CLONE_NEWNET = 0x40000000
#: The address ECS gives its credentials endpoint: botocore accepts it over plain http.
SERVER_ADDRESS = "169.254.170.2"
CLIENT_ADDRESS = "169.254.170.3"


class Namespace:
    """A network namespace with a veth pair: the server's end and a client's end."""

    def __init__(self) -> None:
        self.name = f"awsiot-test-{uuid.uuid4().hex[:8]}"
        self._libc = ctypes.CDLL(None, use_errno=True)

    def create(self) -> None:
        commands = [
            ["ip", "netns", "add", self.name],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
            ["ip", "-n", self.name, "link", "add", "srv0", "type", "veth", "peer", "name", "cli0"],
            ["ip", "-n", self.name, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", "srv0"],
            ["ip", "-n", self.name, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", "cli0"],
            ["ip", "-n", self.name, "link", "set", "srv0", "up"],
            ["ip", "-n", self.name, "link", "set", "cli0", "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=30)

    def delete(self) -> None:
        subprocess.run(
            ["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=30
        )

    def run(self, function: Callable[[], _T]) -> _T:
        """Call ``function`` in a thread that has entered the namespace."""
        results: list[_T] = []
        errors: list[BaseException] = []

        def enter_and_call() -> None:
            try:
                descriptor = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if self._libc.setns(descriptor, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(descriptor)
                results.append(function())
            except BaseException as error:  # handed to the caller
                errors.append(error)

        thread = threading.Thread(target=enter_and_call)
        thread.start()
        thread.join(60)
        if errors:
            raise errors[0]
        return results[0]


@contextlib.contextmanager
def created_namespace() -> Iterator[Namespace]:
    """A fresh namespace, deleted afterwards; the test is skipped where none can be made."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip (scripts/bootstrap.sh installs it)")
    created = Namespace()
    try:
        created.create()
    except subprocess.CalledProcessError as error:
        created.delete()
        pytest.skip(f"cannot create a network namespace here: {error.stderr.decode().strip()}")
    try:
        yield created
    finally:
        created.delete()
