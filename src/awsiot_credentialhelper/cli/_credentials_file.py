"""Render a new AWS shared credentials file: one profile's keys change, every other byte stays.

Pure functions only (text in, text out); ``update`` does the locking and the atomic write. The
file is checked with the same parser botocore uses (``configparser``, strict): a file botocore
could not read is refused, never "repaired" by overwriting it.
"""

from __future__ import annotations

import configparser
import io
import re
from collections.abc import Mapping
from typing import Optional

from ..exceptions import MalformedCredentialsFileError

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

# configparser's own patterns, so a line means here what it means to botocore.
_SECTION = configparser.RawConfigParser.SECTCRE
_OPTION = configparser.RawConfigParser.OPTCRE
_NONSPACE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")  # RawConfigParser's default comment_prefixes
_LINE_ENDS = ("\r\n", "\r", "\n")
#: configparser's option pattern backtracks over a run of blanks before the delimiter in time
#: quadratic in its length (40,000 take 40 s); key lines with longer runs are refused.
MAX_BLANK_RUN = 128
_LONG_BLANK_RUN = re.compile(rf"\s{{{MAX_BLANK_RUN + 1}}}")
_FIRST_DELIMITER = re.compile("[=:]")

# Kinds of line, as configparser's reading loop classifies them.
_HEADER = "header"
_OPTION_LINE = "option"
_CONTINUATION = "continuation"
_OTHER = "other"  # blank or comment


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
    appended at the end. Lines are what configparser (so botocore) makes of the file: split on
    ``\\n``, ``\\r`` and ``\\r\\n`` only, as a file object splits them (``str.splitlines`` also
    splits on U+2028, U+0085, ``\\x1c`` and others, which configparser keeps inside a line).

    Raises:
        MalformedCredentialsFileError: ``existing`` is not a valid credentials file (botocore
            would refuse it too), ``profile`` is not a usable section name, or the result
            would read differently anywhere but in the profile's own keys.
    """
    _check_profile_name(profile)
    for key, value in values.items():
        if not value or any(ch in value for ch in "\r\n") or value != value.strip():
            raise ValueError(f"unusable value for {key}")  # our own bug, never user input
    lines = _split_lines(existing)
    kinds = _classify(lines, origin)  # first: it refuses what configparser is slow to refuse
    before = _parse(lines, origin)
    span = _section_span(kinds, profile)
    if span is None:
        rendered = _append_section(existing, profile, values, _newline(lines))
    else:
        rendered = "".join(_set_keys(lines, kinds, span, values))
    _check_result(before, rendered, profile, values, origin)
    return rendered


def _check_profile_name(profile: str) -> None:
    if profile == configparser.DEFAULTSECT:
        raise MalformedCredentialsFileError(
            f"[{profile}] holds defaults that configparser (so botocore) adds to every profile: "
            "writing credentials there would change them all. Use another profile name."
        )
    name_ok = bool(profile) and profile == profile.strip() and not any(c in profile for c in "[]")
    if not name_ok or len(_split_lines(profile)) != 1 or not profile.isprintable():
        raise MalformedCredentialsFileError(
            f"{profile!r} cannot be a profile name: no brackets, line breaks or outer spaces."
        )


def _split_lines(text: str) -> list[str]:
    """Lines as a file object yields them to configparser: split on \\n, \\r, \\r\\n; ends kept."""
    return list(io.StringIO(text, newline=""))


def _line_end(line: str) -> str:
    for end in _LINE_ENDS:
        if line.endswith(end):
            return end
    return ""


def _newline(lines: list[str]) -> str:
    """The line end to write: the first line's, else ``\\n``."""
    return (_line_end(lines[0]) if lines else "") or "\n"


def _parse(lines: list[str], origin: str) -> configparser.RawConfigParser:
    """Parse as botocore does (strict RawConfigParser, a text-mode file's ``\\n`` line ends)."""
    parser = configparser.RawConfigParser(strict=True)
    try:
        parser.read_file(line[: len(line) - len(_line_end(line))] + "\n" for line in lines)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        if line is None and getattr(exc, "errors", None):
            line = exc.errors[0][0]  # type: ignore[attr-defined]
        raise _malformed(origin, line, type(exc).__name__) from None
    return parser


def _malformed(origin: str, line: Optional[int], cause: str) -> MalformedCredentialsFileError:
    # Never quote the offending line: it may hold a secret key.
    where = f" (line {line})" if line else ""
    return MalformedCredentialsFileError(
        f"{origin} is not a valid AWS credentials file{where}: {cause}. Fix or move it; it was "
        "left untouched."
    )


