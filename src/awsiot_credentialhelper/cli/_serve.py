"""``serve``: a loopback credentials server for SDKs, speaking the container or IMDSv2 protocol.

Requests are always answered from memory: SDKs give a metadata server one second and one try,
so no request may wait for an mTLS round-trip (or an HSM). A background thread refreshes early
(see the policies below); while a refresh fails the last good credentials are served until
they run out, then every request gets a 503 with a JSON reason, never empty credentials.

HTTP is served by asyncio in one event-loop thread, not by a thread per connection: under the
GIL, 50 keep-alive clients on a 2-core device gave ``http.server.ThreadingHTTPServer`` a p99 of
6.2 ms bare and 8.6 ms with this server's work (threads queue for the GIL and switch), while
one event loop parsing request heads itself answered the same load with a p99 of 2.6 ms. The
loop only reads the in-memory cache; fetches stay in the refresh thread.

Requests are read by h11, not by a parser of our own (two of those in one codebase disagreed
on duplicate headers and ``Transfer-Encoding``). It costs ~100 us of CPU a request where the
hand-written parser it replaced cost ~10 us; the whole process's CPU per request under
``bench/serve.py`` went from ~240 to ~420-470 us. On a 2-core machine with little other
work, 12 runs interleaved with the old parser's 13 measured p99 5.4-7.7 ms (median 6.2)
against 3.3-8.4 ms (median 5.0): the 5 ms target is missed by about 1 ms. Under load from
other work the gap widens (median p99 36 ms against 9.3). One ``h11.Connection`` serves each
TCP connection, and response heads are built once a second per shape (``_ResponseHeads``).
Answering without h11 (a fresh ``h11.Connection`` per request, bytes written directly) saved
~35 us a request in isolation; in the running server the gain was within the noise of its CPU
and p99, so answers go through h11's state machine too.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
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
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import h11

from .. import _clock
from .._clock import utcnow
from .._credentials import Credentials, format_expiration
from .._private_file import remove_stale_temporaries, write_private_file
from .._refresh import CredentialCache, RefreshPolicy
from ..exceptions import ConfigurationError, CredentialHelperError
from . import _environment as env
from ._cache import cache_directory
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._metrics import ServeMetrics
from ._options import add_common_options, build_provider, resolve, setup_logging
from ._signals import ignore_signals_while_exiting
from ._systemd import Notifier

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
#: Answers 200 while credentials can be served, else 503 with a reason; no token needed.
HEALTH_PATH = "/healthz"
#: Prometheus metrics (no secrets in them); no token needed.
METRICS_PATH = "/metrics"
IMDS_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
IMDS_TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
#: EC2's bounds for the IMDSv2 token TTL.
MAX_TOKEN_TTL = 21600
#: Live IMDSv2 tokens kept; past this the earliest-expiring is dropped (its client gets a 401
#: and asks for a new one), so a client minting tokens in a loop cannot grow memory.
MAX_TOKENS = 256
#: Connections served at once; more are closed at once (each holds a file descriptor).
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
in the background well before expiry. Binds to loopback, and answers only requests whose
Host is a loopback address or localhost with its port (so web pages cannot reach it through DNS
rebinding). Prints the `export` lines to use on stdout, then logs each request (method, path,
status, client) to stderr. Stop it with SIGTERM or Ctrl-C; the token file is then removed.
SIGHUP refreshes at once (after a certificate rotation: changed certificate and key files are
read again before each fetch). GET /healthz (200, or 503 with the reason) and GET /metrics
(Prometheus) need no token. Under systemd (NOTIFY_SOCKET) it sends READY=1 once it holds
credentials, STATUS= lines, and WATCHDOG=1 pings when WatchdogSec= is set.

Container networks: --host ADDRESS beyond loopback needs --allow-non-loopback and container
mode; every client still needs the token, and Host must be that IP address (any IP address
when bound to 0.0.0.0 or ::) with the port, never a name.

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
        help="address to bind: 127.0.0.1 (default) or ::1; another only with --allow-non-loopback",
    )
    group.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="container mode: allow a --host that is not loopback (a container network's "
        "address, e.g. a Docker bridge's); every client must still send the token",
    )
    group.add_argument(
        "--port",
        type=_port,
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
    """The refreshing cache, started at once, and what a request may be answered with.

    The cache's own background thread makes the first fetch and every refresh, retrying with
    backoff after any failure until :meth:`stop`; this class only decides, per request, whether
    the credentials held are fit to serve.
    """

    def __init__(
        self,
        fetch: Callable[[], Credentials],
        *,
        policy: RefreshPolicy,
        clock: Callable[[], Any] = utcnow,
        min_remaining: timedelta = MIN_REMAINING,
        warn_below: Optional[timedelta] = None,
        monotonic: Callable[[], float] = _clock.monotonic,
    ) -> None:
        self._cache = CredentialCache(
            fetch,
            clock=clock,
            policy=policy,
            background=True,
            monotonic=monotonic,
            on_refresh=self._check_lifetime,
        )
        self._min_remaining = min_remaining
        self._warn_below = warn_below
        self._rendered: tuple[Optional[Credentials], dict[str, bytes]] = (None, {})

    def start(self) -> None:
        self._cache.start()

    def stop(self) -> None:
        self._cache.stop()

    def refresh_now(self) -> None:
        """Fetch at once in the background (SIGHUP); the current credentials serve meanwhile."""
        self._cache.refresh_now()

    @property
    def failures(self) -> int:
        """Refreshes failed in a row."""
        return self._cache.failures

    @property
    def last_error(self) -> Optional[BaseException]:
        return self._cache.last_error

    def fetch_state(self) -> tuple[Optional[float], int]:
        """For the metrics: the held credentials' expiry (Unix time) and failures in a row."""
        credentials = self._cache.current
        expiry = credentials.expiration.timestamp() if credentials is not None else None
        return expiry, self._cache.failures

    def current(self) -> tuple[Optional[Credentials], str]:
        """Credentials fit to serve, or ``None`` and the reason for a 503."""
        credentials = self._cache.usable(self._min_remaining)
        if credentials is not None:
            return credentials, ""
        cause = _describe(self._cache.last_error)
        if self._cache.current is None:
            return None, f"No credentials yet: {cause or 'the first fetch has not finished yet'}."
        return None, (
            "The credentials have expired and refreshing them keeps failing"
            + (f": {cause}" if cause else "")
            + "; see the server's log."
        )

    def _check_lifetime(self, credentials: Credentials) -> None:
        """Warn when the credentials are too short-lived for the mode (IMDS)."""
        if self._warn_below is not None and credentials.lifetime < self._warn_below:
            logger.warning(
                "The role alias gives credentials for %d s: too short for IMDS mode, whose "
                "clients may use them up to 25 min past the point we refresh. Use "
                "--mode container, or raise credentialDurationSeconds to 2400 or more.",
                credentials.lifetime.total_seconds(),
            )

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


