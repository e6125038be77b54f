"""Where the device's private key lives: one protocol, one small class per kind of key store.

awscrt parses a PEM key, checks it against the certificate and opens a PKCS#11 token only when
the TLS context is created, so that is where their failures surface; :func:`create_tls_context`
is the one place they are translated into our errors. A PEM key is parsed by ``cryptography``
only when awscrt refuses it (to say why) or when it must be decrypted first.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, NamedTuple, Optional, Protocol

from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError

from ._arguments import shown_path
from ._pem import (
    PemSource,
    check_key_matches,
    check_source,
    is_encrypted,
    load_certificate,
    load_private_key,
    pem_origin,
    read_pem,
)
from .exceptions import (
    ConfigurationError,
    ConflictingOptionsError,
    InvalidPemError,
    Pkcs11Error,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "KeySource",
    "PemKey",
    "Pkcs11Config",
    "Pkcs11Key",
    "check_key_arguments",
    "create_tls_context",
    "crt_error_name",
    "key_source",
    "map_pkcs11_error",
]


class KeySource(Protocol):
    """A private key that awscrt can sign TLS handshakes with."""

    def describe(self) -> str:
        """Where the key is, for messages; never the key or its PIN."""
        ...

    def tls_options(self, certificate_pem: bytes) -> crt_io.TlsContextOptions:
        """awscrt client options that present ``certificate_pem`` and sign with this key."""
        ...

    def explain_crt_error(self, name: str) -> Optional[ConfigurationError]:
        """Our error for awscrt failure ``name`` while opening this key; ``None`` if not ours."""
        ...


#: On Linux awscrt's TLS (s2n) refuses a key that is malformed or not the certificate's when it
#: builds the TLS context (the tests show it); the macOS and Windows back ends may only fail the
#: handshake, with a vaguer error, so there the key is checked up front.
_CRT_CHECKS_PEM_KEYS = sys.platform.startswith("linux")


class PemKey:
    """A PEM private key held in memory (read from a file or given as bytes).

    An encrypted key is decrypted and checked here; on Linux a plain one is handed to awscrt as
    it is, and :meth:`explain_crt_error` says what is wrong with it if awscrt refuses it.
    """

    def __init__(
        self,
        pem: bytes,
        certificate_pem: bytes,
        *,
        origin: str,
        password: Optional[bytes] = None,
    ) -> None:
        self._origin = origin
        self._certificate_pem = certificate_pem
        self._pem = pem
        if password is not None or is_encrypted(pem):
            # awscrt takes no passphrase: hand it the decrypted key, in memory only.
            self._pem = _decrypted(_usable_key(pem, certificate_pem, origin, password))
        elif not _CRT_CHECKS_PEM_KEYS:  # pragma: no cover - macOS and Windows
            _usable_key(pem, certificate_pem, origin, None)

    def describe(self) -> str:
        return self._origin

    def tls_options(self, certificate_pem: bytes) -> crt_io.TlsContextOptions:
        return crt_io.TlsContextOptions.create_client_with_mtls(certificate_pem, self._pem)

    def explain_crt_error(self, name: str) -> Optional[ConfigurationError]:
        if name != "AWS_IO_TLS_CTX_ERROR":
            return None
        try:
            _usable_key(self._pem, self._certificate_pem, self._origin, None)
        except ConfigurationError as error:
            return error
        return None

    def __repr__(self) -> str:
        return f"PemKey({self._origin})"


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
        # Imported here: _pkcs11_uri builds this class.
        from ._pkcs11_uri import parse_pkcs11_uri  # noqa: PLC0415

        return parse_pkcs11_uri(uri, default_module_path=default_module_path)


class Pkcs11Key:
    """A private key that never leaves a PKCS#11 token.

    The module is loaded (``C_Initialize``) here; the token is opened, logged into and searched
    only when awscrt builds the TLS context: use :func:`create_tls_context` for that.
    """

    def __init__(self, config: Pkcs11Config) -> None:
        path = os.path.expanduser(config.pkcs11_lib)
        if not os.path.isfile(path):
            # 1.x's sentence first: users grep their logs for it.
            what = "is a directory" if os.path.isdir(path) else "does not exist"
            raise Pkcs11Error(
                f"{shown_path(path, quoted=False)} is not a valid file path. The PKCS#11 library "
                f"{shown_path(path)} {what}: set pkcs11_lib to the module's path (for SoftHSM2 "
                "on Debian: /usr/lib/softhsm/libsofthsm2.so)."
            )
        try:
            self._lib = crt_io.Pkcs11Lib(file=path)
        except (AwsCrtError, RuntimeError) as exc:
            name = crt_error_name(exc)
            if name is None:
                raise
            raise Pkcs11Error(_load_failure(name, path)) from exc
        self._config = config

    def describe(self) -> str:
        config = self._config
        parts = [f"PKCS#11 module {shown_path(config.pkcs11_lib, quoted=False)}"]
        if config.token_label is not None:
            parts.append(f"token {config.token_label!r}")
        if config.slot_id is not None:
            parts.append(f"slot {config.slot_id}")
        if config.private_key_label is not None:
            parts.append(f"key {config.private_key_label!r}")
        return ", ".join(parts)

    def tls_options(self, certificate_pem: bytes) -> crt_io.TlsContextOptions:
        config = self._config
        return crt_io.TlsContextOptions.create_client_with_mtls_pkcs11(
            pkcs11_lib=self._lib,
            user_pin=config.user_pin,
            slot_id=config.slot_id,
            token_label=config.token_label,
            private_key_label=config.private_key_label,
            cert_file_contents=certificate_pem,
        )

    def explain_crt_error(self, name: str) -> Optional[ConfigurationError]:
        return map_pkcs11_error(name, self._config)

    def __repr__(self) -> str:
        return f"Pkcs11Key({self.describe()})"


def _usable_key(
    pem: bytes, certificate_pem: bytes, origin: str, password: Optional[bytes]
) -> PrivateKeyTypes:
    """Parse (and decrypt) a PEM key, and check that AWS IoT and awscrt can use it.

    Raises:
        EncryptedKeyError: see :func:`load_private_key`.
        InvalidPemError: not a key, or not an RSA or EC key.
        KeyMismatchError: not the certificate's key.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    key = load_private_key(pem, password=password)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        # awscrt (s2n/OpenSSL) and AWS IoT both sign with RSA or ECDSA keys only.
        raise InvalidPemError(
            f"The {origin} holds a key of type {type(key).__name__.replace('PrivateKey', '')}"
            ": AWS IoT and awscrt use RSA or EC keys only."
        )
    check_key_matches(load_certificate(certificate_pem), key)
    return key


