"""The one seam to the network: awscrt resources, one mTLS connection per request, error mapping.

A :class:`CrtTransport` owns its event loop group, host resolver, bootstrap and TLS context for
its whole life and reuses them for every request; each request opens a connection, sends one GET,
reads the answer and closes the connection. Every awscrt error is translated here, and only here,
into this package's exceptions.
"""

from __future__ import annotations

# The C module under ``socket``: importing ``socket`` itself turns its constants into enums, 6 ms
# of a one-shot CLI run, for the one setsockopt call below.
import _socket
import logging
import os
import stat
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, NamedTuple, Optional

from awscrt import http as crt_http
from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError

from ._endpoint import Endpoint
from ._keys import KeySource, create_tls_context, crt_error_name
from ._pem import load_certificates
from ._protocol import Request, Response
from ._proxy import ProxySettings
from .exceptions import (
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    InvalidPemError,
    NetworkError,
    ReadTimeoutError,
    TlsHandshakeError,
)

__all__ = ["MAX_RESPONSE_BYTES", "CrtTransport", "build_tls_context"]

logger = logging.getLogger(__name__)

#: A credentials answer is about 1.1 KB; anything far larger is not the Credential Provider.
MAX_RESPONSE_BYTES = 64 * 1024

_HANDSHAKE_HINT = (
    "the server's certificate is not signed by the CA given as `ca` (production endpoints need "
    "AmazonRootCA1.pem or the system trust store), or the server refused this device's "
    "certificate. `awsiot-credentialhelper check` tells which"
)

# awscrt error name prefix -> (our class, what happened). The first matching prefix wins.
_CRT_ERRORS: tuple[tuple[str, type[NetworkError], str], ...] = (
    ("AWS_IO_DNS_", ConnectError, "cannot resolve the host name (DNS)"),
    ("AWS_IO_SOCKET_CONNECTION_REFUSED", ConnectError, "the connection was refused"),
    ("AWS_IO_SOCKET_TIMEOUT", ConnectTimeoutError, "the connection timed out"),
    ("AWS_IO_SOCKET_NO_ROUTE_TO_HOST", ConnectError, "there is no route to the host"),
    ("AWS_IO_SOCKET_NETWORK_DOWN", ConnectError, "the network is down"),
    ("AWS_IO_SOCKET_INVALID_ADDRESS", ConnectError, "the address is not valid"),
    ("AWS_IO_TLS_NEGOTIATION_TIMEOUT", ConnectTimeoutError, "the TLS handshake timed out"),
    ("AWS_IO_TLS_", TlsHandshakeError, f"the TLS handshake failed: {_HANDSHAKE_HINT}"),
    ("AWS_ERROR_HTTP_PROXY_", ConnectError, "the HTTP proxy refused or failed the CONNECT"),
    ("AWS_ERROR_HTTP_CONNECTION_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_ERROR_HTTP_SERVER_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_IO_SOCKET_CLOSED", ConnectionClosedError, "the server closed the connection"),
    ("AWS_IO_BROKEN_PIPE", ConnectionClosedError, "the connection broke"),
    ("AWS_ERROR_HTTP_", ConnectionClosedError, "the server's answer is not valid HTTP/1.1"),
)


def translate_crt_error(name: str, endpoint: Endpoint) -> NetworkError:
    """Our exception for the awscrt failure ``name`` while talking to ``endpoint``."""
    error_class, what = next(
        ((cls, text) for prefix, cls, text in _CRT_ERRORS if name.startswith(prefix)),
        (NetworkError, "the connection failed"),
    )
    return error_class(f"{endpoint}: {what} ({name}).", endpoint=str(endpoint), crt_error=name)


