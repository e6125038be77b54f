"""Every environment variable the command line reads, in one place; read when called, not at import.

A setting's variable is ``AWSIOT_CREDENTIAL_`` and the library's argument name in capitals
(``private_key_label`` -> ``AWSIOT_CREDENTIAL_PRIVATE_KEY_LABEL``), its flag ``--private-key-label``
and its profile key ``iot_private_key_label``: README.md has the table. Older spellings are
still read after the new one (:data:`ALIASES`). The library's own variables (``HTTPS_PROXY``,
``NO_PROXY``, ``AWS_REGION``) are in ``awsiot_credentialhelper._environment``.
"""

from __future__ import annotations

__all__ = [
    "ALIASES",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CLI_CA",
    "CLI_CACHE_DIR",
    "CLI_CERTIFICATE",
    "CLI_ENDPOINT",
    "CLI_MAX_ATTEMPTS",
    "CLI_NO_CACHE",
    "CLI_NO_VERIFY_PEER",
    "CLI_PKCS11_LIB",
    "CLI_PRIVATE_KEY",
    "CLI_PRIVATE_KEY_LABEL",
    "CLI_PRIVATE_KEY_PASSWORD",
    "CLI_PRIVATE_KEY_PASSWORD_FILE",
    "CLI_PROFILE",
    "CLI_PROXY",
    "CLI_REGION",
    "CLI_ROLE_ALIAS",
    "CLI_SLOT_ID",
    "CLI_THING_NAME",
    "CLI_TIMEOUT",
    "CLI_TOKEN_LABEL",
    "CLI_USER_PIN",
    "CLI_USER_PIN_FILE",
    "CONTAINER_CREDENTIALS_FULL_URI",
    "EC2_METADATA_SERVICE_ENDPOINT",
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
]

_PREFIX = "AWSIOT_CREDENTIAL_"

#: ``--endpoint``: the Credential Provider endpoint, ``host[:port]``.
CLI_ENDPOINT = _PREFIX + "ENDPOINT"
#: ``--role-alias``: the role alias whose credentials to fetch.
CLI_ROLE_ALIAS = _PREFIX + "ROLE_ALIAS"
#: ``--thing-name``: sent as ``x-amzn-iot-thingname``.
CLI_THING_NAME = _PREFIX + "THING_NAME"
#: ``--certificate``: a path, or the PEM text itself.
CLI_CERTIFICATE = _PREFIX + "CERTIFICATE"
#: ``--private-key``: a path, the PEM text itself (secret: only here, never on a command line),
#: or a ``pkcs11:`` URI (RFC 7512).
CLI_PRIVATE_KEY = _PREFIX + "PRIVATE_KEY"
#: Password of an encrypted private key (secret; there is deliberately no flag for it).
CLI_PRIVATE_KEY_PASSWORD = _PREFIX + "PRIVATE_KEY_PASSWORD"
#: ``--private-key-password-file``: a 0600 file holding that password.
CLI_PRIVATE_KEY_PASSWORD_FILE = _PREFIX + "PRIVATE_KEY_PASSWORD_FILE"
#: ``--ca``: trusted CA(s) for the server, a path or PEM text; default the system store.
CLI_CA = _PREFIX + "CA"
#: ``--region``: the AWS region, for endpoints whose host name does not name one.
CLI_REGION = _PREFIX + "REGION"
#: ``--no-verify-peer`` when ``1``/``true``/``yes``: do not verify the server (local tests only).
CLI_NO_VERIFY_PEER = _PREFIX + "NO_VERIFY_PEER"
#: ``--timeout``: total seconds one fetch may take, retries included.
CLI_TIMEOUT = _PREFIX + "TIMEOUT"
#: ``--max-attempts``: attempts per fetch (network errors, 429 and 5xx are retried).
CLI_MAX_ATTEMPTS = _PREFIX + "MAX_ATTEMPTS"
#: ``--proxy``: ``http://[user:password@]host:port`` of an HTTP proxy (else ``HTTPS_PROXY``).
CLI_PROXY = _PREFIX + "PROXY"
#: ``--pkcs11-lib``: path of the PKCS#11 module (``.so``).
CLI_PKCS11_LIB = _PREFIX + "PKCS11_LIB"
#: ``--slot-id``: the PKCS#11 slot.
CLI_SLOT_ID = _PREFIX + "SLOT_ID"
#: ``--token-label``: the PKCS#11 token label.
CLI_TOKEN_LABEL = _PREFIX + "TOKEN_LABEL"
#: ``--private-key-label``: the PKCS#11 private key label.
CLI_PRIVATE_KEY_LABEL = _PREFIX + "PRIVATE_KEY_LABEL"
#: The PKCS#11 user PIN (secret; there is deliberately no flag for it).
CLI_USER_PIN = _PREFIX + "USER_PIN"
#: ``--user-pin-file``: a 0600 file holding the PKCS#11 user PIN.
CLI_USER_PIN_FILE = _PREFIX + "USER_PIN_FILE"
#: ``--profile``: the profile of ``~/.aws/config`` whose ``iot_*`` keys to read.
CLI_PROFILE = _PREFIX + "PROFILE"
#: Directory of the ``credential-process`` cache (default ``$XDG_CACHE_HOME`` or ``~/.cache``,
#: then ``awsiot-credentialhelper``).
CLI_CACHE_DIR = _PREFIX + "CACHE_DIR"
#: ``--no-cache`` when ``1``/``true``/``yes``.
CLI_NO_CACHE = _PREFIX + "NO_CACHE"

#: Spellings read after the name itself, oldest last: 2.0's PKCS#11 variables said ``PKCS11_``.
ALIASES: dict[str, tuple[str, ...]] = {
    CLI_SLOT_ID: (_PREFIX + "PKCS11_SLOT_ID",),
    CLI_TOKEN_LABEL: (_PREFIX + "PKCS11_TOKEN_LABEL",),
    CLI_PRIVATE_KEY_LABEL: (_PREFIX + "PKCS11_KEY_LABEL",),
    CLI_USER_PIN: (_PREFIX + "PKCS11_PIN",),
    CLI_USER_PIN_FILE: (_PREFIX + "PKCS11_PIN_FILE",),
}

#: The AWS shared config file (default ``~/.aws/config``), as the AWS CLI reads it.
AWS_CONFIG_FILE = "AWS_CONFIG_FILE"
#: The AWS shared credentials file (default ``~/.aws/credentials``), written by ``update``.
AWS_SHARED_CREDENTIALS_FILE = "AWS_SHARED_CREDENTIALS_FILE"
#: The XDG base directory for caches.
XDG_CACHE_HOME = "XDG_CACHE_HOME"
#: The XDG base directory for runtime files (the ``serve`` token file goes there).
XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR"
#: systemd's notify socket (``Type=notify``): ``serve`` sends ``READY=1`` there.
NOTIFY_SOCKET = "NOTIFY_SOCKET"
#: systemd's watchdog period in microseconds (``WatchdogSec=``), and the process it is for.
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
#: The container-credentials URL that ``serve`` prints; ``wait`` uses it when given no ``--url``.
CONTAINER_CREDENTIALS_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#: The IMDS endpoint that ``serve --mode imds`` prints; ``wait``'s next choice.
EC2_METADATA_SERVICE_ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
