"""``update`` refreshes at once on SIGHUP (after a certificate rotation) and keeps running."""

from __future__ import annotations

import configparser
import itertools
import signal

from tests.servers import Received, Reply, TlsServer, credentials_body, wait_until

from .conftest import Cli, stop


def test_sighup_makes_update_refresh_at_once_and_keep_running(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    counter = itertools.count(1)

    def numbered(_: Received) -> Reply:  # one hour each: no refresh is due during the test
        return Reply(body=credentials_body(key=f"ASIAKEY{next(counter)}"))

    server.set_default(numbered)

    def written() -> str:
        parser = configparser.RawConfigParser()
        if cli.credentials_file.exists():  # written by rename: whole or not at all
            parser.read_string(cli.credentials_file.read_text())
        return parser.get("default", "aws_access_key_id", fallback="")

    with cli.background("update", *flags) as process:
        wait_until(lambda: written() == "ASIAKEY1", what="the first write")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: written() == "ASIAKEY2", what="SIGHUP's refresh")
        assert process.poll() is None, "update keeps running"
        assert server.request_count == 2
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "SIGHUP: refreshing the credentials now." in err
    assert "test-secret-access-key" not in err
