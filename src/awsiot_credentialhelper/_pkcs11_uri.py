"""Parse RFC 7512 ``pkcs11:`` URIs into a :class:`Pkcs11Config`, strictly and without leaking PINs.

Only the attributes awscrt can act on are accepted: a URI that names a key by something awscrt
cannot select on (``id``, ``serial``, ...) is refused rather than silently widened to "any key".
"""

from __future__ import annotations

import re
from typing import Optional

from ._arguments import shown_path
from ._keys import Pkcs11Config
from ._pem import read_secret_file
from .exceptions import CredentialFileError, Pkcs11Error

__all__ = ["is_pkcs11_uri", "parse_pkcs11_uri"]

_SCHEME = "pkcs11:"

# RFC 7512 section 2.3: unreserved and the sub-delimiters each component may hold unencoded.
# Patterns, not compiled: every key passes through this module, and few keys are URIs (re
# compiles a pattern on its first use and caches it).
_UNRESERVED = r"A-Za-z0-9._~\-"
_RES_AVAIL = r":\[\]@!$'()*+,="
_PATH_VALUE = f"(?:[{_UNRESERVED}{_RES_AVAIL}&]|%[0-9A-Fa-f]{{2}})*"
_QUERY_VALUE = f"(?:[{_UNRESERVED}{_RES_AVAIL}/?|]|%[0-9A-Fa-f]{{2}})*"
_NAME = r"[a-z][a-z0-9-]*"

#: Path attributes awscrt can select on, and the ``Pkcs11Config`` field each one fills.
_PATH_FIELDS = {"token": "token_label", "slot-id": "slot_id", "object": "private_key_label"}
_PATH_NAMES = frozenset({*_PATH_FIELDS, "type"})
_QUERY_NAMES = frozenset({"module-path", "pin-source", "pin-value"})

#: Valid RFC 7512 attributes that awscrt cannot select on; refused with a reason, never ignored.
_UNSUPPORTED = {
    "id": "awscrt selects keys by label only: use object=<label>",
    "manufacturer": "awscrt selects tokens by label or slot only: use token= or slot-id=",
    "model": "awscrt selects tokens by label or slot only: use token= or slot-id=",
    "serial": "awscrt selects tokens by label or slot only: use token= or slot-id=",
    "slot-description": "awscrt selects slots by id only: use slot-id=",
    "slot-manufacturer": "awscrt selects slots by id only: use slot-id=",
    "library-manufacturer": "name the module with module-path= instead",
    "library-description": "name the module with module-path= instead",
    "library-version": "name the module with module-path= instead",
    "module-name": "awscrt loads modules by path: use module-path=/path/to/module.so",
}

_SECRET = frozenset({"pin-value"})
_MAX_SLOT_ID = 2**64 - 1  # CK_SLOT_ID is an unsigned long


def is_pkcs11_uri(text: object) -> bool:
    """Whether ``text`` is meant as a PKCS#11 URI (so a key argument is not read as a file path).

    Only ``str`` counts: ``bytes`` given as a key are PEM content, never a URI.
    """
    return isinstance(text, str) and text[: len(_SCHEME)].lower() == _SCHEME


def parse_pkcs11_uri(text: str, *, default_module_path: Optional[str] = None) -> Pkcs11Config:
    """Turn ``pkcs11:token=...;object=...?module-path=...&pin-source=file:...`` into a config.

    Args:
        text: The URI. ``pin-value=`` works but puts the PIN in process listings and shell
            history; prefer ``pin-source=file:/path`` (one trailing newline is stripped).
        default_module_path: The module to load when the URI has no ``module-path`` (the CLI's
            ``--pkcs11-lib``).

    Raises:
        Pkcs11Error: the URI is malformed, names an attribute awscrt cannot use, repeats one,
            has no module path, or its PIN file cannot be read. The message never holds the PIN.
    """
    if not is_pkcs11_uri(text):
        raise Pkcs11Error("A PKCS#11 URI must start with 'pkcs11:' (RFC 7512).")
    rest = text[len(_SCHEME) :]
    if "#" in rest:
        raise Pkcs11Error("A PKCS#11 URI has no fragment: percent-encode '#' as %23.")
    path, _, query = rest.partition("?")
    attrs = _split(path, ";", _PATH_VALUE, "path", _PATH_NAMES)
    attrs.update(_split(query, "&", _QUERY_VALUE, "query", _QUERY_NAMES))

    object_type = attrs.get("type")
    if object_type is not None and object_type != "private":
        raise Pkcs11Error(
            f"The PKCS#11 URI has type={object_type!r}: the key that signs the TLS handshake is a "
            "private key, so use type=private or leave type out."
        )
    module_path = attrs.get("module-path", default_module_path)
    if not module_path:
        raise Pkcs11Error(
            "The PKCS#11 URI has no module-path: add ?module-path=/path/to/module.so (for "
            "SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so)."
        )
    return Pkcs11Config(
        pkcs11_lib=module_path,
        user_pin=_pin(attrs),
        slot_id=_slot_id(attrs.get("slot-id")),
        token_label=_label(attrs, "token"),
        private_key_label=_label(attrs, "object"),
    )


