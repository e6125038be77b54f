"""The adapter between our credential cache and botocore, through botocore's public classes only.

botocore signs every request with ``credentials.get_frozen_credentials()``; a subclass of its
public ``Credentials`` class that answers from our cache is all it needs. It is handed to a
session through a ``CredentialResolver`` registered as the session's ``credential_provider``
component, the mechanism botocore documents for custom providers; no private attribute is set.
"""

from __future__ import annotations

from typing import Any, Optional

import botocore.credentials
import botocore.session

from ._refresh import RefreshingCredentials

__all__ = ["METHOD", "IotCoreCredentials", "install", "install_botocore_credentials"]

#: The ``method`` botocore reports for these credentials (custom providers must start "custom").
METHOD = "custom-iot-credential-provider"


class IotCoreCredentials(botocore.credentials.Credentials):
    """botocore credentials that refresh themselves from a :class:`RefreshingCredentials`."""

    def __init__(self, cache: RefreshingCredentials, description: str) -> None:
        # No super().__init__: the base class stores static keys; ours come from the cache.
        self._cache = cache
        self._description = description
        self.method = METHOD

    @property  # read-only: botocore only reads it (as RefreshableCredentials does)
    def access_key(self) -> str:  # type: ignore[override]
        return self._cache.get().access_key_id

    @property  # read-only: botocore only reads it (as RefreshableCredentials does)
    def secret_key(self) -> str:  # type: ignore[override]
        return self._cache.get().secret_access_key

    @property  # read-only: botocore only reads it (as RefreshableCredentials does)
    def token(self) -> str:  # type: ignore[override]
        return self._cache.get().session_token

    @property
    def account_id(self) -> Optional[str]:
        return None

    def get_frozen_credentials(self) -> Any:
        """One consistent snapshot; botocore signs each request with one of these."""
        current = self._cache.get()
        return botocore.credentials.ReadOnlyCredentials(
            current.access_key_id, current.secret_access_key, current.session_token
        )

    def refresh_needed(self, refresh_in: Optional[int] = None) -> bool:  # noqa: ARG002
        """botocore's question; our cache decides and refreshes on its own."""
        return self._cache.current is None

    def __repr__(self) -> str:
        return f"IotCoreCredentials({self._description})"


class _Provider(botocore.credentials.CredentialProvider):
    METHOD = METHOD
    CANONICAL_NAME = "custom-iot-credential-provider"

    def __init__(self, credentials: IotCoreCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> IotCoreCredentials:
        return self._credentials


def install(session: botocore.session.Session, credentials: IotCoreCredentials) -> None:
    """Make ``credentials`` the only credential source of ``session``.

    Environment variables and profiles are not consulted: the caller asked for the device's
    identity, and a stray ``AWS_ACCESS_KEY_ID`` silently winning would be a surprise.
    """
    resolver = botocore.credentials.CredentialResolver(providers=[_Provider(credentials)])
    session.register_component("credential_provider", resolver)


def install_botocore_credentials(
    session: botocore.session.Session,
    credentials: RefreshingCredentials,
    *,
    description: str = "device credentials",
) -> None:
    """Make ``credentials`` the only credential source of a botocore session you built.

    Every client of ``session`` then signs with the device's credentials, refreshed as they
    are. For boto3, build the botocore session first and wrap it:
    ``boto3.Session(botocore_session=session)``.
    """
    install(session, IotCoreCredentials(credentials, description))