def _classify(lines: list[str], origin: str) -> list[tuple[str, str]]:
    """Each line's kind and name (the section, or the option it sets or continues).

    The same decisions as ``RawConfigParser._read``: a line is a continuation when it is
    indented deeper than the line that started the current option, whatever it looks like;
    otherwise its stripped text is matched as a header, then as an option. Blank lines and
    comments change nothing.

    The first line configparser would refuse is refused here, before configparser runs: it
    collects every bad line into one message by string concatenation (quadratic: hours for
    a few MiB of them), and its option pattern backtracks over blanks before the ``=``.

    Raises:
        MalformedCredentialsFileError: naming the first bad line.
    """
    kinds: list[tuple[str, str]] = []
    in_section = False
    option = ""
    indent_level = 0
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith(_COMMENT_PREFIXES):
            kinds.append((_OTHER, ""))
            continue
        first = _NONSPACE.search(line)
        indent = first.start() if first else 0
        if in_section and option and indent > indent_level:
            kinds.append((_CONTINUATION, option))
            continue
        indent_level = indent
        header = _SECTION.match(text)
        if header:
            in_section, option = True, ""
            kinds.append((_HEADER, header.group("header")))
            continue
        if not in_section:
            raise _malformed(origin, number, "MissingSectionHeaderError")
        option = _option_name(text, number, origin)
        kinds.append((_OPTION_LINE, option))
    return kinds


def _option_name(text: str, number: int, origin: str) -> str:
    """The (lower-cased) option a stripped line sets, as configparser reads it."""
    key_part = _FIRST_DELIMITER.split(text, maxsplit=1)[0]
    if _LONG_BLANK_RUN.search(key_part):
        raise _malformed(
            origin,
            number,
            f"over {MAX_BLANK_RUN} spaces in a row before the '=', which would take configparser "
            "(and so botocore) hours to read",
        )
    match = _OPTION.match(text)
    name = match.group("option") if match else ""
    if not name:
        raise _malformed(origin, number, "ParsingError")
    return name.rstrip().lower()


def _section_span(kinds: list[tuple[str, str]], profile: str) -> Optional[tuple[int, int]]:
    """Indexes of ``[profile]``'s header line and of the line after its last."""
    start = None
    for index, (kind, name) in enumerate(kinds):
        if kind != _HEADER:
            continue
        if start is not None:
            return start, index
        if name == profile:
            start = index
    return None if start is None else (start, len(kinds))


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _set_keys(
    lines: list[str], kinds: list[tuple[str, str]], span: tuple[int, int], values: Mapping[str, str]
) -> list[str]:
    """The lines with the profile's keys set: in place, then the missing ones after its last key.

    A replaced key's continuation lines go (they were part of the old value). Missing keys
    are indented like the profile's last key, so every line after them keeps its meaning (a
    deeper-indented line would otherwise turn into a continuation of the new key).
    """
    start, end = span
    output = lines[: start + 1]
    pending = dict(values)
    replaced: set[str] = set()
    last = start  # where missing keys go after: the header, or the last key or continuation
    following = lines[end] if end < len(lines) else ""
    lead = _lead(following)  # with no key in the profile: the next header's indent
    for index in range(start + 1, end):
        line = lines[index]
        kind, name = kinds[index]
        if kind == _CONTINUATION and name in replaced:
            continue
        if kind == _OPTION_LINE and name in pending:
            line = _with_value(line, pending.pop(name))
            replaced.add(name)
        output.append(line)
        if kind in (_OPTION_LINE, _CONTINUATION):
            last = len(output) - 1
        if kind == _OPTION_LINE:
            lead = _lead(line)
    if pending:
        newline = _newline(lines)
        if not _line_end(output[last]):
            output[last] += newline
        output[last + 1 : last + 1] = [f"{lead}{k} = {v}{newline}" for k, v in pending.items()]
    output.extend(lines[end:])
    return output


def _with_value(line: str, value: str) -> str:
    """An option line with a new value; its indent, key and separator as they were."""
    text = line.strip()
    match = _OPTION.match(text)
    if match is None:  # _classify only calls a line an option when it matches
        raise AssertionError("not an option line")
    return _lead(line) + text[: match.start("value")] + value + _line_end(line)


def _append_section(existing: str, profile: str, values: Mapping[str, str], newline: str) -> str:
    text = existing
    if text and not _line_end(text):
        text += newline
    if text.strip():
        text += newline
    text += f"[{profile}]{newline}"
    text += "".join(f"{key} = {value}{newline}" for key, value in values.items())
    return text


def _check_result(
    before: configparser.RawConfigParser,
    rendered: str,
    profile: str,
    values: Mapping[str, str],
    origin: str,
) -> None:
    """Re-read the result as botocore would: only ``values`` in ``[profile]`` may differ.

    A layout this module misreads must never reach the disk: it is refused instead.
    """
    expected = {name: dict(before.items(name)) for name in before.sections()}
    expected[profile] = {**expected.get(profile, before.defaults()), **values}
    try:
        after = _parse(_split_lines(rendered), origin)
    except MalformedCredentialsFileError:
        after = None
    if after is None or {name: dict(after.items(name)) for name in after.sections()} != expected:
        raise MalformedCredentialsFileError(
            f"{origin} is laid out so that writing [{profile}] would change how other lines "
            "read; it was left untouched. Edit that profile by hand, or use another file."
        )
