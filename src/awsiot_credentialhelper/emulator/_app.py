"""The emulated Credential Provider endpoint: route, apply test faults, decide, answer, record.

This is the :class:`~._server.Handler` the TLS server calls. It owns the response format
(headers, JSON bodies, timestamps) and the journal of what was answered.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import logging
import random
import re
import uuid
from collections.abc import Callable
from typing import Any, Optional

from cryptography import x509

from ._decide import Decision, Outcome, decide
from ._faults import DEFAULT_ERROR_TYPES, THROTTLED, Controls, Fault, FaultKind
from ._http import Delivery, HttpRequest, HttpResponse, json_response
from ._journal import Journal, RequestRecord
from ._registry import MotoRegistry

__all__ = ["THING_NAME_HEADER", "CredentialProviderApp"]

_LOG = logging.getLogger("awsiot_credentialhelper.emulator.app")
THING_NAME_HEADER = "x-amzn-iot-thingname"
#: The journal's outcome for a request the emulator failed to handle (answered 500).
INTERNAL_FAILURE = "INTERNAL_FAILURE"
#: The journal's outcome for a request beyond ``Controls.max_requests_per_second`` (429).
THROTTLED_OUTCOME = "THROTTLED"
_CREDENTIALS_PATH = re.compile(r"^/role-aliases/(?P<alias>[^/]+)/credentials$")
#: A truncated answer looks like the start of a real one, with placeholder values only.
_TRUNCATED_BODY = (
    b'{"credentials":{"accessKeyId":"ASIAEMULATORTRUNCATED","secretAccessKey":"'
    + b"x" * 40
    + b'","sessionToken":"'
    + b"y" * 200
    + b'","expiration":"2000-01-01T00:00:00Z"}}'
)


def _request_id() -> str:
    """A random UUID4 for ``x-amzn-RequestId``.

    Drawn from ``random`` rather than ``os.urandom``: ids need no secrecy, and the syscall
    would release the GIL mid-request, which costs milliseconds under concurrency.
    """
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _iso8601(moment: datetime.datetime) -> str:
    """The provider's expiration format, e.g. ``2018-01-18T09:18:06Z``."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialProviderApp:
    """Answer ``GET /role-aliases/<alias>/credentials`` from moto's state.

    Args:
        registry: Where certificates, things, policies and roles are read.
        controls: The test faults, latency and clock skew to apply.
        journal: Where every answered request is recorded.
        require_thing_name: Refuse requests without ``x-amzn-iot-thingname`` (403).
        clock: The server's true time (tests of the emulator may inject one).
    """

    def __init__(
        self,
        *,
        registry: MotoRegistry,
        controls: Controls,
        journal: Journal,
        require_thing_name: bool = False,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self._registry = registry
        self._controls = controls
        self._journal = journal
        self._require_thing_name = require_thing_name
        self._clock = clock

    # --- the Handler protocol ---------------------------------------------------------------

    def handle(self, request: HttpRequest, certificate: x509.Certificate) -> HttpResponse:
        """Answer one parsed request, and journal it just before it is sent."""
        request_id, received = _request_id(), self._clock()
        match = _CREDENTIALS_PATH.match(request.path)
        alias = match.group("alias") if match else None
        thing_name = request.headers.get(THING_NAME_HEADER)
        try:
            response, outcome, cert_id = self._answer(
                request, certificate, alias, thing_name, request_id=request_id, received=received
            )
        except Exception:  # a bug here or in moto: answer like the service would, and say so
            _LOG.exception("Internal failure answering %s %s", request.method, request.path)
            response = self._error(500, "Internal failure", "InternalFailureException", request_id)
            outcome, cert_id = INTERNAL_FAILURE, None
        draft = RequestRecord(
            request_id=request_id,
            received_at=received,
            method=request.method,
            path=request.path,
            role_alias=alias,
            thing_name=thing_name,
            certificate_id=cert_id,
            # A DISCONNECT fault never sends a status line: record 0, as documented.
            status=0 if response.delivery is Delivery.DISCONNECT else response.status,
            outcome=outcome,
            handling_seconds=0.0,
        )
        return self._journaled(response, draft)

    def reject(self, status: int, message: str) -> HttpResponse:
        """Answer a request the server could not read; the connection closes after."""
        request_id, received = _request_id(), self._clock()
        response = self._error(status, message, _error_type(status), request_id)
        draft = RequestRecord(
            request_id=request_id,
            received_at=received,
            method="",
            path="",
            role_alias=None,
            thing_name=None,
            certificate_id=None,
            status=status,
            outcome="BAD_REQUEST",
            handling_seconds=0.0,
        )
        return self._journaled(_replace(response, close=True), draft)

    def _journaled(self, response: HttpResponse, draft: RequestRecord) -> HttpResponse:
        """Make the server journal ``draft``, with its handling time, just before sending."""

        def on_ready(seconds: float) -> None:
            record = dataclasses.replace(draft, handling_seconds=seconds)
            self._journal.add(record)
            _log_request(record)

        return _replace(response, on_ready=on_ready)

    def _answer(
        self,
        request: HttpRequest,
        certificate: x509.Certificate,
        alias: Optional[str],
        thing_name: Optional[str],
        *,
        request_id: str,
        received: datetime.datetime,
    ) -> tuple[HttpResponse, str, Optional[str]]:
        """The response, the outcome label and the certificate id (if known)."""
        if alias is None:
            response = self._error(404, "Not Found", "ResourceNotFoundException", request_id)
            return response, "NOT_FOUND", None
        if request.method != "GET":
            response = self._error(405, "Method Not Allowed", "MethodNotAllowed", request_id)
            return _add_header(response, ("Allow", "GET")), "METHOD_NOT_ALLOWED", None
        latency = self._controls.latency
        # The rate limit comes first, like a quota at the service's front door: a throttled
        # request costs one token check, leaves queued faults for the next one, mints nothing.
        if not self._controls.admit():
            response = self._fault_response(THROTTLED, request_id)
            return _replace(response, delay=latency), THROTTLED_OUTCOME, None
        fault = self._controls.take_fault()
        if fault is not None:
            response = self._fault_response(fault, request_id)
            return _replace(response, delay=latency), f"FAULT_{fault.kind.name}", None
        decision = decide(
            self._registry,
            certificate,
            thing_name,
            alias,
            now=received,
            require_thing_name=self._require_thing_name,
            lifetime=self._controls.credential_lifetime,
        )
        response = self._decision_response(decision, request_id)
        return _replace(response, delay=latency), decision.outcome.name, decision.certificate_id

    # --- building answers -------------------------------------------------------------------

    def _server_time(self) -> datetime.datetime:
        """The time this (possibly skewed) server believes it is."""
        return self._clock() + self._controls.clock_skew

    def _common_headers(self, request_id: str) -> tuple[tuple[str, str], ...]:
        return (
            ("x-amzn-RequestId", request_id),
            ("Date", email.utils.format_datetime(self._server_time(), usegmt=True)),
        )

    def _error(
        self, status: int, message: str, error_type: Optional[str], request_id: str
    ) -> HttpResponse:
        headers = self._common_headers(request_id)
        if error_type:
            headers += (("x-amzn-ErrorType", error_type),)
        return json_response(status, {"message": message}, headers)

    def _decision_response(self, decision: Decision, request_id: str) -> HttpResponse:
        outcome = decision.outcome
        if outcome is not Outcome.SUCCESS:
            return self._error(outcome.status, outcome.message, outcome.error_type, request_id)
        credentials = decision.credentials
        assert credentials is not None  # noqa: S101 - SUCCESS always carries them
        assert decision.duration_seconds is not None  # noqa: S101
        expiration = self._server_time() + datetime.timedelta(seconds=decision.duration_seconds)
        payload = {
            "credentials": {
                "accessKeyId": credentials.access_key_id,
                "secretAccessKey": credentials.secret_access_key,
                "sessionToken": credentials.session_token,
                "expiration": _iso8601(expiration),
            }
        }
        return json_response(200, payload, self._common_headers(request_id))

    def _fault_response(self, fault: Fault, request_id: str) -> HttpResponse:
        headers = self._common_headers(request_id)
        if fault.kind is FaultKind.RESPOND:
            if fault.error_type:
                headers += (("x-amzn-ErrorType", fault.error_type),)
            return HttpResponse(
                status=fault.status,
                headers=(("Content-Type", "application/json"), *headers),
                body=fault.body,
            )
        delivery = Delivery.TRUNCATE if fault.kind is FaultKind.TRUNCATE else Delivery.DISCONNECT
        return HttpResponse(
            status=fault.status,
            headers=(("Content-Type", "application/json"), *headers),
            body=_TRUNCATED_BODY,
            delivery=delivery,
            close=True,
        )


def _error_type(status: int) -> str:
    """The ``x-amzn-ErrorType`` of an error answer that no service check decided.

    The fault controls' type for 429/500/503, else one per status class (unverified, like them).
    """
    default = "InternalFailureException" if status >= 500 else "BadRequestException"
    return DEFAULT_ERROR_TYPES.get(status, default)


def _log_request(record: RequestRecord) -> None:
    """One INFO line per request (the CLI's ``-v``); never a secret."""
    if _LOG.isEnabledFor(logging.INFO):
        _LOG.info(
            "%s %s thing=%s -> %d %s (certificate %s, %.2f ms)",
            record.method,
            record.path,
            record.thing_name,
            record.status,
            record.outcome,
            record.certificate_id,
            record.handling_seconds * 1000,
        )


def _replace(response: HttpResponse, **changes: Any) -> HttpResponse:
    return dataclasses.replace(response, **changes)


def _add_header(response: HttpResponse, header: tuple[str, str]) -> HttpResponse:
    return _replace(response, headers=(*response.headers, header))
