"""``credential-process`` through the installed script: output, cache, locking, errors, imports."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from awsiot_credentialhelper.cli._cache import CacheEntry, _sha256_hex, refresh_margin
from tests.servers import Reply, TlsServer, credentials_body, error_body

from .conftest import SCRIPT, Cli

_SECRETS = ("test-secret-access-key", "test-session-token", "PRIVATE KEY")


def _document(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1, "stdout holds the document and nothing else"
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_prints_the_document_and_serves_the_second_run_from_a_private_cache(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    first = _document(cli.run("credential-process", *flags))
    assert list(first) == [
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ]
    assert first["Version"] == 1
    assert first["SecretAccessKey"] == "test-secret-access-key"
    assert str(first["Expiration"]).endswith("Z")
    assert server.request_count == 1

    second = _document(cli.run("credential-process", *flags))
    assert second == first
    assert server.request_count == 1, "the second run must come from the cache"

    entries = list(cli.cache_dir.iterdir())
    assert {path.suffix for path in entries} == {".cache", ".lock"}
    assert stat.S_IMODE(cli.cache_dir.stat().st_mode) == 0o700
    for path in entries:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any(secret in path.name for path in entries for secret in _SECRETS)


def test_no_cache_fetches_every_time_and_writes_nothing(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    _document(cli.run("credential-process", *flags, "--no-cache"))
    _document(cli.run("credential-process", *flags, env={"AWSIOT_CREDENTIAL_NO_CACHE": "true"}))
    assert server.request_count == 2
    assert not cli.cache_dir.exists()


def test_an_entry_without_enough_time_left_is_fetched_again(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    # 250 s of validity is less than the 5-minute floor of refresh_margin(): never served.
    server.set_default(Reply(body=credentials_body(timedelta(seconds=250))))
    _document(cli.run("credential-process", *flags))
    _document(cli.run("credential-process", *flags))
    assert server.request_count == 2
    server.set_default(Reply(body=credentials_body(timedelta(hours=1))))
    _document(cli.run("credential-process", *flags))
    _document(cli.run("credential-process", *flags))
    assert server.request_count == 3


def test_changing_a_setting_uses_another_entry(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    _document(cli.run("credential-process", *flags))
    _document(cli.run("credential-process", *flags, "--role-alias=other-alias"))
    assert server.request_count == 2
    assert [r.path for r in server.received] == [
        "/role-aliases/test-alias/credentials",
        "/role-aliases/other-alias/credentials",
    ]


def test_concurrent_runs_share_one_fetch(cli: Cli, server: TlsServer, flags: list[str]) -> None:
    server.set_default(Reply(body=credentials_body(), delay=0.5))
    processes = [
        subprocess.Popen(
            [SCRIPT, "credential-process", *flags],
            env=cli.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert server.request_count == 1, "the lock lets one process fetch; the others read"
    assert all(output == outputs[0] for output in outputs)


def _imports_of(cli: Cli, *arguments: str) -> set[str]:
    """The modules a successful run imports, from ``python -X importtime``.

    Without coverage measuring the child (under ``make test`` it would): coverage imports
    dataclasses, urllib and more of its own.
    """
    no_coverage = {"COVERAGE_PROCESS_START": "", "COVERAGE_PROCESS_CONFIG": ""}
    result = cli.run(*arguments, env=no_coverage, prefix=(sys.executable, "-X", "importtime"))
    assert result.returncode == 0, result.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_the_cached_path_imports_neither_awscrt_nor_botocore(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    _document(cli.run("credential-process", *flags))
    imported = _imports_of(cli, "credential-process", *flags)
    assert server.request_count == 1
    assert "awsiot_credentialhelper.cli._credential_process" in imported, "importtime works"
    heavy = sorted(
        name
        for name in imported
        if name.split(".")[0] in ("awscrt", "_awscrt", "botocore", "boto3", "cryptography")
    )
    assert heavy == []
    assert "argparse" not in imported, "plain flags are parsed without building argparse"
    assert "_hashlib" not in imported, "the cache key is hashed without loading OpenSSL (~4 ms)"
    assert {"typing", "dataclasses"}.isdisjoint(imported)
    # Settings decide the cache key; the library's config (and its validators) only on a miss.
    assert "awsiot_credentialhelper._config" not in imported


@pytest.mark.parametrize("builtin", [True, False], ids=["builtin-module", "hashlib-only"])
def test_the_cache_key_hash_is_sha256_with_or_without_the_builtin_module(
    monkeypatch: pytest.MonkeyPatch, builtin: bool
) -> None:
    if not builtin:  # a build without them, as FIPS-minded distributions ship
        for name in ("_sha2", "_sha256"):
            monkeypatch.setitem(sys.modules, name, None)
    text = "endpoint='e'\nrole_alias='r'"
    assert _sha256_hex(text) == hashlib.sha256(text.encode()).hexdigest()


#: What an uncached run must not import: cryptography (60 ms) is only for explaining a key awscrt
#: refused, plain flags are parsed without argparse, and boto3 and botocore are for sessions.
#: Allowed since issue 11: dataclasses, email.utils and socket (with urllib.parse and ipaddress),
#: about 30 ms once per cache lifetime, which did not pay for the stand-ins that avoided them.
#: asyncio (with ssl, inspect and subprocess) is for fetch_async only.
NOT_FOR_A_FETCH = ("cryptography", "argparse", "boto3", "botocore", "asyncio")


def test_an_uncached_fetch_imports_only_what_it_needs(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    imported = _imports_of(cli, "credential-process", "--no-cache", *flags)
    assert server.request_count == 1
    assert "awscrt.http" in imported, "importtime works"
    assert sorted(name for name in imported if name.split(".")[0] in NOT_FOR_A_FETCH) == []


def test_settings_come_from_the_profile_with_env_and_flags_taking_precedence(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    values = dict(flag[2:].split("=", 1) for flag in flags)
    cli.write_config(
        "[profile device]\n"
        f"credential_process = {SCRIPT} credential-process --profile device\n"
        "iot_credential_endpoint = unused.invalid:1\n"
        f"iot_role_alias = from-profile\n"
        f"iot_thing_name = {values['thing-name']}\n"
        f"iot_certificate = {values['certificate']}\n"
        f"iot_private_key = {values['private-key']}\n"
        f"iot_ca = {values['ca']}\n"
    )
    env = {"AWSIOT_CREDENTIAL_ENDPOINT": values["endpoint"]}  # the variable beats the profile
    _document(cli.run("credential-process", "--profile", "device", env=env))
    _document(cli.run("credential-process", "--profile=device", "--role-alias=flag", env=env))
    assert [r.path for r in server.received] == [
        "/role-aliases/from-profile/credentials",
        "/role-aliases/flag/credentials",
    ]
    assert server.received[0].headers["x-amzn-iot-thingname"] == "test-thing"


def test_pem_in_environment_variables(cli: Cli, server: TlsServer, flags: list[str]) -> None:
    values = dict(flag[2:].split("=", 1) for flag in flags)
    with open(values["certificate"]) as cert, open(values["private-key"]) as key:
        env = {
            "AWSIOT_CREDENTIAL_CERTIFICATE": cert.read(),
            "AWSIOT_CREDENTIAL_PRIVATE_KEY": key.read(),
        }
    rest = [f for f in flags if not f.startswith(("--certificate", "--private-key"))]
    _document(cli.run("credential-process", *rest, "--no-cache", env=env))
    assert server.request_count == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            Reply(status=403, body=error_body("Access Denied")),
            "iot:AssumeRoleWithCertificate",
            id="access-denied",
        ),
        pytest.param(
            Reply(status=404, body=error_body("Role alias does not exist")),
            "describe-role-alias",
            id="no-alias",
        ),
    ],
)
def test_a_refusal_exits_1_with_the_typed_message_and_no_secret(
    cli: Cli, server: TlsServer, flags: list[str], reply: Reply, expected: str
) -> None:
    server.set_default(reply)
    result = cli.run("credential-process", *flags)
    assert result.returncode == 1
    assert result.stdout == ""
    assert expected in result.stderr
    assert not any(secret in result.stderr for secret in _SECRETS)


def test_usage_and_network_errors_exit_2_and_3(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    missing = cli.run("credential-process", "--role-alias=a")
    assert missing.returncode == 2
    assert "--endpoint, $AWSIOT_CREDENTIAL_ENDPOINT or the profile key iot_endpoint" in (
        missing.stderr
    )
    unknown_flag = cli.run("credential-process", "--frobnicate")
    assert unknown_flag.returncode == 2
    assert "unrecognized arguments" in unknown_flag.stderr

    pem_flag = cli.run(
        "credential-process", *flags, "--private-key=-----BEGIN PRIVATE KEY-----\nMIIE\n"
    )
    assert pem_flag.returncode == 2
    assert "visible to every user" in pem_flag.stderr

    port = server.port
    server.stop()  # nothing listens there any more
    down = cli.run("credential-process", *flags, "--timeout=3")
    assert down.returncode == 3, down.stderr
    assert f"127.0.0.1:{port}" in down.stderr


# The cache's arithmetic, as units: through the command, the quarter and the cap would need
# credentials to age for minutes (the server's Date both dates them and sets the clock skew).


def test_refresh_margin_follows_the_lifetime() -> None:
    assert refresh_margin(900) == 300  # the 5-minute floor
    assert refresh_margin(3600) == 900  # a quarter
    assert refresh_margin(12 * 3600) == 3600  # the 1-hour cap


def test_cache_entries_round_trip_and_judge_freshness_by_the_server_clock() -> None:
    now = time.time()
    entry = CacheEntry('{"Version": 1, "AccessKeyId": "A"}', now + 1000, now - 2600, 0.0)
    assert CacheEntry.parse(entry.serialize()) == entry
    assert entry.fresh(now)  # 1000 s left > 900 s margin
    # The server's clock is 200 s ahead of ours: only 800 s are really left.
    skewed = CacheEntry(entry.document, entry.expiration, entry.issued_at, clock_skew=200.0)
    assert not skewed.fresh(now)


def test_a_broken_cache_entry_is_fetched_again(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    first = _document(cli.run("credential-process", *flags))
    (entry,) = cli.cache_dir.glob("*.cache")
    whole = entry.read_bytes()
    for broken in (b"", b"garbage", whole[:-5], b"x 1 2 3\n{}\n"):
        entry.write_bytes(broken)
        assert _document(cli.run("credential-process", *flags)) == first
    assert server.request_count == 5, "each broken entry was fetched again, and replaced"


@pytest.mark.parametrize(
    ("expiration", "issued_at"),
    [
        pytest.param(50 * 365 * 86400.0, 0.0, id="lives-50-years"),
        pytest.param(2 * 3600.0, 3600.0, id="issued-in-the-future-clock-went-back"),
        pytest.param(-10.0, 0.0, id="expires-before-it-was-issued"),
    ],
)
def test_an_entry_whose_times_cannot_be_right_is_never_fresh(
    expiration: float, issued_at: float
) -> None:
    now = time.time()
    entry = CacheEntry('{"Version": 1, "AccessKeyId": "A"}', now + expiration, now + issued_at, 0)
    assert not entry.fresh(now)


def test_an_answer_living_beyond_12_hours_is_refused_and_not_cached(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    server.set_default(Reply(body=credentials_body(timedelta(days=365 * 7000))))
    result = cli.run("credential-process", *flags)
    assert result.returncode == 1, result.stderr
    assert "more than 12 hours" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(secret in result.stderr for secret in _SECRETS)
    assert not list(cli.cache_dir.glob("*.cache"))


def test_a_temporary_file_left_by_a_killed_run_is_removed_by_the_next_write(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    server.set_default(Reply(body=credentials_body(timedelta(seconds=250))))  # never cached long
    _document(cli.run("credential-process", *flags))
    (entry,) = cli.cache_dir.glob("*.cache")
    leftover = entry.with_name(f".{entry.name}.4242.0123abcd.tmp")
    leftover.write_text('{"SecretAccessKey": "left by kill -9"}')
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    unrelated = entry.with_name("notes.tmp")
    unrelated.write_text("not ours")
    _document(cli.run("credential-process", *flags))
    assert not leftover.exists()
    assert unrelated.exists()