def build_tls_context(
    key: KeySource, certificate_pem: bytes, *, ca_pem: Optional[bytes], verify_peer: bool
) -> crt_io.ClientTlsContext:
    """A client TLS context: TLS 1.2 or newer, the given CA (else the system store), verification.

    Raises:
        ConfigurationError: awscrt refused the certificate, key or CA: the key's store says why
            (e.g. :class:`KeyMismatchError`, :class:`Pkcs11Error`), else cryptography finds
            the certificate or CA unparseable (:class:`InvalidPemError`), else awscrt's name.
    """
    options = key.tls_options(certificate_pem)
    options.min_tls_ver = crt_io.TlsVersion.TLSv1_2
    options.verify_peer = verify_peer
    if ca_pem is not None:
        options.override_default_trust_store(ca_pem)
    try:
        return create_tls_context(key, options)
    except AwsCrtError as exc:
        raise _unparseable(certificate_pem, ca_pem) or ConfigurationError(
            f"awscrt cannot build a TLS context from this certificate, key and CA ({exc.name}): "
            "check that each is the PEM you meant."
        ) from None


def _unparseable(certificate_pem: bytes, ca_pem: Optional[bytes]) -> Optional[InvalidPemError]:
    """What cryptography finds wrong in a certificate or CA that awscrt refused, if anything."""
    try:
        load_certificates(certificate_pem)
        if ca_pem is not None:
            load_certificates(ca_pem, what="CA certificate")
    except InvalidPemError as error:
        return error
    return None


class CrtTransport:
    """Sends one GET per call over a fresh mutual-TLS connection, on resources it owns."""

    def __init__(
        self,
        endpoint: Endpoint,
        tls_context: crt_io.ClientTlsContext,
        *,
        proxy: Optional[ProxySettings] = None,
    ) -> None:
        self._endpoint = endpoint
        self._proxy = proxy
        event_loop_group = crt_io.EventLoopGroup(1)
        resolver = crt_io.DefaultHostResolver(event_loop_group)
        self._resources: Optional[_CrtResources] = _CrtResources(
            tls_context=tls_context,
            bootstrap=crt_io.ClientBootstrap(event_loop_group, resolver),
            keep_alive=(event_loop_group, resolver),
        )

    def send(self, request: Request, *, timeout: float) -> Response:
        """Open a connection, send ``request``, return the answer, close the connection.

        Raises:
            NetworkError: a subclass naming what failed, including timeouts.
        """
        resources = self._resources
        if resources is None:
            raise RuntimeError("This transport is closed.")
        deadline = time.monotonic() + timeout
        connection = self._connect(resources, timeout)
        try:
            _disable_nagle(self._proxy.port if self._proxy else self._endpoint.port)
            return self._exchange(connection, request, deadline)
        finally:
            connection.close()

    def close(self) -> None:
        """Drop the awscrt resources; awscrt frees them once no connection uses them."""
        self._resources = None

    def _connect(self, resources: _CrtResources, timeout: float) -> crt_http.HttpClientConnection:
        endpoint = self._endpoint
        connection_options = resources.tls_context.new_connection_options()
        # SNI and certificate name check: AWS IoT refuses connections without the right SNI.
        connection_options.set_server_name(endpoint.host)
        socket_options = crt_io.SocketOptions()
        socket_options.connect_timeout_ms = max(1, int(timeout * 1000))
        if endpoint.is_ip_literal and not endpoint.is_ipv6:
            socket_options.domain = crt_io.SocketDomain.IPv4
        future: Future[Any] = crt_http.HttpClientConnection.new(
            host_name=endpoint.host,
            port=endpoint.port,
            bootstrap=resources.bootstrap,
            socket_options=socket_options,
            tls_connection_options=connection_options,
            proxy_options=self._proxy_options(),
        )
        try:
            connection: crt_http.HttpClientConnection = future.result(timeout)
        except FutureTimeoutError:
            future.add_done_callback(_close_late_connection)
            raise ConnectTimeoutError(
                f"{endpoint}: no connection and TLS handshake within {timeout:.1f} s.",
                endpoint=str(endpoint),
            ) from None
        except AwsCrtError as exc:
            raise translate_crt_error(exc.name, endpoint) from exc
        return connection

    def _exchange(
        self, connection: crt_http.HttpClientConnection, request: Request, deadline: float
    ) -> Response:
        endpoint = self._endpoint
        reply = _ReplyCollector(connection)
        crt_request = crt_http.HttpRequest(
            "GET", request.path, crt_http.HttpHeaders(list(request.headers))
        )
        try:
            stream = connection.request(crt_request, reply.on_response, reply.on_body)
            stream.activate()
            stream.completion_future.result(max(0.0, deadline - time.monotonic()))
        except FutureTimeoutError:
            raise ReadTimeoutError(
                f"{endpoint}: connected, but no complete answer before the timeout.",
                endpoint=str(endpoint),
            ) from None
        except (AwsCrtError, RuntimeError) as exc:
            # awscrt raises RuntimeError("<code> (<NAME>): ...") from synchronous calls such as
            # request() on a connection the server has just closed.
            name = crt_error_name(exc)
            if name is None:
                raise
            if reply.too_large:
                raise ConnectionClosedError(
                    f"{endpoint}: the answer is larger than {MAX_RESPONSE_BYTES} bytes; this is "
                    "not the Credential Provider.",
                    endpoint=str(endpoint),
                    crt_error=name,
                ) from None
            raise translate_crt_error(name, endpoint) from exc
        return reply.response()

    def _proxy_options(self) -> Optional[crt_http.HttpProxyOptions]:
        proxy = self._proxy
        if proxy is None:
            return None
        options = crt_http.HttpProxyOptions(
            host_name=proxy.host,
            port=proxy.port,
            connection_type=crt_http.HttpProxyConnectionType.Tunneling,
        )
        if proxy.username is not None:
            options.auth_type = crt_http.HttpProxyAuthenticationType.Basic
            options.auth_username = proxy.username
            options.auth_password = proxy.password or ""
        return options


