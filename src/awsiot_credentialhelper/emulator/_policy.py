"""Evaluate AWS IoT Core policies the way the Credential Provider does, for one action.

moto stores IoT policies but cannot evaluate them correctly (its IAM evaluator denies on an
unmatched Deny condition, ignores ``Bool`` and never resolves ``${iot:...}``), so the emulator
carries this small evaluator. It implements the subset of the IAM policy grammar that IoT
policies use: Allow/Deny with explicit Deny winning, Action/NotAction, Resource/NotResource,
``*``/``?`` wildcards, ``${...}`` policy variables and the common condition operators.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional, Union

__all__ = [
    "PolicyContext",
    "PolicyDecision",
    "PolicyError",
    "evaluate",
    "parse_policy",
    "wildcard_match",
]

_LOG = logging.getLogger("awsiot_credentialhelper.emulator.policy")

#: Policy variables are substituted only in documents of this version, as in IAM.
_VARIABLES_VERSION = "2012-10-17"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
#: ``${*}``, ``${?}`` and ``${$}`` stand for the literal characters.
_LITERAL_ESCAPES = frozenset("*?$")


class PolicyError(ValueError):
    """A policy document is not JSON or not a policy this evaluator understands.

    :func:`evaluate` treats such a document as an explicit Deny (it fails closed): it may
    hold Deny statements, and ignoring them would grant what the author meant to refuse.
    """


class PolicyDecision(enum.Enum):
    """The result of evaluating every policy attached to a principal."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"

    @property
    def allowed(self) -> bool:
        return self is PolicyDecision.ALLOW


@dataclasses.dataclass(frozen=True)
class PolicyContext:
    """What the Credential Provider knows about a request, as policy variables see it.

    Attributes:
        certificate_id: The client certificate's id (``${iot:CertificateId}``).
        thing_name: The thing named by ``x-amzn-iot-thingname``, if the header was sent and
            names a thing attached to the certificate.
        thing_type_name: That thing's type, if it has one.
        thing_attributes: That thing's attributes.
    """

    certificate_id: str
    thing_name: Optional[str] = None
    thing_type_name: Optional[str] = None
    thing_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """Return the known ``${...}`` variables and condition keys, by exact name."""
        known = {"iot:CertificateId": self.certificate_id}
        if self.thing_name is not None:
            known["iot:Connection.Thing.ThingName"] = self.thing_name
            known["iot:Connection.Thing.IsAttached"] = "true"
            if self.thing_type_name is not None:
                known["iot:Connection.Thing.ThingTypeName"] = self.thing_type_name
            for name, value in self.thing_attributes.items():
                known[f"iot:Connection.Thing.Attributes[{name}]"] = str(value)
        return known


@dataclasses.dataclass(frozen=True)
class _Statement:
    effect: str
    actions: tuple[str, ...]
    actions_negated: bool
    resources: tuple[str, ...]
    resources_negated: bool
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]
    substitute: bool


@dataclasses.dataclass(frozen=True)
class _Policy:
    statements: tuple[_Statement, ...]


class _UnresolvedError(Exception):
    """A policy variable has no value in this request; its element cannot match."""


# --- wildcards and variables -----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _wildcards_to_regex(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@functools.lru_cache(maxsize=4096)
def _compiled(regex: str, case_sensitive: bool) -> re.Pattern[str]:
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.compile(regex, flags)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """Return whether ``value`` matches ``pattern``, where ``*`` is any run and ``?`` one char."""
    return _compiled(_wildcards_to_regex(pattern), case_sensitive).fullmatch(value) is not None


def _variable_value(name: str, variables: Mapping[str, str]) -> str:
    """The value of ``${name}``.

    Raises:
        _UnresolvedError: the variable has no value for this request.
    """
    if name in _LITERAL_ESCAPES:
        return name
    value = _lookup(variables, name)
    if value is None:
        raise _UnresolvedError(name)
    return value


def _substitute(text: str, variables: Mapping[str, str], *, enabled: bool) -> str:
    """Replace every ``${...}`` in ``text`` by its value (for exact comparisons).

    Raises:
        _UnresolvedError: a variable has no value for this request.
    """
    if not enabled:
        return text
    return _VARIABLE.sub(lambda match: _variable_value(match.group(1), variables), text)


