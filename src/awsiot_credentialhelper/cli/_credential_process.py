"""``credential-process``: print botocore's credential_process JSON, from the cache when fresh.

stdout carries the JSON document and nothing else; every message goes to stderr. The cached
path imports neither awscrt nor botocore nor cryptography, so it costs about one Python start.
"""

from __future__ import annotations

import os
import sys
import time

from .._arguments import DEFAULT_TIMEOUT
from . import _environment as env
from ._cache import LOCK_GRACE, CacheEntry, ProcessCache
from ._options import (
    TRUE,
    Settings,
    add_common_options,
    fast_parse,
    require,
    resolve,
    setup_logging,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, Optional

__all__ = ["configure", "fast_arguments", "run"]

_SWITCHES = {"--no-cache": "no_cache"}

DESCRIPTION = """\
Print temporary AWS credentials as the JSON document that the AWS CLI and SDKs read from a
`credential_process` command. Credentials are cached (0600 files under
$XDG_CACHE_HOME/awsiot-credentialhelper or ~/.cache/awsiot-credentialhelper) and served from
the cache while more than max(5 min, min(1/4 of their lifetime, 1 h)) is left, judged by the
server's clock; several processes share one fetch."""

EXAMPLES = """\
examples:
  # ~/.aws/config: one profile holds the credential_process line and its settings
  [profile device]
  credential_process = awsiot-credentialhelper credential-process --profile device
  iot_endpoint = c1example.credentials.iot.eu-west-1.amazonaws.com
  iot_role_alias = device-role-alias
  iot_thing_name = sensor-1
  iot_certificate = /etc/iot/device.pem.crt
  iot_private_key = /etc/iot/device.pem.key
  iot_ca = /etc/iot/AmazonRootCA1.pem

  $ aws sts get-caller-identity --profile device

  # the same without a profile
  $ awsiot-credentialhelper credential-process \\
      --endpoint c1example.credentials.iot.eu-west-1.amazonaws.com \\
      --role-alias device-role-alias --certificate device.pem.crt --private-key device.pem.key

  # a key in an HSM (PIN from a file; never on the command line)
  $ awsiot-credentialhelper credential-process --profile device --user-pin-file /etc/iot/pin \\
      --private-key 'pkcs11:token=iot;object=device-key?module-path=/usr/lib/libsofthsm2.so'
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare this command's options on its subparser."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    add_common_options(parser)
    parser.add_argument(
        *_SWITCHES,
        action="store_true",
        help=f"always fetch; neither read nor write the cache [${env.CLI_NO_CACHE}]",
    )
    parser.set_defaults(run=run)


def fast_arguments(arguments: Sequence[str]) -> Optional[dict[str, Any]]:
    """The parsed arguments without building argparse, when they allow it (see ``fast_parse``)."""
    values = fast_parse(arguments, _SWITCHES)
    if values is not None:
        values["run"] = run
    return values


def run(args: Any) -> int:
    """Print the document; raise one of our errors on failure (``main`` maps it to an exit code)."""
    if args.verbose:
        setup_logging(args.verbose)
    settings = resolve(args)
    require(settings)
    no_cache = args.no_cache or os.environ.get(env.CLI_NO_CACHE, "").strip().lower() in TRUE
    cache = None if no_cache else ProcessCache.open(settings)
    if cache is None:
        _emit(_fetch(settings, args.verbose).document)
        return 0
    entry = cache.load()
    if entry is None or not entry.fresh(time.time()):
        timeout = (settings.timeout or DEFAULT_TIMEOUT) + LOCK_GRACE
        with cache.lock(timeout):
            entry = cache.load()  # another process may have fetched while we waited
            if entry is None or not entry.fresh(time.time()):
                entry = _fetch(settings, args.verbose)
                cache.store(entry)
    elif args.verbose:
        _log_cache_hit(cache.path, entry)
    _emit(entry.document)
    return 0


def _fetch(settings: Settings, verbosity: int) -> CacheEntry:
    """One fetch through the library (this is where awscrt gets imported)."""
    from ._options import build_provider  # noqa: PLC0415

    setup_logging(verbosity)
    with build_provider(settings) as provider:
        credentials = provider.fetch()
    return CacheEntry.from_credentials(credentials)


def _log_cache_hit(path: str, entry: CacheEntry) -> None:
    import logging  # noqa: PLC0415 - only with -v

    minutes = (entry.expiration - (time.time() + entry.clock_skew)) / 60
    logging.getLogger(__name__).info("From the cache %s: %.0f min left.", path, minutes)


def _emit(document: str) -> None:
    sys.stdout.write(document + "\n")
    sys.stdout.flush()
