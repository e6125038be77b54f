"""``awsiot-credentialhelper emulator``: run moto and the emulator until SIGINT or SIGTERM.

It provisions demo devices, writes ``DIR/emulator.json`` for other programs (any language)
to read, prints a summary on stderr and exits 0 when asked to stop. The file is removed on
exit, so a stale one never points at a server that is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from .._private_file import write_private_file
from ._faults import Controls, check_credential_lifetime
from ._throttle import check_rate

__all__ = ["STATE_FILE_NAME", "build_parser", "main", "state_document"]

STATE_FILE_NAME = "emulator.json"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _max_rps(text: str) -> float:
    """``--max-rps``: a positive number, checked by the same rule as the Python control."""
    try:
        rate = check_rate(float(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of requests per second, not {text!r}"
        ) from None
    assert rate is not None  # noqa: S101 - a float is never None
    return rate


def _lifetime(text: str) -> int:
    """``--credential-lifetime``: whole seconds, checked by the same rule as the control."""
    try:
        seconds = check_credential_lifetime(int(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be whole seconds from 1 to 43200, not {text!r}"
        ) from None
    assert seconds is not None  # noqa: S101 - an int is never None
    return seconds


def build_parser(prog: str = "awsiot-credentialhelper emulator") -> argparse.ArgumentParser:
    """The emulator subcommand's arguments (the main CLI reuses this parser)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run a local AWS IoT Core Credential Provider (mutual TLS) backed by moto, with "
            "demo devices, until interrupted. Writes DIR/emulator.json describing it."
        ),
    )
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="directory for the CA, certificates, keys and emulator.json",
    )
    parser.add_argument("--port", type=int, default=0, help="TLS port (default: a free one)")
    parser.add_argument(
        "--host",
        choices=("127.0.0.1", "::1", "localhost"),
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1)",
    )
    parser.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="NAME",
        help="provision a device with this name; repeatable (default: one named 'device')",
    )
    parser.add_argument("--region", default="us-east-1", help="emulated region (default us-east-1)")
    parser.add_argument(
        "--moto-port",
        type=int,
        default=0,
        help="port of moto's AWS API server (default: a free one)",
    )
    parser.add_argument(
        "--require-thing-name",
        action="store_true",
        help="answer 403 when the x-amzn-iot-thingname header is missing",
    )
    parser.add_argument(
        "--max-rps",
        type=_max_rps,
        metavar="N",
        help="answer 429 ThrottlingException beyond N credential requests per second "
        "(a token bucket of N; default: no limit)",
    )
    parser.add_argument(
        "--credential-lifetime",
        type=_lifetime,
        metavar="SECONDS",
        help="test aid: issue credentials that live SECONDS (1-43200) whatever the role "
        "alias says (the real service allows 900-43200)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    return parser


def state_document(emulator: Any, devices: Sequence[Any]) -> dict[str, Any]:
    """What ``emulator.json`` holds: where to connect, what to trust, which devices exist."""
    return {
        "endpoint": emulator.endpoint,
        "ca_file": str(emulator.ca_file),
        "aws_endpoint_url": emulator.aws_endpoint_url,
        "region": emulator.region,
        "devices": [
            {
                "name": device.name,
                "thing_name": device.thing_name,
                "role_alias": device.role_alias,
                "certificate_file": str(device.certificate_file),
                "private_key_file": str(device.private_key_file),
            }
            for device in devices
        ],
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, so a reader polling for the file never sees half of it."""
    text = json.dumps(document, indent=2) + "\n"
    write_private_file(path, text.encode("utf-8"), mode=0o644)  # it names files, holds no secret


class _StopRequest:
    """Set by SIGINT/SIGTERM. A plain attribute, not a ``threading.Event``: a handler runs
    between two bytecodes of the main thread, perhaps inside ``Event.wait`` or inside another
    handler, while that thread holds the event's lock, and setting the event would wait for
    it forever."""

    requested = False

    def set(self, *_: object) -> None:
        self.requested = True


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_StopRequest]:
    """A stop request that SIGINT/SIGTERM set for the duration (main thread only)."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop.set) for sig in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _control_lines(controls: Controls) -> list[str]:
    """Summary lines for the controls set from flags, so nobody mistakes a 429 for a bug."""
    lines = []
    if controls.max_requests_per_second is not None:
        lines.append(
            f"  throttling        429 beyond {controls.max_requests_per_second:g} requests/s"
        )
    if controls.credential_lifetime is not None:
        lines.append(
            f"  credentials live  {controls.credential_lifetime} s (test aid; role aliases ignored)"
        )
    return lines


def _summary(document: dict[str, Any], state_file: Path, controls: Controls) -> str:
    lines = [
        "IoT Credential Provider emulator is running.",
        f"  endpoint          {document['endpoint']}",
        f"  CA file           {document['ca_file']}",
        f"  AWS APIs (moto)   {document['aws_endpoint_url']}",
        f"  region            {document['region']}",
        *_control_lines(controls),
    ]
    for device in document["devices"]:
        lines += [
            f"  device {device['name']!r}: thing {device['thing_name']}, "
            f"role alias {device['role_alias']}",
            f"      certificate {device['certificate_file']}",
            f"      key         {device['private_key_file']}",
        ]
    first = document["devices"][0]
    lines += [
        f"  described in      {state_file}",
        "Try:",
        f"  curl --cert {first['certificate_file']} --key {first['private_key_file']} "
        f"--cacert {document['ca_file']} -H 'x-amzn-iot-thingname: {first['thing_name']}' "
        f"https://{document['endpoint']}/role-aliases/{first['role_alias']}/credentials",
        "Stop with Ctrl-C or SIGTERM.",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Show the emulator's log on stderr while the CLI runs (the library itself never does)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("awsiot_credentialhelper.emulator")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; return the exit status (0 when stopped)."""
    args = build_parser().parse_args(argv)
    names: list[str] = args.devices or ["device"]
    if len(set(names)) != len(names):
        print("error: --device names must be unique", file=sys.stderr)
        return 2
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        from awsiot_credentialhelper.emulator import Emulator  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        print(
            f"error: the emulator needs its extra ({exc.name} is missing): "
            "pip install 'awsiot-credentialhelper[emulator]'",
            file=sys.stderr,
        )
        return 1
    directory: Path = args.dir.resolve()
    state_file = directory / STATE_FILE_NAME
    with _stop_on_signals() as stop, _logging_to_stderr(args.verbose):
        try:
            state_file.unlink(missing_ok=True)
            with Emulator(
                directory=directory,
                region=args.region,
                host=args.host,
                port=args.port,
                moto_port=args.moto_port,
                require_thing_name=args.require_thing_name,
            ) as emulator:
                emulator.controls.max_requests_per_second = args.max_rps
                emulator.controls.credential_lifetime = args.credential_lifetime
                devices = [emulator.provision_device(name) for name in names]
                document = state_document(emulator, devices)
                _write_json(state_file, document)
                print(
                    _summary(document, state_file, emulator.controls), file=sys.stderr, flush=True
                )
                try:
                    while not stop.requested:
                        time.sleep(0.5)
                finally:
                    state_file.unlink(missing_ok=True)
        # Errors from provisioning through moto (BotoCoreError, ClientError) included: one
        # line, not a traceback.
        except (OSError, ValueError, BotoCoreError, ClientError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print("Emulator stopped.", file=sys.stderr)
    return 0
