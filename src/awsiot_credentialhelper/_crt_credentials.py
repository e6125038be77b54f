"""awscrt's credentials provider, served from this package's refreshing credentials.

awscrt-based clients (awsiotsdk's MQTT over WebSockets, awscrt's S3 client, ``aws_sign_request``)
take an ``awscrt.auth.AwsCredentialsProvider``. ``new_delegate`` wraps a synchronous callable
that awscrt calls, from its own threads, whenever it signs; the callable here asks the caller's
cache, so these clients share the sessions' credentials: no second fetch loop, no second cache.
"""

from __future__ import annotations

import logging
from typing import Callable

from awscrt import auth as crt_auth

from ._credentials import Credentials

__all__ = ["crt_credentials_provider"]

logger = logging.getLogger(__name__)


def crt_credentials_provider(
    get_credentials: Callable[[], Credentials],
) -> crt_auth.AwsCredentialsProvider:
    """An awscrt provider whose every request for credentials calls ``get_credentials``.

    A failure is logged here (awscrt only reports that the delegate failed) and the signing
    fails with awscrt's error.
    """

    def delegate() -> crt_auth.AwsCredentials:
        try:
            credentials = get_credentials()
        except Exception as error:
            logger.warning("No credentials for an awscrt client: %s", error)
            raise
        return crt_auth.AwsCredentials(
            credentials.access_key_id,
            credentials.secret_access_key,
            credentials.session_token,
            expiration=credentials.expiration,
        )

    return crt_auth.AwsCredentialsProvider.new_delegate(delegate)
