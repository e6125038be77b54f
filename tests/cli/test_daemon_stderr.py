"""A long-running command whose stderr nobody reads keeps serving and refreshing.

A parent that starts ``serve`` with ``stderr=PIPE`` and never reads it (or a log collector
that hangs) fills the pipe after about 64 KiB: with one INFO line per request that takes a
few minutes. Log calls then block; if the refresh or the event loop is among the callers,
credentials stop being refreshed and requests stop being answered. Log lines are dropped
instead, and counted.
"""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path

from tests.servers import Reply, TlsServer, credentials_body, wait_until

from .conftest import Cli
from .test_serve import Lines, _exports

#: Requests enough to fill a 64 KiB pipe with their log lines (about 70 bytes each), twice.
_REQUESTS = 2000


def _access_key(connection: http.client.HTTPConnection, token: str) -> str:
    connection.request("GET", "/credentials", headers={"Authorization": token})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return str(json.loads(body)["AccessKeyId"])


def test_serve_refreshes_and_answers_while_its_stderr_is_not_read(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    server.set_default(Reply(body=credentials_body(key="ASIAFIRST")))
    # cli.background gives serve a stderr pipe that this test never reads.
    with cli.background("serve", "--port", "0", *flags) as process:
        exports = _exports(Lines(process), 2)
        base = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].split("//", 1)[1].split("/", 1)[0]
        host, _, port = base.rpartition(":")
        token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            wait_until(lambda: server.request_count >= 1, timeout=20, what="the first fetch")
            for _ in range(_REQUESTS):
                assert _access_key(connection, token) == "ASIAFIRST"
            server.set_default(Reply(body=credentials_body(key="ASIASECOND")))
            process.send_signal(signal.SIGHUP)  # refresh at once (and log that it does)
            wait_until(
                lambda: _access_key(connection, token) == "ASIASECOND",
                timeout=20,
                what="the refresh SIGHUP asked for, with stderr full",
            )
        finally:
            connection.close()