class _CrtResources(NamedTuple):
    """What every connection of a transport shares; dropped together on close."""

    tls_context: crt_io.ClientTlsContext
    bootstrap: crt_io.ClientBootstrap
    keep_alive: tuple[object, ...]


class _ReplyCollector:
    """Gathers status, headers and a bounded body from awscrt's callbacks."""

    def __init__(self, connection: crt_http.HttpClientConnection) -> None:
        self._connection = connection
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self.too_large = False

    # awscrt calls these with keyword arguments (http_stream=..., status_code=..., chunk=...).
    def on_response(self, *, status_code: int, headers: Any, **_: Any) -> None:
        self._status = status_code
        self._headers = {name.lower(): value for name, value in headers}

    def on_body(self, *, chunk: bytes, **_: Any) -> None:
        if len(self._body) + len(chunk) > MAX_RESPONSE_BYTES:
            self.too_large = True
            self._connection.close()
            return
        self._body.extend(chunk)

    def response(self) -> Response:
        return Response(status=self._status, headers=self._headers, body=bytes(self._body))


def _close_late_connection(future: Future[Any]) -> None:
    """A connection we stopped waiting for may still arrive: close it instead of leaking it."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


_NODELAY_LOCK = threading.Lock()


def _disable_nagle(peer_port: int) -> None:
    """Set TCP_NODELAY on this process's TCP sockets connected to ``peer_port``.

    Why: awscrt-python (0.38) offers no TCP_NODELAY option, and with Nagle's algorithm on, the
    request after a TLS 1.3 handshake waits for the server's delayed ACK of the client's Finished
    message: ~40 ms on every fetch, ten times the rest of the exchange. Setting TCP_NODELAY at this
    point sends the held segment at once. TLS 1.2 stalls inside the handshake, before we can reach
    the socket; see the README's performance notes. Linux only; elsewhere this does nothing.
    Sockets of other code connected to the same port get TCP_NODELAY too, which is what every
    HTTP client (urllib3, curl, Java) already sets.
    """
    if not sys.platform.startswith("linux"):
        return
    with _NODELAY_LOCK:
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return
        for name in names:
            _nodelay_if_peer(int(name), peer_port)


def _nodelay_if_peer(fd: int, peer_port: int) -> None:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return
        duplicate = _socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        inet_stream = duplicate.type == _socket.SOCK_STREAM and duplicate.family in (
            _socket.AF_INET,
            _socket.AF_INET6,
        )
        if inet_stream and duplicate.getpeername()[1] == peer_port:
            duplicate.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    except OSError:
        pass
    finally:
        duplicate.close()
