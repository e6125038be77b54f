"""boto3 sessions whose credentials come from the device certificate and refresh themselves.

This module keeps the 1.x API: ``Boto3SessionProvider`` and ``Pkcs11Config`` with the same
arguments, and every error still an instance of ``ValueError``. New options are keyword-only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Optional, Union

import boto3
import botocore.session

from . import _environment as env
from ._botocore import IotCoreCredentials, install
from ._clock import Clock, utcnow
from ._config import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, ProviderConfig, missing_settings
from ._endpoint import Endpoint
from ._pem import PemSource
from ._pkcs11 import Pkcs11Config
from ._provider import IotCredentialProvider
from ._refresh import DEFAULT_REFRESH_POLICY, RefreshingCredentials, RefreshPolicy
from .exceptions import ConfigurationError, ConflictingOptionsError

__all__ = ["Boto3SessionProvider", "Pkcs11Config", "ProviderConfig"]

logger = logging.getLogger(__name__)


class Boto3SessionProvider:
    """Creates boto3 sessions signed with credentials from the AWS IoT Credential Provider.

    No network call is made until the first AWS API call; then credentials are fetched, cached,
    shared by every session this object creates, and refreshed in the background before they
    expire (see :class:`RefreshPolicy`).

    Pass the settings as arguments (1.x's positional order works), or as one
    :class:`ProviderConfig` in ``config``; not both.

    Args:
        endpoint: ``<prefix>.credentials.iot.<region>.amazonaws.com`` (from ``aws iot
            describe-endpoint --endpoint-type iot:CredentialProvider``), optionally ``:port``.
        role_alias: The IoT role alias to assume.
        thing_name: The thing attached to the certificate, sent as ``x-amzn-iot-thingname``;
            ``None`` sends no header (allowed unless policies use thing variables).
        certificate: Device certificate: PEM ``bytes``, or a file path (``str``).
        private_key: Its private key: PEM ``bytes``, or a file path. Exclusive with ``pkcs11``.
        pkcs11: Where the key is in a PKCS#11 token. Exclusive with ``private_key``. A plain
            ``dict`` with the same keys works too, as 1.x's ``Pkcs11Config`` was a ``TypedDict``.
        ca: CA certificate(s) that sign the endpoint's certificate: PEM ``bytes`` or a path.
            Default: the system trust store.
        awscrt_log_level: An ``awscrt.io.LogLevel``: awscrt's own log goes to stderr, with
            credentials redacted (Linux; elsewhere it stays off). Process-wide: the last
            provider's level applies.
        verify_peer: Verify the endpoint's certificate (turn off for local tests only).
        region: The region of the sessions' clients; default: the endpoint's region, else
            ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's, else ``us-east-1`` (as 1.x).
        private_key_password: Password of an encrypted private key.
        timeout: Total seconds for one credential fetch, retries included.
        max_attempts: Attempts per fetch (network errors, 429 and 5xx are retried).
        proxy: ``http://host:port`` proxy; by default ``HTTPS_PROXY``/``NO_PROXY`` apply.
        trust_env: Read proxy settings from the environment.
        refresh_policy: When to refresh; the default scales to the credential lifetime.
        refresh_in_background: Refresh from a background thread so API calls never wait.
        clock: The wall clock, for tests.
        config: Every setting above from ``endpoint`` to ``region`` (but ``awscrt_log_level``)
            in one :class:`ProviderConfig`, instead of those arguments.

    Raises:
        ConfigurationError: (a ``ValueError``) a setting or file is wrong.
        ConflictingOptionsError: ``config`` and one of the arguments it replaces both given.
    """

    def __init__(  # noqa: PLR0917 - the 1.x positional signature, kept for compatibility
        self,
        endpoint: Optional[str] = None,
        role_alias: Optional[str] = None,
        thing_name: Optional[str] = None,
        certificate: Optional[PemSource] = None,
        private_key: Optional[PemSource] = None,
        pkcs11: Union[Pkcs11Config, Mapping[str, Any], None] = None,
        ca: Optional[PemSource] = None,
        awscrt_log_level: Optional[Any] = None,
        verify_peer: bool = True,
        *,
        region: Optional[str] = None,
        private_key_password: Union[str, bytes, None] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        proxy: Optional[str] = None,
        trust_env: bool = True,
        refresh_policy: RefreshPolicy = DEFAULT_REFRESH_POLICY,
        refresh_in_background: bool = True,
        clock: Clock = utcnow,
        config: Optional[ProviderConfig] = None,
    ) -> None:
        arguments: dict[str, Any] = {
            "endpoint": endpoint,
            "role_alias": role_alias,
            "thing_name": thing_name,
            "certificate": certificate,
            "private_key": private_key,
            "pkcs11": pkcs11,
            "ca": ca,
            "verify_peer": verify_peer,
            "region": region,
            "private_key_password": private_key_password,
            "timeout": timeout,
            "max_attempts": max_attempts,
            "proxy": proxy,
            "trust_env": trust_env,
        }
        config = resolve_config(config, arguments, awscrt_log_level)
        self._provider = IotCredentialProvider.from_config(config, clock=clock)
        self._region = config.region
        self._cache = RefreshingCredentials(
            self._provider.fetch,
            clock=clock,
            policy=refresh_policy,
            background=refresh_in_background,
        )
        self._credentials = IotCoreCredentials(self._cache, repr(self._provider)[len("Iot") :])

    @property
    def provider(self) -> IotCredentialProvider:
        """The lower-level provider that makes each fetch."""
        return self._provider

    @property
    def fetch_count(self) -> int:
        """How many fetches the sessions of this provider have made."""
        return self._cache.fetch_count

    def get_session(
        self,
        region: Optional[str] = None,
        *,
        region_name: Optional[str] = None,
        **session_kwargs: Any,
    ) -> boto3.Session:
        """A boto3 session signed with the device's credentials.

        Args:
            region: The session's region (1.x spelling).
            region_name: The same, in boto3's spelling; give one or the other.
            **session_kwargs: Passed on to :class:`boto3.Session` (e.g. ``profile_name`` for
                other settings; credentials always come from the device).

        Raises:
            ConflictingOptionsError: both ``region`` and ``region_name`` given, differently.
        """
        if region and region_name and region != region_name:
            raise ConflictingOptionsError(
                f"region={region!r} and region_name={region_name!r} disagree: pass one."
            )
        botocore_session = botocore.session.Session(
            profile=session_kwargs.pop("profile_name", None)
        )
        chosen, source = _region(
            region or region_name or self._region, self._provider.endpoint, botocore_session
        )
        logger.debug("Sessions use region %s (%s).", chosen, source)
        install(botocore_session, self._credentials)
        return boto3.Session(
            botocore_session=botocore_session, region_name=chosen, **session_kwargs
        )

    def awscrt_credentials_provider(self) -> Any:
        """An ``awscrt.auth.AwsCredentialsProvider`` serving these sessions' credentials.

        For awscrt-based clients: awsiotsdk's MQTT over WebSockets
        (``mqtt_connection_builder.websockets_with_default_aws_signing(credentials_provider=...)``),
        awscrt's S3 client, ``awscrt.auth.aws_sign_request``. They share this provider's cache and
        refreshing: no second fetch, no second cache.
        """
        from ._crt_credentials import crt_credentials_provider  # noqa: PLC0415 - on demand

        return crt_credentials_provider(self._cache.get)

    def close(self) -> None:
        """Stop background refreshing and release network resources."""
        self._cache.stop()
        self._provider.close()

    def __enter__(self) -> Boto3SessionProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Boto3SessionProvider({self._provider!r})"


#: 1.x's region for an endpoint without one, kept for the code written for it ("all roads lead
#: to N. Virginia"), but only after every setting that names a region.
_FALLBACK_REGION = "us-east-1"


def _region(
    explicit: Optional[str], endpoint: Endpoint, botocore_session: botocore.session.Session
) -> tuple[str, str]:
    """The sessions' region and where it came from, in this order: the caller's argument; the
    endpoint's name; ``AWS_REGION``; botocore's own settings (``AWS_DEFAULT_REGION``, the
    profile's ``region``); else 1.x's ``us-east-1``. Local and test endpoints name no region.
    """
    if explicit:
        return explicit, "given"
    if endpoint.region:
        return endpoint.region, f"named by the endpoint {endpoint.host}"
    from_environment = os.environ.get(env.AWS_REGION)
    if from_environment:
        return from_environment, f"from ${env.AWS_REGION}"
    configured = botocore_session.get_config_variable("region")
    if configured:
        return str(configured), "from botocore's settings: $AWS_DEFAULT_REGION or the profile"
    return _FALLBACK_REGION, (
        f"the default, as in 1.x: neither the arguments, the endpoint {endpoint.host}, "
        f"${env.AWS_REGION}, $AWS_DEFAULT_REGION nor the profile name one"
    )


def _send_awscrt_log_to_stderr(level: Any) -> None:
    """awscrt's log shows session tokens: it reaches stderr redacted (see ``_crt_log``)."""
    from ._crt_log import send_to_stderr  # noqa: PLC0415 - only callers who ask pay for it

    send_to_stderr(level)


#: What each argument that a ProviderConfig replaces is when it is not given.
_ARGUMENT_DEFAULTS: dict[str, Any] = {
    "endpoint": None,
    "role_alias": None,
    "thing_name": None,
    "certificate": None,
    "private_key": None,
    "pkcs11": None,
    "ca": None,
    "verify_peer": True,
    "region": None,
    "private_key_password": None,
    "timeout": DEFAULT_TIMEOUT,
    "max_attempts": DEFAULT_MAX_ATTEMPTS,
    "proxy": None,
    "trust_env": True,
}


def resolve_config(
    config: Optional[ProviderConfig], arguments: dict[str, Any], awscrt_log_level: Any
) -> ProviderConfig:
    """The one configuration a session provider's arguments describe (shared by the async one).

    Raises:
        ConfigurationError: see :func:`_config_from` and :func:`_refuse_arguments_beside`.
        ConflictingOptionsError: ``config`` and arguments it replaces both given.
    """
    if config is None:
        config = _config_from(arguments)
    else:
        _refuse_arguments_beside(config, arguments)
    if awscrt_log_level is not None:
        _send_awscrt_log_to_stderr(awscrt_log_level)
    return config


def _config_from(arguments: dict[str, Any]) -> ProviderConfig:
    """The config the 1.x-style arguments describe.

    Raises:
        ConfigurationError: a required argument is missing (1.x raised ``TypeError``), or any
            other problem :class:`ProviderConfig` finds.
    """
    missing = missing_settings(
        endpoint=arguments["endpoint"],
        role_alias=arguments["role_alias"],
        certificate=arguments["certificate"],
        private_key="given",  # ProviderConfig names a missing key itself ("Neither ...")
        pkcs11=None,
    )
    if missing:
        raise ConfigurationError(
            f"Boto3SessionProvider needs {', '.join(missing)} (or config=ProviderConfig(...)).",
            setting=missing[0],
        )
    return ProviderConfig(**arguments)


def _refuse_arguments_beside(config: ProviderConfig, arguments: dict[str, Any]) -> None:
    """``config`` replaces the provider's arguments: any of them given too is a conflict.

    Raises:
        ConfigurationError: ``config`` is not a :class:`ProviderConfig`.
        ConflictingOptionsError: naming ``config`` and the arguments given beside it.
    """
    if not isinstance(config, ProviderConfig):
        raise ConfigurationError(
            f"config must be a ProviderConfig, got {type(config).__name__}.", setting="config"
        )
    given = [
        name
        for name, value in arguments.items()
        if value is not _ARGUMENT_DEFAULTS[name] and value != _ARGUMENT_DEFAULTS[name]
    ]
    if given:
        raise ConflictingOptionsError(
            f"Both config and {', '.join(given)} were given: config holds every provider setting, "
            f"so pass either config or the arguments (set {given[0]} in the ProviderConfig).",
            setting="config",
        )
