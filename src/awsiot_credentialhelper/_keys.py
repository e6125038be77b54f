"""Where the device's private key lives: one protocol, one small class per kind of key store."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Protocol

from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._pem import check_key_matches, load_private_key
from .exceptions import Pkcs11Error

__all__ = ["KeySource", "PemKey", "Pkcs11Config", "Pkcs11Key"]


class KeySource(Protocol):
    """A private key that awscrt can sign TLS handshakes with."""

    def describe(self) -> str:
        """Where the key is, for messages; never the key or its PIN."""
        ...

    def tls_options(self, certificate_pem: bytes) -> crt_io.TlsContextOptions:
        """awscrt client options that present ``certificate_pem`` and sign with this key."""
        ...


class PemKey:
    """A PEM private key held in memory (read from a file or given as bytes)."""

    def __init__(
        self,
        pem: bytes,
        certificate: x509.Certificate,
        *,
        origin: str,
        password: Optional[bytes] = None,
    ) -> None:
        key = load_private_key(pem, password=password)
        check_key_matches(certificate, key)
        # awscrt takes no passphrase: hand it the decrypted key, in memory only.
        self._pem = (
            pem
            if password is None
            else key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self._origin = origin

    def describe(self) -> str:
        return self._origin

    def tls_options(self, certificate_pem: bytes) -> crt_io.TlsContextOptions:
        return crt_io.TlsContextOptions.create_client_with_mtls(certificate_pem, self._pem)

    def __repr__(self) -> str:
        return f"PemKey({self._origin})"


@dataclasses.dataclass(frozen=True)
class Pkcs11Config:
    """Where to find the private key in a PKCS#11 token (HSM, TPM, smart card).

    Same fields as 1.x. Select the token by ``slot_id`` or ``token_label`` (or neither when there
    is only one), and the key by ``private_key_label`` (or neither when the token holds one key).
    The PIN never appears in a ``repr``.
    """

    pkcs11_lib: str
    user_pin: Optional[str] = dataclasses.field(default=None, repr=False)
    slot_id: Optional[int] = None
    token_label: Optional[str] = None
    private_key_label: Optional[str] = None


class Pkcs11Key:
    """A private key that never leaves a PKCS#11 token."""

    def __init__(self, config: Pkcs11Config) -> None:
        path = os.path.expanduser(config.pkcs11_lib)
        if not os.path.isfile(path):
            raise Pkcs11Error(
                f"PKCS#11 library {path!r} does not exist: set pkcs11_lib to the module's path "
                "(for SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so)."
            )
        try:
            self._lib = crt_io.Pkcs11Lib(file=path)
        except AwsCrtError as exc:
            raise Pkcs11Error(
                f"Cannot load {path!r} as a PKCS#11 module ({exc.name}): set pkcs11_lib to a "
                "PKCS#11 module (.so) built for this machine."
            ) from None
        self._config = config

    def describe(self) -> str:
        config = self._config
        parts = [f"PKCS#11 module {config.pkcs11_lib}"]
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

    def __repr__(self) -> str:
        return f"Pkcs11Key({self.describe()})"
