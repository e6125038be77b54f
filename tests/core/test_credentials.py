"""Credentials: an immutable value, compared by value, that keeps its secrets out of its repr."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from awsiot_credentialhelper import Credentials

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"


def _credentials(**changes: object) -> Credentials:
    fields: dict[str, object] = {
        "access_key_id": "ASIAEXAMPLE",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "expiration": NOW + timedelta(hours=1),
        "issued_at": NOW,
    }
    fields.update(changes)
    return Credentials(**fields)  # type: ignore[arg-type]


def test_equal_by_value_and_hashable() -> None:
    assert _credentials() == _credentials()
    assert hash(_credentials()) == hash(_credentials())
    assert _credentials() != _credentials(session_token="other")
    not_credentials: object = ("ASIAEXAMPLE", SECRET, TOKEN)
    assert _credentials() != not_credentials
    assert len({_credentials(), _credentials()}) == 1


def test_immutable() -> None:
    credentials = _credentials()
    with pytest.raises(dataclasses.FrozenInstanceError, match="session_token"):
        credentials.session_token = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="session_token"):
        del credentials.session_token
    with pytest.raises(dataclasses.FrozenInstanceError):
        credentials.extra = 1  # type: ignore[attr-defined]
    assert credentials.session_token == TOKEN
    assert issubclass(dataclasses.FrozenInstanceError, AttributeError), "as any read-only attribute"


def test_positional_like_the_dataclass_and_clock_skew_defaults_to_zero() -> None:
    positional = Credentials("ASIAEXAMPLE", SECRET, TOKEN, NOW + timedelta(hours=1), NOW)
    assert positional == _credentials()
    assert positional.clock_skew == timedelta(0)
    assert positional.lifetime == timedelta(hours=1)


@pytest.mark.parametrize("field", ["expiration", "issued_at"])
def test_naive_times_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be timezone-aware"):
        _credentials(**{field: NOW.replace(tzinfo=None)})


def test_no_secret_in_repr_or_str() -> None:
    for text in (repr(_credentials()), str(_credentials()), f"{_credentials()}"):
        assert "ASIAEXAMPLE" in text
        assert SECRET not in text
        assert TOKEN not in text


def test_copies_and_pickles_are_equal() -> None:
    credentials = _credentials(clock_skew=timedelta(seconds=-30))
    assert copy.copy(credentials) == credentials
    assert copy.deepcopy(credentials) == credentials
    assert pickle.loads(pickle.dumps(credentials)) == credentials  # noqa: S301 - our own bytes
