"""Every environment variable the library reads, in one place; read when called, not at import.

The command line's own variables (``AWSIOT_CREDENTIAL_*``, ``AWS_CONFIG_FILE``...) are in
``awsiot_credentialhelper.cli._environment``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["AWS_REGION", "HTTPS_PROXY", "NO_PROXY", "get"]

#: Proxy for HTTPS connections (``http://[user:password@]host:port``); ``https_proxy`` also works.
HTTPS_PROXY = "HTTPS_PROXY"
#: Comma-separated hosts, domains and networks that bypass the proxy; ``no_proxy`` also works.
NO_PROXY = "NO_PROXY"
#: The region most AWS SDKs and the AWS CLI v2 read before ``AWS_DEFAULT_REGION`` (botocore reads
#: only that one): ``get_session()`` uses it when neither the caller nor the endpoint names one.
AWS_REGION = "AWS_REGION"


def get(name: str) -> Optional[str]:
    """The variable's value, trying the lower-case spelling too (curl's convention for proxies)."""
    value = os.environ.get(name)
    if value is None:
        value = os.environ.get(name.lower())
    return value or None
