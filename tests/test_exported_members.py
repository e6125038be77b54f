"""The public API is what `__all__` says: every name there exists, nothing public is missing."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import awsiot_credentialhelper
from awsiot_credentialhelper import aio, boto3_session, exceptions


@pytest.mark.parametrize("module", [awsiot_credentialhelper, exceptions, boto3_session, aio])
def test_all_names_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert getattr(module, name) is not None, name


def test_every_exception_is_exported_and_a_valueerror() -> None:
    defined = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, Exception) and not name.startswith("_")
    }
    assert defined == set(exceptions.__all__)
    for name in defined:
        assert issubclass(getattr(exceptions, name), ValueError), name


def test_package_exports_match_the_lazy_table() -> None:
    for name in awsiot_credentialhelper.__all__:
        value = getattr(awsiot_credentialhelper, name)
        if name != "__version__":
            home = importlib.import_module(value.__module__)
            assert getattr(home, name) is value


def test_importing_the_package_loads_no_network_stack() -> None:
    code = (
        "import sys, awsiot_credentialhelper, awsiot_credentialhelper.exceptions;"
        "print(sorted(m for m in ('awscrt', 'botocore', 'boto3') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert loaded.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        awsiot_credentialhelper.Nope  # noqa: B018
