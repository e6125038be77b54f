"""The DER reader that spares a fetch from importing cryptography agrees with cryptography."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from awsiot_credentialhelper._der import read_certificate_dates
from awsiot_credentialhelper._pem import certificate_dates
from awsiot_credentialhelper.exceptions import InvalidPemError

KEY = ec.generate_private_key(ec.SECP256R1())
UTC = timezone.utc
# X.509 writes UTCTime up to 2049 and GeneralizedTime from 2050 on: cover both, to the second.
MOMENTS = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))


def _certificate(
    serial: int, not_before: datetime, not_after: datetime, cn: str
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(KEY, hashes.SHA256())
    )


SAMPLE_DER = _certificate(
    7, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "c"
).public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> bytes:
    return (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )


@settings(max_examples=150, deadline=None)
@given(
    serial=st.integers(min_value=1, max_value=2**159 - 1),
    moments=st.lists(MOMENTS, min_size=2, max_size=2).map(sorted),
    cn=st.text(alphabet="abcdefghij", min_size=1, max_size=200),
)
def test_the_reader_agrees_with_cryptography(serial: int, moments: list[datetime], cn: str) -> None:
    certificate = _certificate(serial, moments[0], moments[1], cn)
    dates = read_certificate_dates(certificate.public_bytes(serialization.Encoding.PEM))
    assert dates == (
        certificate.serial_number,
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupt_der_never_raises(data: st.DataObject) -> None:
    der = bytearray(SAMPLE_DER)
    position = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    der[position] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(der)))
    read_certificate_dates(_pem(bytes(der[:cut])))  # None or some dates; never an exception


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN CERTIFICATE-----\n",
        _pem(b""),
        _pem(b"\x30\x80\x00\x00"),  # BER indefinite length: not DER
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ],
    ids=["empty", "no-end", "no-der", "indefinite-length", "not-base64"],
)
def test_what_the_reader_does_not_know_is_left_to_cryptography(pem: bytes) -> None:
    assert read_certificate_dates(pem) is None
    with pytest.raises(InvalidPemError, match=r"not a valid PEM X\.509 certificate"):
        certificate_dates(pem)
