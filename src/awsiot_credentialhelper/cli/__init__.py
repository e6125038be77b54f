"""The ``awsiot-credentialhelper`` command: parse, dispatch, and map errors to exit codes.

Each subcommand lives in its own module with ``configure(parser)`` and ``run(args) -> int``.
Only the chosen subcommand's module is imported, so ``credential-process`` starts fast.
"""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

from .._version import __version__
from ._errors import EXIT_CODES_HELP, EXIT_PROVIDER, EXIT_USAGE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, Optional

__all__ = ["main"]

#: name -> (module, one-line help)
COMMANDS = {
    "credential-process": (
        "._credential_process",
        "print credentials for the AWS CLI/SDK `credential_process` setting (cached)",
    ),
    "serve": (
        "._serve",
        "serve credentials to SDKs on this device (container-credentials or IMDSv2 protocol)",
    ),
    "update": (
        "._update",
        "write credentials into a profile of ~/.aws/credentials and keep them fresh",
    ),
    "check": ("._check", "diagnose the device's setup step by step and say what to fix"),
    "wait": ("._wait", "wait until a running `serve` holds credentials (for boot scripts)"),
    "emulator": (
        "",
        "run a local IoT Credential Provider emulator (needs the [emulator] extra)",
    ),
}

DESCRIPTION = """\
Trade an AWS IoT X.509 certificate for temporary AWS credentials through the AWS IoT Core
Credential Provider, and hand them to the AWS CLI and SDKs. Run
`awsiot-credentialhelper COMMAND --help` for each command's options and examples."""

EXAMPLES = """\
examples:
  $ awsiot-credentialhelper check --profile device
  $ awsiot-credentialhelper credential-process --profile device
  $ awsiot-credentialhelper serve --profile device --port 0
  $ awsiot-credentialhelper update --profile device --once

"""

_EMULATOR_HINT = (
    "awsiot-credentialhelper: error: the emulator needs extra packages: "
    "pip install 'awsiot-credentialhelper[emulator]'\n"
)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s options are declared (the others are not needed)."""
    import argparse  # noqa: PLC0415 - credential-process's cached path may not need it

    parser = argparse.ArgumentParser(
        prog="awsiot-credentialhelper",
        description=DESCRIPTION,
        epilog=EXAMPLES + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, text) in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=text,
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == command and module:
            importlib.import_module(module, __name__).configure(sub)
            sub.epilog = (sub.epilog or "") + "\n" + EXIT_CODES_HELP
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; return its exit code (0 ok, 1 refused, 2 usage/config, 3 network)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulator"]:
        return _emulator(arguments[1:])
    args = _fast_arguments(arguments)
    if args is None:
        command = next((arg for arg in arguments if not arg.startswith("-")), None)
        parser = build_parser(command if command in COMMANDS else None)
        try:
            args = parser.parse_args(arguments)
        except SystemExit as exit_request:  # argparse: --help, --version, or a usage error
            code = exit_request.code
            return code if isinstance(code, int) else EXIT_USAGE
    from ..exceptions import CredentialHelperError  # noqa: PLC0415
    from ._errors import report  # noqa: PLC0415

    try:
        return int(args.run(args))
    except CredentialHelperError as error:
        return report(error)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a library error that escaped translation, or a bug
        return _unexpected(error, getattr(args, "verbose", 0))


def _unexpected(error: Exception, verbosity: int) -> int:
    """One line on stderr instead of a traceback (``-vv`` adds it); exit code 1."""
    sys.stderr.write(
        f"awsiot-credentialhelper: error: unexpected {type(error).__name__}: {error} "
        "(run with -vv for details)\n"
    )
    if verbosity >= 2:
        import traceback  # noqa: PLC0415

        traceback.print_exception(type(error), error, error.__traceback__)
    return EXIT_PROVIDER


def _fast_arguments(arguments: list[str]) -> Any:
    """``credential-process`` with plain flags, parsed without building argparse; else None."""
    if arguments[:1] != ["credential-process"]:
        return None
    from ._credential_process import fast_arguments  # noqa: PLC0415

    values = fast_arguments(arguments[1:])
    return None if values is None else SimpleNamespace(command=arguments[0], **values)


#: What the ``[emulator]`` extra installs (import names).
EMULATOR_EXTRA = ("moto", "OpenSSL", "flask", "flask_cors")


def _emulator(arguments: list[str]) -> int:
    """Hand over to the emulator's own command line, if its extra is installed (else exit 2)."""
    import importlib.util  # noqa: PLC0415

    for name in EMULATOR_EXTRA:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: a module without a spec
            found = False
        if not found:
            sys.stderr.write(_EMULATOR_HINT)
            return EXIT_USAGE
    emulator_cli = importlib.import_module("..emulator._cli", __name__)
    return int(emulator_cli.main(arguments))
