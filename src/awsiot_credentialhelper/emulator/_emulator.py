"""The :class:`Emulator`: moto's AWS API server plus the mutual-TLS credential endpoint.

One object owns both servers and everything they need (the server PKI, the registry, the test
controls and the journal), starts them together and stops them together.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Union

import boto3

from ._app import CredentialProviderApp
from ._faults import Controls
from ._journal import Journal, RequestRecord, Stats
from ._moto import (
    DEFAULT_ACCOUNT_ID,
    MotoServer,
    aws_client,
    aws_session,
    check_region,
    valid_certificate_ids,
)
from ._provision import (
    DEFAULT_CREDENTIAL_DURATION,
    Device,
    DeviceOptions,
    add_certificate,
    provision_device,
)
from ._registry import MotoRegistry, role_alias_arn
from ._server import TlsHttpServer
from ._tls import create_server_pki, server_context

__all__ = ["Emulator"]

_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class Emulator:
    """A local AWS IoT Core Credential Provider backed by moto, for tests and demos.

    Use it as a context manager; both servers run until the block ends::

        with Emulator(directory=tmp_path, region="us-east-1") as emu:
            device = emu.provision_device("sensor-1")
            # fetch from device.endpoint with device.certificate_file,
            # device.private_key_file and ca=device.ca_file

    Args:
        directory: Where the emulator's CA and server files and device files are written.
        region: The region the emulated endpoint serves (one botocore knows AWS IoT in).
        host: ``127.0.0.1`` (default), ``::1`` or ``localhost`` (binds 127.0.0.1).
        port: The TLS port; 0 picks a free one.
        moto_port: moto's HTTP port on 127.0.0.1; 0 picks a free one.
        require_thing_name: Answer 403 when ``x-amzn-iot-thingname`` is missing (AWS
            documents the header as optional, so the default accepts its absence).
        read_timeout: Seconds a client may take for a handshake or a request head.
        max_connections: Connections served at once.
    """

    def __init__(
        self,
        directory: Union[str, os.PathLike[str]],
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        moto_port: int = 0,
        require_thing_name: bool = False,
        read_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"host must be one of {', '.join(_LOOPBACK_HOSTS)}, not {host!r}")
        if read_timeout <= 0:
            raise ValueError("read_timeout must be positive")
        check_region(region)
        self.directory = Path(directory)
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.host = host
        #: Faults, latency, clock skew, rate limit and credential lifetime for the next requests.
        self.controls = Controls()
        self._journal = Journal()
        self._port = port
        self._moto_port = moto_port
        self._require_thing_name = require_thing_name
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._stack: Optional[contextlib.ExitStack] = None
        self._moto: Optional[MotoServer] = None
        self._server: Optional[TlsHttpServer] = None
        self._ca_file: Optional[Path] = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"endpoint={self.endpoint!r}" if self.running else "stopped"
        return f"Emulator(region={self.region!r}, {state})"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start moto and the credential endpoint (prefer ``with Emulator(...)``)."""
        if self._stack is not None:
            raise RuntimeError("the emulator is already running")
        with contextlib.ExitStack() as stack:
            stack.enter_context(valid_certificate_ids())
            moto = MotoServer(self._moto_port)
            moto.start()
            stack.callback(moto.stop)
            pki = create_server_pki(self.directory)
            app = CredentialProviderApp(
                registry=MotoRegistry(self.account_id, self.region),
                controls=self.controls,
                journal=self._journal,
                require_thing_name=self._require_thing_name,
            )
            server = TlsHttpServer(
                host=self.host,
                port=self._port,
                context=server_context(pki),
                handler=app,
                read_timeout=self._read_timeout,
                max_connections=self._max_connections,
            )
            stack.callback(server.stop)  # also after a failed start: it closes the sockets
            server.start()
            self._moto, self._server, self._ca_file = moto, server, pki.ca_file
            self._stack = stack.pop_all()
        return self

    def stop(self) -> None:
        """Stop both servers, join their threads and close their sockets. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        self._server = None
        self._moto = None
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._stack is not None

    def _require(self) -> tuple[MotoServer, TlsHttpServer]:
        if self._moto is None or self._server is None:
            raise RuntimeError("the emulator is not running; use it inside `with Emulator(...)`")
        return self._moto, self._server

    # --- where clients connect ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The credential endpoint's TCP port."""
        return self._require()[1].address[1]

    @property
    def endpoint(self) -> str:
        """``host:port`` to use where the real Credential Provider endpoint would go."""
        host = "[::1]" if self.host == "::1" else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``https://host:port``, the base of ``/role-aliases/<alias>/credentials``."""
        return f"https://{self.endpoint}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients must trust instead of AmazonRootCA1.pem."""
        self._require()
        assert self._ca_file is not None  # noqa: S101 - set together with the servers
        return self._ca_file

    @property
    def aws_endpoint_url(self) -> str:
        """moto's URL: pass it as ``endpoint_url`` / ``AWS_ENDPOINT_URL`` to reach its APIs."""
        return self._require()[0].url

    # --- AWS API access -------------------------------------------------------------------------

    def session(self) -> boto3.Session:
        """A new boto3 session with dummy credentials; create its clients with
        ``endpoint_url=emu.aws_endpoint_url`` (or use :meth:`client`)."""
        return aws_session(self.region)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (``"iot"``, ``"iam"``, ``"sts"`` ...) against moto.

        Clients are cached per service (boto3 clients are thread-safe, and building one
        costs ~0.2 s of model loading).
        """
        url = self.aws_endpoint_url
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                client = aws_client(service, endpoint_url=url, region=self.region)
                self._clients[service] = client
            return client

    def role_alias_arn(self, alias: str) -> str:
        """The ARN an IoT policy uses to name ``alias`` in this emulator's account and region."""
        return role_alias_arn(self.region, self.account_id, alias)

    def provision_device(
        self,
        name: str,
        *,
        thing_type_name: str = "EmulatedDevice",
        attributes: Optional[Mapping[str, str]] = None,
        role_alias: Optional[str] = None,
        role_name: Optional[str] = None,
        credential_duration_seconds: int = DEFAULT_CREDENTIAL_DURATION,
        max_session_duration: Optional[int] = None,
        role_policy: Optional[Mapping[str, Any]] = None,
        iot_policy: Optional[Union[Mapping[str, Any], str]] = None,
    ) -> Device:
        """Create a thing, certificate, IoT policy, IAM role and role alias, ready to use.

        Names default to ``<name>-role-alias``, ``<name>-role`` and ``<name>-policy``; the
        files go to ``<directory>/devices/``. See :class:`DeviceOptions` for the options.
        """
        options = DeviceOptions(
            thing_type_name=thing_type_name,
            attributes=dict(attributes or {}),
            role_alias=role_alias,
            role_name=role_name,
            credential_duration_seconds=credential_duration_seconds,
            max_session_duration=max_session_duration,
            role_policy=role_policy,
            iot_policy=iot_policy,
        )
        return provision_device(
            name,
            iot=self.client("iot"),
            iam=self.client("iam"),
            directory=self.directory / "devices",
            endpoint=self.endpoint,
            ca_file=self.ca_file,
            aws_endpoint_url=self.aws_endpoint_url,
            region=self.region,
            options=options,
        )

    def add_certificate(self, device: Device) -> Device:
        """A new certificate and key for ``device``'s thing, with its IoT policy (the old
        certificate stays active): the pair a certificate rotation installs."""
        return add_certificate(device, iot=self.client("iot"), directory=self.directory / "devices")

    # --- what happened --------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Counters of requests by outcome, thing, role alias and status."""
        return self._journal.stats()

    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first (no secrets in it)."""
        return self._journal.records()

    def reset(self) -> None:
        """Clear every control (faults, latency, skew, rate limit, lifetime), the counters and
        the request log; moto's state stays."""
        self.controls.reset()
        self._journal.clear()
