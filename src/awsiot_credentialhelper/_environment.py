"""Every environment variable this package reads, in one place; read when called, not at import."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["HTTPS_PROXY", "NO_PROXY", "get"]

#: Proxy for HTTPS connections (``http://[user:password@]host:port``); ``https_proxy`` also works.
HTTPS_PROXY = "HTTPS_PROXY"
#: Comma-separated hosts, domains and networks that bypass the proxy; ``no_proxy`` also works.
NO_PROXY = "NO_PROXY"
#: The region most AWS SDKs and the AWS CLI v2 read before ``AWS_DEFAULT_REGION`` (botocore reads
#: only that one): ``get_session()`` uses it when neither the caller nor the endpoint names one.
AWS_REGION = "AWS_REGION"


def get(name: str) -> Optional[str]:
    """The variable's value, trying the lower-case spelling too (curl's convention for proxies)."""
    value = os.environ.get(name)
    if value is None:
        value = os.environ.get(name.lower())
    return value or None


# --- The awsiot-credentialhelper command line (flag > variable > --profile key) -------------

#: ``--endpoint``: the Credential Provider endpoint, ``host[:port]``.
CLI_ENDPOINT = "AWSIOT_CREDENTIAL_ENDPOINT"
#: ``--role-alias``: the role alias whose credentials to fetch.
CLI_ROLE_ALIAS = "AWSIOT_CREDENTIAL_ROLE_ALIAS"
#: ``--thing-name``: sent as ``x-amzn-iot-thingname``.
CLI_THING_NAME = "AWSIOT_CREDENTIAL_THING_NAME"
#: ``--certificate``: a path, or the PEM text itself.
CLI_CERTIFICATE = "AWSIOT_CREDENTIAL_CERTIFICATE"
#: ``--private-key``: a path, the PEM text itself (secret: only here, never on a command line),
#: or a ``pkcs11:`` URI (RFC 7512).
CLI_PRIVATE_KEY = "AWSIOT_CREDENTIAL_PRIVATE_KEY"
#: Password of an encrypted private key (secret).
CLI_PRIVATE_KEY_PASSWORD = "AWSIOT_CREDENTIAL_PRIVATE_KEY_PASSWORD"  # noqa: S105 - a name
#: ``--private-key-password-file``: a 0600 file holding that password.
CLI_PRIVATE_KEY_PASSWORD_FILE = "AWSIOT_CREDENTIAL_PRIVATE_KEY_PASSWORD_FILE"  # noqa: S105
#: ``--ca``: trusted CA(s) for the server, a path or PEM text; default the system store.
CLI_CA = "AWSIOT_CREDENTIAL_CA"
#: ``--region``: the AWS region, for endpoints whose host name does not name one.
CLI_REGION = "AWSIOT_CREDENTIAL_REGION"
#: ``--no-verify-peer`` when ``1``/``true``/``yes``: do not verify the server (local tests only).
CLI_NO_VERIFY_PEER = "AWSIOT_CREDENTIAL_NO_VERIFY_PEER"
#: ``--timeout``: total seconds one fetch may take, retries included.
CLI_TIMEOUT = "AWSIOT_CREDENTIAL_TIMEOUT"
#: ``--proxy``: ``http://[user:password@]host:port`` of an HTTP proxy (else ``HTTPS_PROXY``).
CLI_PROXY = "AWSIOT_CREDENTIAL_PROXY"
#: ``--pkcs11-lib``: path of the PKCS#11 module (``.so``).
CLI_PKCS11_LIB = "AWSIOT_CREDENTIAL_PKCS11_LIB"
#: ``--slot-id``: the PKCS#11 slot.
CLI_PKCS11_SLOT_ID = "AWSIOT_CREDENTIAL_PKCS11_SLOT_ID"
#: ``--token-label``: the PKCS#11 token label.
CLI_PKCS11_TOKEN_LABEL = "AWSIOT_CREDENTIAL_PKCS11_TOKEN_LABEL"  # noqa: S105 - a name
#: ``--key-label``: the PKCS#11 private key label.
CLI_PKCS11_KEY_LABEL = "AWSIOT_CREDENTIAL_PKCS11_KEY_LABEL"
#: The PKCS#11 user PIN (secret; there is deliberately no flag for it).
CLI_PKCS11_PIN = "AWSIOT_CREDENTIAL_PKCS11_PIN"
#: ``--pin-file``: a 0600 file holding the PKCS#11 user PIN.
CLI_PKCS11_PIN_FILE = "AWSIOT_CREDENTIAL_PKCS11_PIN_FILE"
#: ``--profile``: the profile of ``~/.aws/config`` whose ``iot_*`` keys to read.
CLI_PROFILE = "AWSIOT_CREDENTIAL_PROFILE"
#: Directory of the ``credential-process`` cache (default ``$XDG_CACHE_HOME`` or ``~/.cache``,
#: then ``awsiot-credentialhelper``).
CLI_CACHE_DIR = "AWSIOT_CREDENTIAL_CACHE_DIR"
#: ``--no-cache`` when ``1``/``true``/``yes``.
CLI_NO_CACHE = "AWSIOT_CREDENTIAL_NO_CACHE"
#: The AWS shared config file (default ``~/.aws/config``), as the AWS CLI reads it.
AWS_CONFIG_FILE = "AWS_CONFIG_FILE"
#: The AWS shared credentials file (default ``~/.aws/credentials``), written by ``update``.
AWS_SHARED_CREDENTIALS_FILE = "AWS_SHARED_CREDENTIALS_FILE"
#: The XDG base directory for caches.
XDG_CACHE_HOME = "XDG_CACHE_HOME"
#: The XDG base directory for runtime files (the ``serve`` token file goes there).
XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR"

__all__ += [
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CLI_CA",
    "CLI_CACHE_DIR",
    "CLI_CERTIFICATE",
    "CLI_ENDPOINT",
    "CLI_NO_CACHE",
    "CLI_NO_VERIFY_PEER",
    "CLI_PKCS11_KEY_LABEL",
    "CLI_PKCS11_LIB",
    "CLI_PKCS11_PIN",
    "CLI_PKCS11_PIN_FILE",
    "CLI_PKCS11_SLOT_ID",
    "CLI_PKCS11_TOKEN_LABEL",
    "CLI_PRIVATE_KEY",
    "CLI_PRIVATE_KEY_PASSWORD",
    "CLI_PRIVATE_KEY_PASSWORD_FILE",
    "CLI_PROFILE",
    "CLI_PROXY",
    "CLI_REGION",
    "CLI_ROLE_ALIAS",
    "CLI_THING_NAME",
    "CLI_TIMEOUT",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
]
