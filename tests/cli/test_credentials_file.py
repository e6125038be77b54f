"""The credentials-file renderer: only the target profile's keys change, byte for byte."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
from botocore.configloader import raw_config_parse
from hypothesis import given, settings
from hypothesis import strategies as st

from awsiot_credentialhelper.cli._credentials_file import (
    CREDENTIAL_KEYS,
    MalformedCredentialsFileError,
    credential_values,
    render_credentials_file,
)

VALUES = credential_values("ASIANEW", "new-secret", "new-token", "2030-01-01T00:00:00Z")

EXISTING = """\
# Managed by hand; keep this comment.
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key=default-secret
; a comment between keys
region = eu-west-1

[device]
AWS_ACCESS_KEY_ID   =   ASIAOLD
aws_secret_access_key: old-secret
aws_session_token = old-token
    continued-old-token
output = json
# trailing comment of [device]

[other]
aws_access_key_id = AKIAOTHER
"""


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True)
    parser.read_string(text)
    return parser


def test_only_the_target_keys_change_in_place() -> None:
    rendered = render_credentials_file(EXISTING, "device", VALUES)
    assert rendered == EXISTING.replace(
        "AWS_ACCESS_KEY_ID   =   ASIAOLD", "AWS_ACCESS_KEY_ID   =   ASIANEW"
    ).replace("aws_secret_access_key: old-secret", "aws_secret_access_key: new-secret").replace(
        "aws_session_token = old-token\n    continued-old-token\noutput = json\n",
        "aws_session_token = new-token\noutput = json\naws_expiration = 2030-01-01T00:00:00Z\n",
    )
    parsed = _parse(rendered)
    assert dict(parsed.items("device")) == {**VALUES, "output": "json"}
    assert dict(parsed.items("other")) == {"aws_access_key_id": "AKIAOTHER"}


def test_a_missing_profile_is_appended_and_the_rest_kept() -> None:
    rendered = render_credentials_file(EXISTING, "new", VALUES)
    assert rendered.startswith(EXISTING)
    assert rendered[len(EXISTING) :] == "\n[new]\n" + "".join(
        f"{key} = {VALUES[key]}\n" for key in CREDENTIAL_KEYS
    )


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param("", "[default]\n", id="empty"),
        pytest.param("[default]", "[default]\n", id="header-only-no-newline"),
        pytest.param("[a]\nx = 1", "[a]\nx = 1\n\n[default]\n", id="no-final-newline"),
    ],
)
def test_edge_layouts(existing: str, expected: str) -> None:
    rendered = render_credentials_file(existing, "default", VALUES)
    keys = "".join(f"{key} = {VALUES[key]}\n" for key in CREDENTIAL_KEYS)
    assert rendered == expected + keys


def test_crlf_files_stay_crlf() -> None:
    existing = "[other]\r\nx = 1\r\n[default]\r\naws_access_key_id = OLD\r\n"
    rendered = render_credentials_file(existing, "default", VALUES)
    assert rendered.startswith("[other]\r\nx = 1\r\n[default]\r\naws_access_key_id = ASIANEW\r\n")
    assert "\n" not in rendered.replace("\r\n", "")


@pytest.mark.parametrize(
    "existing",
    [
        pytest.param("aws_access_key_id = outside\n", id="key-before-any-section"),
        pytest.param("[a]\nx = 1\n[a]\ny = 2\n", id="duplicate-section"),
        pytest.param("[a]\nx = 1\nx = 2\n", id="duplicate-key"),
        pytest.param("[a]\njust words\n", id="not-key-value"),
    ],
)
def test_a_malformed_file_is_refused_without_quoting_it(existing: str) -> None:
    with pytest.raises(MalformedCredentialsFileError, match="left untouched") as caught:
        render_credentials_file(existing + "[s]\nsecret = hunter2\n", "default", VALUES)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("profile", ["", " x", "a]b", "a\nb"])
def test_unusable_profile_names_are_refused(profile: str) -> None:
    with pytest.raises(MalformedCredentialsFileError):
        render_credentials_file("", profile, VALUES)


_NAME = st.text(alphabet="abcdefgh-_", min_size=1, max_size=6)
_VALUE = st.text(alphabet="abcXYZ019/+=_-. ", min_size=0, max_size=12).map(str.strip)
_SECTION = st.tuples(
    _NAME,
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["", "aws_access_key_id", "AWS_Session_Token"]), _VALUE),
            st.sampled_from(["# comment", "; note", ""]).map(lambda c: (None, c)),
        ),
        max_size=5,
    ),
)


def _render_file(sections: list[tuple[str, list[tuple[str | None, str]]]]) -> str:
    lines = []
    seen = set()
    for name, items in sections:
        if name in seen:
            continue
        seen.add(name)
        lines.append(f"[{name}]")
        keys = set()
        for index, (key, value) in enumerate(items):
            if key is None:
                lines.append(value)
                continue
            option = key or f"k{index}"
            if option.lower() in keys:
                continue
            keys.add(option.lower())
            lines.append(f"{option} = {value}")
    return "\n".join(lines) + ("\n" if lines else "")


@settings(max_examples=200, deadline=None)
@given(st.lists(_SECTION, max_size=4), _NAME)
def test_every_other_section_survives_byte_for_byte(
    sections: list[tuple[str, list[tuple[str | None, str]]]], target: str
) -> None:
    existing = _render_file(sections)
    rendered = render_credentials_file(existing, target, VALUES)
    before, after = _parse(existing), _parse(rendered)
    assert dict(after.items(target)).items() >= VALUES.items()
    for section in before.sections():
        if section != target:
            assert dict(after.items(section)) == dict(before.items(section))
    # Byte level: the text outside the target section is unchanged, in order.
    assert _outside(rendered, target) == _outside(existing, target)


def _outside(text: str, target: str) -> list[str]:
    kept, inside = [], False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{target}]"
        if not inside and line:
            kept.append(line)
    return kept


# --- hostile layouts: lines are what configparser reading the file makes of them --------------

_KEYS = "".join(f"{key} = {VALUES[key]}\n" for key in CREDENTIAL_KEYS)
_KEYS_CR = _KEYS.replace("\n", "\r")

#: Characters str.splitlines() breaks on but a file object does not (it splits on \n, \r and
#: \r\n only): configparser, and so botocore, sees them inside a line.
_NOT_LINE_BREAKS = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"]


def _layout_cases() -> list[Any]:
    cases = []
    for char in _NOT_LINE_BREAKS:
        name = f"U+{ord(char):04X}"
        existing = f"[device]\n# note{char}aws_access_key_id = OLD\nregion = x\n"
        cases.append(pytest.param(existing, existing + _KEYS, id=f"{name}-comment-then-key"))
        existing = f"[other]\nx = 1\n# note{char}[device]\n"
        cases.append(pytest.param(existing, existing + "\n[device]\n" + _KEYS, id=f"{name}-header"))
        existing = f"[other]\nx = a{char}b\n[device]\n"
        cases.append(pytest.param(existing, existing + _KEYS, id=f"{name}-in-a-value"))
    return [
        *cases,
        pytest.param(
            "[other]\rx = 1\r[device]\raws_access_key_id = OLD\r",
            "[other]\rx = 1\r[device]\raws_access_key_id = ASIANEW\r"
            + _KEYS_CR[_KEYS_CR.index("aws_secret") :],
            id="cr-only",
        ),
        pytest.param(
            "[other]\nx = a\rb = c\n[device]\n",
            "[other]\nx = a\rb = c\n[device]\n" + _KEYS,
            id="lone-cr-splits-a-line",
        ),
        pytest.param(
            "[device]\n\taws_access_key_id = OLD\nregion = x\n",
            "[device]\n\taws_access_key_id = ASIANEW\nregion = x\n"
            + _KEYS[_KEYS.index("aws_secret") :],
            id="tab-indented-key",
        ),
        pytest.param(
            "[device]\n  aws_session_token = OLD\n\t\t\tcontinued\n  region = x\n",
            "[device]\n  aws_session_token = new-token\n  region = x\n"
            "  aws_access_key_id = ASIANEW\n  aws_secret_access_key = new-secret\n"
            "  aws_expiration = 2030-01-01T00:00:00Z\n",
            id="indented-keys-with-continuation",
        ),
        pytest.param(
            "[device]\naws_session_token = OLD\n\n  more-of-it\nregion = x\n",
            "[device]\naws_session_token = new-token\n\nregion = x\n"
            "aws_access_key_id = ASIANEW\naws_secret_access_key = new-secret\n"
            "aws_expiration = 2030-01-01T00:00:00Z\n",
            id="continuation-after-a-blank-line",
        ),
        pytest.param(
            "[other]\nx = 1\n  [device]\n  aws_access_key_id = OLD\n",
            "[other]\nx = 1\n  [device]\n  aws_access_key_id = OLD\n\n[device]\n" + _KEYS,
            id="indented-header-is-part-of-a-value",
        ),
        pytest.param(
            "  [device]\n  # comment\n[next]\n",
            "  [device]\n" + _KEYS + "  # comment\n[next]\n",
            id="indented-header-without-keys",
        ),
        pytest.param(
            "[device]\n  [next]\nx = 1\n",
            "[device]\n"
            + "".join(f"  {line}\n" for line in _KEYS.splitlines())
            + "  [next]\nx = 1\n",
            id="next-header-indented-deeper",
        ),
        pytest.param(
            "[device] ; a note\naws_access_key_id = OLD\n",
            "[device] ; a note\n" + _KEYS,
            id="header-with-trailing-text",
        ),
        pytest.param(
            "[other]\nx = \x00\n[device]\naws_access_key_id=OLD   \n",
            "[other]\nx = \x00\n[device]\naws_access_key_id=ASIANEW\n"
            + _KEYS[_KEYS.index("aws_secret") :],
            id="nul-byte-and-trailing-spaces",
        ),
    ]


def _botocore_reads(text: str, directory: Path) -> dict[str, dict[str, Any]]:
    """The profiles botocore's credentials provider reads from a file holding ``text``."""
    path = directory / "credentials"
    path.write_bytes(text.encode("utf-8"))
    return raw_config_parse(str(path))


@pytest.mark.parametrize(("existing", "expected"), _layout_cases())
def test_layouts_botocore_reads_are_updated_in_place(
    existing: str, expected: str, tmp_path: Path
) -> None:
    before = _botocore_reads(existing, tmp_path)
    rendered = render_credentials_file(existing, "device", VALUES)
    assert rendered == expected
    after = _botocore_reads(rendered, tmp_path)
    assert after["device"] == {**before.get("device", {}), **VALUES}
    assert {name: profile for name, profile in after.items() if name != "device"} == {
        name: profile for name, profile in before.items() if name != "device"
    }


def test_the_defaults_section_is_refused_as_a_profile() -> None:
    """Keys in [DEFAULT] show up in every profile: writing there would change all of them."""
    with pytest.raises(MalformedCredentialsFileError, match="DEFAULT"):
        render_credentials_file("[other]\nx = 1\n", "DEFAULT", VALUES)
