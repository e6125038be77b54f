"""Every environment variable this package reads, in one place; read when called, not at import."""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["HTTPS_PROXY", "NO_PROXY", "get"]

#: Proxy for HTTPS connections (``http://[user:password@]host:port``); ``https_proxy`` also works.
HTTPS_PROXY = "HTTPS_PROXY"
#: Comma-separated hosts, domains and networks that bypass the proxy; ``no_proxy`` also works.
NO_PROXY = "NO_PROXY"


def get(name: str) -> Optional[str]:
    """The variable's value, trying the lower-case spelling too (curl's convention for proxies)."""
    value = os.environ.get(name)
    if value is None:
        value = os.environ.get(name.lower())
    return value or None