def _pattern_matches(
    pattern: str,
    value: str,
    variables: Mapping[str, str],
    *,
    case_sensitive: bool,
    enabled: bool,
) -> bool:
    """Match ``value`` against a wildcard ``pattern`` whose substituted values are literal.

    A pattern with an unresolved variable matches nothing.
    """
    pieces, last = [], 0
    if enabled:
        for match in _VARIABLE.finditer(pattern):
            pieces.append(_wildcards_to_regex(pattern[last : match.start()]))
            try:
                pieces.append(re.escape(_variable_value(match.group(1), variables)))
            except _UnresolvedError:
                return False
            last = match.end()
    pieces.append(_wildcards_to_regex(pattern[last:]))
    return _compiled("".join(pieces), case_sensitive).fullmatch(value) is not None


def _lookup(variables: Mapping[str, str], name: str) -> Optional[str]:
    """Find a variable or condition key; key names are case-insensitive, as in IAM."""
    if name in variables:
        return variables[name]
    lowered = name.lower()
    for key, value in variables.items():
        if key.lower() == lowered:
            return value
    return None


# --- parsing ---------------------------------------------------------------------------------


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise PolicyError(f"{what} must be a string or a non-empty list of strings")


def _pick(statement: Mapping[str, Any], name: str) -> tuple[tuple[str, ...], bool]:
    """Read ``name`` or ``Not<name>``: exactly one of them must be present."""
    positive, negative = statement.get(name), statement.get(f"Not{name}")
    if (positive is None) == (negative is None):
        raise PolicyError(f"a statement needs exactly one of {name} and Not{name}")
    if positive is not None:
        return _strings(positive, name), False
    return _strings(negative, f"Not{name}"), True


def _bools_as_text(values: Any) -> Any:
    """Write JSON booleans (``"Bool": {"k": true}`` or ``[true]``) as IAM's ``"true"``."""
    if isinstance(values, bool):
        return "true" if values else "false"
    if isinstance(values, list):
        return [_bools_as_text(item) if isinstance(item, bool) else item for item in values]
    return values


def _parse_conditions(block: Any) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    if block is None:
        return ()
    if not isinstance(block, dict):
        raise PolicyError("Condition must be an object")
    parsed = []
    for operator, keys in block.items():
        _operator_function(operator)  # refuse unknown operators up front
        if not isinstance(keys, dict):
            raise PolicyError(f"Condition operator {operator} must map keys to values")
        for key, values in keys.items():
            parsed.append((operator, key, _strings(_bools_as_text(values), f"{operator} {key}")))
    return tuple(parsed)


def _parse_statement(raw: Any, substitute: bool) -> _Statement:
    if not isinstance(raw, dict):
        raise PolicyError("each statement must be an object")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"Effect must be 'Allow' or 'Deny', not {effect!r}")
    actions, actions_negated = _pick(raw, "Action")
    resources, resources_negated = _pick(raw, "Resource")
    return _Statement(
        effect=effect,
        actions=actions,
        actions_negated=actions_negated,
        resources=resources,
        resources_negated=resources_negated,
        conditions=_parse_conditions(raw.get("Condition")),
        substitute=substitute,
    )


