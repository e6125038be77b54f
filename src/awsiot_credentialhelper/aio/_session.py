"""aiobotocore and aioboto3 sessions on the device's refreshing credentials."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union

import botocore.session
from aiobotocore.session import AioSession

from .._clock import Clock, utcnow
from .._config import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, ProviderConfig
from .._credentials import Credentials
from .._pem import PemSource
from .._pkcs11 import Pkcs11Config
from .._provider import IotCredentialProvider
from .._refresh import DEFAULT_REFRESH_POLICY, RefreshPolicy
from ..boto3_session import _region, resolve_config
from ..exceptions import ConfigurationError, ConflictingOptionsError
from ._aiobotocore import AioIotCoreCredentials, install
from ._refreshing import AioRefreshingCredentials

if TYPE_CHECKING:
    import aioboto3

__all__ = ["AioBoto3SessionProvider"]

logger = logging.getLogger(__name__)

#: How long an awscrt client's thread waits for the event loop to hand over credentials.
_CRT_WAIT = 60.0


class AioBoto3SessionProvider:
    """Creates aiobotocore (and aioboto3) sessions signed with the device's credentials.

    The asyncio twin of :class:`~awsiot_credentialhelper.boto3_session.Boto3SessionProvider`,
    with the same arguments. Credentials are fetched on the first signed request, without
    blocking the event loop, shared by every session this object creates, and refreshed by an
    owned background task by the same policy as the sync sessions'. Use it as ``async with``
    (or call :meth:`aclose`): that cancels the task and any fetch in flight.

    Bound to the event loop that first uses it; once that loop is closed, a new one may use
    it. Awaited from another open loop it raises :class:`WrongEventLoopError`.

    Raises:
        ConfigurationError: (a ``ValueError``) a setting or file is wrong.
        ConflictingOptionsError: ``config`` and one of the arguments it replaces both given.
    """

    def __init__(  # noqa: PLR0917 - the same signature as Boto3SessionProvider
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
        self._cache = AioRefreshingCredentials(
            self._provider.fetch_async,
            clock=clock,
            policy=refresh_policy,
            background=refresh_in_background,
        )
        self._credentials = AioIotCoreCredentials(self._cache, repr(self._provider)[len("Iot") :])

    @property
    def provider(self) -> IotCredentialProvider:
        """The lower-level provider that makes each fetch."""
        return self._provider

    @property
    def credentials(self) -> AioRefreshingCredentials:
        """The refreshing credentials every session of this provider shares."""
        return self._cache

    @property
    def fetch_count(self) -> int:
        """How many fetches the sessions of this provider have made."""
        return self._cache.fetch_count

    def get_session(
        self, region: Optional[str] = None, *, region_name: Optional[str] = None
    ) -> AioSession:
        """An aiobotocore session signed with the device's credentials.

        Args:
            region: The session's region (as ``Boto3SessionProvider.get_session``).
            region_name: The same, in boto3's spelling; give one or the other.

        Raises:
            ConflictingOptionsError: both ``region`` and ``region_name`` given, differently.
        """
        session = AioSession()
        session.set_config_variable("region", self._chosen_region(region, region_name, session))
        install(session, self._credentials)
        return session

    def get_aioboto3_session(
        self, region: Optional[str] = None, *, region_name: Optional[str] = None
    ) -> aioboto3.Session:
        """An aioboto3 session (clients and resources) signed with the device's credentials.

        Raises:
            ConfigurationError: aioboto3 is not installed.
            ConflictingOptionsError: both ``region`` and ``region_name`` given, differently.
        """
        try:
            import aioboto3  # noqa: PLC0415 - optional
        except ImportError:
            raise ConfigurationError(
                "get_aioboto3_session needs the aioboto3 package: "
                "pip install 'awsiot-credentialhelper[aio]' (or use get_session, on "
                "aiobotocore alone)."
            ) from None
        session = self.get_session(region, region_name=region_name)
        return aioboto3.Session(
            botocore_session=session, region_name=session.get_config_variable("region")
        )

    def awscrt_credentials_provider(self) -> Any:
        """An ``awscrt.auth.AwsCredentialsProvider`` serving these sessions' credentials.

        Call it from a coroutine: it binds the provider to the running loop. awscrt asks for
        credentials from its own threads, which wait for that loop to hand them over (a fetch,
        if one is due, runs on the loop). Asked on the loop's own thread (``aws_sign_request``
        called in a coroutine), it serves the credentials held, which an awaited
        ``provider.credentials.get()`` beforehand makes sure of.
        """
        from .._crt_credentials import crt_credentials_provider  # noqa: PLC0415 - on demand

        if _runs_on_a_loop():
            self._cache.bind()  # awscrt's threads will ask this loop
        return crt_credentials_provider(self._credentials_for_another_thread)

    def _credentials_for_another_thread(self) -> Credentials:
        loop = self._cache.loop
        if loop is None or loop.is_closed() or _runs_on(loop):
            current = self._cache.usable()
            if current is None:
                raise ConfigurationError(
                    "No usable credentials held for the awscrt client, and its request came "
                    "from the event loop's own thread, which cannot wait for a fetch: await "
                    "provider.credentials.get() first."
                )
            return current
        future: concurrent.futures.Future[Credentials] = asyncio.run_coroutine_threadsafe(
            self._cache.get(), loop
        )
        return future.result(_CRT_WAIT)

    def _chosen_region(
        self,
        region: Optional[str],
        region_name: Optional[str],
        session: botocore.session.Session,
    ) -> str:
        if region and region_name and region != region_name:
            raise ConflictingOptionsError(
                f"region={region!r} and region_name={region_name!r} disagree: pass one."
            )
        chosen, source = _region(
            region or region_name or self._region, self._provider.endpoint, session
        )
        logger.debug("Sessions use region %s (%s).", chosen, source)
        return chosen

    async def aclose(self) -> None:
        """Cancel background refreshing and any fetch in flight; release network resources."""
        await self._cache.aclose()
        self._provider.close()

    async def __aenter__(self) -> AioBoto3SessionProvider:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AioBoto3SessionProvider({self._provider!r})"


def _runs_on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _runs_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs on this thread
        return False
