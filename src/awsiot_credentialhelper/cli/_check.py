"""``check``: diagnose a device's setup step by step, each with a verdict and what to fix.

The settings are judged by the library itself: they are resolved into the same
``ProviderConfig`` that ``credential-process`` builds, every argument error is collected
(``_config.argument_errors``) and reported in the step of its setting, and what a key setting is
comes from ``_config.key_kind``. The local steps use the library's own readers; DNS, TCP and
the server-side TLS check use the standard library, because only a handshake that verifies the
server *without* presenting the device's certificate can tell "your CA does not trust the
server" from "the server refused your certificate". The credential request itself goes
through ``IotCredentialProvider``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import sys
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._arguments import is_pem_text, looks_like_key_material
from .._clock import utcnow
from .._config import PATH, PKCS11_URI, argument_errors, key_kind
from .._pkcs11 import Pkcs11Config
from .._protocol import CLOCK_SKEW_TOLERANCE
from ..exceptions import (
    ConfigurationError,
    CredentialHelperError,
    NetworkError,
    ProviderError,
    TlsHandshakeError,
)
from ._errors import EXIT_NETWORK, EXIT_OK, EXIT_PROVIDER, EXIT_USAGE, exit_code_for
from ._options import (
    Settings,
    add_common_options,
    add_hint,
    config_arguments,
    missing,
    pkcs11_config,
    read_password,
    resolve,
    setup_logging,
)

if TYPE_CHECKING:
    import argparse

    from cryptography import x509

    from .._config import KeyArgument, ProviderConfig
    from .._credentials import Credentials
    from .._endpoint import Endpoint
    from .._pem import PemSource

__all__ = ["Report", "Step", "configure", "run"]

#: Warn when the device certificate expires sooner than this.
CERTIFICATE_WARNING = timedelta(days=30)
#: Default seconds for each network step when --timeout is not given.
NETWORK_TIMEOUT = 10.0
#: Clock skew worth a warning (the library copes, but TLS and SigV4 elsewhere may not).
SKEW_WARNING = timedelta(minutes=1)

DESCRIPTION = """\
Check the device's setup in order and say what to fix: settings, endpoint and region,
certificate (parses, dates), private key (permissions, parses, matches the certificate) or
PKCS#11 module, CA, DNS, TCP, the server's TLS certificate against your CA, the credential
request itself, and this device's clock against the server's. Exit code 0 when nothing failed
(warnings allowed), else the code of the first failure (see below). --json for machines."""

EXAMPLES = """\
examples:
  $ awsiot-credentialhelper check --profile device
  $ awsiot-credentialhelper check --profile device --json | jq '.steps[] | select(.status=="fail")'
