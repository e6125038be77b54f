"""``wait``: block until a ``serve`` answers ``/healthz`` with 200, for boot scripts and probes.

A unit or script that needs credentials must not start before ``serve`` holds them; systemd
units can order themselves after a ``Type=notify`` service, everything else (shell scripts,
container entrypoints, Kubernetes ``exec`` probes) runs this first.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import sys
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Optional

from .._retry import Backoff
from ..exceptions import ConfigurationError
from . import _environment as env
from ._errors import EXIT_NETWORK, EXIT_OK, EXIT_PROVIDER
from ._options import setup_logging

if TYPE_CHECKING:
    import argparse

__all__ = ["configure", "health_url", "run"]

logger = logging.getLogger(__name__)

#: Seconds ``wait`` waits unless told.
DEFAULT_TIMEOUT = 60.0
#: Polls start this often and slow down to POLL_CAP (with jitter).
POLL_BASE = 0.1
POLL_CAP = 1.0
#: One request may take this long at most.
REQUEST_TIMEOUT = 2.0

DESCRIPTION = """\
Wait until a running `serve` can hand out credentials: poll its /healthz (no token needed)
until it answers 200, then exit 0. Exit 1 if it kept answering that it has no credentials
(its reason is printed), 3 if it could not be reached, when --timeout runs out."""

EXAMPLES = """\
examples:
  $ . /run/iot-creds.env && awsiot-credentialhelper wait --timeout 30 && aws s3 ls
  $ awsiot-credentialhelper wait --url http://127.0.0.1:9911 --timeout 5   # a probe
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare this command's options on its subparser."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    parser.add_argument(
        "--url",
        help="the server: its base URL or its credentials URL (default "
        f"${env.CONTAINER_CREDENTIALS_FULL_URI}, else ${env.EC2_METADATA_SERVICE_ENDPOINT}, "
        "as `serve` prints them)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait at most (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log each poll")
    parser.set_defaults(run=run)


def health_url(url: Optional[str]) -> tuple[str, int, str]:
    """Host, port and path of the ``/healthz`` of the server at ``url`` (any path of it).

    Raises:
        ConfigurationError: no URL given or set, or not an ``http://host:port`` URL.
    """
    chosen = (
        url
        or os.environ.get(env.CONTAINER_CREDENTIALS_FULL_URI)
        or os.environ.get(env.EC2_METADATA_SERVICE_ENDPOINT)
    )
    if not chosen:
        raise ConfigurationError(
            f"No server to wait for: pass --url (as `serve` prints it) or set "
            f"{env.CONTAINER_CREDENTIALS_FULL_URI} or {env.EC2_METADATA_SERVICE_ENDPOINT}."
        )
    parsed = urllib.parse.urlsplit(chosen)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "http" or not parsed.hostname or port is None:
        raise ConfigurationError(
            f"--url {chosen!r} is not an http://HOST:PORT URL of a `serve` (e.g. "
            "http://127.0.0.1:9911/credentials)."
        )
    return parsed.hostname, port, "/healthz"


def run(args: Any) -> int:
    """Poll until healthy (0), or until the timeout: 1 (no credentials) or 3 (unreachable)."""
    setup_logging(args.verbose)
    host, port, path = health_url(args.url)
    deadline = time.monotonic() + args.timeout
    backoff = Backoff(POLL_BASE, POLL_CAP, floor=POLL_BASE / 2)
    rng = random.Random()  # noqa: S311 - poll jitter
    polls = 0
    while True:
        polls += 1
        ready, reason = _poll(host, port, path, min(REQUEST_TIMEOUT, args.timeout))
        if ready:
            return EXIT_OK
        logger.info("Not ready yet: %s", reason)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(backoff.delay(polls, rng), left))
    shown = f"http://{'[' + host + ']' if ':' in host else host}:{port}{path}"
    sys.stderr.write(
        f"awsiot-credentialhelper: error: {shown} not ready within {args.timeout:g} s: {reason}\n"
    )
    return EXIT_PROVIDER if reason.startswith("answered") else EXIT_NETWORK


def _poll(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    """One ``GET /healthz``: whether it answered 200, else why not (never a secret: the
    health answer holds none)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"cannot reach it ({exc})"
    finally:
        connection.close()
    if response.status == 200:
        return True, ""
    return False, f"answered {response.status}: {_message(body)}"


def _message(body: bytes) -> str:
    try:
        document = json.loads(body)
        return str(document.get("Message") or document)
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _seconds(text: str) -> float:
    """argparse type for --timeout: a usage error (exit 2) unless 0 < seconds <= 1 day."""
    import argparse  # noqa: PLC0415 - only this parser needs it

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0-86400]")
    return value
