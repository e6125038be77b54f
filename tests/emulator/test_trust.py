"""The trust-policy check that moto's STS skips: may the credential provider assume the role?"""

from __future__ import annotations

import json
from typing import Any

import pytest

from awsiot_credentialhelper.emulator._trust import trusts_credential_provider

SERVICE = {"Service": "credentials.iot.amazonaws.com"}


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param(
            trust({"Effect": "Allow", "Principal": SERVICE, "Action": "sts:AssumeRole"}),
            True,
            id="allow",
        ),
        pytest.param(
            trust(
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Service": ["ec2.amazonaws.com", "credentials.iot.amazonaws.com"]
                    },
                    "Action": ["sts:TagSession", "sts:AssumeRole"],
                }
            ),
            True,
            id="lists",
        ),
        pytest.param(
            trust({"Effect": "Allow", "Principal": SERVICE, "Action": "sts:*"}),
            True,
            id="action-wildcard",
        ),
        pytest.param(
            trust({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}),
            True,
            id="anyone",
        ),
        pytest.param(
            trust(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ),
            False,
            id="other-service",
        ),
        pytest.param(
            trust(
                {"Effect": "Allow", "Principal": SERVICE, "Action": "sts:AssumeRoleWithWebIdentity"}
            ),
            False,
            id="other-action",
        ),
        pytest.param(
            trust(
                {"Effect": "Allow", "Principal": SERVICE, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": SERVICE, "Action": "sts:AssumeRole"},
            ),
            False,
            id="deny-wins",
        ),
        pytest.param(
            json.dumps(
                {"Statement": {"Effect": "Allow", "Principal": SERVICE, "Action": "sts:AssumeRole"}}
            ),
            True,
            id="statement-object",
        ),
        pytest.param("not json", False, id="not-json"),
        pytest.param("{}", False, id="no-statement"),
        pytest.param(trust("oops"), False, id="statement-not-object"),  # type: ignore[arg-type]
    ],
)
def test_trusts_credential_provider(policy: str, expected: bool) -> None:
    assert trusts_credential_provider(policy) is expected