"""

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}
_ASCII = {OK: "[ok]", WARN: "[warn]", FAIL: "[FAIL]", SKIP: "[skip]"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare this command's options on its subparser."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    add_common_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(run=run)


class Step:
    """The verdict of one check."""

    __slots__ = ("detail", "exit_code", "hint", "name", "status", "title")

    def __init__(  # noqa: PLR0917 - steps read best as one positional row each
        self,
        name: str,
        title: str,
        status: str,
        detail: str = "",
        hint: str = "",
        exit_code: int = EXIT_OK,
    ) -> None:
        self.name = name
        self.title = title
        self.status = status
        self.detail = detail
        self.hint = hint
        self.exit_code = exit_code if status == FAIL else EXIT_OK

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
        }


class Report:
    """Steps in order; the exit code is the first failure's."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def failed(self, *names: str) -> bool:
        return any(s.status == FAIL for s in self.steps if not names or s.name in names)

    @property
    def exit_code(self) -> int:
        return next((s.exit_code for s in self.steps if s.status == FAIL), EXIT_OK)

    def to_json(self) -> str:
        return json.dumps(
            {
                "ok": not self.failed(),
                "exit_code": self.exit_code,
                "steps": [s.to_json() for s in self.steps],
            },
            indent=2,
        )

    def to_text(self, encoding: Optional[str]) -> str:
        symbols = _SYMBOLS
        try:
            "".join(_SYMBOLS.values()).encode(encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            symbols = _ASCII
        lines = []
        for step in self.steps:
            detail = f": {step.detail}" if step.detail else ""
            lines.append(f"{symbols[step.status]} {step.title}{detail}")
            if step.hint and step.status in (FAIL, WARN):
                lines.append(f"    hint: {step.hint}")
        verdict = "all checks passed" if not self.failed() else "some checks failed"
        lines.append(f"\n{verdict} (exit code {self.exit_code})")
        return "\n".join(lines) + "\n"


# --- the checks --------------------------------------------------------------------------------


#: The step that reports an argument error, by the argument it names; others go to "settings".
_STEP_OF = {
    "endpoint": "endpoint",
    "certificate": "certificate",
    "private_key": "private_key",
    "pkcs11": "private_key",
    "private_key_password": "private_key",
    "ca": "ca",
}


class _Context:
    """The settings as the library judges them, and what earlier steps learned, for later ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.timeout or NETWORK_TIMEOUT
        self.endpoint: Optional[Endpoint] = None
        self.certificate: Optional[x509.Certificate] = None
        self.addresses: list[Any] = []
        self.server_trusted = False
        #: Required settings without a value.
        self.missing = missing(settings)
        #: The token configuration (with its PIN: asked for once) and the key's password.
        self.pkcs11: Optional[Pkcs11Config] = None
        self.password: Optional[bytes] = None
        #: Every argument error ProviderConfig finds, by argument, each with the CLI's hint.
        self.errors: dict[str, ConfigurationError] = {}
        #: The configuration the request uses, when the settings make one.
        self.config: Optional[ProviderConfig] = None
        self._judge()

    def _judge(self) -> None:
        """Resolve the token and password as ``credential-process`` does, then let the library
        judge every argument at once (``ProviderConfig`` would stop at the first)."""
        settings, errors = self.settings, self.errors
        try:
            self.pkcs11 = pkcs11_config(settings)
        except ConfigurationError as token_error:
            errors[token_error.setting or "pkcs11"] = token_error
        if self.pkcs11 is None and not errors:
            try:
                self.password = read_password(settings)
            except ConfigurationError as password_error:
                errors[password_error.setting or "private_key_password"] = password_error
        arguments = config_arguments(settings, pkcs11=self.pkcs11, password=self.password)
        for name, found in argument_errors(**arguments).items():
            errors.setdefault(name, found)
        for name in self.missing:  # the settings step reports those
            errors.pop(name, None)
            if name == "private_key":
                errors.pop("pkcs11", None)
        for found in errors.values():
            add_hint(found, settings)
        if not errors and not self.missing:
            from .._config import ProviderConfig  # noqa: PLC0415

            self.config = ProviderConfig(**arguments)

    def error(self, step: str) -> Optional[ConfigurationError]:
        """The first argument error the step ``step`` reports."""
        return next((e for name, e in self.errors.items() if _STEP_OF.get(name) == step), None)

    def key(self) -> Optional[KeyArgument]:
        """The key the settings name, as the library decided it (``None``: no usable key)."""
        if self.config is not None:
            return self.config.key
        if self.error("private_key") is not None:
            return None
        return self.pkcs11 or self.settings.private_key


def diagnose(settings: Settings) -> Report:
    """Run every step; never raises for a broken setup (that is what the report is for)."""
    report = Report()
    context = _Context(settings)
    for check in (
        _check_settings,
        _check_endpoint,
        _check_certificate,
        _check_private_key,
        _check_ca,
        _check_dns,
        _check_tcp,
        _check_tls,
    ):
        check(report, context)
    credentials = _check_request(report, context)
    _check_clock(report, credentials)
    return report


def _check_settings(report: Report, context: _Context) -> None:
    settings, names = context.settings, context.missing
    if names:
        report.add(
            Step(
                "settings",
                "Required settings",
                FAIL,
                "missing " + ", ".join(n.replace("_", " ") for n in names),
                "; ".join(f"set {settings.describe(n)}" for n in names)
                + (" (or --pkcs11-lib for a key in a token)" if "private_key" in names else ""),
                EXIT_USAGE,
            )
        )
        return
    others = [e for name, e in context.errors.items() if name not in _STEP_OF]
    if others:
        report.add(
            Step(
                "settings",
                "Settings",
                FAIL,
                "; ".join(str(error) for error in others),
                "Fix each value named above.",
                EXIT_USAGE,
            )
        )
        return
    report.add(Step("settings", "Required settings", OK, "all present"))


def _check_endpoint(report: Report, context: _Context) -> None:
    settings = context.settings
    if not settings.endpoint:
        report.add(Step("endpoint", "Endpoint", SKIP, "no endpoint set"))
        return
    from .._endpoint import parse_endpoint  # noqa: PLC0415

    error = context.error("endpoint")
    if error is not None:
        report.add(
            Step(
                "endpoint",
                "Endpoint",
                FAIL,
                str(error),
                "Use the host printed by `aws iot describe-endpoint --endpoint-type "
                "iot:CredentialProvider` in the device's account and region.",
                EXIT_USAGE,
            )
        )
        return
    # The library's parse found no fault above: this cannot raise.
    endpoint = context.config.endpoint if context.config else parse_endpoint(settings.endpoint)
    context.endpoint = endpoint
    detail = f"{endpoint.host} port {endpoint.port}"
    if settings.region and endpoint.region and settings.region != endpoint.region:
        report.add(
            Step(
                "endpoint",
                "Endpoint and region",
                WARN,
                f"{detail}; the host name says {endpoint.region} but --region says "
                f"{settings.region}",
                "Credentials work in any region, but the endpoint must be the one of the region "
                "where the certificate and role alias are registered.",
            )
        )
    elif endpoint.region or settings.region:
        region = settings.region or endpoint.region
        report.add(Step("endpoint", "Endpoint and region", OK, f"{detail}, region {region}"))
    else:
        report.add(
            Step(
                "endpoint",
                "Endpoint and region",
                WARN,
                f"{detail}; its name does not say the region",
                f"Set {settings.describe('region')} so that tools know the region.",
            )
        )


def _check_certificate(report: Report, context: _Context) -> None:
    settings = context.settings
    if not settings.certificate:
        report.add(Step("certificate", "Certificate", SKIP, "no certificate set"))
        return
    from .._pem import load_certificate, read_pem  # noqa: PLC0415

    origin = _origin(settings, "certificate")
    try:
        pem = read_pem(settings.certificate, what="certificate")
        certificate = load_certificate(pem)
    except ConfigurationError as error:
        report.add(
            Step(
                "certificate",
                f"Certificate ({origin})",
                FAIL,
                str(error),
                "Point --certificate at the device certificate PEM from AWS IoT "
                "(`aws iot describe-certificate`).",
                EXIT_USAGE,
            )
        )
        return
    context.certificate = certificate
    now = utcnow()
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    left = not_after - now
    subject = certificate.subject.rfc4514_string() or "(empty subject)"
    dates = f"{subject}, valid {not_before:%Y-%m-%d} to {not_after:%Y-%m-%d}"
    title = f"Certificate ({origin})"
    # This device's clock is not the judge (as in the library): the request below is tried, and
    # the provider's answer tells an expired certificate from a wrong clock.
    if now > not_after:
        report.add(
            Step(
                "certificate",
                title,
                WARN,
                f"{dates}: EXPIRED {(now - not_after).days} days ago by this device's clock",
                "Issue and register a new certificate (or, if the request below succeeds, set "
                "this device's clock with NTP).",
            )
        )
    elif now < not_before:
        report.add(
            Step(
                "certificate",
                title,
                WARN,
                f"{dates}: not valid yet by this device's clock",
                "This device's clock is probably wrong: set it (NTP), then check again.",
            )
        )
    elif left < CERTIFICATE_WARNING:
        report.add(
            Step(
                "certificate",
                title,
                WARN,
                f"{dates}: expires in {left.days} days",
                "Rotate the certificate before it expires.",
            )
        )
    else:
        report.add(Step("certificate", title, OK, f"{dates} ({left.days} days left)"))


def _check_private_key(report: Report, context: _Context) -> None:
    settings = context.settings
    error = context.error("private_key")
    if error is not None:
        in_token = bool(settings.pkcs11_lib) or key_kind(settings.private_key or "") == PKCS11_URI
        title = (
            "Private key (PKCS#11)"
            if in_token
            else f"Private key ({_origin(settings, 'private_key')})"
        )
        report.add(Step("private_key", title, FAIL, str(error), _key_hint(in_token), EXIT_USAGE))
        return
    key = context.key()
    if key is None:
        report.add(Step("private_key", "Private key", SKIP, "no private key set"))
        return
    if isinstance(key, Pkcs11Config):  # key_kind(key) == PKCS11
        _check_pkcs11(report, context, key)
        return
    _check_pem_key(report, context, key)


def _check_pem_key(report: Report, context: _Context, key: PemSource) -> None:
    settings = context.settings
    from .._pem import check_key_matches, load_private_key, read_pem  # noqa: PLC0415

    title = f"Private key ({_origin(settings, 'private_key')})"
    if key_kind(key) == PATH:
        _check_key_permissions(report, os.path.expanduser(os.fsdecode(key)), title)
    try:
        pem = read_pem(key, what="private key")
        parsed = load_private_key(pem, password=context.password)
    except ConfigurationError as error:
        add_hint(error, settings)
        report.add(Step("private_key", title, FAIL, str(error), _key_hint(False), EXIT_USAGE))
        return
    report.add(Step("private_key", title, OK, f"parses ({type(parsed).__name__.lstrip('_')})"))
    if context.certificate is None:
        report.add(Step("key_match", "Key matches certificate", SKIP, "certificate unusable"))
        return
    try:
        check_key_matches(context.certificate, parsed)
    except ConfigurationError as error:
        report.add(
            Step(
                "key_match",
                "Key matches certificate",
                FAIL,
                str(error),
                "The key and certificate are from different pairs: use the key that was created "
                "together with this certificate.",
                EXIT_USAGE,
            )
        )
        return
    report.add(Step("key_match", "Key matches certificate", OK, "same public key"))


def _key_hint(pkcs11: bool) -> str:
    if pkcs11:
        return (
            "Check --pkcs11-lib, the slot or token label, the key label and the PIN "
            "(`pkcs11-tool --module <lib> --list-objects --login`)."
        )
    return "Point --private-key at the PEM key created with the certificate."


def _check_key_permissions(report: Report, path: str, title: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # reading it reports the problem
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        report.add(
            Step(
                "key_permissions",
                f"{title} permissions",
                WARN,
                f"mode {stat.S_IMODE(mode):04o}: other users can read it",
                f"chmod 600 {path}",
            )
        )
    else:
        report.add(Step("key_permissions", f"{title} permissions", OK, f"{stat.S_IMODE(mode):04o}"))


def _check_pkcs11(report: Report, context: _Context, config: Pkcs11Config) -> None:
    title = "Private key (PKCS#11)"
    try:
        from .._keys import Pkcs11Key  # noqa: PLC0415
        from .._transport import load_pkcs11_module  # noqa: PLC0415

        key = Pkcs11Key(config)
        load_pkcs11_module(key.module_path)
    except ConfigurationError as error:
        add_hint(error, context.settings)
        report.add(Step("private_key", title, FAIL, str(error), _key_hint(True), EXIT_USAGE))
        return
    report.add(
        Step(
            "private_key",
            title,
            OK,
            f"{key.describe()}: module loads; the key is used in the TLS handshake below",
        )
    )


def _check_ca(report: Report, context: _Context) -> None:
    settings = context.settings
    if not settings.ca:
        report.add(Step("ca", "CA", OK, "the system trust store"))
        return
    from .._pem import load_certificate, read_pem  # noqa: PLC0415

    title = f"CA ({_origin(settings, 'ca')})"
    try:
        argument_error = context.error("ca")
        if argument_error is not None:
            raise argument_error
        pem = read_pem(settings.ca, what="CA")
        first = load_certificate(pem, what="CA certificate")
    except ConfigurationError as error:
        report.add(
            Step(
                "ca",
                title,
                FAIL,
                str(error),
                "For AWS use AmazonRootCA1.pem (https://www.amazontrust.com/repository/); "
                "for the emulator, its CA file.",
                EXIT_USAGE,
            )
        )
        return
    count = pem.count(b"-----BEGIN CERTIFICATE-----")
    report.add(
        Step("ca", title, OK, f"{count} certificate(s), first {first.subject.rfc4514_string()}")
    )


def _proxy_in_use(context: _Context) -> Optional[str]:
    if context.settings.proxy:
        return "--proxy"
    from .._proxy import proxy_from_environment  # noqa: PLC0415

    assert context.endpoint is not None  # noqa: S101
    try:
        proxy = proxy_from_environment(context.endpoint.host)
    except ConfigurationError:
        return "HTTPS_PROXY"
    return str(proxy) if proxy else None


def _check_dns(report: Report, context: _Context) -> None:
    endpoint = context.endpoint
    if endpoint is None:
        report.add(Step("dns", "DNS", SKIP, "no usable endpoint"))
        return
    proxy = _proxy_in_use(context)
    if proxy:
        report.add(Step("dns", "DNS", SKIP, f"through proxy {proxy}: the request below tests it"))
        return
    result = _with_timeout(
        lambda: socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM),
        context.timeout,
    )
    if isinstance(result, BaseException) or result is None:
        why = "timed out" if result is None else str(result)
        report.add(
            Step(
                "dns",
                f"DNS ({endpoint.host})",
                FAIL,
                why,
                "Check the endpoint's spelling and the device's DNS (/etc/resolv.conf).",
                EXIT_NETWORK,
            )
        )
        return
    context.addresses = [info[4] for info in result]
    shown = ", ".join(sorted({str(a[0]) for a in context.addresses}))
    report.add(Step("dns", f"DNS ({endpoint.host})", OK, shown))


def _check_tcp(report: Report, context: _Context) -> None:
    endpoint = context.endpoint
    if endpoint is None or not context.addresses:
        report.add(Step("tcp", "TCP connection", SKIP, "no address to connect to"))
        return
    errors = []
    for address in context.addresses:
        start = time.monotonic()
        try:
            with socket.create_connection(address[:2], timeout=context.timeout):
                elapsed = (time.monotonic() - start) * 1000
        except OSError as exc:
            errors.append(f"{address[0]}: {exc.strerror or exc}")
            continue
        report.add(
            Step(
                "tcp", "TCP connection", OK, f"{address[0]} port {endpoint.port}, {elapsed:.0f} ms"
            )
        )
        return
    report.add(
        Step(
            "tcp",
            "TCP connection",
            FAIL,
            "; ".join(errors),
            f"A firewall may block outgoing port {endpoint.port}, or a proxy is required "
            "(--proxy).",
            EXIT_NETWORK,
        )
    )


def _client_context(ca: Optional[str]) -> ssl.SSLContext:
    """stdlib TLS trusting ``ca`` (path or PEM text), else the system store."""
    if not ca:
        return ssl.create_default_context()
    if is_pem_text(ca):
        return ssl.create_default_context(cadata=ca)
    return ssl.create_default_context(cafile=os.path.expanduser(ca))


def _check_tls(report: Report, context: _Context) -> None:
    endpoint = context.endpoint
    if endpoint is None or report.failed("tcp", "ca") or not context.addresses:
        why = "no usable CA (see above)" if report.failed("ca") else "no connection"
        report.add(Step("tls", "Server certificate", SKIP, why))
        return
    settings = context.settings
    if settings.no_verify_peer:
        report.add(
            Step(
                "tls",
                "Server certificate",
                WARN,
                "not verified (--no-verify-peer)",
                "Only ever disable verification against a local test server.",
            )
        )
        context.server_trusted = True
        return
    address = context.addresses[0]
    try:
        tls = _client_context(settings.ca)
        raw = socket.create_connection(address[:2], timeout=context.timeout)
        with raw, tls.wrap_socket(raw, server_hostname=endpoint.host) as wrapped:
            peer: Any = wrapped.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        report.add(
            Step(
                "tls",
                "Server certificate",
                FAIL,
                f"not trusted by your CA: {exc.verify_message}",
                "--ca must hold the CA that signed the SERVER's certificate (for AWS: "
                "AmazonRootCA1.pem; for the emulator: its CA file), not the device's CA.",
                EXIT_NETWORK,
            )
        )
        return
    except ssl.SSLError as exc:
        if "alert" in str(exc).lower():
            # The server verified fine, then refused to go on without a client certificate.
            context.server_trusted = True
            report.add(
                Step("tls", "Server certificate", OK, "trusted by your CA (server wants mTLS)")
            )
            return
        report.add(
            Step(
                "tls",
                "Server certificate",
                FAIL,
                f"TLS handshake failed: {exc.reason or exc}",
                "The server does not speak TLS 1.2+ as the Credential Provider does: is this "
                "the right endpoint and port?",
                EXIT_NETWORK,
            )
        )
        return
    except OSError as exc:
        report.add(
            Step("tls", "Server certificate", FAIL, str(exc), "Check the network.", EXIT_NETWORK)
        )
        return
    context.server_trusted = True
    issuer = ", ".join(f"{key}={value}" for rdn in peer.get("issuer", ()) for key, value in rdn)
    report.add(
        Step(
            "tls",
            "Server certificate",
            OK,
            f"trusted by your CA (issuer {issuer}, expires {peer.get('notAfter', '?')})",
        )
    )


def _check_request(report: Report, context: _Context) -> Optional[Credentials]:
    title = "Credential request"
    if report.failed():
        report.add(Step("request", title, SKIP, "fix the failures above first"))
        return None
    if context.config is None:  # pragma: no cover - a settings step failed above
        report.add(Step("request", title, SKIP, "fix the settings first"))
        return None
    from .._provider import IotCredentialProvider  # noqa: PLC0415

    try:
        with IotCredentialProvider.from_config(context.config) as provider:
            credentials = provider.fetch()
    except Exception as error:  # every failure becomes a step; none escapes the report
        if isinstance(error, ConfigurationError):
            add_hint(error, context.settings)
        report.add(_request_failure(error, context))
        return None
    minutes = int(credentials.lifetime.total_seconds() // 60)
    report.add(
        Step(
            "request",
            title,
            OK,
            f"credentials {credentials.access_key_id} valid for {minutes} min "
            f"(until {credentials.expiration:%Y-%m-%d %H:%M:%S} UTC)",
        )
    )
    return credentials


def _request_failure(error: Exception, context: _Context) -> Step:
    """The failed request step for ``error``, with the hint that fits it."""
    title = "Credential request"
    if isinstance(error, ProviderError):
        hint = error.advice
        request = f", request id {error.request_id}" if error.request_id else ""
        detail = f"HTTP {error.status_code} {error.message!r}{request} ({type(error).__name__})"
        return Step("request", title, FAIL, detail, hint, EXIT_PROVIDER)
    if isinstance(error, TlsHandshakeError):
        detail = str(error)
        if context.server_trusted:
            detail = f"the server refused this device's certificate during the handshake ({detail})"
        hint = (
            "Register the certificate and make it ACTIVE in the endpoint's account and region "
            "(`aws iot describe-certificate`), and check its CA is registered if it is not an "
            "AWS-issued certificate."
        )
        return Step("request", title, FAIL, detail, hint, EXIT_NETWORK)
    if isinstance(error, NetworkError):
        return Step("request", title, FAIL, str(error), "Check the network.", EXIT_NETWORK)
    if isinstance(error, CredentialHelperError):
        return Step("request", title, FAIL, str(error), "", exit_code_for(error))
    return Step(
        "request",
        title,
        FAIL,
        f"unexpected {type(error).__name__}: {error}",
        "For a PKCS#11 key, check the PIN, the token and the key label.",
        EXIT_PROVIDER,
    )


def _check_clock(report: Report, credentials: Optional[Credentials]) -> None:
    if credentials is None:
        report.add(Step("clock", "Clock", SKIP, "needs a successful credential request"))
        return
    skew = credentials.clock_skew
    if abs(skew) < CLOCK_SKEW_TOLERANCE:
        report.add(
            Step("clock", "Clock", OK, f"within {CLOCK_SKEW_TOLERANCE.seconds} s of the server")
        )
        return
    direction = "behind" if skew > timedelta(0) else "ahead of"
    status = WARN if abs(skew) >= SKEW_WARNING else OK
    report.add(
        Step(
            "clock",
            "Clock",
            status,
            f"this device is {abs(skew.total_seconds()):.0f} s {direction} the server "
            "(Date header); refreshes follow the server's clock",
            "Set the clock with NTP (timedatectl set-ntp true): AWS rejects requests signed "
            "more than 5 minutes off.",
        )
    )


def _origin(settings: Settings, name: str) -> str:
    """Where a PEM setting comes from, for a step's title: its path, or whence its text came."""
    value = getattr(settings, name) or ""
    source = settings.sources.get(name, "")
    if is_pem_text(value):
        return f"PEM text from {source}"
    if looks_like_key_material(value):
        return f"key material from {source}, not shown"
    return value


def _with_timeout(function: Callable[[], Any], timeout: float) -> Any:
    """``function()``'s result or exception, or ``None`` if it took longer than ``timeout``."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(function())
        except Exception as exc:  # handed to the caller
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return box[0] if box else None


def run(args: Any) -> int:
    """Print the report; its exit code is the first failure's (0 when all passed)."""
    setup_logging(args.verbose, quiet_level=50)  # the steps report everything themselves
    try:
        settings = resolve(args)
    except ConfigurationError as error:
        report = Report()
        report.add(Step("settings", "Settings", FAIL, str(error), "", EXIT_USAGE))
    else:
        report = diagnose(settings)
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(report.to_text(getattr(sys.stdout, "encoding", None)))
    sys.stdout.flush()
    return report.exit_code
