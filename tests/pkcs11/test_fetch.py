"""End to end: credentials fetched over mutual TLS signed inside a SoftHSM2 token."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from awsiot_credentialhelper import IotCredentialProvider
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider
from awsiot_credentialhelper.exceptions import (
    CredentialHelperError,
    Pkcs11Error,
    TlsHandshakeError,
)

from ..conftest import ProviderFactory
from ..servers import TlsServer, wait_until
from .conftest import PIN, PIN_TOKEN, SINGLE_TOKEN, THING_TOKEN, Tokens, issue
from .cryptoki import CKR_OK, CKR_USER_ALREADY_LOGGED_IN, Cryptoki

pytestmark = pytest.mark.pkcs11


@pytest.mark.parametrize("key_label", ["ec_key", "rsa_key"])
@pytest.mark.parametrize("as_path", [True, False], ids=["certificate-path", "certificate-bytes"])
def test_fetch_through_the_token(
    make_provider: ProviderFactory,
    server: TlsServer,
    *,
    tokens: Tokens,
    ca: trustme.CA,
    tmp_path: Path,
    key_label: str,
    as_path: bool,
) -> None:
    key = tokens.ec_key if key_label == "ec_key" else tokens.rsa_key
    certificate_pem = issue(ca, key)
    certificate_file = tmp_path / "hsm-device.pem.crt"
    certificate_file.write_bytes(certificate_pem)
    provider = make_provider(
        certificate=str(certificate_file) if as_path else certificate_pem,
        private_key=None,
        pkcs11=tokens.hsm.config(
            user_pin=PIN, token_label=THING_TOKEN, private_key_label=key_label
        ),
    )
    assert provider.fetch().access_key_id == "ASIATEST"
    presented = server.received[-1].client_certificate
    assert presented is not None
    assert x509.load_der_x509_certificate(presented) == x509.load_pem_x509_certificate(
        certificate_pem
    )


def test_a_1x_style_dict_config_fetches_through_the_token(
    server: TlsServer, tokens: Tokens, ca: trustme.CA, ca_file: str
) -> None:
    certificate_pem = issue(ca, tokens.ec_key)
    pkcs11 = {
        "pkcs11_lib": tokens.hsm.module,
        "user_pin": PIN,
        "token_label": THING_TOKEN,
        "private_key_label": "ec_key",
    }
    session_provider = Boto3SessionProvider(
        server.endpoint, "alias", "thing", certificate_pem, None, pkcs11, ca_file
    )
    try:
        assert session_provider.provider.fetch().access_key_id == "ASIATEST"
    finally:
        session_provider.close()


def test_certificate_of_another_key_fails_the_handshake(
    make_provider: ProviderFactory, server: TlsServer, tokens: Tokens, ca: trustme.CA
) -> None:
    """The token signs with its key, the server checks against the certificate: no match."""
    stranger = issue(ca, ec.generate_private_key(ec.SECP256R1()))
    provider = make_provider(
        certificate=stranger,
        private_key=None,
        pkcs11=tokens.hsm.config(user_pin=PIN, token_label=THING_TOKEN, private_key_label="ec_key"),
        max_attempts=1,
    )
    with pytest.raises(CredentialHelperError) as caught:
        provider.fetch()
    assert isinstance(caught.value, TlsHandshakeError), repr(caught.value)
    assert server.request_count == 0
    assert PIN not in str(caught.value)
    assert "the server refused this device's certificate" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"user_pin": "13579111", "token_label": PIN_TOKEN, "private_key_label": "pin_key"},
            "refused the PIN",
            id="wrong-pin",
        ),
        pytest.param({"private_key_label": "nope"}, "no private key labelled 'nope'", id="key"),
        pytest.param({"token_label": "nope"}, "No PKCS#11 token is labelled 'nope'", id="token"),
    ],
)
def test_provider_reports_token_mistakes_as_pkcs11_errors(
    make_provider: ProviderFactory,
    tokens: Tokens,
    ca: trustme.CA,
    fields: dict[str, str],
    message: str,
) -> None:
    settings = {"user_pin": PIN, "token_label": THING_TOKEN, "private_key_label": "ec_key"}
    settings.update(fields)
    with pytest.raises(Pkcs11Error, match=message) as caught:
        make_provider(
            certificate=issue(ca, tokens.ec_key),
            private_key=None,
            pkcs11=tokens.hsm.config(**settings),
        )
    assert PIN not in str(caught.value)


def test_provider_takes_a_pkcs11_uri_as_private_key(
    make_provider: ProviderFactory, tokens: Tokens, ca: trustme.CA, tmp_path: Path
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    uri = (
        f"pkcs11:token={THING_TOKEN};object=rsa_key;type=private"
        f"?module-path={tokens.hsm.module}&pin-source=file:{pin_file}"
    )
    provider = make_provider(certificate=issue(ca, tokens.rsa_key), private_key=uri)
    assert provider.fetch().access_key_id == "ASIATEST"


def test_close_ends_the_token_session(
    server: TlsServer, tokens: Tokens, ca: trustme.CA, ca_file: str
) -> None:
    cryptoki = Cryptoki(tokens.hsm.module)
    slot = tokens.hsm.slots[SINGLE_TOKEN]
    provider = IotCredentialProvider(
        endpoint=server.endpoint,
        role_alias="test-alias",
        certificate=issue(ca, tokens.only_key),
        pkcs11=tokens.hsm.config(user_pin=PIN, token_label=SINGLE_TOKEN),
        ca=ca_file,
        trust_env=False,
    )
    try:
        provider.fetch()
        assert cryptoki.login_result(slot, PIN) == CKR_USER_ALREADY_LOGGED_IN
        provider.close()
    finally:
        # A failing test's traceback keeps its frame: drop the provider so no login lingers.
        del provider

    def logged_out() -> bool:
        # awscrt frees the TLS context, and with it the token session, on its own thread once
        # the last connection's shutdown completes there: soon after close(), not within it.
        gc.collect()
        return cryptoki.login_result(slot, PIN) == CKR_OK

    wait_until(logged_out, timeout=10, interval=0.05, what="the token session ended after close()")
