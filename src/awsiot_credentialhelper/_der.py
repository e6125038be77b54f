"""Just enough DER to read a certificate's serial number and validity dates.

The provider checks expiry every time it starts. Importing ``cryptography`` for that costs about
60 ms, most of a one-shot ``credential-process`` run, so well-formed certificates are read here.
Anything this reader does not recognise gets ``None``, and the caller falls back to
``cryptography``, which parses it fully and explains what is wrong.
"""

from __future__ import annotations

import binascii
from datetime import datetime, timezone
from typing import NamedTuple, Optional

__all__ = ["CertificateDates", "read_certificate_dates"]


class CertificateDates(NamedTuple):
    """What the provider checks before its first request."""

    serial_number: int
    not_before: datetime
    not_after: datetime


_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"

_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0  # [0] EXPLICIT, before the serial number
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


class _Element(NamedTuple):
    tag: int
    start: int  # of the content
    end: int


def read_certificate_dates(pem: bytes) -> Optional[CertificateDates]:
    """The serial number and validity of the first certificate in ``pem``.

    ``None`` when there is no certificate block or its DER is not the strict form RFC 5280
    prescribes (UTCTime/GeneralizedTime in UTC, definite lengths).
    """
    der = _first_certificate_der(pem)
    if der is None:
        return None
    try:
        return _read_dates(der)
    except (ValueError, IndexError):
        return None


def _first_certificate_der(pem: bytes) -> Optional[bytes]:
    start = pem.find(_BEGIN)
    end = pem.find(_END, start)
    if start < 0 or end < 0:
        return None
    try:
        return binascii.a2b_base64(pem[start + len(_BEGIN) : end])
    except binascii.Error:
        return None


def _read_dates(der: bytes) -> CertificateDates:
    """Walk Certificate -> TBSCertificate -> [version] serial signature issuer validity."""
    certificate = _element(der, 0, len(der), _SEQUENCE)
    if certificate.end != len(der):
        raise ValueError("trailing bytes")
    tbs = _element(der, certificate.start, certificate.end, _SEQUENCE)
    position = tbs.start
    if der[position] == _VERSION:
        position = _element(der, position, tbs.end, _VERSION).end
    serial = _element(der, position, tbs.end, _INTEGER)
    signature = _element(der, serial.end, tbs.end, _SEQUENCE)
    issuer = _element(der, signature.end, tbs.end, _SEQUENCE)
    validity = _element(der, issuer.end, tbs.end, _SEQUENCE)
    not_before = _element(der, validity.start, validity.end, _UTC_TIME, _GENERALIZED_TIME)
    not_after = _element(der, not_before.end, validity.end, _UTC_TIME, _GENERALIZED_TIME)
    return CertificateDates(
        serial_number=int.from_bytes(der[serial.start : serial.end], "big", signed=True),
        not_before=_time(not_before.tag, der[not_before.start : not_before.end]),
        not_after=_time(not_after.tag, der[not_after.start : not_after.end]),
    )


def _element(der: bytes, offset: int, limit: int, *tags: int) -> _Element:
    """The element at ``offset``, which must have one of ``tags`` and end by ``limit``."""
    tag = der[offset]
    if tag not in tags:
        raise ValueError(f"tag {tag:#x}")
    length = der[offset + 1]
    start = offset + 2
    if length & 0x80:  # long form: the low bits count the length's own bytes
        size = length & 0x7F
        if not 1 <= size <= 4:
            raise ValueError("length")
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    end = start + length
    if end > limit or length == 0:
        raise ValueError("length")
    return _Element(tag, start, end)


def _time(tag: int, value: bytes) -> datetime:
    """UTCTime ``YYMMDDHHMMSSZ`` or GeneralizedTime ``YYYYMMDDHHMMSSZ`` (RFC 5280 4.1.2.5)."""
    digits = value[:-1]
    if (
        value[-1:] != b"Z"
        or not digits.isdigit()
        or len(digits) != (12 if tag == _UTC_TIME else 14)
    ):
        raise ValueError("time")
    if tag == _UTC_TIME:  # two-digit years: 50-99 are 19xx, 00-49 are 20xx
        year, rest = int(digits[:2]), digits[2:]
        year += 1900 if year >= 50 else 2000
    else:
        year, rest = int(digits[:4]), digits[4:]
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