def parse_policy(document: Union[str, bytes, Mapping[str, Any]]) -> _Policy:
    """Parse a policy document once, so that evaluation never meets a malformed one.

    Raises:
        PolicyError: the document is not JSON or not a well-formed policy.
    """
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyError(f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise PolicyError("a policy must be a JSON object")
    raw_statements = document.get("Statement")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyError("Statement must be an object or a non-empty list")
    substitute = document.get("Version") == _VARIABLES_VERSION
    return _Policy(tuple(_parse_statement(raw, substitute) for raw in raw_statements))


@functools.lru_cache(maxsize=1024)
def _parse_cached(document: str) -> _Policy:
    return parse_policy(document)


# --- conditions ------------------------------------------------------------------------------


#: A comparison gets the request's value, the policy's value (with variables unresolved),
#: the known variables and whether substitution is on; it answers whether they match.
_Compare = Callable[[str, str, Mapping[str, str], bool], bool]


def _string_equals(actual: str, expected: str, variables: Mapping[str, str], on: bool) -> bool:
    return actual == _substitute(expected, variables, enabled=on)


def _string_equals_ignore_case(
    actual: str, expected: str, variables: Mapping[str, str], on: bool
) -> bool:
    return actual.casefold() == _substitute(expected, variables, enabled=on).casefold()


def _string_like(actual: str, expected: str, variables: Mapping[str, str], on: bool) -> bool:
    return _pattern_matches(expected, actual, variables, case_sensitive=True, enabled=on)


def _bool(actual: str, expected: str, variables: Mapping[str, str], on: bool) -> bool:
    return actual.lower() == _substitute(expected, variables, enabled=on).lower()


#: base operator -> (comparison, negated)
_OPERATORS: dict[str, tuple[_Compare, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_equals, False),
    "ArnNotEquals": (_string_equals, True),
    "ArnLike": (_string_like, False),
    "ArnNotLike": (_string_like, True),
    "Bool": (_bool, False),
}


def _operator_function(operator: str) -> tuple[str, bool]:
    """Split ``operator`` into its base name and whether it ends in ``IfExists``.

    Raises:
        PolicyError: the operator is unknown or not supported by this emulator.
    """
    base, if_exists = operator, False
    if operator.endswith("IfExists") and operator != "IfExists":
        base, if_exists = operator[: -len("IfExists")], True
    if base == "Null" and not if_exists:
        return base, False
    if base not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not supported")
    return base, if_exists


def _condition_holds(
    operator: str, key: str, expected: Sequence[str], variables: Mapping[str, str], on: bool
) -> bool:
    """One operator on one key: OR across the expected values.

    As in IAM, an absent key fails a positive operator and satisfies a negated one or an
    ``...IfExists`` one; a value with an unresolved variable matches nothing.
    """
    base, if_exists = _operator_function(operator)
    actual = _lookup(variables, key)
    if base == "Null":
        return any((actual is None) == (value.lower() == "true") for value in expected)
    compare, negated = _OPERATORS[base]
    if actual is None:
        return if_exists or negated
    for value in expected:
        try:
            matched = compare(actual, value, variables, on)
        except _UnresolvedError:
            continue
        if matched:
            return not negated
    return negated


# --- statements ------------------------------------------------------------------------------


def _any_matches(
    patterns: Iterable[str],
    value: str,
    variables: Mapping[str, str],
    *,
    case_sensitive: bool,
    substitute: bool,
) -> bool:
    return any(
        _pattern_matches(p, value, variables, case_sensitive=case_sensitive, enabled=substitute)
        for p in patterns
    )


def _applies(
    statement: _Statement, action: str, resource: str, variables: Mapping[str, str]
) -> bool:
    action_hit = _any_matches(statement.actions, action, {}, case_sensitive=False, substitute=False)
    if action_hit == statement.actions_negated:
        return False
    resource_hit = _any_matches(
        statement.resources,
        resource,
        variables,
        case_sensitive=True,
        substitute=statement.substitute,
    )
    if resource_hit == statement.resources_negated:
        return False
    return all(
        _condition_holds(operator, key, values, variables, statement.substitute)
        for operator, key, values in statement.conditions
    )


def evaluate(
    documents: Iterable[Union[str, Mapping[str, Any]]],
    action: str,
    resource: str,
    context: PolicyContext,
) -> PolicyDecision:
    """Decide whether the policies allow ``action`` on ``resource``.

    An explicit Deny in any policy wins; without an Allow the answer is an implicit deny.
    A document that cannot be parsed or evaluated (not JSON, not a policy, an unsupported
    condition operator ...) fails closed: it counts as an explicit Deny, logged at WARNING
    with the reason, because it may hold Deny statements that must not be lost.

    Args:
        documents: The policy documents attached to the principal (JSON text or parsed).
        action: The action asked for, e.g. ``iot:AssumeRoleWithCertificate``.
        resource: The resource ARN, e.g. the role alias ARN.
        context: What the request tells the policy variables.
    """
    variables = context.variables()
    allowed = False
    for document in documents:
        try:
            policy = (
                _parse_cached(document) if isinstance(document, str) else parse_policy(document)
            )
            effects = [
                statement.effect
                for statement in policy.statements
                if _applies(statement, action, resource, variables)
            ]
        except Exception as exc:  # any failure must deny, never grant
            _LOG.warning("An IoT policy cannot be evaluated, so it denies (fails closed): %s", exc)
            return PolicyDecision.EXPLICIT_DENY
        if "Deny" in effects:
            return PolicyDecision.EXPLICIT_DENY
        allowed = allowed or "Allow" in effects
    return PolicyDecision.ALLOW if allowed else PolicyDecision.IMPLICIT_DENY
