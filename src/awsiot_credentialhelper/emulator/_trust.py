"""Check that an IAM role's trust policy lets the IoT Credential Provider assume it.

moto's STS assumes any role without looking at its trust policy, so the emulator checks the
one thing the real service needs: an Allow of ``sts:AssumeRole`` for the service principal
``credentials.iot.amazonaws.com`` that no Deny overrides. Conditions are not evaluated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ._policy import wildcard_match

__all__ = ["IOT_CREDENTIALS_SERVICE", "trusts_credential_provider"]

IOT_CREDENTIALS_SERVICE = "credentials.iot.amazonaws.com"
_LOG = logging.getLogger("awsiot_credentialhelper.emulator.trust")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names_service(principal: Any) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    if principal.get("AWS") == "*":
        return True
    return IOT_CREDENTIALS_SERVICE in _as_list(principal.get("Service", []))


def _covers_assume_role(statement: Mapping[str, Any]) -> bool:
    actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
    return any(wildcard_match(a, "sts:AssumeRole", case_sensitive=False) for a in actions)


def trusts_credential_provider(trust_policy: str) -> bool:
    """Return whether ``trust_policy`` (JSON text) allows the credential provider to assume."""
    try:
        document = json.loads(trust_policy)
        statements = _as_list(document["Statement"])
    except (ValueError, KeyError, TypeError) as exc:
        _LOG.warning("Role trust policy is not a readable policy (%s); nobody can assume it", exc)
        return False
    allowed = False
    for statement in statements:
        if not isinstance(statement, Mapping):
            continue
        if not (_names_service(statement.get("Principal")) and _covers_assume_role(statement)):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed
