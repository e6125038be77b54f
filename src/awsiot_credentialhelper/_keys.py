"""Where the device's private key lives: one protocol, one small class per kind of key store.

Nothing here imports awscrt. The transport (``_transport``) hands a key to awscrt: it builds the
TLS options for each kind, loads a PKCS#11 module, and creates the TLS context, which is where
awscrt parses a PEM key, checks it against the certificate and opens a token; when awscrt
refuses, the key source's :meth:`KeySource.explain_crt_error` says why in our terms. A PEM key
is parsed by ``cryptography`` only when awscrt refuses it (to say why) or when it must be
decrypted first.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Optional, Protocol

from ._arguments import shown_path
from ._pem import (
    check_key_matches,
    is_encrypted,
    load_certificate,
    load_private_key,
    pem_origin,
    read_pem,
)
from ._pkcs11 import Pkcs11Config, map_pkcs11_error, module_missing_error
from .exceptions import ConfigurationError, InvalidPemError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from ._config import KeyArgument

__all__ = [
    "KeySource",
    "PemKey",
    "Pkcs11Config",  # re-exported: its home is _pkcs11, which imports no awscrt
    "Pkcs11Key",
    "key_source",
]


class KeySource(Protocol):
    """A private key that awscrt can sign TLS handshakes with (a :class:`PemKey` or a
    :class:`Pkcs11Key`: the transport builds awscrt's options for each)."""

    def describe(self) -> str:
        """Where the key is, for messages; never the key or its PIN."""
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

    @property
    def pem(self) -> bytes:
        """The key as awscrt takes it: PEM, decrypted if it was encrypted."""
        return self._pem

    def describe(self) -> str:
        return self._origin

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


class Pkcs11Key:
    """A private key that never leaves a PKCS#11 token.

    Here the module's path is checked; the transport loads the module (``C_Initialize``) when it
    builds the TLS options, and the token is opened, logged into and searched only when awscrt
    builds the TLS context.
    """

    def __init__(self, config: Pkcs11Config) -> None:
        self.module_path = os.path.expanduser(config.pkcs11_lib)
        if not os.path.isfile(self.module_path):
            raise module_missing_error(self.module_path)
        self._config = config

    @property
    def config(self) -> Pkcs11Config:
        """Where the key is in the token, PIN included (its ``repr`` hides it)."""
        return self._config

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
    key: KeyArgument, *, certificate_pem: bytes, password: Optional[bytes] = None
) -> KeySource:
    """The key source for a key a ``ProviderConfig`` holds: the PEM is read now, a PKCS#11
    module's path checked now (the transport loads it; the token is opened with the TLS
    context).

    Args:
        key: PEM ``bytes``, PEM text, a path, or a ``Pkcs11Config`` (see
            ``_config.check_key_arguments``, which decided it).
        certificate_pem: The device certificate; a PEM key must match it.
        password: For an encrypted PEM key.

    Raises:
        ConfigurationError: a subclass naming what to fix in the key, its file or its token.
    """
    if isinstance(key, Pkcs11Config):
        return Pkcs11Key(key)
    pem = read_pem(key, what="private key")
    origin = pem_origin(key, what="private key")
    return PemKey(pem, certificate_pem, origin=origin, password=password)
