"""Render a new AWS shared credentials file: one profile's keys change, every other byte stays.

Pure functions only (text in, text out); ``update`` does the locking and the atomic write. The
file is checked with the same parser botocore uses (``configparser``, strict): a file botocore
could not read is refused, never "repaired" by overwriting it.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Mapping
from typing import Optional

from ..exceptions import ConfigurationError

__all__ = [
    "CREDENTIAL_KEYS",
    "MalformedCredentialsFileError",
    "credential_values",
    "render_credentials_file",
]

#: The keys ``update`` owns in its profile. ``aws_expiration`` is informational: botocore
#: ignores it, but it tells a human (or a script) when the keys run out.
CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_expiration",
)

# configparser's own patterns (SECTCRE, OPTCRE), so a line means here what it means to botocore.
_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(
    r"(?P<indent>[ \t]*)(?P<key>[^\r\n]*?)(?P<separator>[ \t]*[=:][ \t]*)"
    r"(?P<value>[^\r\n]*?)(?P<eol>\r\n|\n|\r)?\Z"
)
_PROFILE_NAME = re.compile(r"[^\[\]\r\n]+")


class MalformedCredentialsFileError(ConfigurationError):
    """The existing credentials file cannot be parsed; it is left untouched."""


def credential_values(
    access_key_id: str, secret_access_key: str, session_token: str, expiration: str
) -> dict[str, str]:
    """The key/value pairs ``update`` writes, in :data:`CREDENTIAL_KEYS` order."""
    return dict(zip(CREDENTIAL_KEYS, (access_key_id, secret_access_key, session_token, expiration)))


def render_credentials_file(
    existing: str, profile: str, values: Mapping[str, str], *, origin: str = "the file"
) -> str:
    """``existing`` with ``values`` set in ``[profile]``; everything else byte-for-byte equal.

    Keys already in the profile keep their place, spelling and spacing; only their values
    change. Missing keys are added after the profile's last key; a missing profile is
    appended at the end.

    Raises:
        MalformedCredentialsFileError: ``existing`` is not a valid credentials file (botocore
            would refuse it too), or ``profile`` is not a usable section name.
    """
    if not _PROFILE_NAME.fullmatch(profile) or profile != profile.strip():
        raise MalformedCredentialsFileError(
            f"{profile!r} cannot be a profile name: no brackets, line breaks or outer spaces."
        )
    for key, value in values.items():
        if not value or any(ch in value for ch in "\r\n") or value != value.strip():
            raise ValueError(f"unusable value for {key}")  # our own bug, never user input
    _validate(existing, origin)
    lines = existing.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    span = _section_span(lines, profile)
    if span is None:
        return _append_section(existing, profile, values, newline)
    start, end = span
    output = lines[:start]
    pending = dict(values)
    last_key_line = len(output) - 1  # the header
    index = start
    while index < end:
        line = lines[index]
        index += 1
        match = _option_line(line)
        if match is None or match.group("key").strip().lower() not in pending:
            output.append(line)
            if match is not None:
                last_key_line = len(output) - 1
                index = _copy_continuation(lines, index, end, line, output)
                last_key_line = len(output) - 1
            continue
        key = match.group("key").strip().lower()
        output.append(
            match.group("indent")
            + match.group("key")
            + match.group("separator")
            + pending.pop(key)
            + (match.group("eol") or "")
        )
        last_key_line = len(output) - 1
        index = _skip_continuation(lines, index, end, line)
    if pending:
        insert_at = last_key_line + 1
        if not output[last_key_line].endswith(("\n", "\r")):
            output[last_key_line] += newline
        added = [f"{key} = {value}{newline}" for key, value in pending.items()]
        output[insert_at:insert_at] = added
    output.extend(lines[end:])
    rendered = "".join(output)
    _check_result(rendered, profile, values)
    return rendered


def _validate(text: str, origin: str) -> None:
    parser = configparser.RawConfigParser(strict=True)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        # Never quote the offending line: it may hold a secret key.
        line = getattr(exc, "lineno", None)
        if line is None and getattr(exc, "errors", None):
            line = exc.errors[0][0]  # type: ignore[attr-defined]
        where = f" (line {line})" if line else ""
        raise MalformedCredentialsFileError(
            f"{origin} is not a valid AWS credentials file{where}: "
            f"{type(exc).__name__}. Fix or move it; it was left untouched."
        ) from None


def _section_span(lines: list[str], profile: str) -> Optional[tuple[int, int]]:
    """Line indexes of ``[profile]``'s body: from after its header to the next header."""
    start = None
    for index, line in enumerate(lines):
        header = _header(line)
        if header is None:
            continue
        if start is not None:
            return start, index
        if header == profile:
            start = index + 1
    return None if start is None else (start, len(lines))


def _header(line: str) -> Optional[str]:
    if line[:1].isspace():
        return None  # an indented line is a continuation to configparser
    match = _SECTION.match(line.strip())
    return match.group("header") if match else None


def _option_line(line: str) -> Optional[re.Match[str]]:
    stripped = line.strip()
    if not stripped or stripped[0] in "#;" or line[:1].isspace():
        return None
    match = _OPTION.match(line)
    return match if match and match.group("key").strip() else None


def _is_continuation(line: str, owner: str) -> bool:
    indent = len(line) - len(line.lstrip())
    owner_indent = len(owner) - len(owner.lstrip())
    return bool(line.strip()) and indent > owner_indent


def _copy_continuation(
    lines: list[str], index: int, end: int, owner: str, output: list[str]
) -> int:
    while index < end and _is_continuation(lines[index], owner):
        output.append(lines[index])
        index += 1
    return index


def _skip_continuation(lines: list[str], index: int, end: int, owner: str) -> int:
    while index < end and _is_continuation(lines[index], owner):
        index += 1
    return index


def _append_section(existing: str, profile: str, values: Mapping[str, str], newline: str) -> str:
    text = existing
    if text and not text.endswith(("\n", "\r")):
        text += newline
    if text.strip():
        text += newline
    text += f"[{profile}]{newline}"
    text += "".join(f"{key} = {value}{newline}" for key, value in values.items())
    _check_result(text, profile, values)
    return text


def _check_result(text: str, profile: str, values: Mapping[str, str]) -> None:
    """Re-read the result as botocore would: a bug here must never reach the disk."""
    parser = configparser.RawConfigParser(strict=True)
    parser.read_string(text)
    for key, value in values.items():
        if parser.get(profile, key) != value:
            raise AssertionError(f"rendering lost {key} of [{profile}]")
