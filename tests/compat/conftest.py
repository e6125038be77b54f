"""1.x's suite ran with whatever region settings the machine had; these tests run with none."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_region_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS region, profile or credentials from the machine running the tests."""
    for variable in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HTTPS_PROXY",
        "https_proxy",
    ):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
