"""``serve``: a loopback credentials server for SDKs, speaking the container or IMDSv2 protocol.

Requests are always answered from memory: SDKs give a metadata server one second and one try,
so no request may wait for an mTLS round-trip (or an HSM). A background thread refreshes early
(see the policies below); while a refresh fails the last good credentials are served until
they run out, then every request gets a 503 with a JSON reason, never empty credentials.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _environment as env
from .._clock import utcnow
from .._credentials import Credentials, format_expiration
from .._refresh import CredentialCache, RefreshPolicy
from ..exceptions import ConfigurationError, CredentialHelperError
from ._cache import cache_directory
from ._options import add_common_options, build_provider, resolve, setup_logging

if TYPE_CHECKING:
    import argparse

__all__ = [
    "CONTAINER_PATH",
    "CONTAINER_POLICY",
    "IMDS_POLICY",
    "CredentialSource",
    "CredentialsServer",
    "TokenStore",
    "configure",
    "run",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9911
#: The path of the container-credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI).
CONTAINER_PATH = "/credentials"
IMDS_TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
IMDS_CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials"
IMDS_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
IMDS_TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
#: EC2's bounds for the IMDSv2 token TTL.
MAX_TOKEN_TTL = 21600
#: Live IMDSv2 tokens kept; past this the earliest-expiring is dropped (its client gets a 401
#: and asks for a new one), so a client minting tokens in a loop cannot grow memory.
MAX_TOKENS = 256
#: Connections served at once; more are closed at once (each costs a thread).
MAX_CONNECTIONS = 256
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 30.0
#: Seconds a thread may hold the GIL while others wait (Python's default is 0.005).
SWITCH_INTERVAL = 0.0005
#: Never serve credentials with less than this left: a request signed with them must still
#: be valid when AWS receives it.
MIN_REMAINING = timedelta(seconds=60)

#: Container mode: refresh with half the lifetime left (at most an hour before expiry), so
#: served credentials always outlast botocore's 15-minute advisory window for 1 h aliases.
CONTAINER_POLICY = RefreshPolicy()
#: IMDS mode: botocore pushes the expiry of IMDS credentials that have less than 15 + 2..10 min
#: left out past their real expiry ("static stability"), so served credentials must always have
#: more than 25 min left: refresh with 3/4 of the lifetime left (45 min of a 1 h alias).
IMDS_POLICY = RefreshPolicy(advisory_fraction=0.75, advisory_cap=timedelta(hours=1))
#: Below this lifetime IMDS mode cannot keep 25+ minutes in hand: use container mode.
IMDS_MIN_LIFETIME = timedelta(minutes=40)

DESCRIPTION = """\
Serve temporary credentials to AWS SDKs and the AWS CLI on this device, from memory, refreshed
in the background well before expiry. Binds to loopback only. Prints the `export` lines to use
on stdout, then logs each request (method, path, status, client) to stderr. Stop it with SIGTERM
or Ctrl-C.

--mode container (default): the container-credentials protocol (AWS_CONTAINER_CREDENTIALS_FULL_URI).
  A random 256-bit token is written to a 0600 file; clients send it (botocore reads the file
  named by AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). Refreshes with half the lifetime left.
--mode imds: the EC2 IMDSv2 protocol (AWS_EC2_METADATA_SERVICE_ENDPOINT), for SDKs without
  container-credentials support. Refreshes with 3/4 of the lifetime left, because botocore
  extends IMDS expirations by up to 25 minutes; role aliases under 40 minutes are unsuitable."""

EXAMPLES = """\
examples:
  $ awsiot-credentialhelper serve --profile device --port 0 > /run/iot-creds.env &
  $ . /run/iot-creds.env && aws sts get-caller-identity

  $ awsiot-credentialhelper serve --profile device --mode imds --port 9911
  export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare this command's options on its subparser."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    add_common_options(parser)
    group = parser.add_argument_group("server")
    group.add_argument(
        "--mode",
        choices=("container", "imds"),
        default="container",
        help="protocol to speak (default: container)",
    )
    group.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind: 127.0.0.1 (default) or ::1",
    )
    group.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to bind; 0 picks a free one (default {DEFAULT_PORT})",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="container mode: where to write the token (0600; default under $XDG_RUNTIME_DIR "
        "or the cache directory)",
    )
    group.add_argument(
        "--role-name",
        metavar="NAME",
        help="IMDS mode: the role name to list (default: the role alias)",
    )
    parser.set_defaults(run=run)


