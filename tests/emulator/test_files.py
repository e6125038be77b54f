"""The emulator's one file writer: mode from the start, whole content, atomic replacement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from awsiot_credentialhelper.emulator._files import write_private_file


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o644], ids=["private", "public"])
@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_private_file(tmp_path / "f", b"data", mode)
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "f") == mode
    assert (tmp_path / "f").read_bytes() == b"data"


def test_the_mode_is_set_before_the_first_byte_and_data_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes_while_writing: list[int] = []
    synced: list[int] = []
    real_write, real_fsync = os.write, os.fsync

    def spy_write(fd: int, data: bytes) -> int:
        modes_while_writing.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "write", spy_write)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    write_private_file(tmp_path / "key.pem", b"-----BEGIN PRIVATE KEY-----\n")
    assert modes_while_writing
    assert set(modes_while_writing) == {0o600}
    assert synced


def test_an_older_wider_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o666)
    write_private_file(target, b"new")
    assert (target.read_bytes(), mode_of(target)) == (b"new", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "emulator.json"
    target.write_bytes(b"old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_private_file(target, b"new", 0o644)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["emulator.json"]
