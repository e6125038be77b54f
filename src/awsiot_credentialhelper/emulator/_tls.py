"""The emulator's throwaway server PKI and its TLS context that accepts any client certificate.

Clients trust the emulator by passing :attr:`ServerPki.ca_file` where production passes
AmazonRootCA1.pem. Client certificates cannot be checked against a CA here (moto signs them
with the device's own key under a made-up issuer), so the handshake accepts any certificate and
the registry decides afterwards, as the real service answers 403 for unknown certificates.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from .._private_file import write_private_file

__all__ = ["ServerPki", "create_server_pki", "server_context"]

#: Long enough for a CI run or a day of demos; the PKI is regenerated on every start.
_VALIDITY = datetime.timedelta(days=30)
#: Tolerate clients whose clock is a little behind ours.
_BACKDATE = datetime.timedelta(hours=1)
CA_FILE_NAME = "emulator-ca.pem"
_SERVER_CERT_NAME = "emulator-server.pem"
_SERVER_KEY_NAME = "emulator-server.key"
#: Certificates are public: readable by anyone, writable by the owner.
_PUBLIC = 0o644


@dataclasses.dataclass(frozen=True)
class ServerPki:
    """The files of the emulator's server identity.

    Attributes:
        ca_file: The CA certificate clients trust (pass it as ``ca=``).
        certificate_file: The server certificate followed by the CA (the chain to present).
        private_key_file: The server's private key (mode 0600).
    """

    ca_file: Path
    certificate_file: Path
    private_key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "awsiot-credentialhelper emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _make_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Emulator throwaway CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server(
    now: datetime.datetime, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def create_server_pki(directory: Path) -> ServerPki:
    """Generate a fresh CA and a server certificate for localhost, 127.0.0.1 and ::1.

    The files are written into ``directory`` (created if needed); the private keys are 0600
    and the CA's key is never written at all.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca_cert = _make_ca(now)
    server_key, server_cert = _make_server(now, ca_key, ca_cert)
    pem = serialization.Encoding.PEM
    pki = ServerPki(
        ca_file=directory / CA_FILE_NAME,
        certificate_file=directory / _SERVER_CERT_NAME,
        private_key_file=directory / _SERVER_KEY_NAME,
    )
    write_private_file(
        pki.private_key_file,
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    chain = server_cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    write_private_file(pki.certificate_file, chain, mode=_PUBLIC)
    write_private_file(pki.ca_file, ca_cert.public_bytes(pem), mode=_PUBLIC)
    return pki


def _accept_any_certificate(*_: object) -> bool:
    """Accept every client certificate; the registry decides after the handshake."""
    return True


def server_context(pki: ServerPki) -> SSL.Context:
    """Build the TLS >= 1.2 server context that requires, but does not verify, a client cert."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate_chain_file(str(pki.certificate_file))
    context.use_privatekey_file(str(pki.private_key_file))
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_certificate)
    # Session resumption with client certificates needs a session id context.
    context.set_session_id(b"awsiot-credentialhelper-emulator")
    return context