def _split(
    component: str, separator: str, allowed: str, where: str, names: frozenset[str]
) -> dict[str, str]:
    """Split one URI component into decoded ``name: value`` pairs of known, unrepeated names."""
    attrs: dict[str, str] = {}
    if not component:
        return attrs
    for item in component.split(separator):
        name, equals, raw = item.partition("=")
        if not equals or not re.fullmatch(_NAME, name):
            raise Pkcs11Error(
                f"The PKCS#11 URI {where} has an item that is not a lowercase name=value pair"
                + (f" ({name[:40]!r})." if re.fullmatch(_NAME, name) else ".")
            )
        if name not in names:
            _refuse(name, where)
        if name in attrs:
            raise Pkcs11Error(f"The PKCS#11 URI repeats the attribute {name!r}.")
        if not re.fullmatch(allowed, raw):
            raise Pkcs11Error(
                f"The PKCS#11 URI attribute {name!r} holds a character that must be "
                "percent-encoded (or a '%' not followed by two hex digits)."
            )
        attrs[name] = _decode(name, raw)
    return attrs


def _decode(name: str, raw: str) -> str:
    """Percent-decode ``raw`` as UTF-8 (RFC 7512 section 2.3)."""
    # Imported here: key_source() imports this module for every key, URI or not.
    from urllib.parse import unquote_to_bytes  # noqa: PLC0415

    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        # ``from None``: the decoder's message would quote the bytes, which may be a PIN.
        raise Pkcs11Error(
            f"The PKCS#11 URI attribute {name!r} is not UTF-8 once percent-decoded."
        ) from None


def _refuse(name: str, where: str) -> None:
    reason = _UNSUPPORTED.get(name)
    if reason is not None:
        raise Pkcs11Error(f"The PKCS#11 URI attribute {name!r} is not supported: {reason}.")
    raise Pkcs11Error(
        f"The PKCS#11 URI {where} attribute {name!r} is unknown: supported are token, slot-id, "
        "object and type in the path; module-path, pin-source and pin-value in the query."
    )


def _label(attrs: dict[str, str], name: str) -> Optional[str]:
    value = attrs.get(name)
    if value == "":
        raise Pkcs11Error(f"The PKCS#11 URI has an empty {name}=: give a label or drop it.")
    return value


def _slot_id(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    # Length first: int() refuses strings of over 4300 digits with its own ValueError.
    digits = value.isascii() and value.isdigit() and len(value) <= 20
    if not digits or int(value) > _MAX_SLOT_ID:
        raise Pkcs11Error(
            f"The PKCS#11 URI has slot-id={value[:40]!r}: it must be a decimal number (see "
            "`softhsm2-util --show-slots` or `pkcs11-tool --list-slots`)."
        )
    return int(value)


def _pin(attrs: dict[str, str]) -> Optional[str]:
    """The PIN from ``pin-value`` or the file ``pin-source`` names; ``None`` for neither."""
    source, value = attrs.get("pin-source"), attrs.get("pin-value")
    if source is not None and value is not None:
        raise Pkcs11Error(
            "The PKCS#11 URI has both pin-source and pin-value: keep pin-source only."
        )
    if value is not None:
        return value
    if source is None:
        return None
    path = _file_path(source)
    try:
        pin = read_secret_file(path, what="PKCS#11 PIN")
    except CredentialFileError as exc:
        raise Pkcs11Error(f"{exc} (pin-source of the PKCS#11 URI)") from None
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise Pkcs11Error(f"The PKCS#11 PIN file {shown_path(path)} is not UTF-8 text.") from None


def _file_path(source: str) -> str:
    """The local path of a ``file:`` pin-source (``file:/p``, ``file:///p``, ``file://localhost/p``)."""
    if source.startswith("/"):
        return source
    if source[:5].lower() != "file:":
        raise Pkcs11Error(
            "The PKCS#11 URI's pin-source must be a file: URI (pin-source=file:/path/to/pin); "
            "other schemes and commands are not supported."
        )
    path = source[5:]
    if path.startswith("//"):
        host, slash, rest = path[2:].partition("/")
        if host not in ("", "localhost") or not slash:
            raise Pkcs11Error(
                "The PKCS#11 URI's pin-source must name a local file (file:/path/to/pin)."
            )
        path = "/" + rest
    if not path.startswith("/"):
        raise Pkcs11Error(
            "The PKCS#11 URI's pin-source must be an absolute path (file:/path/to/pin)."
        )
    return path