# --- HTTP ----------------------------------------------------------------------------------------

#: A request head (request line and headers) larger than this gets a 431 and the connection closes.
MAX_HEAD = 16 * 1024
#: A request body larger than this gets a 413 (no request here needs one).
MAX_BODY = 16 * 1024
#: A request whose head or body takes longer than this to arrive gets a 408.
REQUEST_TIMEOUT = 10.0
#: How often idle connections and slow requests are looked for.
SWEEP_INTERVAL = 1.0
#: Pending connections the kernel queues for the listener.
BACKLOG = 128

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_SERVER = b"awsiot-credentialhelper"

#: (status, body, content type, extra headers)
Answer = tuple[int, bytes, str, tuple[tuple[str, str], ...]]


class CredentialsServer:
    """An HTTP/1.1 server on a loopback address; call :meth:`serve` in the event-loop thread.

    The listening socket is bound here, so the port is known (and a busy port reported)
    before serving starts. In container mode ``allow_non_loopback`` lets it bind another
    address (a container network's); ``Host`` must then name that address (or, bound to
    ``0.0.0.0`` or ``::``, any IP address) with the port: never a DNS name.
    """

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
        metrics: Optional[ServeMetrics] = None,
        allow_non_loopback: bool = False,
    ) -> None:
        address = bind_address(host, mode=mode, allow_non_loopback=allow_non_loopback)
        self.mode = mode
        self.metrics = metrics or ServeMetrics(source.fetch_state)
        self.status_counts = self.metrics.requests
        self._open_paths = {HEALTH_PATH: self._health, METRICS_PATH: self._metrics}
        self.source = source
        self.role_name = role_name
        self.container_token = container_token.encode() if container_token else b""
        self.tokens = tokens or TokenStore()
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.socket = socket.create_server((str(address), port), family=family, backlog=BACKLOG)
        self.socket.setblocking(False)
        self.connections: set[_Connection] = set()
        self._sweeper: Optional[asyncio.TimerHandle] = None
        self.heads = _ResponseHeads()
        port = self.port
        # What SDKs send: the URL's host and port (Python's http.client drops the port when
        # it is 80). Checked first, as a set lookup; other spellings go through _is_local_host.
        self._usual_hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        if port == 80:
            self._usual_hosts |= {"127.0.0.1", "localhost", "[::1]"}
        self._host_example = f"127.0.0.1:{port}, localhost:{port} or [::1]:{port}"
        #: Bound to 0.0.0.0 or ::: any IP address (never a name) may be in Host.
        self._any_address = address.is_unspecified
        if not address.is_loopback and not address.is_unspecified:
            shown = f"[{address}]" if address.version == 6 else str(address)
            self._usual_hosts.add(f"{shown}:{port}")
            self._host_example = f"{shown}:{port}"

    def _names_this_server(self, host: Optional[str]) -> bool:
        """Whether ``Host`` names a loopback address or localhost, with this server's port.

        A web page in a browser on the device can point a name it owns at 127.0.0.1 (DNS
        rebinding) and then read this server's answers as same-origin; its requests carry
        that name in ``Host``. Local SDKs send the address or ``localhost`` they connect to.
        """
        if host is None:
            return False
        return host in self._usual_hosts or _is_local_host(
            host, self.port, any_address=self._any_address
        )

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        host = str(self.socket.getsockname()[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def close(self) -> None:
        self.socket.close()

    async def serve(self, stopped: asyncio.Event) -> None:
        """Serve until ``stopped`` is set; then stop accepting, flush answers and close."""
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: _Connection(self), sock=self.socket)
        self._sweep(loop)
        logger.info("Listening on %s (%s mode).", self.base_url, self.mode)
        try:
            await stopped.wait()
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
            listener.close()
            await self._close_connections()

    async def _close_connections(self, grace: float = 5.0) -> None:
        for connection in list(self.connections):
            connection.close()  # sends what is buffered first
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close(abort=True)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close idle connections and time out slow requests, then again in a second."""
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(now)
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    # --- routing: one request in, one answer out; never blocks ---------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if not self._names_this_server(headers.get("host")):
            return _json(
                403,
                "Forbidden",
                f"The Host header must name this server ({self._host_example}): other names "
                "are refused, so a web page cannot reach it through DNS rebinding.",
            )
        if "forwarded" in headers or "x-forwarded-for" in headers:
            # Requests relayed by a proxy are refused: only local processes may get credentials.
            return _json(
                400, "Forbidden", "Requests with Forwarded or X-Forwarded-For are refused."
            )
        if method not in ("GET", "PUT"):
            return _json(405, "MethodNotAllowed", "Only GET (and PUT for IMDSv2 tokens).")
        if method == "PUT":
            return self._imds_put(path, headers)
        return self._get(path, headers)

    def _get(self, path: str, headers: Mapping[str, str]) -> Answer:
        open_path = self._open_paths.get(path)
        if open_path is not None:
            return open_path()  # /healthz, /metrics: no token, no secret
        if self.mode == "container":
            return self._container(path, headers)
        return self._imds_get(path, headers)

    def _imds_put(self, path: str, headers: Mapping[str, str]) -> Answer:
        if self.mode != "imds" or path.rstrip("/") != IMDS_TOKEN_PATH:
            return _json(404 if self.mode == "imds" else 405, "NotFound", "No such resource.")
        ttl_text = headers.get(IMDS_TTL_HEADER, "")
        if not _is_decimal(ttl_text) or not 1 <= int(ttl_text) <= MAX_TOKEN_TTL:
            return _json(
                400, "BadRequest", f"{IMDS_TTL_HEADER} must be an integer 1..{MAX_TOKEN_TTL}."
            )
        token = self.tokens.issue(int(ttl_text))
        return 200, token.encode(), "text/plain", ((IMDS_TTL_HEADER, ttl_text),)

    def _container(self, path: str, headers: Mapping[str, str]) -> Answer:
        if path != CONTAINER_PATH:
            return _json(404, "NotFound", f"Credentials are served at {CONTAINER_PATH}.")
        offered = headers.get("authorization")
        if offered is None:
            return _json(401, "Unauthorized", "The Authorization header is missing.")
        if not hmac.compare_digest(offered.encode("latin-1"), self.container_token):
            return _json(403, "Forbidden", "The Authorization token is wrong.")
        return self._credentials("container")

    def _imds_get(self, path: str, headers: Mapping[str, str]) -> Answer:
        if not self.tokens.valid(headers.get(IMDS_TOKEN_HEADER)):
            return _json(401, "Unauthorized", "Missing, invalid or expired IMDSv2 token.")
        base = IMDS_CREDENTIALS_PATH
        if path in (base, base + "/"):
            return 200, self.role_name.encode(), "text/plain", ()
        if path.rstrip("/") == f"{base}/{self.role_name}":
            return self._credentials("imds")
        return _json(404, "NotFound", "No such resource.")

    def _metrics(self) -> Answer:
        return 200, self.metrics.render(), METRICS_CONTENT_TYPE, ()

    def _health(self) -> Answer:
        """200 while credentials can be served (with their expiry, never a secret), else 503."""
        credentials, reason = self.source.current()
        if credentials is None:
            return _json(503, "CredentialsUnavailable", reason)
        document = {"Code": "Healthy", "Expiration": format_expiration(credentials.expiration)}
        return 200, json.dumps(document).encode(), "application/json", ()

    def _credentials(self, style: str) -> Answer:
        credentials, reason = self.source.current()
        if credentials is None:
            return _json(503, "CredentialsUnavailable", reason)
        return 200, self.source.body(credentials, style), "application/json", ()


def _is_local_host(host: str, port: int, *, any_address: bool = False) -> bool:
    """Whether a Host header is a loopback address or localhost with ``port`` (bare if 80);
    with ``any_address``, any IP address with ``port``."""
    name, port_text = _split_host(host.lower())
    if port_text is None:
        if port != 80:
            return False
    elif not _is_decimal(port_text) or int(port_text) != port:
        return False
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return any_address or address.is_loopback


def _split_host(host: str) -> tuple[str, Optional[str]]:
    """``host[:port]`` or ``[v6]:port`` into the name (no brackets) and the port text, if any."""
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return "", None  # never an address
        if not rest:
            return name, None
        return (name, rest[1:]) if rest.startswith(":") else ("", None)
    name, colon, port_text = host.partition(":")
    if ":" in port_text:
        return "", None  # an IPv6 address must be in brackets
    return name, port_text if colon else None


def _describe(error: Optional[BaseException]) -> str:
    """A failure as a 503 may show it: our errors say what happened and never hold a secret;
    anything else is named by its type only (the server's log has the traceback)."""
    if error is None:
        return ""
    if isinstance(error, CredentialHelperError):
        return str(error)
    return f"an unexpected {type(error).__name__}"


def _is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and friends, which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 12


def _json(status: int, code: str, message: str) -> Answer:
    return status, json.dumps({"Code": code, "Message": message}).encode(), "application/json", ()


def _port(text: str) -> int:
    """argparse type for --port: a usage error (exit 2) outside 0-65535."""
    import argparse  # noqa: PLC0415 - only serve's parser needs it

    if not _is_decimal(text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number 0-65535")
    return int(text)


def bind_address(
    host: str, *, mode: str, allow_non_loopback: bool = False
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address to bind: loopback, or with the opt-in another address in container mode.

    Raises:
        ConfigurationError: not an IP address; not loopback without ``--allow-non-loopback``;
            not loopback in IMDS mode (anyone who reaches it can mint an IMDSv2 token).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(
            f"--host {host!r} is not an IP address: use 127.0.0.1 or ::1."
        ) from None
    if address.is_loopback:
        return address
    if mode != "container":
        raise ConfigurationError(
            f"--host {host} is not a loopback address, and IMDS mode binds to loopback only: "
            "anyone who reaches it can ask for a token. Use --mode container for a container "
            "network."
        )
    if not allow_non_loopback:
        raise ConfigurationError(
            f"--host {host} is not a loopback address: the server hands out credentials to "
            "anyone who can reach it with the token, so it binds to 127.0.0.1 or ::1 unless "
            "you add --allow-non-loopback (container mode, for a container network)."
        )
    return address


# --- HTTP/1.1 framing (h11) ---------------------------------------------------------------------

#: Headers the routing reads: a second copy is refused, not resolved by picking one (parsers
#: disagree on which; no SDK sends two). A second Host is refused by h11 itself (400).
_READ_ONCE = frozenset({b"authorization", IMDS_TOKEN_HEADER.encode(), IMDS_TTL_HEADER.encode()})
_END = h11.EndOfMessage()  # one for every answer: h11 only reads the events it is given


class _ResponseHeads:
    """h11 ``Response`` events (status line and headers), built once per second and shape.

    h11 checks every header of a ``Response`` it is given against the grammar, which costs
    more than the rest of an answer; answers of one shape (status, type, length, extra
    headers) within one second have the same head, ``Date`` included, so each is built and
    checked once. h11 never changes an event it is given.
    """

    #: Shapes kept per second; more only come from clients sending many IMDS TTL values.
    LIMIT = 64

    def __init__(self) -> None:
        self._second = 0
        self._date = b""
        self._heads: dict[tuple[Any, ...], h11.Response] = {}

    def get(self, answer: Answer, *, close: bool) -> h11.Response:
        status, body, content_type, extra = answer
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._date = email.utils.formatdate(second, usegmt=True).encode()
            self._heads = {}
        key = (status, len(body), content_type, extra, close)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= self.LIMIT:
                self._heads = {}
            head = self._heads[key] = self._build(answer, close=close)
        return head

    def _build(self, answer: Answer, *, close: bool) -> h11.Response:
        status, body, content_type, extra = answer
        headers = [
            (b"Server", _SERVER),
            (b"Date", self._date),
            (b"Content-Type", content_type.encode()),
            (b"Content-Length", str(len(body)).encode()),
            (b"Cache-Control", b"no-store"),
            *((name.encode(), value.encode()) for name, value in extra),
        ]
        if close:
            headers.append((b"Connection", b"close"))
        return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


class _RequestError(Exception):
    """A request refused before routing: the status to answer, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Request:
    """What routing and the request log need of a request h11 has read."""

    __slots__ = ("headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.headers = headers


def _read_request(event: h11.Request) -> _Request:
    """Check a request head h11 has parsed against this server's own rules.

    h11 has already refused what HTTP/1.1 forbids (a missing or second ``Host``, conflicting
    ``Content-Length`` values, a ``Transfer-Encoding`` other than ``chunked``, malformed
    lines); this adds what a credentials server refuses on top.

    Raises:
        _RequestError: 505 for a major version other than 1; 400 for a second copy of a header
            in ``_READ_ONCE`` or for both ``Content-Length`` and ``Transfer-Encoding`` (RFC 9112
            section 6.1 lets a server refuse these: two framings of one message are how
            requests get smuggled); 413 for a ``Content-Length`` over ``MAX_BODY``.
    """
    if not event.http_version.startswith(b"1."):
        raise _RequestError(505, "Use HTTP/1.1.")
    headers: dict[str, str] = {}
    for name, value in event.headers:  # names come lower-cased
        key = name.decode("ascii")  # a token: ASCII only
        if key not in headers:
            headers[key] = value.decode("latin-1")
        elif name in _READ_ONCE:
            raise _RequestError(400, f"Duplicate {key} header.")
    length = headers.get("content-length")
    if length is not None:
        if "transfer-encoding" in headers:
            raise _RequestError(400, "Send a Content-Length or a Transfer-Encoding, not both.")
        if int(length) > MAX_BODY:  # h11 checked it is decimal digits
            raise _RequestError(413, "Request bodies are not used here.")
    path = event.target.decode("ascii").split("?", 1)[0]  # h11 allows visible ASCII only
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # as http.server does
    return _Request(event.method.decode("ascii"), path, headers)


def _protocol_message(error: h11.RemoteProtocolError) -> str:
    """h11's reason for refusing a request, without the request bytes it quotes."""
    if error.error_status_hint == 431:
        return "The request head is too large."
    text = str(error)
    for quote in (": bytearray(", ": b'", ': b"'):
        text = text.split(quote, 1)[0]
    return f"Malformed request: {text}."


class _Connection(asyncio.Protocol):
    """One client connection: h11 reads pipelined or split requests; each is answered in order.

    One ``h11.Connection`` serves every request of the TCP connection (``start_next_cycle``
    after each answer), so keep-alive costs no set-up per request.
    """

    def __init__(self, server: CredentialsServer) -> None:
        self._server = server
        self._transport: Optional[asyncio.Transport] = None
        self._client = "-"
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._pending = b""  # received, not yet given to h11 (see _feed)
        self._request: Optional[_Request] = None  # its head is read; its body may be arriving
        self._body_size = 0
        self._last_active = time.monotonic()
        #: When the first byte of a request not yet answered arrived; None between requests.
        self._request_started: Optional[float] = None
        self._closing = False
        self._paused = False

    # --- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        if len(self._server.connections) >= MAX_CONNECTIONS:
            logger.warning("Too many connections (%d); closing one.", MAX_CONNECTIONS)
            self.close(abort=True)
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Never wait for an ACK before sending the next answer (Nagle + delayed ACKs).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self._transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else "-"
        self._server.connections.add(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:  # noqa: ARG002
        self._server.connections.discard(self)
        self._closing = True

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._last_active = now
        if self._closing:
            return
        if self._request_started is None:
            self._request_started = now
        self._pending = self._pending + data if self._pending else data
        try:
            self._handle_events()
        except h11.RemoteProtocolError as error:
            self._fail(error.error_status_hint, _protocol_message(error))
        except _RequestError as error:
            self._fail(error.status, error.message)

    # --- requests ------------------------------------------------------------------------------

    def _handle_events(self) -> None:
        """Answer every request h11 can complete from what has arrived.

        Raises:
            h11.RemoteProtocolError: the bytes are not HTTP/1.1.
            _RequestError: a request this server refuses (see ``_read_request``).
        """
        http = self._http
        self._feed()
        while not self._closing:
            event = http.next_event()
            kind = type(event)
            if kind is h11.Request:
                self._request = _read_request(cast("h11.Request", event))
                self._body_size = 0
            elif kind is h11.Data:
                # A chunked body (a Content-Length was checked with the head): read and dropped.
                self._body_size += len(cast("h11.Data", event).data)
                if self._body_size > MAX_BODY:
                    raise _RequestError(413, "Request bodies are not used here.")
            elif kind is h11.EndOfMessage:
                request, self._request = self._request, None
                if request is not None:
                    self._respond(request)
            elif not self._feed():  # NEED_DATA, and nothing more has arrived
                if http.their_state is h11.IDLE and not http.trailing_data[0]:
                    self._request_started = None  # between requests, not inside one
                return
            # PAUSED and ConnectionClosed cannot come: the next cycle starts with each answer
            # (see _send), and h11 is never told of an end of file.

    def _feed(self) -> bool:
        """Give h11 what has arrived, but never more than ``MAX_HEAD`` while it waits for a head.

        h11 refuses (431) a buffer over its limit holding no whole head, but parses a longer
        head that arrived whole in one read. Capping what it holds makes the limit exact however
        the bytes arrive, as the emulator does: a head of up to ``MAX_HEAD`` bytes (its blank
        line included) always fits; a longer one leaves h11 a full buffer without one.

        Returns:
            Whether h11 was given more bytes.

        Raises:
            _RequestError: 431: h11 holds ``MAX_HEAD`` bytes and still needs more for the head.
        """
        pending = self._pending
        http = self._http
        take = len(pending)
        if http.their_state is h11.IDLE:
            held = len(http.trailing_data[0])  # a head's start, at most MAX_HEAD bytes
            if held >= MAX_HEAD:
                raise _RequestError(431, "The request head is too large.")
            take = min(take, MAX_HEAD - held)
        # else a body: h11 takes it as it comes
        if not take:
            return False
        if take == len(pending):  # usually: one request per read, given without a copy
            http.receive_data(pending)
            self._pending = b""
        else:  # copies at most once per MAX_HEAD bytes given, not once per request
            http.receive_data(pending[:take])
            self._pending = pending[take:]
        return True

    def _respond(self, request: _Request) -> None:
        close = False
        try:
            answer = self._server.answer(request.method, request.path, request.headers)
        except Exception:
            logger.exception("Failed to answer %s %s", request.method, request.path[:200])
            answer = _json(500, "InternalError", "See the server's log.")
            close = True
        self._send(answer, request, close=close)

    def _fail(self, status: int, message: str) -> None:
        """Answer a request that could not be read or is refused as framed, then close."""
        self._send(_json(status, "BadRequest", message), None, close=True)

    def _send(self, answer: Answer, request: Optional[_Request], *, close: bool) -> None:
        """Write the whole answer at once (status line, headers and body), then log it.

        h11 adds ``Connection: close`` when the client asked to close or spoke HTTP/1.0, and
        then ends in ``MUST_CLOSE``; otherwise the next request cycle starts at once.
        """
        status, body = answer[0], answer[1]
        http = self._http
        try:
            data = http.send(self._server.heads.get(answer, close=close))
            if body and (request is None or request.method != "HEAD"):
                data += http.send(h11.Data(data=body))
            http.send(_END)  # nothing to write: the Content-Length is met
        except h11.LocalProtocolError:
            # Only after a protocol error in the middle of our own answer: nothing sane to send.
            logger.debug("%s: cannot answer %d here; closing.", self._client, status)
            self.close(abort=True)
            return
        if self._transport is None:
            return
        self._transport.write(data)
        self._server.status_counts[status] += 1
        if logger.isEnabledFor(logging.INFO):
            # Method, path (no query), status and client only: never headers (tokens). The
            # command's log handler formats and writes the line on its own thread.
            method, path = ("-", "-") if request is None else (request.method, request.path[:200])
            logger.info("%s %s %s %s", method, path, status, self._client)
        if http.our_state is h11.MUST_CLOSE:
            self.close()
        else:
            http.start_next_cycle()
            self._request_started = time.monotonic()  # what follows is the next request

    # --- timeouts and closing ------------------------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self._closing:
            return
        started = self._request_started
        if started is not None and now - started > REQUEST_TIMEOUT:
            logger.debug("%s: request timed out; closing.", self._client)
            self._fail(408, "The request took too long to arrive.")
        elif started is None and now - self._last_active > IDLE_TIMEOUT:
            logger.debug("%s: idle for %.0f s; closing.", self._client, IDLE_TIMEOUT)
            self.close()

    def close(self, *, abort: bool = False) -> None:
        """Close once what is buffered is sent; at once if ``abort`` or the client stops reading."""
        self._closing = True
        if self._transport is None:
            return
        if abort or self._paused:
            self._transport.abort()
        else:
            self._transport.close()


# --- the command -------------------------------------------------------------------------------


def run(args: Any) -> int:
    """Serve until SIGTERM or SIGINT, reloading on SIGHUP; 0 on a clean stop."""
    setup_logging(args.verbose, quiet_level=logging.INFO, timestamps=True, background=True)
    settings = resolve(args)
    # Before the provider: it may ask for a PIN or log in to a token.
    address = bind_address(args.host, mode=args.mode, allow_non_loopback=args.allow_non_loopback)
    if not address.is_loopback:
        logger.warning(
            "Listening on %s, which is not a loopback address: whoever can reach %s and holds "
            "the token gets this device's credentials.",
            address,
            address,
        )
    imds = args.mode == "imds"
    token = None if imds else secrets.token_urlsafe(32)  # 256 random bits
    notifier = Notifier.from_environment()
    # Cleanups run in reverse: the source stops first (a refresh in flight still uses the
    # provider), then the token file goes, then the socket, then the provider.
    with build_provider(settings) as provider, contextlib.ExitStack() as cleanup:
        cleanup.callback(notifier.close)
        metrics = ServeMetrics()
        source = CredentialSource(
            metrics.count_fetches(provider.fetch),
            policy=IMDS_POLICY if imds else CONTAINER_POLICY,
            warn_below=IMDS_MIN_LIFETIME if imds else None,
        )
        metrics.state = source.fetch_state
        server = _listen(args, source, args.role_name or provider.role_alias, token, metrics)
        cleanup.callback(server.close)
        stop = cleanup.enter_context(_StopSignal(reload=lambda: _reload(source)))
        token_file = None
        if token is not None:
            token_file = _write_token(args.token_file, server.port, token)
            cleanup.callback(_remove_token, token_file, token)
        source.start()
        cleanup.callback(source.stop)
        _print_exports(server, token_file)
        _serve_until_signalled(
            server, stop, notifier, rotation_due=lambda: provider.rotation_retry_due
        )
    logger.info("Stopped.")
    return 0


def _reload(source: CredentialSource) -> None:
    """SIGHUP: refresh now; the provider first rereads certificate and key if they changed."""
    logger.info("SIGHUP: checking the certificate and key, and refreshing the credentials now.")
    source.refresh_now()


def _listen(
    args: Any,
    source: CredentialSource,
    role_name: str,
    token: Optional[str],
    metrics: ServeMetrics,
) -> CredentialsServer:
    """Bind the server, turning a busy port or a refused address into a usage error."""
    try:
        return CredentialsServer(
            args.host,
            args.port,
            mode=args.mode,
            source=source,
            role_name=role_name,
            container_token=token,
            metrics=metrics,
            allow_non_loopback=args.allow_non_loopback,
        )
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot listen on {args.host} port {args.port}: {exc.strerror}."
        ) from None


class _StopSignal:
    """SIGTERM and SIGINT handlers that stop the event loop, remembered until it runs; SIGHUP
    runs ``reload`` (in the event loop once it runs).

    They are installed before the token file is written and the exports printed: a supervisor
    may send SIGTERM (or a rotation tool SIGHUP) as soon as it has read them, and Python's
    default action would end the process on the spot, leaving the token file behind.
    """

    def __init__(self, reload: Optional[Callable[[], None]] = None) -> None:
        self._reload = reload
        self._requested = False
        self._reload_pending = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._event: Optional[asyncio.Event] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        if self._reload is not None:
            self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._requested:
            ignore_signals_while_exiting()
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    # Signal handlers run in the main thread, which also runs and closes the loop: a loop that
    # is open here stays open until the handler returns. Once it is closed, serve is stopping
    # (it may wait seconds for a refresh under way) and more signals change nothing.
    def _on_signal(self, *_: Any) -> None:
        self._requested = True
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._event is not None:
            loop.call_soon_threadsafe(self._event.set)

    def _on_hangup(self, *_: Any) -> None:
        if self._reload is None or self._requested:
            return
        loop = self._loop
        if loop is None:  # run it in the loop once it runs (see _Signals in _update for why)
            self._reload_pending = True
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._reload)

    def event(self) -> asyncio.Event:
        """An event of the running loop, set by the next signal (or already, by an earlier one)."""
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._requested:
            self._event.set()
        elif self._reload_pending and self._reload is not None:
            self._loop.call_soon(self._reload)
        return self._event


def _serve_until_signalled(
    server: CredentialsServer,
    stop: _StopSignal,
    notifier: Optional[Notifier] = None,
    *,
    rotation_due: Optional[Callable[[], bool]] = None,
) -> None:
    """Run the event loop in this (the main) thread until SIGTERM or SIGINT."""
    # The refresh thread holds the GIL in bursts (TLS, PEM); hand it back to the event loop
    # sooner than Python's default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Everything imported so far (awscrt, cryptography, ...) lives as long as the process; keep
    # it out of the garbage collector's full passes, which otherwise stall answers by ~10 ms.
    gc.collect()
    gc.freeze()
    asyncio.run(_serve_until_stopped(server, stop, notifier or Notifier(None), rotation_due))


async def _serve_until_stopped(
    server: CredentialsServer,
    stop: _StopSignal,
    notifier: Notifier,
    rotation_due: Optional[Callable[[], bool]] = None,
) -> None:
    stopped = stop.event()
    tasks = []
    if rotation_due is not None:
        tasks.append(asyncio.ensure_future(_finish_rotations(rotation_due, server.source)))
    if notifier.enabled:
        tasks.append(asyncio.ensure_future(_report_to_systemd(server.source, notifier)))
        tasks.append(asyncio.ensure_future(_announce_stop(stopped, notifier)))
    try:
        await server.serve(stopped)
    finally:
        for task in tasks:
            task.cancel()


#: How often a half-done certificate rotation is looked at again (two ``stat`` calls, and only
#: while one is pending).
ROTATION_POLL = 2.0


async def _finish_rotations(rotation_due: Callable[[], bool], source: CredentialSource) -> None:
    """Refresh as soon as refused certificate and key files change again (the rotation tool
    finished), instead of at the next scheduled refresh."""
    while True:
        await asyncio.sleep(ROTATION_POLL)
        if rotation_due():
            logger.info("The certificate or key file changed again: refreshing now.")
            source.refresh_now()


#: How often systemd's view of the server is brought up to date (READY=1, STATUS=).
_REPORT_INTERVAL = 0.1


async def _report_to_systemd(source: CredentialSource, notifier: Notifier) -> None:
    """READY=1 once credentials can be served, STATUS= on each change, WATCHDOG=1 pings.

    Pings come from the event loop, the thread that answers requests: a hung loop stops them,
    and systemd restarts the service.
    """
    ready = False
    status = ""
    interval = notifier.watchdog_interval
    next_ping = 0.0
    while True:
        credentials, _ = source.current()
        failures = source.failures
        lines = []
        if credentials is not None and not ready:
            ready = True
            lines.append("READY=1")
        new_status = _status_line(credentials, failures, source.last_error)
        if new_status != status:
            status = new_status
            lines.append(f"STATUS={status}")
        now = time.monotonic()
        if interval is not None and now >= next_ping:
            next_ping = now + interval
            lines.append("WATCHDOG=1")
        if lines:
            notifier.notify(*lines)
        await asyncio.sleep(_REPORT_INTERVAL)


def _status_line(
    credentials: Optional[Credentials], failures: int, error: Optional[BaseException]
) -> str:
    """What ``systemctl status`` shows: never a secret (see ``_describe``)."""
    if failures:
        return f"Refreshing credentials failed {failures} time(s) in a row: {_describe(error)}"
    if credentials is None:
        return "Fetching the first credentials."
    return f"Serving credentials valid until {format_expiration(credentials.expiration)}."


async def _announce_stop(stopped: asyncio.Event, notifier: Notifier) -> None:
    await stopped.wait()
    notifier.notify("STOPPING=1", "STATUS=Stopping.")


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
    """Write the token to a new 0600 file of this user and return the file's path."""
    if path is None:
        directory = _default_token_dir(os.environ)
        _private_directory(directory)
        path = os.path.join(directory, f"serve-{port}.token")
    path = os.path.abspath(os.path.expanduser(path))
    remove_stale_temporaries(path)
    try:
        write_private_file(path, token.encode(), existing=None)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot write the token file {path!r}: {exc.strerror}. Pass a --token-file in an "
            "existing directory this user can write to."
        ) from None
    return path


def _remove_token(path: str, token: str) -> None:
    """Remove the token file at exit, unless it now holds another token (another server's)."""
    try:
        # Non-blocking: a FIFO put in its place must not hang the exit.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            held = os.read(descriptor, len(token) + 1)
        finally:
            os.close(descriptor)
        if hmac.compare_digest(held, token.encode()):
            os.unlink(path)
        else:
            logger.warning("The token file %s holds another token now; left in place.", path)
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("Cannot remove the token file %s: %s.", path, exc.strerror)


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
