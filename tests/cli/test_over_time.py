"""Every long-running mode, in real time, through an outage across its refresh point.

The defect that shipped: after one failed background refresh, nothing refreshed again, and
``serve`` answered 503 forever after a 30-second outage. Here the emulator issues credentials
for 130 s (its test aid) and drops every connection for 30 s around the refresh point; ``serve``
in both modes, ``update`` and a boto3 session run side by side (to keep the suite short) and
each must come back with fresh credentials, never handing out expired ones.
"""

from __future__ import annotations

import configparser
import contextlib
import http.client
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import pytest

from awsiot_credentialhelper import RefreshPolicy
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.exceptions import CredentialHelperError

from .conftest import Cli
from .test_serve import Lines, _exports

if TYPE_CHECKING:
    from awsiot_credentialhelper.emulator import Device, Emulator

pytestmark = pytest.mark.slow

LIFETIME = 130
#: Seconds after the first credentials: every connection is dropped in between. The refresh
#: points drawn for 130 s credentials fall between 65 and 91 s after a fetch.
OUTAGE = (60.0, 90.0)
#: Recovery must come within one maximum backoff of the provider's return (the last failed
#: attempt may be just before it), plus time for a fetch and a poll. Counted from the moment the
#: outage really ended: under load a round of probes takes seconds, and it ends late.
RECOVERY = RefreshPolicy().max_retry_delay.total_seconds() + 30.0
#: serve never hands out credentials with less than this left.
SERVE_MINIMUM = timedelta(seconds=60)

Probe = Callable[[], Optional[tuple[str, datetime]]]


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _get(base: str, path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, bytes]:
    host, _, port = base.split("//", 1)[1].rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _container_probe(exports: dict[str, str]) -> Probe:
    url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    base, path = url.rsplit("/", 1)[0], "/" + url.rsplit("/", 1)[1]
    token = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()

    def probe() -> Optional[tuple[str, datetime]]:
        status, body = _get(base, path, {"Authorization": token})
        if status != 200:
            assert status == 503, body
            return None
        document = json.loads(body)
        return document["AccessKeyId"], _parse_time(document["Expiration"])

    return probe


def _imds_probe(exports: dict[str, str]) -> Probe:
    base = exports["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/")
    prefix = "/latest/meta-data/iam/security-credentials/"

    def probe() -> Optional[tuple[str, datetime]]:
        ttl = {"x-aws-ec2-metadata-token-ttl-seconds": "60"}
        _, token = _get(base, "/latest/api/token", ttl, method="PUT")
        headers = {"x-aws-ec2-metadata-token": token.decode()}
        _, role = _get(base, prefix, headers)
        status, body = _get(base, prefix + role.decode(), headers)
        if status != 200:
            assert status == 503, body
            return None
        document = json.loads(body)
        return document["AccessKeyId"], _parse_time(document["Expiration"])

    return probe


def _file_probe(path: Path, profile: str) -> Probe:
    def probe() -> Optional[tuple[str, datetime]]:
        parser = configparser.ConfigParser()
        parser.read(path)
        if not parser.has_section(profile):
            return None
        section = parser[profile]
        return section["aws_access_key_id"], _parse_time(section["aws_expiration"])

    return probe


def _session_probe(provider: Boto3SessionProvider, region: str) -> Probe:
    credentials = provider.get_session(region_name=region).get_credentials()
    assert credentials is not None

    def probe() -> Optional[tuple[str, datetime]]:
        try:
            frozen = credentials.get_frozen_credentials()
        except CredentialHelperError:
            return None  # inside the mandatory window while the provider is down
        # The expiry of what botocore signs with: the same object's, by the same key.
        current = provider._cache.current  # what the session holds
        assert current is not None
        assert current.access_key_id == frozen.access_key
        return frozen.access_key, current.expiration

    return probe


@contextlib.contextmanager
def _outage(emulator: Emulator) -> Iterator[None]:
    """Every connection dropped until the block ends."""
    emulator.controls.disconnect_next(1_000_000)
    try:
        yield
    finally:
        while emulator.controls.take_fault() is not None:
            pass


def test_every_long_running_mode_recovers_from_an_outage_across_its_refresh_point(
    cli: Cli, iot_emulator: Emulator, iot_device: Device
) -> None:
    device = iot_device
    iot_emulator.controls.credential_lifetime = LIFETIME
    flags = [
        f"--endpoint={device.endpoint}",
        f"--role-alias={device.role_alias}",
        f"--thing-name={device.thing_name}",
        f"--certificate={device.certificate_file}",
        f"--private-key={device.private_key_file}",
        f"--ca={device.ca_file}",
    ]
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(cli.background("serve", "--port", "0", *flags))
        imds = stack.enter_context(cli.background("serve", "--mode", "imds", "--port", "0", *flags))
        stack.enter_context(cli.background("update", "--credentials-profile", "iot", *flags))
        provider = stack.enter_context(
            Boto3SessionProvider(
                endpoint=device.endpoint,
                role_alias=device.role_alias,
                thing_name=device.thing_name,
                certificate=str(device.certificate_file),
                private_key=str(device.private_key_file),
                ca=str(device.ca_file),
            )
        )
        probes = {
            "serve container": _container_probe(_exports(Lines(container), 2)),
            "serve imds": _imds_probe(_exports(Lines(imds), 1)),
            "update": _file_probe(cli.credentials_file, "iot"),
            "boto3 session": _session_probe(provider, device.region),
        }
        _watch(iot_emulator, probes)


def _watch(emulator: Emulator, probes: dict[str, Probe]) -> None:
    """Poll every mode through the outage; check what each hands out, and that each recovers."""
    start = time.monotonic()
    first_keys: dict[str, str] = {}
    fresh_after_outage: set[str] = set()
    outage: Optional[contextlib.ExitStack] = None
    ended_at: Optional[float] = None  # when the outage really ended
    while len(fresh_after_outage) < len(probes):
        now = time.monotonic()
        elapsed = now - start
        if ended_at is not None and now - ended_at > RECOVERY:
            break
        if outage is None and OUTAGE[0] <= elapsed < OUTAGE[1]:
            outage = contextlib.ExitStack()
            outage.enter_context(_outage(emulator))
        elif outage is not None and ended_at is None and elapsed >= OUTAGE[1]:
            outage.close()
            ended_at = time.monotonic()
        elif outage is None and elapsed >= OUTAGE[1]:
            raise AssertionError("a round of probes outlasted the whole outage window")
        for name, probe in probes.items():
            seen = probe()
            if seen is None:
                continue
            key, expiration = seen
            left = expiration - datetime.now(timezone.utc)
            if name.startswith("serve"):
                assert left > SERVE_MINIMUM - timedelta(seconds=2), f"{name} served {left} left"
            elif name == "boto3 session":
                assert left > timedelta(0), f"the session signs with expired credentials: {left}"
            first_keys.setdefault(name, key)
            if ended_at is not None and key != first_keys[name] and left > timedelta(seconds=60):
                fresh_after_outage.add(name)
        time.sleep(0.5)
    if outage is not None:
        outage.close()
    assert set(first_keys) == set(probes), "every mode had credentials before the outage"
    missing = set(probes) - fresh_after_outage
    assert not missing, f"no fresh credentials after the outage from: {sorted(missing)}"
