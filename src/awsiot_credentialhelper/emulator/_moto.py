"""Run moto's AWS API server in this process, and make boto3 clients that talk to it.

moto's backends are module globals, so the emulator (in the same process) reads exactly what
boto3 clients, the AWS CLI or other languages wrote through ``aws_endpoint_url``. This module
is the one adapter around moto's server class: it silences per-request logging, answers with
``Connection: close`` so no handler thread outlives :meth:`MotoServer.stop`, and closes the
listening socket that moto's own ``stop()`` leaves open.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any, Optional

import boto3
import botocore.session
from botocore.configprovider import ConstantProvider

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "MotoServer",
    "aws_client",
    "aws_session",
    "check_region",
    "iot_regions",
    "valid_certificate_ids",
]

#: moto's account for any request signed with a made-up access key.
DEFAULT_ACCOUNT_ID = "123456789012"
#: moto accepts any credentials; these make clear they are not real.
_FAKE_ACCESS_KEY = "testing"
_FAKE_SECRET_KEY = "testing"  # noqa: S105 - moto's documented dummy value, not a secret


class _ValidCertSwitch:
    """moto's process-global ``use_valid_cert``, switched on while any emulator runs.

    Emulators may start and stop in any order (start A, start B, stop A, stop B), so the
    users are counted under a lock: the first one saves the old value, the last one
    restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._previous: Any = False

    def acquire(self) -> None:
        from moto.core.config import default_user_config  # noqa: PLC0415 - moto is optional

        with self._lock:
            iot_config = default_user_config.setdefault("iot", {})
            if self._users == 0:
                self._previous = iot_config.get("use_valid_cert", False)
            self._users += 1
            iot_config["use_valid_cert"] = True

    def release(self) -> None:
        from moto.core.config import default_user_config  # noqa: PLC0415 - moto is optional

        with self._lock:
            self._users -= 1
            if self._users == 0:
                default_user_config.setdefault("iot", {})["use_valid_cert"] = self._previous


_VALID_CERT_SWITCH = _ValidCertSwitch()


@contextlib.contextmanager
def valid_certificate_ids() -> Iterator[None]:
    """Make moto compute certificate ids as sha256(DER), as AWS does, for the duration.

    moto's default is sha256 of the PEM text, which no real id looks like. The switch is
    process-global (moto reads it on every certificate creation); the old value comes back
    when the last running emulator exits.
    """
    _VALID_CERT_SWITCH.acquire()
    try:
        yield
    finally:
        _VALID_CERT_SWITCH.release()


@functools.cache
def iot_regions() -> frozenset[str]:
    """The regions botocore knows AWS IoT in, across partitions (moto serves the same ones)."""
    session = botocore.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("iot", partition)
    )


def check_region(region: str) -> None:
    """Refuse a region in which neither AWS nor moto has AWS IoT.

    Raises:
        ValueError: ``region`` is not an AWS IoT region known to botocore.
    """
    known = iot_regions()
    if region not in known:
        examples = ", ".join(r for r in ("us-east-1", "eu-west-1", "cn-north-1") if r in known)
        raise ValueError(
            f"region {region!r} is not an AWS IoT region known to botocore (e.g. {examples})"
        )


def _moto_request_handler() -> Any:
    """moto 5.2+'s request handler, else werkzeug's, which moto 5.1 (the last for 3.9) uses."""
    try:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto is optional
            MotoRequestHandler,
        )
    except ImportError:
        from werkzeug.serving import WSGIRequestHandler  # noqa: PLC0415

        return WSGIRequestHandler
    return MotoRequestHandler


def _server_class() -> Any:
    """moto's ThreadedMotoServer, adapted (imported late: moto and flask are optional)."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto is optional
        DomainDispatcherApplication,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    class QuietRequestHandler(_moto_request_handler()):  # type: ignore[misc]
        # One request per connection, and a bounded wait for each: no request thread can
        # outlive stop() for long.
        protocol_version = "HTTP/1.0"
        timeout = 30

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            """Do not log every API call to stderr."""

    class AdaptedMotoServer(ThreadedMotoServer):
        #: Why the server thread could not start serving (moto's own start() would wait
        #: forever: it only sets the ready event after a successful bind).
        startup_error: Optional[BaseException] = None

        def _server_entry(self) -> None:
            try:
                app = DomainDispatcherApplication(create_backend_app)
                # Bind here: werkzeug answers a failed bind by printing to stderr and calling
                # sys.exit(1); given a bound socket it only wraps (a duplicate of) it.
                with socket.create_server((self._ip_address, self._port)) as listener:
                    server: Any = make_server(
                        self._ip_address,
                        self._port,
                        app,
                        True,
                        request_handler=QuietRequestHandler,
                        fd=listener.fileno(),
                    )
                server.daemon_threads = False  # so that server_close() joins request threads
                server.block_on_close = True
                self._server = server
            except BaseException as exc:  # handed to start() in the caller's thread
                self.startup_error = exc
                return
            finally:
                self._server_ready_event.set()
            server.serve_forever(poll_interval=0.1)

    return AdaptedMotoServer


class MotoServer:
    """moto's AWS API server on 127.0.0.1 in a background thread.

    Args:
        port: The port; 0 picks a free one.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = _server_class()(ip_address="127.0.0.1", port=port, verbose=False)
        self._started = False

    def start(self) -> None:
        """Start serving (returns once the socket is listening).

        Raises:
            OSError: the server could not listen, e.g. the port is taken.
        """
        self._server.start()
        error: Optional[BaseException] = self._server.startup_error
        if error is not None:
            self._server._thread.join()  # it has already returned
            reason = error.strerror if isinstance(error, OSError) else None
            raise OSError(
                f"moto's server cannot listen on 127.0.0.1:{self._port}: {reason or repr(error)}"
            ) from error
        self._started = True

    @property
    def url(self) -> str:
        """The ``http://127.0.0.1:PORT`` endpoint URL for boto3 and the AWS CLI."""
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, close the socket and join every thread."""
        if not self._started:
            return
        self._started = False
        self._server.stop()
        wsgi_server: Optional[Any] = getattr(self._server, "_server", None)
        if wsgi_server is not None:
            wsgi_server.server_close()


def aws_session(region: str) -> boto3.Session:
    """A boto3 session with moto's dummy credentials, isolated from the user's AWS settings.

    ``AWS_PROFILE`` and ``~/.aws/config`` are ignored, so a developer's profile (missing here,
    or pointing at a real account) can neither break nor leak into the emulator's clients.
    Always create its clients with ``endpoint_url=`` the moto URL (see :func:`aws_client`).
    """
    core = botocore.session.Session()
    store = core.get_component("config_store")
    store.set_config_provider("profile", ConstantProvider(None))
    store.set_config_provider("config_file", ConstantProvider(os.devnull))
    store.set_config_provider("credentials_file", ConstantProvider(os.devnull))
    return boto3.Session(
        botocore_session=core,
        aws_access_key_id=_FAKE_ACCESS_KEY,
        aws_secret_access_key=_FAKE_SECRET_KEY,
        region_name=region,
    )


def aws_client(service: str, *, endpoint_url: str, region: str) -> Any:
    """A boto3 client for ``service`` that talks to moto at ``endpoint_url``."""
    return aws_session(region).client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]
