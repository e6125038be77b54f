"""Fetch one set of credentials: validated configuration, one transport, retries."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union

from ._clock import Clock, utcnow
from ._config import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, PATH, ProviderConfig, key_kind
from ._credentials import Credentials
from ._endpoint import Endpoint
from ._keys import KeySource, key_source
from ._pem import (
    PemSource,
    certificate_dates,
    check_validity,
    expiry_note,
    load_certificate,
    read_pem,
)
from ._protocol import Response, build_request, parse_response
from ._proxy import ProxySettings, proxy_from_environment
from ._retry import RetryPolicy
from ._rotation import FileWatch, Snapshot
from ._transport import CrtTransport, Transport, build_tls_context
from ._version import __version__
from .exceptions import (
    CertificateRejectedError,
    ConfigurationError,
    CredentialHelperError,
    EncryptedKeyError,
    InvalidPemError,
    KeyMismatchError,
    Pkcs11Error,
    TlsHandshakeError,
)

if TYPE_CHECKING:
    from cryptography import x509

    from ._der import CertificateDates
    from ._pkcs11 import Pkcs11Config

__all__ = ["DEFAULT_TIMEOUT", "IotCredentialProvider"]


logger = logging.getLogger(__name__)


class IotCredentialProvider:
    """Trades a device certificate for credentials, one :meth:`fetch` at a time.

    Everything that can be checked without the network is checked here, at construction, the
    arguments first (see :class:`ProviderConfig`, which the keyword arguments build): the
    endpoint's form, that the files exist and hold PEM, that the key matches the certificate,
    the PKCS#11 module. The certificate's dates only warn (this device's clock may be wrong); a
    refusal by the provider then says it looks expired. The awscrt event loop, resolver,
    bootstrap and TLS context are built once and reused by every fetch.

    Args:
        endpoint: The Credential Provider endpoint (``aws iot describe-endpoint --endpoint-type
            iot:CredentialProvider``), optionally with ``:port``.
        role_alias: The role alias whose credentials to fetch.
        certificate: The device certificate: PEM ``bytes``, PEM text, or a path.
        private_key: Its private key: PEM ``bytes``, PEM text, a path, or an RFC 7512
            ``pkcs11:`` URI. Exclusive with ``pkcs11``.
        pkcs11: Where the key is in a PKCS#11 token (a ``Pkcs11Config``, or a ``dict`` of its
            fields). Exclusive with ``private_key``.
        thing_name: Sent as ``x-amzn-iot-thingname``; needed when policies use thing variables.
        ca: Trusted CA(s) for the server: PEM ``bytes``, PEM text or a path. Default: the system
            store.
        verify_peer: Verify the server's certificate. Only ever turn this off for local tests.
        private_key_password: Password of an encrypted private key; decrypted in memory only.
        timeout: Total seconds one fetch may take, retries included.
        max_attempts: Attempts per fetch; only network errors, 429 and 5xx are retried.
        proxy: ``http://[user:password@]host:port`` of an HTTP proxy to tunnel through.
        trust_env: When ``proxy`` is not given, use ``HTTPS_PROXY`` unless ``NO_PROXY`` excludes
            the endpoint.
        clock: The wall clock, for tests.
        transport: Sends each request instead of the awscrt transport the provider would build
            from the certificate, key, CA, ``verify_peer`` and proxy (the files are still
            checked); anything with ``send(request, *, timeout)`` and ``close()`` (see
            ``_transport.Transport``), and ``send_async`` for :meth:`fetch_async` (see
            ``_transport.AsyncTransport``). The provider closes it.

    Attributes:
        config: The :class:`ProviderConfig` this provider was built from.

    Raises:
        ConfigurationError: a subclass naming the setting to fix.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        role_alias: str,
        certificate: PemSource,
        private_key: Optional[PemSource] = None,
        pkcs11: Union[Pkcs11Config, Mapping[str, Any], None] = None,
        thing_name: Optional[str] = None,
        ca: Optional[PemSource] = None,
        verify_peer: bool = True,
        private_key_password: Union[str, bytes, None] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        proxy: Optional[str] = None,
        trust_env: bool = True,
        clock: Clock = utcnow,
        transport: Optional[Transport] = None,
    ) -> None:
        config = ProviderConfig(
            endpoint=endpoint,
            role_alias=role_alias,
            certificate=certificate,
            private_key=private_key,
            pkcs11=pkcs11,
            thing_name=thing_name,
            ca=ca,
            verify_peer=verify_peer,
            private_key_password=private_key_password,
            timeout=timeout,
            max_attempts=max_attempts,
            proxy=proxy,
            trust_env=trust_env,
        )
        self._open(config, clock, transport)

    @classmethod
    def from_config(
        cls,
        config: ProviderConfig,
        *,
        clock: Clock = utcnow,
        transport: Optional[Transport] = None,
    ) -> IotCredentialProvider:
        """A provider for ``config``: reads its files, loads its key, builds the TLS context
        (``clock`` and ``transport`` as in the constructor).

        Raises:
            ConfigurationError: a subclass naming the setting to fix (``config`` is not a
                :class:`ProviderConfig`, or a file, key or token is unusable).
        """
        if not isinstance(config, ProviderConfig):
            raise ConfigurationError(
                f"config must be a ProviderConfig, got {type(config).__name__}.", setting="config"
            )
        provider = cls.__new__(cls)
        provider._open(config, clock, transport)
        return provider

    def _open(self, config: ProviderConfig, clock: Clock, transport: Optional[Transport]) -> None:
        """The I/O the configuration calls for: files, the key's store, TLS context, transport."""
        self.config = config
        self.timeout = config.timeout
        self._retry = RetryPolicy(config.max_attempts)
        self.endpoint: Endpoint = config.endpoint
        self.role_alias = config.role_alias
        self.thing_name = config.thing_name
        self._clock = clock
        # Only a transport built here is rebuilt when the files are rotated.
        self._files = _file_watch(config) if transport is None else None
        self._rotation_lock = threading.Lock()  # one reload at a time, whoever fetches
        self._certificate_pem, self._certificate_dates, self.key = self._load_pair()
        check_validity(self._certificate_dates, clock())
        with _about("ca"):
            self._ca_pem = _read_ca(config.ca) if config.ca is not None else None
        if not config.verify_peer:
            logger.warning("verify_peer=False: the server's identity is NOT checked.")
        self.proxy = _choose_proxy(config, self.endpoint)
        if transport is None:
            transport = self._crt_transport(self._certificate_pem, self.key)
        self._transport: Transport = transport
        # The transport a rotation replaced: closed at the next rotation or at close(), not at
        # once, so that a fetch that has just picked it up can still open its connection.
        self._retired: Optional[Transport] = None
        self._request = build_request(
            host_header=self.endpoint.authority,
            role_alias=self.role_alias,
            thing_name=self.thing_name,
            user_agent=f"awsiot-credentialhelper/{__version__}",
        )
        self._closed = threading.Event()
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    def _load_pair(self) -> tuple[bytes, CertificateDates, KeySource]:
        """Read the certificate (and its dates) and load its key, checking that they match."""
        config = self.config
        with _about("certificate"):
            certificate_pem = read_pem(config.certificate, what="certificate")
            dates = certificate_dates(certificate_pem)
        with _about(self._key_setting):
            key = key_source(
                config.key, certificate_pem=certificate_pem, password=config.private_key_password
            )
        return certificate_pem, dates, key

    def _crt_transport(self, certificate_pem: bytes, key: KeySource) -> Transport:
        """The awscrt transport (TLS context, connections) for this certificate and key."""
        with _about(self._key_setting, only=(EncryptedKeyError, KeyMismatchError, Pkcs11Error)):
            tls_context = build_tls_context(
                key, certificate_pem, ca_pem=self._ca_pem, verify_peer=self.config.verify_peer
            )
        return CrtTransport(self.endpoint, tls_context, proxy=self.proxy)

    @property
    def _key_setting(self) -> str:
        return "pkcs11" if self.config.key_kind == "pkcs11" else "private_key"

    def _reload_if_rotated(self) -> None:
        """Before each fetch: certificate and key files replaced on disk (a rotation) get a
        new transport; a new pair that does not load or match keeps the old one, and is read
        again shortly (see ``_rotation``). Never fetches with a mismatched pair."""
        files = self._files
        if files is None or files.pending() is None:  # the usual case: two stat calls
            return
        with self._rotation_lock:
            snapshot = files.pending()  # another fetch may have reloaded meanwhile
            if snapshot is not None:
                self._reload(files, snapshot)

    def _reload(self, files: FileWatch, snapshot: Snapshot) -> None:
        try:
            certificate_pem, dates, key = self._load_pair()
            transport = self._crt_transport(certificate_pem, key)
        except ConfigurationError as error:
            files.rejected(snapshot, error)
            return
        retired, self._retired = self._retired, self._transport
        self._transport = transport
        self._certificate_pem, self._certificate_dates, self.key = certificate_pem, dates, key
        files.loaded(snapshot)
        if retired is not None:
            retired.close()
        logger.info("The certificate and key files were replaced: the new pair is in use.")

    @property
    def rotation_retry_due(self) -> bool:
        """Whether certificate and key files refused at a fetch (a rotation half done) have
        changed since: a fetch now would try them. ``serve`` and ``update`` poll this."""
        return self._files is not None and self._files.retry_due()

    @property
    def certificate(self) -> x509.Certificate:
        """The device certificate, parsed by ``cryptography`` when first asked for."""
        return load_certificate(self._certificate_pem)

    def fetch(self) -> Credentials:
        """One set of fresh credentials from the provider.

        Raises:
            ProviderError: the provider refused (a subclass per reason).
            NetworkError: the endpoint could not be reached in time.
            ExpiredCredentialsError: the credentials arrived already expired.
        """
        self._reload_if_rotated()
        deadline = time.monotonic() + self.timeout
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                return self._fetch_once(deadline)
            except CredentialHelperError as error:
                delay = self._retry_delay(error, attempt, deadline)
                if delay is None or self._closed.wait(delay):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    async def fetch_async(self) -> Credentials:
        """:meth:`fetch` for asyncio: the same request, retries and errors, without blocking
        the event loop (awscrt does the I/O on its own thread). Cancelling it closes the
        connection in use.

        Raises:
            ConfigurationError: the provider's ``transport`` has no ``send_async``.
            ProviderError: the provider refused (a subclass per reason).
            NetworkError: the endpoint could not be reached in time.
            ExpiredCredentialsError: the credentials arrived already expired.
        """
        import asyncio  # noqa: PLC0415 - here, so that a sync fetch does not import it (~20 ms)

        send_async = getattr(self._transport, "send_async", None)
        if send_async is None:
            raise ConfigurationError(
                f"The transport {type(self._transport).__name__} has no send_async, which "
                "asyncio callers need (see _transport.AsyncTransport); pass one that has, "
                "or leave transport unset.",
                setting="transport",
            )
        self._reload_if_rotated()
        deadline = time.monotonic() + self.timeout
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                with self._expiry_noted():
                    response = await send_async(self._request, timeout=remaining)
                    return self._credentials_from(response)
            except CredentialHelperError as error:
                delay = self._retry_delay(error, attempt, deadline)
                if delay is None or self._closed.is_set():
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _retry_delay(
        self, error: CredentialHelperError, attempt: int, deadline: float
    ) -> Optional[float]:
        """Seconds to wait before trying again after ``error``, or None to give up."""
        attempts = self._retry.max_attempts
        delay = self._retry.delay(attempt, self._rng)
        if not error.retryable or attempt == attempts or time.monotonic() + delay >= deadline:
            return None
        logger.warning(
            "Attempt %d of %d to fetch credentials for %r failed: %s Retrying in %.2f s.",
            attempt,
            attempts,
            self.role_alias,
            error,
            delay,
        )
        return delay

    def close(self) -> None:
        """Stop any retry wait in progress and release the awscrt resources (a PKCS#11 token
        session and login end with them)."""
        self._closed.set()
        self._transport.close()
        if self._retired is not None:
            self._retired.close()

    def __enter__(self) -> IotCredentialProvider:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        thing = f", thing_name={self.thing_name!r}" if self.thing_name else ""
        return (
            f"IotCredentialProvider(endpoint={str(self.endpoint)!r}, "
            f"role_alias={self.role_alias!r}{thing}, key={self.key.describe()!r})"
        )

    def _fetch_once(self, deadline: float) -> Credentials:
        remaining = deadline - time.monotonic()
        with self._expiry_noted():
            response = self._transport.send(self._request, timeout=max(remaining, 0.001))
            return self._credentials_from(response)

    @contextmanager
    def _expiry_noted(self) -> Iterator[None]:
        """Add the certificate's expiry to a refusal or failed handshake (see below)."""
        try:
            yield
        except (CertificateRejectedError, TlsHandshakeError) as error:
            self._add_expiry_note(error)
            raise

    def _credentials_from(self, response: Response) -> Credentials:
        """Credentials from the provider's answer, or its refusal as our exception."""
        credentials = parse_response(
            response,
            local_now=self._clock(),
            endpoint=str(self.endpoint),
            role_alias=self.role_alias,
            thing_name=self.thing_name,
        )
        logger.info(
            "Fetched credentials %s for %r, valid until %s.",
            credentials.access_key_id,
            self.role_alias,
            credentials.expiration.isoformat(),
        )
        return credentials

    def _add_expiry_note(self, error: CredentialHelperError) -> None:
        """Say in ``error`` that the certificate looks expired, if this device's clock says so.

        The certificate was tried anyway (see ``check_validity``); now that the provider refused
        it, the date is the likeliest reason. The note goes into the message itself (``args``),
        as ``str(error)`` is what logs and the CLI show.
        """
        note = expiry_note(self._certificate_dates, self._clock())
        if note is not None and error.args:
            error.args = (f"{error.args[0]} {note}", *error.args[1:])


@contextmanager
def _about(
    setting: str, *, only: tuple[type[ConfigurationError], ...] = (ConfigurationError,)
) -> Iterator[None]:
    """Say which setting a configuration error raised inside is about, unless it says so."""
    try:
        yield
    except only as error:
        if error.setting is None:
            error.setting = setting
        raise


def _read_ca(ca: PemSource) -> bytes:
    pem = read_pem(ca, what="CA")
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidPemError("The CA holds no '-----BEGIN CERTIFICATE-----' block.")
    return pem


def _file_watch(config: ProviderConfig) -> Optional[FileWatch]:
    """A watch on the certificate and key files, those given as paths; None if neither is."""
    paths = [
        os.path.expanduser(os.fspath(source))
        for source in (config.certificate, config.key)
        if isinstance(source, (str, os.PathLike)) and key_kind(source) == PATH
    ]
    return FileWatch(paths) if paths else None


def _choose_proxy(config: ProviderConfig, endpoint: Endpoint) -> Optional[ProxySettings]:
    if config.proxy is not None:
        return config.proxy
    if config.trust_env:
        return proxy_from_environment(endpoint.host)
    return None
