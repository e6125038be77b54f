"""The adapter between the async credential cache and aiobotocore, through its public classes.

aiobotocore signs every request with ``await credentials.get_frozen_credentials()``; a subclass
of its public ``AioCredentials`` whose coroutines answer from our cache is all it needs. It is
handed to a session through an ``AioCredentialResolver`` registered as the session's
``credential_provider`` component, as the sync adapter (``_botocore``) does for botocore.
"""

from __future__ import annotations

from typing import Any, Optional

from aiobotocore.credentials import AioCredentialResolver, AioCredentials
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider, ReadOnlyCredentials

from .._botocore import METHOD
from ._refreshing import AioRefreshingCredentials

__all__ = ["AioIotCoreCredentials", "install"]


class AioIotCoreCredentials(AioCredentials):  # type: ignore[misc] # aiobotocore is untyped
    """aiobotocore credentials that refresh themselves from an :class:`AioRefreshingCredentials`.

    The plain attributes (``access_key``...) show the credentials held now without refreshing,
    as a synchronous attribute cannot await; aiobotocore itself awaits the ``get_*`` methods.
    """

    def __init__(self, cache: AioRefreshingCredentials, description: str) -> None:
        # No super().__init__: the base class stores static keys; ours come from the cache.
        self._cache = cache
        self._description = description
        self.method = METHOD

    @property
    def access_key(self) -> Optional[str]:
        current = self._cache.current
        return current.access_key_id if current is not None else None

    @property
    def secret_key(self) -> Optional[str]:
        current = self._cache.current
        return current.secret_access_key if current is not None else None

    @property
    def token(self) -> Optional[str]:
        current = self._cache.current
        return current.session_token if current is not None else None

    @property
    def account_id(self) -> Optional[str]:
        return None

    async def get_frozen_credentials(self) -> Any:
        """One consistent snapshot; aiobotocore signs each request with one of these."""
        current = await self._cache.get()
        return ReadOnlyCredentials(
            current.access_key_id, current.secret_access_key, current.session_token
        )

    async def get_access_key(self) -> str:
        return (await self._cache.get()).access_key_id

    async def get_secret_key(self) -> str:
        return (await self._cache.get()).secret_access_key

    async def get_token(self) -> str:
        return (await self._cache.get()).session_token

    async def get_account_id(self) -> Optional[str]:
        return None

    def refresh_needed(self, refresh_in: Optional[int] = None) -> bool:  # noqa: ARG002
        """aiobotocore's question; our cache decides and refreshes on its own."""
        return self._cache.current is None

    def __repr__(self) -> str:
        return f"AioIotCoreCredentials({self._description})"


class _Provider(CredentialProvider):  # botocore's base class; load() is async here
    METHOD = METHOD
    CANONICAL_NAME = "custom-iot-credential-provider"

    def __init__(self, credentials: AioIotCoreCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> AioIotCoreCredentials:
        return self._credentials


def install(session: AioSession, credentials: AioIotCoreCredentials) -> None:
    """Make ``credentials`` the only credential source of ``session`` (no environment
    variables or profiles: the caller asked for the device's identity)."""
    resolver = AioCredentialResolver(providers=[_Provider(credentials)])
    session.register_component("credential_provider", resolver)