# --- IMDSv2 session tokens -------------------------------------------------------------------


class TokenStore:
    """IMDSv2 tokens with a TTL, at most ``limit`` alive; only their hashes are kept."""

    def __init__(
        self, *, limit: int = MAX_TOKENS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(48)
        now = self._clock()
        with self._lock:
            if len(self._expiry) >= self._limit:
                self._expiry = {k: t for k, t in self._expiry.items() if t > now}
            while len(self._expiry) >= self._limit:
                del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
            self._expiry[_digest(token)] = now + ttl
        return token

    def valid(self, token: Optional[str]) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(_digest(token))
        return expiry is not None and expiry > self._clock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


def _digest(token: str) -> bytes:
    # Looking tokens up by hash means no comparison ever runs on the secret itself.
    return hashlib.sha256(token.encode()).digest()


# --- credentials, always from memory ---------------------------------------------------------


class CredentialSource:
    """Fetches once at start (retrying until it works), then refreshes in the background."""

    def __init__(
        self,
        fetch: Callable[[], Credentials],
        *,
        policy: RefreshPolicy,
        clock: Callable[[], Any] = utcnow,
        min_remaining: timedelta = MIN_REMAINING,
        warn_below: Optional[timedelta] = None,
    ) -> None:
        self._cache = CredentialCache(fetch, clock=clock, policy=policy, background=True)
        self._clock = clock
        self._min_remaining = min_remaining
        self._warn_below = warn_below
        self._error = "the first fetch has not finished yet"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._first_fetch, name="awsiot-serve-first-fetch", daemon=True
        )
        self._rendered: tuple[Optional[Credentials], dict[str, bytes]] = (None, {})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._cache.stop()
        self._thread.join(5)

    def _first_fetch(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                credentials = self._cache.get()
            except CredentialHelperError as error:
                self._error = str(error)
                logger.error(  # noqa: TRY400 - the message is the whole story
                    "Cannot fetch credentials; answering 503 until it works. Retrying in %.0f s. "
                    "Cause: %s",
                    delay,
                    error,
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 60.0)
                continue
            if self._warn_below is not None and credentials.lifetime < self._warn_below:
                logger.warning(
                    "The role alias gives credentials for %d s: too short for IMDS mode, whose "
                    "clients may use them up to 25 min past the point we refresh. Use "
                    "--mode container, or raise credentialDurationSeconds to 2400 or more.",
                    credentials.lifetime.total_seconds(),
                )
            logger.info("Serving credentials %s.", credentials.access_key_id)
            return

    def current(self) -> tuple[Optional[Credentials], str]:
        """Credentials fit to serve, or ``None`` and the reason for a 503."""
        credentials = self._cache.current
        if credentials is None:
            return None, f"No credentials yet: {self._error}"
        if credentials.remaining(self._clock()) <= self._min_remaining:
            return None, (
                "The credentials have expired and refreshing them keeps failing; see the "
                "server's log."
            )
        return credentials, ""

    def body(self, credentials: Credentials, style: str) -> bytes:
        """The JSON body for ``credentials``, rendered once per credentials and style."""
        rendered_for, bodies = self._rendered
        if rendered_for is not credentials:
            bodies = {}
            self._rendered = (credentials, bodies)
        body = bodies.get(style)
        if body is None:
            document = credentials.to_container_output()
            if style == "imds":
                document = {
                    "Code": "Success",
                    "LastUpdated": format_expiration(credentials.issued_at),
                    "Type": "AWS-HMAC",
                    **document,
                }
            body = json.dumps(document).encode()
            bodies[style] = body
        return body


# --- HTTP --------------------------------------------------------------------------------------


class CredentialsServer(ThreadingHTTPServer):
    """A threading HTTP server on a loopback address, with Nagle off and a connection cap."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        *,
        mode: str,
        source: CredentialSource,
        role_name: str,
        container_token: Optional[str],
        tokens: Optional[TokenStore] = None,
    ) -> None:
        address = _loopback(host)
        self.address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.mode = mode
        self.source = source
        self.role_name = role_name
        self.container_token = container_token.encode() if container_token else b""
        self.tokens = tokens or TokenStore()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((str(address), port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, client = self.socket.accept()
        # Headers and body go out in separate writes; without this, Nagle and delayed ACKs
        # add up to 40 ms to each keep-alive answer.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, client

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            logger.warning("Too many connections (%d); closing one.", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _loopback(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(
            f"--host {host!r} is not an IP address: use 127.0.0.1 or ::1."
        ) from None
    if not address.is_loopback:
        raise ConfigurationError(
            f"--host {host} is not a loopback address: the server hands out credentials to "
            "anyone who can reach it, so it binds to 127.0.0.1 or ::1 only."
        )
    return address


_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _Handler(BaseHTTPRequestHandler):
    server: CredentialsServer
    protocol_version = "HTTP/1.1"
    server_version = "awsiot-credentialhelper"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        if self._refused():
            return
        path = self.path.split("?", 1)[0]
        if self.server.mode == "container":
            self._container(path)
        else:
            self._imds_get(path)

    def do_PUT(self) -> None:
        if self._refused():
            return
        path = self.path.split("?", 1)[0]
        if self.server.mode != "imds" or path.rstrip("/") != IMDS_TOKEN_PATH:
            self._json(404 if self.server.mode == "imds" else 405, "NotFound", "No such resource.")
            return
        ttl_text = self.headers.get(IMDS_TTL_HEADER, "")
        if not ttl_text.isdigit() or not 1 <= int(ttl_text) <= MAX_TOKEN_TTL:
            self._json(
                400, "BadRequest", f"{IMDS_TTL_HEADER} must be an integer 1..{MAX_TOKEN_TTL}."
            )
            return
        token = self.server.tokens.issue(int(ttl_text))
        self._send(200, token.encode(), "text/plain", ((IMDS_TTL_HEADER, ttl_text),))

    def do_POST(self) -> None:
        self._json(405, "MethodNotAllowed", "Only GET (and PUT for IMDSv2 tokens).")

    do_DELETE = do_PATCH = do_HEAD = do_POST  # noqa: N815

    def _refused(self) -> bool:
        """Requests relayed by a proxy are refused: only local processes may get credentials."""
        if self.headers.get("X-Forwarded-For") is not None:
            self._json(400, "Forbidden", "Requests with X-Forwarded-For are refused.")
            return True
        return False

    def _container(self, path: str) -> None:
        if path != CONTAINER_PATH:
            self._json(404, "NotFound", f"Credentials are served at {CONTAINER_PATH}.")
            return
        offered = self.headers.get("Authorization")
        if offered is None:
            self._json(401, "Unauthorized", "The Authorization header is missing.")
            return
        if not hmac.compare_digest(offered.encode(), self.server.container_token):
            self._json(403, "Forbidden", "The Authorization token is wrong.")
            return
        self._credentials("container")

    def _imds_get(self, path: str) -> None:
        if not self.server.tokens.valid(self.headers.get(IMDS_TOKEN_HEADER)):
            self._json(401, "Unauthorized", "Missing, invalid or expired IMDSv2 token.")
            return
        base = IMDS_CREDENTIALS_PATH
        if path in (base, base + "/"):
            self._send(200, self.server.role_name.encode(), "text/plain")
        elif path.rstrip("/") == f"{base}/{self.server.role_name}":
            self._credentials("imds")
        else:
            self._json(404, "NotFound", "No such resource.")

    def _credentials(self, style: str) -> None:
        credentials, reason = self.server.source.current()
        if credentials is None:
            self._json(503, "CredentialsUnavailable", reason)
            return
        self._send(200, self.server.source.body(credentials, style), "application/json")

    def _json(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"Code": code, "Message": message}).encode()
        self._send(status, body, "application/json")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Write the whole answer with one ``send`` (status line, headers and body together)."""
        self.log_request(status)
        lines = [
            f"{self.protocol_version} {status} {_REASONS.get(status, '')}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:  # noqa: ARG002
        # Method, path (no query), status and client only: never headers, which hold tokens.
        logger.info(
            "%s %s %s %s",
            self.command,
            self.path.split("?", 1)[0][:200],
            getattr(code, "value", code),
            self.client_address[0],
        )

    def log_error(self, format: str, *args: Any) -> None:
        # An idle keep-alive connection timing out is routine, not a warning.
        level = logging.DEBUG if format.startswith("Request timed out") else logging.WARNING
        logger.log(level, "%s: " + format, self.client_address[0], *args)


# --- the command -------------------------------------------------------------------------------


def run(args: Any) -> int:
    """Serve until SIGTERM or SIGINT; 0 on a clean stop."""
    setup_logging(args.verbose, quiet_level=logging.INFO, timestamps=True)
    settings = resolve(args)
    provider = build_provider(settings)
    imds = args.mode == "imds"
    source = CredentialSource(
        provider.fetch,
        policy=IMDS_POLICY if imds else CONTAINER_POLICY,
        warn_below=IMDS_MIN_LIFETIME if imds else None,
    )
    token = None if imds else secrets.token_urlsafe(32)  # 256 random bits
    try:
        server = CredentialsServer(
            args.host,
            args.port,
            mode=args.mode,
            source=source,
            role_name=args.role_name or provider.role_alias,
            container_token=token,
        )
    except OSError as exc:
        provider.close()
        raise ConfigurationError(
            f"Cannot listen on {args.host} port {args.port}: {exc.strerror}."
        ) from None
    token_file = None
    try:
        if token is not None:
            token_file = _write_token(args.token_file, server.port, token)
        source.start()
        _print_exports(server, token_file)
        _serve_until_signalled(server)
    finally:
        server.server_close()
        provider.close()
        source.stop()
        if token_file is not None and not args.token_file:
            _remove(token_file)
    logger.info("Stopped.")
    return 0


def _serve_until_signalled(server: CredentialsServer) -> None:
    # Handler threads wait for the GIL up to the switch interval (5 ms by default) when another
    # thread is busy; a metadata server answers in well under a millisecond, so hand over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Everything imported so far (awscrt, cryptography, ...) lives as long as the process; keep
    # it out of the garbage collector's full passes, which otherwise stall answers by ~10 ms.
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    thread = threading.Thread(target=server.serve_forever, name="awsiot-serve", daemon=True)
    thread.start()
    logger.info("Listening on %s (%s mode).", server.base_url, server.mode)
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
    finally:
        server.shutdown()
        thread.join(5)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_exports(server: CredentialsServer, token_file: Optional[str]) -> None:
    if server.mode == "container":
        lines = [
            f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={server.base_url}{CONTAINER_PATH}",
            f"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={shlex.quote(token_file or '')}",
        ]
    else:
        lines = [f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={server.base_url}/"]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _default_token_dir(environ: Mapping[str, str]) -> str:
    runtime = environ.get(env.XDG_RUNTIME_DIR)
    return os.path.join(runtime, "awsiot-credentialhelper") if runtime else cache_directory()


def _write_token(path: Optional[str], port: int, token: str) -> str:
    """Write the token to a 0600 file (temp file + rename) and return the file's path."""
    if path is None:
        directory = _default_token_dir(os.environ)
        _private_directory(directory)
        path = os.path.join(directory, f"serve-{port}.token")
    path = os.path.abspath(os.path.expanduser(path))
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token)
        os.replace(temporary, path)
    except OSError as exc:
        _remove(temporary)
        raise ConfigurationError(f"Cannot write the token file {path!r}: {exc.strerror}.") from None
    return path


def _private_directory(directory: str) -> None:
    """Create ``directory`` 0700, or refuse one that other users could read or replace."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise ConfigurationError(f"Cannot create {directory!r}: {exc.strerror}.") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ConfigurationError(
            f"{directory!r} is not a private directory of this user (mode 0700): fix it or "
            "pass --token-file."
        )


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
