"""Exit codes, and the one place that turns an exception into a code and a line on stderr."""

from __future__ import annotations

import sys

from ..exceptions import (
    ConfigurationError,
    CredentialHelperError,
    NetworkError,
)

__all__ = [
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_PROVIDER",
    "EXIT_USAGE",
    "exit_code_for",
    "report",
]

#: Success.
EXIT_OK = 0
#: The Credential Provider refused (or answered something unusable): the message says why.
EXIT_PROVIDER = 1
#: Bad flags, settings or files: nothing was sent to the network (argparse also exits 2).
EXIT_USAGE = 2
#: The endpoint could not be reached, or the TLS handshake failed.
EXIT_NETWORK = 3

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  the Credential Provider refused (the reason is on stderr)
  2  usage or configuration error (flags, environment, profile, files)
  3  network error (DNS, connect, TLS handshake, timeout)
"""


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for one of our errors."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, NetworkError):
        return EXIT_NETWORK
    return EXIT_PROVIDER


def report(error: CredentialHelperError) -> int:
    """Print the error's own message (which never holds a secret) and return its exit code."""
    sys.stderr.write(f"awsiot-credentialhelper: error: {error}\n")
    return exit_code_for(error)
