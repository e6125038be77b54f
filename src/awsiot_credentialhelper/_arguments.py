"""Judge the caller's arguments: the defaults and limits, which are required, numbers, what a
string holds, and paths shown without leaking.

Both the library and the CLI use these, so a setting is judged the same way wherever it comes
from; ``_config`` builds on them. Cheap to import (the CLI's cached path does, and not
``_config``): ``math`` and our exceptions only.
"""

from __future__ import annotations

import math

from .exceptions import ConfigurationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    import os
    from typing import Union

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "MAX_ATTEMPTS",
    "MAX_TIMEOUT",
    "PEM_MARKER",
    "REQUIRED_SETTINGS",
    "check_max_attempts",
    "check_timeout",
    "is_pem_text",
    "is_pkcs11_uri",
    "looks_like_key_material",
    "missing_settings",
    "shown_path",
]

#: Total seconds one fetch may take, retries and waits included.
DEFAULT_TIMEOUT = 30.0
#: One try and two retries: enough for a dropped packet or a brief 503, short enough that a
#: real outage surfaces quickly to the caller (who may retry on its own schedule).
DEFAULT_MAX_ATTEMPTS = 3

#: The longest timeout accepted, in seconds: a day. awscrt takes timeouts as 32-bit milliseconds
#: (49.7 days at most), and a fetch that may take longer than a day is a mistake, not a setting.
MAX_TIMEOUT = 86400.0
#: The most attempts one fetch may make: beyond this, retrying hides an outage from the caller.
MAX_ATTEMPTS = 10

#: A run of base64 this long, mixing cases and digits, is key material, not a path: the
#: shortest key AWS IoT takes (EC P-256, PKCS#8) is 184 characters of base64, and the hex
#: certificate ids in AWS IoT's file names are lower-case.
_KEY_RUN = 64
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


#: What makes a ``str`` PEM text rather than a path: PEM armour's first line starts with it.
PEM_MARKER = "-----BEGIN"
_PKCS11_SCHEME = "pkcs11:"


def is_pem_text(value: object) -> bool:
    """Whether ``value`` is a ``str`` holding PEM text (else a ``str`` is a path or a URI)."""
    return isinstance(value, str) and PEM_MARKER in value


def is_pkcs11_uri(value: object) -> bool:
    """Whether ``value`` is meant as an RFC 7512 ``pkcs11:`` URI (so not read as a file path).

    Only ``str`` counts: ``bytes`` given as a key are PEM content, never a URI. Here rather than
    in ``_pkcs11`` so that the CLI's cached path can ask without importing ``typing``.
    """
    return isinstance(value, str) and value[: len(_PKCS11_SCHEME)].lower() == _PKCS11_SCHEME


#: What every provider needs; the key is ``private_key`` or ``pkcs11`` (see missing_settings).
REQUIRED_SETTINGS = ("endpoint", "role_alias", "certificate", "private_key")


def missing_settings(
    *,
    endpoint: object,
    role_alias: object,
    certificate: object,
    private_key: object,
    pkcs11: object,
) -> list[str]:
    """The names in :data:`REQUIRED_SETTINGS` that have no value (``None`` or empty), in order.

    The key counts as given when either ``private_key`` or ``pkcs11`` (for the CLI: the PKCS#11
    module) is; it is reported as ``"private_key"``.
    """
    given = {
        "endpoint": endpoint,
        "role_alias": role_alias,
        "certificate": certificate,
        "private_key": private_key or pkcs11,
    }
    return [name for name in REQUIRED_SETTINGS if given[name] is None or given[name] == ""]


def check_timeout(value: object, *, name: str = "timeout") -> float:
    """``value`` as seconds, if finite, positive and at most :data:`MAX_TIMEOUT`.

    Raises:
        ConfigurationError: anything else (including ``bool``, ``nan`` and ``inf``), naming
            ``name`` and the value.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise ConfigurationError(
            f"{name} must be a number of seconds above 0 and at most {MAX_TIMEOUT:.0f} (a day), "
            f"got {_short(value)}."
        )
    return float(value)


def check_max_attempts(value: object, *, name: str = "max_attempts") -> int:
    """``value`` if it is an ``int`` from 1 to :data:`MAX_ATTEMPTS` (``bool`` is not).

    Raises:
        ConfigurationError: anything else, naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise ConfigurationError(
            f"{name} must be a whole number from 1 to {MAX_ATTEMPTS}, got {_short(value)}."
        )
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def looks_like_key_material(text: str) -> bool:
    """Whether ``text``, given where a path was expected, is more likely a key (or certificate).

    PEM armour, a line break, or a long run of base64 mixing upper case, lower case and digits
    with few ``/`` (a path has one every few characters; base64 one in 64) all say "content".
    """
    if "-----" in text or "\n" in text or "\r" in text:
        return True
    run: list[str] = []
    for character in (*text, "."):  # "." ends the last run
        if character in _BASE64:
            run.append(character)
            continue
        if len(run) >= _KEY_RUN and _mixed(run) and run.count("/") <= len(run) // 16:
            return True
        run = []
    return False


def _mixed(run: list[str]) -> bool:
    return (
        any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and any(c.isdigit() for c in run)
    )


def shown_path(path: Union[str, bytes, os.PathLike[str]], *, quoted: bool = True) -> str:
    """``path`` as a message may show it: quoted, unless it looks like key material.

    A key passed where a path belongs (PEM text in a ``str``, a key body in an environment
    variable) must not be echoed into logs: it is replaced by a sentence that says why.
    """
    text = path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else str(path)
    if looks_like_key_material(text):
        return "(the value is not a file path: it looks like key material; not shown)"
    return repr(text) if quoted else text