def _decrypted(key: PrivateKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_source(
    *,
    private_key: Optional[PemSource],
    pkcs11: Optional[Pkcs11Config],
    certificate_pem: bytes,
    password: Optional[bytes] = None,
) -> KeySource:
    """The key source for the ``private_key``/``pkcs11`` pair, accepting a ``pkcs11:`` URI as key.

    Args:
        private_key: PEM ``bytes``, a path, or an RFC 7512 ``pkcs11:`` URI (``str``).
        pkcs11: Where the key is in a token. Exclusive with ``private_key``.
        certificate_pem: The device certificate; a PEM key must match it.
        password: For an encrypted PEM key (see ``_pem.resolve_password``).

    Raises:
        ConflictingOptionsError: both or neither key given, or a password for a token key.
        ConfigurationError: a subclass naming what to fix in the key, its file or its token.
    """
    # Imported here: _pkcs11_uri builds this module's Pkcs11Config.
    from ._pkcs11_uri import is_pkcs11_uri, parse_pkcs11_uri  # noqa: PLC0415

    check_key_arguments(private_key, pkcs11)
    if isinstance(private_key, str) and is_pkcs11_uri(private_key):
        pkcs11, private_key = parse_pkcs11_uri(private_key), None
    if pkcs11 is not None:
        if password is not None:
            raise ConflictingOptionsError(
                "private_key_password applies to a PEM private key, not to a PKCS#11 token "
                "(its PIN is user_pin, or pin-source in a pkcs11: URI)."
            )
        return Pkcs11Key(pkcs11)
    assert private_key is not None  # noqa: S101 - check_key_arguments made sure
    pem = read_pem(private_key, what="private key")
    origin = pem_origin(private_key, what="private key")
    return PemKey(pem, certificate_pem, origin=origin, password=password)


_ONE_KEY = (
    "pass exactly one (a key file, PEM bytes or text, or a pkcs11: URI; or the PKCS#11 token "
    "that holds the key)"
)


def check_key_arguments(private_key: object, pkcs11: object) -> None:
    """Refuse a ``private_key``/``pkcs11`` pair that cannot be right, before anything is read.

    These are programming errors (a ``ValueError`` each, never a ``TypeError``): no file is
    worth reading, and no certificate worth judging, until they are fixed.

    Raises:
        ConflictingOptionsError: both or neither given.
        ConfigurationError: ``pkcs11`` is not a :class:`Pkcs11Config` or has no ``pkcs11_lib``;
            ``private_key`` is neither PEM nor a path.
    """
    if private_key is not None and pkcs11 is not None:
        raise ConflictingOptionsError(f"Both private_key and pkcs11 were given: {_ONE_KEY}.")
    if private_key is None and pkcs11 is None:
        raise ConflictingOptionsError(f"Neither private_key nor pkcs11 was given: {_ONE_KEY}.")
    if private_key is not None:
        check_source(private_key, what="private_key")
        return
    if not isinstance(pkcs11, Pkcs11Config):
        raise ConfigurationError(
            f"pkcs11 must be a Pkcs11Config (or a dict of its fields), got {type(pkcs11).__name__}."
        )
    if not pkcs11.pkcs11_lib or not isinstance(pkcs11.pkcs11_lib, (str, os.PathLike)):
        raise ConfigurationError(
            "PKCS#11 library path must be provided: set pkcs11_lib to the path of the PKCS#11 "
            "module (for SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so)."
        )


def create_tls_context(
    key: KeySource, options: crt_io.TlsContextOptions
) -> crt_io.ClientTlsContext:
    """Build awscrt's client TLS context, translating failures of the key's store.

    awscrt raises a bare ``RuntimeError("1117 (AWS_ERROR_...): ...")`` here, not
    ``AwsCrtError``; failures that are not the key's are re-raised as ``AwsCrtError`` so the
    caller's own error table sees one type.

    Raises:
        ConfigurationError: the key's store explains the failure (e.g. :class:`Pkcs11Error`).
        AwsCrtError: any other awscrt failure, by name.
    """
    try:
        return crt_io.ClientTlsContext(options)
    except (AwsCrtError, RuntimeError) as exc:
        name = crt_error_name(exc)
        if name is None:
            raise
        explained = key.explain_crt_error(name)
        if explained is not None:
            raise explained from exc
        if isinstance(exc, AwsCrtError):
            raise
        code, message = _crt_code_and_message(exc)
        raise AwsCrtError(code=code, name=name, message=message) from exc


# Compiled on first use (by re's cache): only failures need it.
_NATIVE_ERROR = r"(\d+) \(([A-Z][A-Z0-9_]+)\)(?:: (.*))?"


def crt_error_name(exc: BaseException) -> Optional[str]:
    """awscrt's error name (``AWS_...``) for ``exc``, or ``None`` when it is not awscrt's.

    Asynchronous failures arrive as ``AwsCrtError``; synchronous native calls (``Pkcs11Lib``,
    ``ClientTlsContext``) raise ``RuntimeError("<code> (<NAME>): <message>")``.
    """
    if isinstance(exc, AwsCrtError):
        return str(exc.name)
    match = (
        re.fullmatch(_NATIVE_ERROR, str(exc), re.DOTALL) if isinstance(exc, RuntimeError) else None
    )
    return match.group(2) if match else None


def _crt_code_and_message(exc: BaseException) -> tuple[int, str]:
    match = re.fullmatch(_NATIVE_ERROR, str(exc), re.DOTALL)
    return (int(match.group(1)), match.group(3) or "") if match else (-1, str(exc))


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
