"""``serve``'s /healthz and /metrics, and SIGHUP's refresh at once, through the console script."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import Reply, TlsServer, credentials_body, error_body, wait_until

from .conftest import Cli, stop
from .test_serve import Lines, _exports, _request

_SECRETS = ("test-secret-access-key", "test-session-token")


class Serving:
    """A running ``serve``: its base URL and token, and requests to it."""

    def __init__(self, process: subprocess.Popen[str], exports: dict[str, str]) -> None:
        self.process = process
        self.base = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0]
        self.token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()

    def get(self, path: str, *, token: bool = False) -> tuple[int, bytes]:
        return _request(
            self.base, path=path, headers={"Authorization": self.token} if token else {}
        )

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics by (name, labels)."""
        status, body = self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }


def _sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> Optional[float]:
    return samples.get((f"awsiot_credentialhelper_{name}", tuple(sorted(labels.items()))))


@pytest.fixture
def refused_serve(cli: Cli, server: TlsServer, flags: list[str]) -> Iterator[Serving]:
    """``serve`` against a provider that refuses (403) until the test changes its mind."""
    server.set_default(Reply(status=403, body=error_body("Access Denied")))
    with cli.background("serve", "--port", "0", *flags) as process:
        yield Serving(process, _exports(Lines(process), 2))


def test_healthz_and_metrics_follow_failures_then_sighup_recovers_at_once(
    refused_serve: Serving, server: TlsServer
) -> None:
    serving = refused_serve
    wait_until(
        lambda: _sample(serving.metrics(), "refresh_failures_in_a_row") == 1,
        what="the first fetch to fail",
    )
    status, body = serving.get("/healthz")
    assert status == 503
    document = json.loads(body)
    assert document["Code"] == "CredentialsUnavailable"
    assert "No credentials yet" in document["Message"]
    assert "Access Denied" in document["Message"]
    samples = serving.metrics()
    assert _sample(samples, "fetches_total", outcome="AccessDeniedError") == 1
    assert _sample(samples, "fetches_total", outcome="success") == 0
    assert _sample(samples, "credentials_expiry_timestamp_seconds") is None

    # The provider comes back; without SIGHUP the next attempt would wait for the backoff.
    server.set_default(Reply(body=credentials_body()))
    requests_before = server.request_count
    serving.process.send_signal(signal.SIGHUP)
    wait_until(lambda: serving.get("/healthz")[0] == 200, timeout=10, what="SIGHUP's refresh")
    assert server.request_count == requests_before + 1
    status, body = serving.get("/healthz")
    health = json.loads(body)
    assert health["Code"] == "Healthy"
    assert set(health) == {"Code", "Expiration"}, "no secret in the health answer"

    assert serving.get("/credentials")[0] == 401, "the credentials still need the token"
    assert serving.get("/credentials", token=True)[0] == 200
    status, body = serving.get("/metrics")
    text = body.decode()
    assert not any(secret in text for secret in (*_SECRETS, serving.token))
    samples = serving.metrics()
    assert _sample(samples, "fetches_total", outcome="success") == 1
    assert _sample(samples, "refresh_failures_in_a_row") == 0
    expiry = _sample(samples, "credentials_expiry_timestamp_seconds")
    assert expiry is not None
    assert abs(expiry - (time.time() + 3600)) < 120
    assert (_sample(samples, "requests_total", status="503") or 0) >= 1
    assert (_sample(samples, "requests_total", status="401") or 0) == 1
    assert (_sample(samples, "requests_total", status="200") or 0) >= 3

    _, err = stop(serving.process)
    assert serving.process.returncode == 0, err
    assert "SIGHUP" in err
    assert not any(secret in err for secret in (*_SECRETS, serving.token))


def test_healthz_and_metrics_keep_the_host_rule(refused_serve: Serving) -> None:
    port = int(refused_serve.base.rsplit(":", 1)[1])
    for path in ("/healthz", "/metrics"):
        assert refused_serve.get(path)[0] in (200, 503), path
        status, _ = _request(
            refused_serve.base, path=path, headers={"Host": f"attacker.example:{port}"}
        )
        assert status == 403, path


def test_imds_mode_answers_healthz_without_its_token(
    cli: Cli, server: TlsServer, flags: list[str]
) -> None:
    with cli.background("serve", "--mode", "imds", "--port", "0", *flags) as process:
        url = _exports(Lines(process), 1)["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/")
        wait_until(lambda: _request(url, path="/healthz")[0] == 200, what="healthy")
        status, body = _request(url, path="/metrics")
        assert status == 200
        assert b'awsiot_credentialhelper_fetches_total{outcome="success"} 1.0' in body
        waited = cli.run("wait", "--timeout", "5", env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
        assert waited.returncode == 0, waited.stderr
        credentials = "/latest/meta-data/iam/security-credentials/test-alias"
        assert _request(url, path=credentials)[0] == 401, "credentials still need a token"
        stop(process)
    assert process.returncode == 0
