"""mkdocs hook: put each command's ``--help`` on its page, as the installed version prints it.

A page asks with a line ``<!-- awsiot-credentialhelper-help: COMMAND -->``; the build runs
``python -m awsiot_credentialhelper.cli COMMAND --help`` (80 columns) and puts its output there,
so the documented flags cannot drift from the real ones. A command that fails fails the build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

_MARKER = re.compile(r"^<!-- awsiot-credentialhelper-help: ([a-z-]+) -->$", re.MULTILINE)


def _help(command: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own module, a fixed argument list
        [sys.executable, "-m", "awsiot_credentialhelper.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    text = done.stdout.replace("__main__.py", "awsiot-credentialhelper")
    return f"```text\n{text.rstrip()}\n```"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace every help marker of a page with the command's help."""
    return _MARKER.sub(lambda match: _help(match.group(1)), markdown)
