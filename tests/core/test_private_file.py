"""The one file writer (CLI and emulator): exact mode, whole content, atomic replacement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from awsiot_credentialhelper._private_file import write_private_file


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o644], ids=["private", "public"])
@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_private_file(tmp_path / "f", b"data", mode=mode)
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "f") == mode
    assert (tmp_path / "f").read_bytes() == b"data"


def test_the_data_is_synced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "key.pem"
    seen_at_sync: list[bool] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        seen_at_sync.append(target.exists())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    write_private_file(target, b"-----BEGIN PRIVATE KEY-----\n")
    assert seen_at_sync == [False]  # synced once, while still the temporary file
    assert target.read_bytes() == b"-----BEGIN PRIVATE KEY-----\n"


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
        write_private_file(target, b"new", mode=0o644)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["emulator.json"]
