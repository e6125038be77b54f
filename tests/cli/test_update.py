"""``update`` through the console script: byte-for-byte files, locking, refusal, refresh loop."""

from __future__ import annotations

import configparser
import fcntl
import itertools
import os
import stat
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from awsiot_credentialhelper import Credentials
from awsiot_credentialhelper.cli import _update
from awsiot_credentialhelper.exceptions import CredentialFileError
from tests.servers import Received, Reply, TlsServer, credentials_body, wait_until

from .conftest import SCRIPT, Cli, stop

EXISTING = """\
# my credentials; do not reorder
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[device]
region = eu-west-1 ; this stays
aws_access_key_id = ASIAOLD

[zeta]
aws_access_key_id = AKIAZETA
"""


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True)
    parser.read_string(text)
    return parser


def test_once_changes_only_the_target_profile(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    cli.credentials_file.parent.mkdir(parents=True)
    cli.credentials_file.write_text(EXISTING)
    result = cli.run("update", "--once", "--credentials-profile", "device", *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    text = cli.credentials_file.read_text()
    head, _, tail = EXISTING.partition("aws_access_key_id = ASIAOLD\n")
    assert text.startswith(head + "aws_access_key_id = ASIATEST\n")
    assert text.endswith(tail)
    middle = text[len(head) + len("aws_access_key_id = ASIATEST\n") : len(text) - len(tail)]
    assert middle.startswith("aws_secret_access_key = test-secret-access-key\n")
    assert "aws_session_token = test-session-token\naws_expiration = " in middle
    assert stat.S_IMODE(cli.credentials_file.stat().st_mode) == 0o600
    assert "test-secret-access-key" not in result.stderr


def test_the_profile_defaults_to_profile_name_and_honours_the_variable(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    target = cli.home / "elsewhere" / "creds"
    result = cli.run("update", "--once", *flags, env={"AWS_SHARED_CREDENTIALS_FILE": str(target)})
    assert result.returncode == 0, result.stderr
    assert _parse(target.read_text()).get("default", "aws_access_key_id") == "ASIATEST"
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_a_malformed_file_is_never_overwritten(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    cli.credentials_file.parent.mkdir(parents=True)
    broken = "aws_access_key_id = before-any-section\n[default]\nx = 1\n"
    cli.credentials_file.write_text(broken)
    result = cli.run("update", "--once", *flags)
    assert result.returncode == 2
    assert "not a valid AWS credentials file (line 1)" in result.stderr
    assert "before-any-section" not in result.stderr
    assert cli.credentials_file.read_text() == broken
    assert server.request_count == 0, "refused before any network traffic"


def test_concurrent_writers_keep_every_profile(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    cli.credentials_file.parent.mkdir(parents=True)
    cli.credentials_file.write_text(EXISTING)
    names = [f"writer{index}" for index in range(6)]
    processes = [
        subprocess.Popen(
            [SCRIPT, "update", "--once", "--credentials-profile", name, *flags],
            env=cli.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for process in processes:
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    text = cli.credentials_file.read_text()
    assert text.startswith(EXISTING), "the original bytes are all still there, first"
    parsed = _parse(text)
    assert sorted(parsed.sections()) == sorted(["default", "device", "zeta", *names])
    for name in names:
        assert parsed.get(name, "aws_session_token") == "test-session-token"
    leftovers = [p.name for p in cli.credentials_file.parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_the_loop_rewrites_before_expiry_and_stops_on_sigterm(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    counter = itertools.count(1)

    def short_lived(_: Received) -> Reply:
        key = f"ASIAKEY{next(counter)}"
        # 4 s: refreshed with 1.2-2 s left (the policy's advisory and mandatory margins).
        return Reply(body=credentials_body(timedelta(seconds=4), key=key))

    server.set_default(short_lived)
    seen: set[str] = set()

    def rewritten() -> bool:
        if cli.credentials_file.exists():  # written by rename: whole or not at all
            seen.add(_parse(cli.credentials_file.read_text()).get("default", "aws_access_key_id"))
        return seen >= {"ASIAKEY1", "ASIAKEY2"}

    with cli.background("update", *flags) as process:
        wait_until(rewritten, what="ASIAKEY1, then ASIAKEY2 in the file")
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "Wrote ASIAKEY1 to [default]" in err
    assert "test-secret-access-key" not in err


def test_a_writer_that_cannot_get_the_lock_writes_nothing(tmp_path: Path) -> None:
    """Rewriting the whole file unlocked could drop another writer's profile: refuse instead.

    The writer itself, with a 0.2 s lock wait: through the command it is 10 s (LOCK_TIMEOUT),
    which no flag changes.
    """
    path = tmp_path / "credentials"
    path.write_text("[other]\naws_access_key_id = KEEP\n")
    holder = os.open(tmp_path / ".credentials.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    now = datetime.now(timezone.utc)
    credentials = Credentials("ASIANEW", "secret", "token", now + timedelta(hours=1), now)
    try:
        with pytest.raises(CredentialFileError, match="nothing was written"):
            _update.write_credentials(str(path), "device", credentials, lock_timeout=0.2)
    finally:
        os.close(holder)
    assert path.read_text() == "[other]\naws_access_key_id = KEEP\n"


# --- hostile files, other users' files, leftovers, what --once says ------------------------


def test_once_says_what_it_wrote(cli: Cli, server: TlsServer, flags: list[str]) -> None:
    result = cli.run("update", "--once", "--credentials-profile", "device", *flags)
    assert result.returncode == 0, result.stderr
    expiry = _parse(cli.credentials_file.read_text()).get("device", "aws_expiration")
    assert f"Wrote ASIATEST to [device] of {cli.credentials_file}, valid until {expiry}." in (
        result.stderr
    )
    assert "test-secret-access-key" not in result.stderr
    assert "test-session-token" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_root_keeps_the_files_owner_group_and_mode(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    """root updating a user's file must not take it (or its lock) from that user."""
    directory = cli.credentials_file.parent
    directory.mkdir(parents=True)
    os.chown(directory, 1234, 1234)
    cli.credentials_file.write_text(EXISTING)
    os.chown(cli.credentials_file, 1234, 1234)
    os.chmod(cli.credentials_file, 0o640)
    result = cli.run("update", "--once", "--credentials-profile", "device", *flags)
    assert result.returncode == 0, result.stderr
    info = cli.credentials_file.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 1234, 0o640)
    assert _parse(cli.credentials_file.read_text()).get("device", "aws_access_key_id") == "ASIATEST"
    lock = (directory / ".credentials.lock").stat()
    assert (lock.st_uid, lock.st_gid) == (1234, 1234), "the user can still lock it"
    # A lock file the user made keeps its owner and mode too.
    os.chmod(directory / ".credentials.lock", 0o660)
    assert cli.run("update", "--once", *flags).returncode == 0
    lock = (directory / ".credentials.lock").stat()
    assert (lock.st_uid, lock.st_gid, stat.S_IMODE(lock.st_mode)) == (1234, 1234, 0o660)
    info = cli.credentials_file.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 1234, 0o640)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_temporary_files_left_by_a_killed_run_are_removed(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    directory = cli.credentials_file.parent
    directory.mkdir(parents=True)
    dead, alive = _dead_pid(), os.getpid()
    stale = [f".credentials.{dead}.0badc0de.tmp", f".credentials.{alive}.00000001.tmp"]
    kept = [
        f".credentials.{alive}.00000002.tmp",  # its writer may still be at work
        f".credentials.{dead}.0badc0d.tmp",  # not our exact pattern
        f".credentials.{dead}.0BADC0DE.tmp",
        f"credentials.{dead}.0badc0de.tmp",
        f".other.{dead}.0badc0de.tmp",
        f".credentials.{dead}.0badc0de.tmp.bak",
    ]
    for name in stale + kept:
        (directory / name).write_text("aws_secret_access_key = left-behind")
        os.chmod(directory / name, 0o600)
    old = time.time() - 24 * 3600
    os.utime(directory / stale[1], (old, old))  # a live pid, but a day old: reused
    (directory / f".credentials.{dead}.0000dead.tmp").mkdir()  # not a file: left alone
    kept.append(f".credentials.{dead}.0000dead.tmp")
    result = cli.run("update", "--once", *flags)
    assert result.returncode == 0, result.stderr
    names = {path.name for path in directory.iterdir()}
    assert names == {"credentials", ".credentials.lock", *kept}


def _huge(path: Path) -> None:
    path.touch()
    os.truncate(path, 64 * 1024 * 1024)  # sparse: no disk used


@pytest.mark.parametrize(
    ("make", "message", "named"),
    [
        # opening a FIFO used to hang
        pytest.param(os.mkfifo, "is not a regular file", "{file}", id="fifo"),
        pytest.param(Path.mkdir, "is not a regular file", "{file}", id="directory"),
        pytest.param(
            lambda path: path.symlink_to("/dev/zero"),
            "is not a regular file",
            "/dev/zero",  # the link's target is what is not a regular file
            id="dev-zero",
        ),
        pytest.param(_huge, "is larger than", "{file}", id="huge"),
    ],
)
def test_a_file_that_is_not_a_credentials_file_is_refused(
    cli: Cli, server: TlsServer, flags: list[str], *, make: Any, message: str, named: str
) -> None:
    cli.credentials_file.parent.mkdir(parents=True)
    make(cli.credentials_file)
    result = cli.run("update", "--once", *flags, timeout=20)
    assert result.returncode == 2, result.stderr
    assert f"'{named.format(file=cli.credentials_file)}' " + message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert server.request_count == 0, "refused before any network traffic"


def test_layouts_botocore_reads_are_updated_for_botocore(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    """CR-only line ends, a tab-indented key and U+2028 in a comment: botocore reads the result."""
    existing = "[other]\raws_access_key_id = AKIAOTHER\r# note\u2028[device]\r"
    existing += "[device]\r\taws_access_key_id = OLD\rregion = eu-west-1\r"
    cli.credentials_file.parent.mkdir(parents=True)
    cli.credentials_file.write_bytes(existing.encode())
    result = cli.run("update", "--once", "--credentials-profile", "device", *flags)
    assert result.returncode == 0, result.stderr
    session = botocore.session.Session(profile="device")
    session.set_config_variable("credentials_file", str(cli.credentials_file))
    session.set_config_variable("config_file", str(cli.config_file))
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "shared-credentials-file"
    frozen = credentials.get_frozen_credentials()
    assert tuple(frozen)[:3] == ("ASIATEST", "test-secret-access-key", "test-session-token")
    text = cli.credentials_file.read_bytes().decode()
    assert text.startswith("[other]\raws_access_key_id = AKIAOTHER\r# note\u2028[device]\r")
    assert "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # configparser concatenates one message per bad line: quadratic, hours for a few MiB.
        pytest.param("[a]\n" + "x\n" * 2_000_000, "(line 2): ParsingError", id="many-bad-lines"),
        # Its option pattern backtracks over whitespace before the "=": quadratic per line.
        pytest.param("[a]\nx" + " " * 500_000 + "y = 1\n", "spaces in a row", id="long-blank-run"),
    ],
)
def test_files_configparser_would_take_hours_on_are_refused_at_once(
    cli: Cli, server: TlsServer, flags: list[str], text: str, message: str
) -> None:
    cli.credentials_file.parent.mkdir(parents=True)
    cli.credentials_file.write_text(text)
    result = cli.run("update", "--once", *flags, timeout=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert cli.credentials_file.read_text() == text
