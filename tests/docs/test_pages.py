"""The documentation site's rules: every code block is run by a test or says why not, every
error class and ``check`` step has its troubleshooting entry, and the reference lists the API."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import awsiot_credentialhelper
from awsiot_credentialhelper import exceptions
from awsiot_credentialhelper.exceptions import DOCS_URL, CredentialHelperError, anchor_of

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

_FENCE = re.compile(r"^\s*(```|~~~)")  # indented ones too: a block in a list item
_NOT_RUN = re.compile(r"^\s*<!-- not run: \S.* -->$")
_RUN_BY = re.compile(r"^<!-- run by: (\S+) -->$", re.MULTILINE)
_HEADING_ANCHOR = re.compile(r"^#{2,4} .*\{#([a-z0-9-]+)\}$", re.MULTILINE)


def unmarked_blocks(text: str) -> list[int]:
    """Line numbers (1-based) of fenced blocks not directly preceded by a not-run line."""
    lines = text.splitlines()
    found, inside = [], False
    for number, line in enumerate(lines, start=1):
        if not _FENCE.match(line):
            continue
        if inside:
            inside = False
            continue
        inside = True
        previous = lines[number - 2] if number > 1 else ""
        if not _NOT_RUN.match(previous):
            found.append(number)
    return found


def run_by(text: str) -> list[str]:
    """The tests a page declares at its top as running its blocks."""
    head = "\n".join(text.splitlines()[:5])
    return _RUN_BY.findall(head)


def error_classes() -> list[type[CredentialHelperError]]:
    """Every class of our error tree, including subclasses defined outside ``exceptions``."""
    for module in pkgutil.walk_packages(
        awsiot_credentialhelper.__path__, "awsiot_credentialhelper."
    ):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)  # so that classes defined anywhere are found
        except ModuleNotFoundError as missing:  # an optional extra that is not installed
            if (missing.name or "").startswith("awsiot_credentialhelper"):
                raise
    found: list[type[CredentialHelperError]] = []
    pending: list[type[CredentialHelperError]] = [CredentialHelperError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("awsiot_credentialhelper") and cls not in found:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def check_step_names() -> set[str]:
    """The names of every step ``check`` can report, from its source."""
    source = (ROOT / "src/awsiot_credentialhelper/cli/_check.py").read_text()
    return set(re.findall(r'Step\(\s*"(\w+)"', source))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_every_code_block_is_run_or_says_why_not(page: Path) -> None:
    text = page.read_text()
    unmarked = unmarked_blocks(text)
    tests = run_by(text)
    if not unmarked:
        return
    assert tests, (
        f"{page.name}: the blocks at lines {unmarked} are neither marked "
        "'<!-- not run: <reason> -->' nor run: declare '<!-- run by: tests/... -->' at the top"
    )
    for test in tests:
        test_file = ROOT / test
        assert test_file.is_file(), f"{page.name}: {test} does not exist"
        assert page.name in test_file.read_text(), f"{test} does not read {page.name}"


def test_the_block_checker_finds_unmarked_blocks() -> None:
    text = "# T\n\n<!-- not run: needs AWS -->\n```sh\nx\n```\n\n```python\ny\n```\n"
    assert unmarked_blocks(text) == [8]
    assert unmarked_blocks("- item:\n\n    ```sh\n    x\n    ```\n") == [3]
    assert run_by("<!-- run by: tests/docs/test_x.py -->\n# T\n") == ["tests/docs/test_x.py"]


def test_every_error_class_has_a_troubleshooting_entry() -> None:
    anchors = set(_HEADING_ANCHOR.findall((DOCS / "troubleshooting.md").read_text()))
    classes = error_classes()
    assert len(classes) >= len(exceptions.__all__)
    missing = sorted(c.__name__ for c in classes if c.anchor not in anchors)
    assert not missing, f"docs/troubleshooting.md has no {{#anchor}} entry for {missing}"


def test_every_check_step_has_a_troubleshooting_entry() -> None:
    anchors = set(_HEADING_ANCHOR.findall((DOCS / "troubleshooting.md").read_text()))
    names = check_step_names()
    assert {"settings", "request", "tls"} <= names
    missing = sorted(n for n in names if "check-" + n.replace("_", "-") not in anchors)
    assert not missing, f"docs/troubleshooting.md has no entry for the check steps {missing}"


def test_messages_link_to_their_entry_on_the_site() -> None:
    site_url = re.search(r"^site_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert site_url is not None
    assert site_url.group(1).rstrip("/") == DOCS_URL
    documentation = re.search(
        r'^Documentation = "(\S+)"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    assert documentation is not None
    assert documentation.group(1).rstrip("/") == DOCS_URL
    error = exceptions.RoleAliasNotFoundError(
        status_code=404, message="Role alias does not exist", endpoint="h", role_alias="a"
    )
    assert str(error).endswith(f" see: {DOCS_URL}/troubleshooting#role-alias-not-found")
    assert repr(exceptions.ConfigurationError("bad")) == "ConfigurationError('bad')"


def test_a_quoted_error_leaves_one_link_the_outer_ones() -> None:
    inner = exceptions.CredentialFileError("The PIN file does not exist.")
    outer = exceptions.Pkcs11Error(f"{inner} (pin-source of the PKCS#11 URI)")
    assert str(outer) == (
        "The PIN file does not exist. (pin-source of the PKCS#11 URI) "
        f"see: {DOCS_URL}/troubleshooting#pkcs11"
    )


@pytest.mark.parametrize(
    ("name", "anchor"),
    [
        ("AccessDeniedError", "access-denied"),
        ("TlsHandshakeError", "tls-handshake"),
        ("Pkcs11Error", "pkcs11"),
        ("CredentialHelperError", "credential-helper"),
    ],
)
def test_anchor_of(name: str, anchor: str) -> None:
    assert anchor_of(name) == anchor


def test_the_reference_documents_every_public_name() -> None:
    reference = (DOCS / "reference.md").read_text()
    documented = set(re.findall(r"^::: awsiot_credentialhelper\.(?:\w+\.)*(\w+)$", reference, re.M))
    public = {name for name in awsiot_credentialhelper.__all__ if not name.startswith("_")}
    assert public - documented == set(), "add these to docs/reference.md"
    assert "exceptions" in documented


def test_the_site_navigation_names_every_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", config, re.MULTILINE))
    pages = {str(p.relative_to(DOCS)) for p in PAGES}
    assert pages == listed
