"""The credentials-file renderer: only the target profile's keys change, byte for byte."""

from __future__ import annotations

import configparser

import pytest
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
