"""The IoT policy evaluator: a table of policies and the decision each must give."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from awsiot_credentialhelper.emulator import _policy as policy_module
from awsiot_credentialhelper.emulator._policy import (
    PolicyContext,
    PolicyDecision,
    evaluate,
    parse_policy,
    wildcard_match,
)

ACTION = "iot:AssumeRoleWithCertificate"
ALIAS_ARN = "arn:aws:iot:us-east-1:123456789012:rolealias/Thermostat-alias"
CONTEXT = PolicyContext(
    certificate_id="c0ffee",
    thing_name="MyHomeThermostat",
    thing_type_name="Thermostat",
    thing_attributes={"Owner": "Alice", "Pattern": "*", "Site": "arn:aws:iot:us-east-1:1:thing/x"},
)
NO_THING = PolicyContext(certificate_id="c0ffee")
ALLOW = PolicyDecision.ALLOW
DENY = PolicyDecision.EXPLICIT_DENY
IMPLICIT = PolicyDecision.IMPLICIT_DENY

Document = Union[str, dict[str, Any]]


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return document


def allow(resource: Any = ALIAS_ARN, action: Any = ACTION, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(resource: Any = ALIAS_ARN, action: Any = ACTION, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: value}}}


OWNER = "iot:Connection.Thing.Attributes[Owner]"
ATTACHED = "iot:Connection.Thing.IsAttached"
ALIAS_PREFIX = "arn:aws:iot:us-east-1:123456789012:rolealias/"

CASES: list[Any] = [
    # --- effects and defaults
    pytest.param([], CONTEXT, IMPLICIT, id="no-policy-is-implicit-deny"),
    pytest.param([policy(allow())], CONTEXT, ALLOW, id="allow-exact-arn"),
    pytest.param([policy(allow(), deny())], CONTEXT, DENY, id="deny-wins-in-one-policy"),
    pytest.param([policy(allow()), policy(deny())], CONTEXT, DENY, id="deny-wins-across-policies"),
    pytest.param([policy(deny("*"))], CONTEXT, DENY, id="deny-only"),
    # --- actions
    pytest.param(
        [policy(allow(action="IOT:assumerolewithcertificate"))],
        CONTEXT,
        ALLOW,
        id="action-case-insensitive",
    ),
    pytest.param([policy(allow(action="iot:*"))], CONTEXT, ALLOW, id="action-wildcard"),
    pytest.param(
        [policy(allow(action="iot:Assume?oleWithCertificate"))],
        CONTEXT,
        ALLOW,
        id="action-question-mark",
    ),
    pytest.param([policy(allow(action="iot:Connect"))], CONTEXT, IMPLICIT, id="other-action"),
    pytest.param([policy(allow(action=["iot:Connect", ACTION]))], CONTEXT, ALLOW, id="action-list"),
    pytest.param(
        [policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})],
        CONTEXT,
        ALLOW,
        id="not-action-other",
    ),
    pytest.param(
        [policy({"Effect": "Allow", "NotAction": "iot:Assume*", "Resource": "*"})],
        CONTEXT,
        IMPLICIT,
        id="not-action-matching",
    ),
    # --- resources
    pytest.param([policy(allow("*"))], CONTEXT, ALLOW, id="resource-star"),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "Thermostat-*"))], CONTEXT, ALLOW, id="resource-prefix-star"
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "Thermostat-alia?"))],
        CONTEXT,
        ALLOW,
        id="resource-question-mark",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "thermostat-alias"))],
        CONTEXT,
        IMPLICIT,
        id="resource-case-sensitive",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "Thermostat.alias"))],
        CONTEXT,
        IMPLICIT,
        id="resource-dot-is-literal",
    ),
    pytest.param([policy(allow(["arn:x", ALIAS_ARN]))], CONTEXT, ALLOW, id="resource-list"),
    pytest.param(
        [policy({"Effect": "Allow", "Action": ACTION, "NotResource": ALIAS_PREFIX + "other"})],
        CONTEXT,
        ALLOW,
        id="not-resource-other",
    ),
    pytest.param(
        [policy({"Effect": "Allow", "Action": ACTION, "NotResource": ALIAS_PREFIX + "*"})],
        CONTEXT,
        IMPLICIT,
        id="not-resource-matching",
    ),
    pytest.param(
        [{"Version": "2012-10-17", "Statement": allow()}], CONTEXT, ALLOW, id="statement-object"
    ),
    # --- policy variables
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:Connection.Thing.ThingTypeName}-alias"))],
        CONTEXT,
        ALLOW,
        id="var-thing-type",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:Connection.Thing.ThingTypeName}-alias"))],
        NO_THING,
        IMPLICIT,
        id="var-unresolved-no-match",
    ),
    pytest.param(
        [policy(deny(ALIAS_PREFIX + "${iot:Connection.Thing.ThingName}*"), allow("*"))],
        NO_THING,
        ALLOW,
        id="var-unresolved-deny-skipped",
    ),
    pytest.param(
        [policy(deny(ALIAS_PREFIX + "*${iot:Connection.Thing.ThingName}*"), allow("*"))],
        PolicyContext("c", "alias"),
        DENY,
        id="var-thing-name-deny",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:Connection.Thing.Attributes[Owner]}*"))],
        PolicyContext("c", "t", None, {"Owner": "Thermostat"}),
        ALLOW,
        id="var-attribute",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "Thermostat-${iot:CertificateId}"))],
        PolicyContext("alias"),
        ALLOW,
        id="var-certificate-id",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:Connection.Thing.ThingTypeName}-alias"), version="")],
        CONTEXT,
        IMPLICIT,
        id="var-literal-without-version",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:Connection.Thing.Attributes[Pattern]}"))],
        CONTEXT,
        IMPLICIT,
        id="var-value-star-is-literal",
    ),
    pytest.param(
        [policy(allow(ALIAS_PREFIX + "${iot:connection.thing.thingtypename}-alias"))],
        CONTEXT,
        ALLOW,
        id="var-name-case-insensitive",
    ),
    # --- conditions
    pytest.param(
        [policy(allow(**when("StringEquals", OWNER, "Alice")))], CONTEXT, ALLOW, id="string-equals"
    ),
    pytest.param(
        [policy(allow(**when("StringEquals", OWNER, "alice")))],
        CONTEXT,
        IMPLICIT,
        id="string-equals-case",
    ),
    pytest.param(
        [policy(allow(**when("StringEquals", OWNER, ["Bob", "Alice"])))],
        CONTEXT,
        ALLOW,
        id="values-are-or",
    ),
    pytest.param(
        [policy(allow(**when("StringEquals", OWNER, "Alice")))],
        NO_THING,
        IMPLICIT,
        id="string-equals-absent-key",
    ),
    pytest.param(
        [policy(allow(**when("StringNotEquals", OWNER, "Bob")))],
        CONTEXT,
        ALLOW,
        id="string-not-equals",
    ),
    pytest.param(
        [policy(allow(**when("StringNotEquals", OWNER, "Alice")))],
        CONTEXT,
        IMPLICIT,
        id="string-not-equals-match",
    ),
    pytest.param(
        [policy(allow(**when("StringNotEquals", OWNER, "Alice")))],
        NO_THING,
        ALLOW,
        id="negated-absent-key-is-true",
    ),
    pytest.param(
        [policy(allow(**when("StringEqualsIgnoreCase", OWNER, "ALICE")))],
        CONTEXT,
        ALLOW,
        id="equals-ignore-case",
    ),
    pytest.param(
        [policy(allow(**when("StringNotEqualsIgnoreCase", OWNER, "ALICE")))],
        CONTEXT,
        IMPLICIT,
        id="not-equals-ignore-case",
    ),
    pytest.param(
        [policy(allow(**when("StringLike", OWNER, "Al*")))], CONTEXT, ALLOW, id="string-like"
    ),
    pytest.param(
        [policy(allow(**when("StringLike", OWNER, "B*")))], CONTEXT, IMPLICIT, id="string-like-miss"
    ),
    pytest.param(
        [policy(allow(**when("StringNotLike", OWNER, "B*")))], CONTEXT, ALLOW, id="string-not-like"
    ),
    pytest.param(
        [policy(allow(**when("StringLike", OWNER, "${iot:Connection.Thing.Attributes[Pattern]}")))],
        CONTEXT,
        IMPLICIT,
        id="like-substituted-star-literal",
    ),
    pytest.param(
        [policy(allow(**when("StringEquals", "iot:Connection.Thing.Attributes[Pattern]", "${*}")))],
        CONTEXT,
        ALLOW,
        id="escape-star",
    ),
    pytest.param(
        [policy(allow(**when("StringEquals", OWNER, "${iot:Connection.Thing.ThingName}")))],
        CONTEXT,
        IMPLICIT,
        id="condition-variable",
    ),
    pytest.param(
        [policy(allow(**when("Bool", ATTACHED, "true")))], CONTEXT, ALLOW, id="bool-attached"
    ),
    pytest.param(
        [policy(allow(**when("Bool", ATTACHED, True)))], CONTEXT, ALLOW, id="bool-json-true"
    ),
    pytest.param(
        [policy(allow(**when("Bool", ATTACHED, "false")))], CONTEXT, IMPLICIT, id="bool-false"
    ),
    pytest.param(
        [policy(allow(**when("Bool", ATTACHED, "true")))], NO_THING, IMPLICIT, id="bool-absent"
    ),
    pytest.param([policy(allow(**when("Null", OWNER, "true")))], NO_THING, ALLOW, id="null-absent"),
    pytest.param(
        [policy(allow(**when("Null", OWNER, "false")))], CONTEXT, ALLOW, id="null-present"
    ),
    pytest.param(
        [policy(allow(**when("Null", OWNER, "true")))],
        CONTEXT,
        IMPLICIT,
        id="null-present-wanted-absent",
    ),
    pytest.param(
        [policy(allow(**when("StringEqualsIfExists", OWNER, "Bob")))],
        NO_THING,
        ALLOW,
        id="if-exists-absent",
    ),
    pytest.param(
        [policy(allow(**when("StringEqualsIfExists", OWNER, "Bob")))],
        CONTEXT,
        IMPLICIT,
        id="if-exists-present",
    ),
    pytest.param(
        [
            policy(
                allow(
                    **when(
                        "ArnEquals",
                        "iot:Connection.Thing.Attributes[Site]",
                        "arn:aws:iot:us-east-1:1:thing/x",
                    )
                )
            )
        ],
        CONTEXT,
        ALLOW,
        id="arn-equals",
    ),
    pytest.param(
        [
            policy(
                allow(
                    **when(
                        "ArnLike",
                        "iot:Connection.Thing.Attributes[Site]",
                        "arn:aws:iot:*:1:thing/*",
                    )
                )
            )
        ],
        CONTEXT,
        ALLOW,
        id="arn-like",
    ),
    pytest.param(
        [
            policy(
                allow(
                    **when(
                        "ArnNotEquals",
                        "iot:Connection.Thing.Attributes[Site]",
                        "arn:aws:iot:us-east-1:1:thing/x",
                    )
                )
            )
        ],
        CONTEXT,
        IMPLICIT,
        id="arn-not-equals",
    ),
    pytest.param(
        [
            policy(
                allow(
                    **when("ArnNotLike", "iot:Connection.Thing.Attributes[Site]", "arn:aws:s3:::*")
                )
            )
        ],
        CONTEXT,
        ALLOW,
        id="arn-not-like",
    ),
    pytest.param(
        [
            policy(
                allow(
                    Condition={
                        "StringEquals": {
                            OWNER: "Alice",
                            "iot:Connection.Thing.ThingTypeName": "Lamp",
                        }
                    }
                )
            )
        ],
        CONTEXT,
        IMPLICIT,
        id="keys-are-and",
    ),
    pytest.param(
        [policy(allow(Condition={"StringEquals": {OWNER: "Alice"}, "Bool": {ATTACHED: "true"}}))],
        CONTEXT,
        ALLOW,
        id="operators-are-and",
    ),
    pytest.param(
        [policy(allow(), deny(**when("StringEquals", OWNER, "Mallory")))],
        CONTEXT,
        ALLOW,
        id="deny-condition-unmet",
    ),
    pytest.param(
        [policy(allow(), deny(**when("StringEquals", OWNER, "Alice")))],
        CONTEXT,
        DENY,
        id="deny-condition-met",
    ),
    # --- a document that cannot be parsed or evaluated fails closed: an explicit Deny
    pytest.param(["{not json"], CONTEXT, DENY, id="malformed-json"),
    pytest.param(["{not json", policy(allow())], CONTEXT, DENY, id="malformed-beats-an-allow"),
    pytest.param([json.dumps([allow()])], CONTEXT, DENY, id="malformed-not-object"),
    pytest.param(
        [policy({"Effect": "allow", "Action": ACTION, "Resource": "*"})],
        CONTEXT,
        DENY,
        id="malformed-effect-case",
    ),
    pytest.param(
        [policy({"Effect": "Allow", "Action": ACTION})],
        CONTEXT,
        DENY,
        id="malformed-no-resource",
    ),
    pytest.param(
        [policy({"Effect": "Allow", "Action": ACTION, "NotAction": "x", "Resource": "*"})],
        CONTEXT,
        DENY,
        id="malformed-action-and-not-action",
    ),
    pytest.param(
        [policy(allow(**when("NumericEquals", OWNER, "1")))],
        CONTEXT,
        DENY,
        id="malformed-unknown-operator",
    ),
    pytest.param([policy(allow(action=[]))], CONTEXT, DENY, id="malformed-empty-action-list"),
    pytest.param(
        [{"Version": "2012-10-17", "Statement": []}],
        CONTEXT,
        DENY,
        id="malformed-no-statements",
    ),
    # An allow-all policy must not outweigh a Deny the evaluator cannot read.
    pytest.param(
        [policy(allow("*", "*")), policy(deny(**when("ForAnyValue:StringEquals", OWNER, "x")))],
        CONTEXT,
        DENY,
        id="unreadable-deny-for-any-value-beats-allow-all",
    ),
    pytest.param(
        [policy(allow("*", "*")), policy(deny(**when("NumericEquals", OWNER, ["1"])))],
        CONTEXT,
        DENY,
        id="unreadable-deny-numeric-beats-allow-all",
    ),
    # JSON booleans inside a value list read like bare ones.
    pytest.param(
        [policy(allow("*", "*")), policy(deny(**when("Bool", ATTACHED, [True])))],
        CONTEXT,
        DENY,
        id="bool-json-list-deny-met",
    ),
    pytest.param(
        [policy(allow("*", "*")), policy(deny(**when("Bool", ATTACHED, [False])))],
        CONTEXT,
        ALLOW,
        id="bool-json-list-deny-unmet",
    ),
    pytest.param(
        [policy(allow(**when("Bool", ATTACHED, [False, True])))],
        CONTEXT,
        ALLOW,
        id="bool-json-list-any-value",
    ),
]


@pytest.mark.parametrize(("documents", "context", "expected"), CASES)
def test_evaluate(
    documents: list[Document], context: PolicyContext, expected: PolicyDecision
) -> None:
    as_text = [d if isinstance(d, str) else json.dumps(d) for d in documents]
    assert evaluate(as_text, ACTION, ALIAS_ARN, context) is expected
    assert evaluate(documents, ACTION, ALIAS_ARN, context) is expected  # parsed documents too


def test_malformed_policy_is_logged_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="awsiot_credentialhelper.emulator")
    evaluate(['{"Statement": [{"Effect": "Perhaps"}]}'], ACTION, ALIAS_ARN, CONTEXT)
    assert "Effect must be 'Allow' or 'Deny'" in caplog.text
    assert "fails closed" in caplog.text
    assert caplog.records[0].name.startswith("awsiot_credentialhelper.emulator")
    assert caplog.records[0].levelno == logging.WARNING


def test_a_policy_that_fails_during_evaluation_denies(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> bool:
        raise RuntimeError("evaluator bug")

    monkeypatch.setattr(policy_module, "_applies", broken)
    caplog.set_level(logging.WARNING, logger="awsiot_credentialhelper.emulator")
    assert evaluate([policy(allow())], ACTION, ALIAS_ARN, CONTEXT) is DENY
    assert "evaluator bug" in caplog.text


def test_decision_allowed_property() -> None:
    assert ALLOW.allowed
    assert not DENY.allowed
    assert not IMPLICIT.allowed


def test_parse_policy_accepts_bytes() -> None:
    parsed = parse_policy(json.dumps(policy(allow())).encode())
    assert len(parsed.statements) == 1


# --- the wildcard matcher, against a slow but obviously right reference ------------------


@functools.cache
def reference_match(pattern: str, value: str) -> bool:
    if not pattern:
        return not value
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        return reference_match(rest, value) or (bool(value) and reference_match(pattern, value[1:]))
    if not value:
        return False
    return (head in ("?", value[0])) and reference_match(rest, value[1:])


ALPHABET = st.text(alphabet="ab.$^[", max_size=8)
PATTERNS = st.text(alphabet="ab*?.$^[", max_size=8)


@given(PATTERNS, ALPHABET)
def test_wildcard_match_agrees_with_reference(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) is reference_match(pattern, value)


@given(st.text(max_size=30))
def test_star_matches_everything(value: str) -> None:
    assert wildcard_match("*", value)


@given(
    st.text(alphabet=st.characters(blacklist_characters="*?"), max_size=20), st.text(max_size=20)
)
def test_literal_pattern_matches_only_itself(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, pattern)
    assert wildcard_match(pattern, value) is (pattern == value)


@given(st.text(alphabet="abAB", max_size=10))
def test_case_insensitive_mode_ignores_case(value: str) -> None:
    assert wildcard_match(value.upper(), value.lower(), case_sensitive=False)
