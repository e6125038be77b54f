"""asyncio: aiobotocore and aioboto3 sessions, on the same refreshing device credentials.

Needs the ``aio`` extra: ``pip install "awsiot-credentialhelper[aio]"``.
"""

from __future__ import annotations

from ._refreshing import AioRefreshingCredentials
from ._session import AioBoto3SessionProvider

__all__ = ["AioBoto3SessionProvider", "AioRefreshingCredentials"]
