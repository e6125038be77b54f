"""``wait``: block until ``serve`` holds credentials, through the console script."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

from tests.servers import Reply, TlsServer, credentials_body, error_body

from .conftest import SCRIPT, Cli
from .test_serve import Lines, _exports


def test_wait_returns_once_serve_holds_credentials(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    server.set_default(Reply(status=403, body=error_body("Access Denied")))
    with cli.background("serve", "--port", "0", *flags) as serve:
        exports = _exports(Lines(serve), 2)
        url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]

        refused = cli.run("wait", "--url", url, "--timeout", "0.5")
        assert refused.returncode == 1, refused.stderr
        assert "answered 503" in refused.stderr
        assert "Access Denied" in refused.stderr

        # Started before the credentials exist (the URL from the environment serve printed):
        # it returns only after they do.
        waiting = subprocess.Popen(
            [SCRIPT, "wait", "--timeout", "30"],
            env=cli.environment(exports),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.3)  # a few polls' worth: it must still be waiting
            assert waiting.poll() is None, waiting.communicate()
            server.set_default(Reply(body=credentials_body()))
            serve.send_signal(signal.SIGHUP)
            _, err = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.communicate()
        assert waiting.returncode == 0, err
        assert cli.run("wait", "--url", url, "--timeout", "1").returncode == 0


def test_wait_for_a_server_that_is_not_there_and_bad_urls(cli: Cli) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        result = cli.run("wait", "--url", f"http://127.0.0.1:{port}", "--timeout", "0.3")
    assert result.returncode == 3
    assert "cannot reach it" in result.stderr
    for url in ("https://127.0.0.1:9911", "http://127.0.0.1", "not a url"):
        result = cli.run("wait", "--url", url, "--timeout", "1")
        assert result.returncode == 2, url
        assert "is not an http://HOST:PORT URL" in result.stderr
    result = cli.run("wait")
    assert result.returncode == 2
    assert "pass --url" in result.stderr
    assert cli.run("wait", "--timeout", "-1").returncode == 2
