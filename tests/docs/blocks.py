"""Read the fenced code blocks of a documentation page, so that tests run what users copy."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"^(<!-- not run: [^\n]* -->\n)?```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(page: str, language: str, *, with_unrun: bool = False) -> list[str]:
    """The bodies of ``page``'s blocks in ``language``, in order; blocks marked
    ``<!-- not run: ... -->`` only with ``with_unrun``."""
    text = (DOCS / page).read_text()
    return [
        body
        for marker, lang, body in _BLOCK.findall(text)
        if lang == language and (with_unrun or not marker)
    ]
