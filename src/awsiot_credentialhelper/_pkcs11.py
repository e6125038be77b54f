"""PKCS#11 in one place: :class:`Pkcs11Config`, RFC 7512 ``pkcs11:`` URIs, PIN files, and the
messages for what a PKCS#11 module or token refuses.

Nothing here imports awscrt: the CLI decides what a key setting is, and reads a URI, without it.
The key source that hands a token to awscrt is ``_keys.Pkcs11Key``. Only the attributes awscrt
can act on are accepted in a URI: one that names a key by something awscrt cannot select on
(``id``, ``serial``, ...) is refused rather than silently widened to "any key".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Union

from ._arguments import is_pkcs11_uri, shown_path
from ._pem import read_secret_file
from .exceptions import ConfigurationError, CredentialFileError, Pkcs11Error

__all__ = [
    "Pkcs11Config",
    "check_pkcs11_config",
    "is_pkcs11_uri",
    "map_pkcs11_error",
    "module_load_error",
    "module_missing_error",
    "parse_pkcs11_uri",
    "pkcs11_config_from",
    "read_pin_file",
]

#: Where the SoftHSM2 module is on Debian, for messages that say where a module may be.
_SOFTHSM_EXAMPLE = "for SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so"


class Pkcs11Config(NamedTuple):
    """Where to find the private key in a PKCS#11 token (HSM, TPM, smart card).

    Same fields as 1.x. Select the token by ``slot_id`` or ``token_label`` (or neither when there
    is only one), and the key by ``private_key_label`` (or neither when the token holds one key).
    The PIN never appears in a ``repr``. :meth:`from_uri` reads an RFC 7512 ``pkcs11:`` URI.
    """

    #: Required; the default only lets ``Pkcs11Config()`` (as 1.x's ``TypedDict`` allowed) reach
    #: the provider, which says what is missing as a ``ValueError`` rather than a ``TypeError``.
    pkcs11_lib: str = ""
    user_pin: Optional[str] = None
    slot_id: Optional[int] = None
    token_label: Optional[str] = None
    private_key_label: Optional[str] = None

    def __repr__(self) -> str:
        return (
            f"Pkcs11Config(pkcs11_lib={shown_path(self.pkcs11_lib)}, slot_id={self.slot_id!r}, "
            f"token_label={self.token_label!r}, private_key_label={self.private_key_label!r})"
        )

    @classmethod
    def from_uri(cls, uri: str, *, default_module_path: Optional[str] = None) -> Pkcs11Config:
        """The config a ``pkcs11:token=...;object=...?module-path=...&pin-source=file:...`` names.

        Supported: ``token``, ``slot-id``, ``object``, ``type=private``; ``module-path``,
        ``pin-source`` (a ``file:`` URI; one trailing newline is stripped) and ``pin-value``.

        Raises:
            Pkcs11Error: malformed, an attribute awscrt cannot select on, no module path, or an
                unreadable PIN file. The message never holds the PIN.
        """
        return parse_pkcs11_uri(uri, default_module_path=default_module_path)


def pkcs11_config_from(value: object) -> Pkcs11Config:
    """``value`` as a :class:`Pkcs11Config`: one already, or a mapping of its fields (1.x's
    ``Pkcs11Config`` was a ``TypedDict``, so 1.x code passes a plain ``dict``).

    Raises:
        ConfigurationError: neither, or a mapping with keys it does not take (named; values are
            never shown), or without ``pkcs11_lib`` (see :func:`check_pkcs11_config`).
    """
    if isinstance(value, Mapping):
        unknown = sorted(str(key) for key in value if key not in Pkcs11Config._fields)
        if unknown:
            raise ConfigurationError(
                f"pkcs11 has keys Pkcs11Config does not take: {', '.join(unknown)} (it takes "
                f"{', '.join(Pkcs11Config._fields)})."
            )
        fields: dict[str, Any] = dict(value)
        value = Pkcs11Config(**fields)
    if not isinstance(value, Pkcs11Config):
        raise ConfigurationError(
            f"pkcs11 must be a Pkcs11Config (or a dict of its fields), got {type(value).__name__}."
        )
    check_pkcs11_config(value)
    return value


def check_pkcs11_config(config: Pkcs11Config) -> None:
    """Refuse a config without a module path, before any module is loaded.

    Raises:
        ConfigurationError: ``pkcs11_lib`` is empty or not a path (1.x's sentence first).
    """
    if not config.pkcs11_lib or not isinstance(config.pkcs11_lib, (str, os.PathLike)):
        raise ConfigurationError(
            "PKCS#11 library path must be provided: set pkcs11_lib to the path of the PKCS#11 "
            f"module ({_SOFTHSM_EXAMPLE})."
        )


def read_pin_file(path: Union[str, os.PathLike[str]]) -> str:
    """The PKCS#11 user PIN in ``path``, without the one trailing newline editors add.

    Warns (without the PIN) when other users can read the file.

    Raises:
        CredentialFileError: missing, unreadable, empty, or not UTF-8 text.
    """
    pin = read_secret_file(path, what="PKCS#11 PIN")
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialFileError(
            f"The PKCS#11 PIN file {shown_path(os.fspath(path))} is not UTF-8 text."
        ) from None


# --- RFC 7512 pkcs11: URIs ----------------------------------------------------------------------

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


def parse_pkcs11_uri(text: str, *, default_module_path: Optional[str] = None) -> Pkcs11Config:
    """Turn ``pkcs11:token=...;object=...?module-path=...&pin-source=file:...`` into a config.

    Args:
        text: The URI. ``pin-value=`` works but puts the PIN in process listings and shell
            history; prefer ``pin-source=file:/path`` (one trailing newline is stripped).
        default_module_path: The module to load when the URI has no ``module-path``.

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
            "The PKCS#11 URI has no module-path: add ?module-path=/path/to/module.so "
            f"({_SOFTHSM_EXAMPLE})."
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
    from urllib.parse import unquote_to_bytes  # noqa: PLC0415 - few keys are URIs

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
    try:
        return read_pin_file(_file_path(source))
    except CredentialFileError as exc:
        raise Pkcs11Error(f"{exc} (pin-source of the PKCS#11 URI)") from None


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


# --- what a module or token refuses -------------------------------------------------------------

_PKCS11 = "AWS_ERROR_PKCS11_"
_LIST_SLOTS = "`softhsm2-util --show-slots` or `pkcs11-tool --module <module> --list-slots`"
_LIST_KEYS = "`pkcs11-tool --module <module> --login --list-objects --type privkey`"


def map_pkcs11_error(name: str, config: Pkcs11Config) -> Optional[Pkcs11Error]:
    """Our error for awscrt failure ``name`` while opening the token ``config`` describes.

    The message names the setting to change; it never holds the PIN. ``None`` when ``name`` is
    not a PKCS#11 failure.
    """
    if not name.startswith(_PKCS11):
        return None
    reason = name[len(_PKCS11) :]
    where = _token_words(config)
    if reason == "TOKEN_NOT_FOUND" or reason in ("CKR_SLOT_ID_INVALID", "CKR_TOKEN_NOT_PRESENT"):
        return Pkcs11Error(f"{_token_not_found(config)} ({name}).")
    if reason == "KEY_NOT_FOUND":
        if config.private_key_label is None:
            return Pkcs11Error(
                f"{where} holds no private key, or several: set private_key_label (the URI's "
                f"object=) to the key's label; list them with {_LIST_KEYS} ({name})."
            )
        return Pkcs11Error(
            f"{where} has no private key labelled {config.private_key_label!r} (or several): "
            f"fix private_key_label; list keys with {_LIST_KEYS} ({name})."
        )
    message = _PKCS11_MESSAGES.get(reason)
    if reason == "CKR_ARGUMENTS_BAD" and config.user_pin is None:
        message = "needs a PIN to log in: set user_pin (or pin-source in a pkcs11: URI)"
    if message is None:
        message = "failed; check the module's own logs and the token's state"
    return Pkcs11Error(f"{where} {message} ({name}).")


_PKCS11_MESSAGES = {
    "CKR_PIN_INCORRECT": (
        "refused the PIN: fix user_pin (or the URI's pin-source file). Hardware tokens lock "
        "after a few wrong PINs, so do not retry blindly"
    ),
    "CKR_PIN_LOCKED": (
        "is locked after too many wrong PINs: fix user_pin, then unlock the token (an HSM: "
        "reset the user PIN with the security officer PIN; a TPM: wait out its lockout "
        "recovery time or run `tpm2_dictionarylockout --clear-lockout`)"
    ),
    "CKR_PIN_EXPIRED": "reports the user PIN has expired: set a new one with the token's tool",
    "CKR_PIN_INVALID": "refused user_pin: it has characters the token does not accept",
    "CKR_PIN_LEN_RANGE": "refused user_pin: it is too long or too short for this token",
    "CKR_USER_PIN_NOT_INITIALIZED": (
        "has no user PIN yet: initialise it (e.g. `softhsm2-util --init-token ... --pin ...`)"
    ),
    "KEY_TYPE_UNSUPPORTED": "holds a key awscrt cannot sign with: use an RSA or EC key",
    "CKR_DEVICE_REMOVED": "was removed: plug it back in",
    "CKR_DEVICE_ERROR": "reported a device error: check the HSM or its daemon",
    "VERSION_UNSUPPORTED": "speaks a Cryptoki version awscrt does not support (it needs 2.20+)",
}


def _token_words(config: Pkcs11Config) -> str:
    if config.token_label is not None:
        return f"The PKCS#11 token {config.token_label!r}"
    if config.slot_id is not None:
        return f"The PKCS#11 token in slot {config.slot_id}"
    return "The PKCS#11 token"


def _token_not_found(config: Pkcs11Config) -> str:
    label, slot = config.token_label, config.slot_id
    if label is not None and slot is not None:
        return (
            f"No PKCS#11 token labelled {label!r} is in slot {slot}: fix token_label or slot_id "
            f"(or drop slot_id, which SoftHSM2 reassigns); list them with {_LIST_SLOTS}"
        )
    if label is not None:
        return (
            f"No PKCS#11 token is labelled {label!r} (or several are): fix token_label; list "
            f"tokens with {_LIST_SLOTS}"
        )
    if slot is not None:
        return f"No PKCS#11 token is in slot {slot}: fix slot_id; list slots with {_LIST_SLOTS}"
    return (
        "The PKCS#11 module has no token, or several: set token_label (the URI's token=) or "
        f"slot_id; list them with {_LIST_SLOTS}"
    )


def module_missing_error(path: str) -> Pkcs11Error:
    """The error for a module path that is not a file (1.x's sentence first: users grep their
    logs for it)."""
    what = "is a directory" if os.path.isdir(path) else "does not exist"
    return Pkcs11Error(
        f"{shown_path(path, quoted=False)} is not a valid file path. The PKCS#11 library "
        f"{shown_path(path)} {what}: set pkcs11_lib to the module's path ({_SOFTHSM_EXAMPLE})."
    )


def module_load_error(name: str, path: str) -> Pkcs11Error:
    """The error for awscrt failure ``name`` while loading the module at ``path``."""
    return Pkcs11Error(_load_failure(name, path))


def _load_failure(name: str, path: str) -> str:
    if name == "AWS_IO_SHARED_LIBRARY_LOAD_FAILURE":
        return (
            f"Cannot load {shown_path(path)} as a PKCS#11 module: it is not a shared library for "
            f"this machine, or its dependencies are missing ({name}). Set pkcs11_lib to the "
            "module's .so file."
        )
    if name == "AWS_IO_SHARED_LIBRARY_FIND_SYMBOL_FAILURE":
        return (
            f"Cannot load {shown_path(path)} as a PKCS#11 module: it is a shared library without "
            f"C_GetFunctionList ({name}). Set pkcs11_lib to the PKCS#11 module itself."
        )
    if name.startswith(_PKCS11):
        return (
            f"The PKCS#11 module {shown_path(path)} failed to initialise ({name}): check its "
            "configuration (for SoftHSM2: the file SOFTHSM2_CONF names, or "
            "/etc/softhsm/softhsm2.conf, and that its directories.tokendir exists)."
        )
    return f"Cannot load the PKCS#11 module {shown_path(path)} ({name})."
