"""Trade an AWS IoT X.509 certificate for temporary AWS credentials that refresh themselves.

The public names load on first use (PEP 562), so that ``import awsiot_credentialhelper.cli``
does not pay for awscrt, boto3 and botocore when it does not need them: the AWS CLI runs
``credential-process`` for every command, and its cached path must start as fast as Python.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# typing.TYPE_CHECKING without importing typing (and re, with it): that import alone would
# double the start-up of `credential-process` served from its cache. Type checkers treat any
# name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._botocore import install_botocore_credentials
    from ._config import ProviderConfig
    from ._credentials import Credentials
    from ._pkcs11 import Pkcs11Config
    from ._provider import IotCredentialProvider
    from ._refresh import RefreshingCredentials, RefreshPolicy
    from .aio import AioBoto3SessionProvider, AioRefreshingCredentials
    from .boto3_session import Boto3SessionProvider

__all__ = [
    "AioBoto3SessionProvider",
    "AioRefreshingCredentials",
    "Boto3SessionProvider",
    "Credentials",
    "IotCredentialProvider",
    "Pkcs11Config",
    "ProviderConfig",
    "RefreshPolicy",
    "RefreshingCredentials",
    "__version__",
    "install_botocore_credentials",
]

_LAZY = {
    "AioBoto3SessionProvider": ".aio",
    "AioRefreshingCredentials": ".aio",
    "Boto3SessionProvider": ".boto3_session",
    "Credentials": "._credentials",
    "IotCredentialProvider": "._provider",
    "Pkcs11Config": "._pkcs11",
    "ProviderConfig": "._config",
    "RefreshPolicy": "._refresh",
    "RefreshingCredentials": "._refresh",
    "install_botocore_credentials": "._botocore",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
