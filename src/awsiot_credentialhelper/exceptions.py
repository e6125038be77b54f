"""Every error this library raises, grouped by who must act to fix it.

Every class also inherits :class:`ValueError`, so code written for the 1.x module, which raised
bare ``ValueError`` for everything, keeps working unchanged. ``retryable`` says whether trying
again, unchanged, can help. Every message ends with ``see: <DOCS_URL>/troubleshooting#<anchor>``:
the entry of the documentation's troubleshooting page for that class (``anchor``), which users
find by the exact text they see.

The tree::

    CredentialHelperError (ValueError)
    ├── ConfigurationError                 the caller's settings or files; fix and retry
    │   ├── ConflictingOptionsError        two options that exclude each other, or neither given
    │   ├── InvalidEndpointError           not a Credential Provider endpoint, or no region for it
    │   ├── CredentialFileError            a file is missing or unreadable
    │   ├── MalformedCredentialsFileError  the CLI's credentials file cannot be parsed
    │   ├── InvalidPemError                not PEM, or PEM of the wrong kind
    │   ├── KeyMismatchError               the private key does not belong to the certificate
    │   ├── CertificateExpiredError        (no longer raised: an expired certificate is tried)
    │   ├── EncryptedKeyError              an encrypted private key cannot be decrypted
    │   └── Pkcs11Error                    the PKCS#11 module, token, PIN or key label
    ├── NetworkError                       reaching the endpoint failed (retryable)
    │   ├── ConnectError                   DNS, refused, unreachable, proxy
    │   ├── ConnectTimeoutError            no connection within the timeout
    │   ├── TlsHandshakeError              the TLS handshake failed (CA, client certificate)
    │   ├── ReadTimeoutError               the server did not answer within the timeout
    │   ├── ConnectionClosedError          the server closed the connection mid-response
    │   └── ResponseTooLargeError          the answer outgrew the size cap; not retried
    ├── ProviderError                      the Credential Provider answered with an error
    │   ├── CertificateRejectedError       403 Certificate is invalid on this endpoint
    │   ├── InvalidThingNameError          403 Invalid thing name passed
    │   ├── AccessDeniedError              403 Access Denied
    │   ├── RoleAliasNotFoundError         404 Role alias does not exist
    │   ├── RoleAssumptionError            400 Unable to assume the role...
    │   ├── CredentialDurationError        400 ...exceeds the MaxSessionDuration...
    │   ├── ThrottledError                 429 (retryable)
    │   ├── ServiceUnavailableError        5xx (retryable)
    │   └── UnexpectedResponseError        any other status, or a body we cannot read
    ├── ImplausibleCredentialsError        the answer's times cannot be right (retryable)
    │   └── ExpiredCredentialsError        credentials were already expired when they arrived
    └── WrongEventLoopError (RuntimeError) an async provider awaited from another event loop
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Optional

__all__ = [
    "AccessDeniedError",
    "CertificateExpiredError",
    "CertificateRejectedError",
    "ConfigurationError",
    "ConflictingOptionsError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "CredentialDurationError",
    "CredentialFileError",
    "CredentialHelperError",
    "EncryptedKeyError",
    "ExpiredCredentialsError",
    "ImplausibleCredentialsError",
    "InvalidEndpointError",
    "InvalidPemError",
    "InvalidThingNameError",
    "KeyMismatchError",
    "MalformedCredentialsFileError",
    "NetworkError",
    "Pkcs11Error",
    "ProviderError",
    "ReadTimeoutError",
    "ResponseTooLargeError",
    "RoleAliasNotFoundError",
    "RoleAssumptionError",
    "ServiceUnavailableError",
    "ThrottledError",
    "TlsHandshakeError",
    "UnexpectedResponseError",
    "WrongEventLoopError",
]

#: The documentation site (mkdocs.yml's ``site_url``, without the trailing slash).
DOCS_URL = "https://awslabs.github.io/aws-iot-core-credential-provider-session-helper"
_SEE = " see: " + DOCS_URL + "/troubleshooting#"


def anchor_of(class_name: str) -> str:
    """The troubleshooting anchor of a class: ``AccessDeniedError`` -> ``access-denied``."""
    stem = class_name[: -len("Error")] if class_name.endswith("Error") else class_name
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(stem))


def _without_links(message: str) -> str:
    """``message`` without the ``see:`` links of the errors it quotes, so that the error's own
    link, appended by ``__str__``, is the only one and comes last."""
    while _SEE in message:
        start = message.index(_SEE)
        end = start + len(_SEE)
        while end < len(message) and not message[end].isspace() and message[end] not in "),;":
            end += 1
        message = message[:start] + message[end:]
    return message


class CredentialHelperError(ValueError):
    """Root of every error raised by awsiot-credentialhelper."""

    retryable: bool = False
    #: This class's entry on the troubleshooting page; subclasses get one from their name.
    anchor: str = "credential-helper"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "anchor" not in cls.__dict__:
            cls.anchor = anchor_of(cls.__name__)

    @property
    def see(self) -> str:
        """The address of this error's troubleshooting entry."""
        return f"{DOCS_URL}/troubleshooting#{self.anchor}"

    def __str__(self) -> str:
        """The message, ending with the troubleshooting entry for this class (one link only,
        even when the message quotes another of our errors)."""
        message = _without_links(super().__str__()).rstrip()
        return f"{message} see: {self.see}" if message else f"see: {self.see}"


# --- the caller's configuration ------------------------------------------------------------


class ConfigurationError(CredentialHelperError):
    """A setting or file the caller provided is wrong; nothing was sent to the network.

    Attributes:
        setting: The argument at fault (``"private_key"``, ``"endpoint"``, ...) when known, so
            that the CLI can name its own flag, environment variable and profile key for it.
    """

    def __init__(self, *args: object, setting: Optional[str] = None) -> None:
        super().__init__(*args)
        self.setting = setting


class ConflictingOptionsError(ConfigurationError):
    """Two options exclude each other, or one of a required pair is missing."""


class InvalidEndpointError(ConfigurationError):
    """The endpoint is not a Credential Provider endpoint, or its region cannot be known."""


class CredentialFileError(ConfigurationError):
    """A certificate, key, CA or PIN file is missing or unreadable."""


class MalformedCredentialsFileError(ConfigurationError):
    """The AWS shared credentials file that ``update`` should write cannot be parsed (botocore
    could not read it either); it is left untouched."""


class InvalidPemError(ConfigurationError):
    """Material that should be PEM is not, or holds the wrong kind of object."""


class KeyMismatchError(ConfigurationError):
    """The private key does not belong to the certificate's public key."""


class CertificateExpiredError(ConfigurationError):
    """The device certificate has expired.

    No longer raised: this device's clock is not the judge of the certificate, so an expired
    one is tried with a warning, and the provider's refusal (``CertificateRejectedError`` or
    ``TlsHandshakeError``) says it looks expired. Kept for ``except`` clauses that name it.
    """


class EncryptedKeyError(ConfigurationError):
    """An encrypted private key cannot be decrypted with what was given."""


class Pkcs11Error(ConfigurationError):
    """The PKCS#11 module, token, slot, PIN or key label is wrong."""


# --- the network -----------------------------------------------------------------------------


class NetworkError(CredentialHelperError):
    """The endpoint could not be reached or the exchange was cut short."""

    retryable = True

    def __init__(self, message: str, *, endpoint: str, crt_error: Optional[str] = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        #: The awscrt error name behind this failure (``AWS_IO_...``), when there is one.
        self.crt_error = crt_error


class ConnectError(NetworkError):
    """DNS failed, the connection was refused, or the host or proxy is unreachable."""


class ConnectTimeoutError(NetworkError):
    """No connection could be established within the timeout."""


class TlsHandshakeError(NetworkError):
    """The TLS handshake failed: usually a CA or client-certificate problem, not transient."""

    retryable = False


class ReadTimeoutError(NetworkError):
    """The connection was made but the answer did not arrive within the timeout."""


class ConnectionClosedError(NetworkError):
    """The server closed the connection before the answer was complete."""


class ResponseTooLargeError(NetworkError):
    """The answer (status line, headers and body together) outgrew the size cap, so the
    connection was dropped: the endpoint is not the Credential Provider, whose answers are about
    1 KB, and asking it again would only fetch the same flood."""

    retryable = False


# --- the Credential Provider's answer --------------------------------------------------------


class ProviderError(CredentialHelperError):
    """The Credential Provider answered with an error status.

    Attributes:
        status_code: The HTTP status.
        message: The service's own ``message`` (or a short excerpt of a non-JSON body).
        error_type: The ``x-amzn-ErrorType`` header, if any.
        request_id: The ``x-amzn-RequestId`` header, if any: quote it to AWS Support.
        endpoint: The endpoint that answered.
        role_alias: The role alias that was requested.
    """

    #: What the user should do about it; subclasses override.
    hint: str = "See the message from the service above."

    def __init__(
        self,
        *,
        status_code: int,
        message: str,
        endpoint: str,
        role_alias: str,
        error_type: Optional[str] = None,
        request_id: Optional[str] = None,
        thing_name: Optional[str] = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.endpoint = endpoint
        self.role_alias = role_alias
        self.error_type = error_type
        self.request_id = request_id
        self.thing_name = thing_name
        super().__init__(self._describe())

    @property
    def advice(self) -> str:
        """What to do about it, for this endpoint, alias and thing."""
        return self.hint.format(
            endpoint=self.endpoint,
            role_alias=self.role_alias,
            thing_name=self.thing_name or "(none sent)",
        )

    def _describe(self) -> str:
        request = f", request id {self.request_id}" if self.request_id else ""
        return (
            f"{self.endpoint} refused role alias {self.role_alias!r}: HTTP {self.status_code} "
            f"{self.message!r}{request}. {self.advice}"
        )


class CertificateRejectedError(ProviderError):
    """403 ``Certificate is invalid on this endpoint``."""

    hint = (
        "The certificate is not registered and ACTIVE in the AWS account and region of "
        "{endpoint}, or this is another account's endpoint: check `aws iot describe-certificate` "
        "and `aws iot describe-endpoint --endpoint-type iot:CredentialProvider`."
    )


class InvalidThingNameError(ProviderError):
    """403 ``Invalid thing name passed``."""

    hint = (
        "The thing {thing_name} does not exist in this account and region, or is not attached to "
        "this certificate: run `aws iot attach-thing-principal --thing-name {thing_name} "
        "--principal <certificate ARN>`."
    )


class AccessDeniedError(ProviderError):
    """403 ``Access Denied``."""

    hint = (
        "No IoT policy attached to the certificate allows iot:AssumeRoleWithCertificate on "
        "arn:aws:iot:<region>:<account>:rolealias/{role_alias} (or a Deny overrides it): fix "
        "the policy's Action, Resource and Condition."
    )


class RoleAliasNotFoundError(ProviderError):
    """404 ``Role alias does not exist``."""

    hint = (
        "Check the role alias name and that it was created in the endpoint's region: "
        "`aws iot describe-role-alias --role-alias {role_alias}`."
    )


class RoleAssumptionError(ProviderError):
    """400 ``Unable to assume the role, or the role to assume does not exist``."""

    hint = (
        "The IAM role behind {role_alias} is missing, or its trust policy does not allow "
        "sts:AssumeRole by the service principal credentials.iot.amazonaws.com."
    )


class CredentialDurationError(ProviderError):
    """400 ``The requested CredentialDurationSeconds exceeds the MaxSessionDuration...``."""

    hint = (
        "Lower the role alias's credentialDurationSeconds (`aws iot update-role-alias`) or raise "
        "the role's MaxSessionDuration (`aws iam update-role --max-session-duration`)."
    )


class ThrottledError(ProviderError):
    """429: too many requests. Retrying later helps."""

    retryable = True
    hint = "The request was throttled; it is retried with backoff. Fetch less often if it persists."


class ServiceUnavailableError(ProviderError):
    """5xx: the service (or a proxy in front of it) failed. Retrying later helps."""

    retryable = True
    hint = "The service failed on its side; it is retried with backoff."


class UnexpectedResponseError(ProviderError):
    """A status or body this library does not recognise, including a malformed 200."""

    hint = (
        "This is not an answer the AWS IoT Credential Provider gives: check that the endpoint is "
        "the one from `aws iot describe-endpoint --endpoint-type iot:CredentialProvider` and that "
        "no proxy is rewriting the response."
    )


class ImplausibleCredentialsError(CredentialHelperError):
    """The answer's times cannot be right: a lifetime beyond the service's 12-hour maximum by
    the server's own clock, or an expiration not after the answer's ``Date``.

    Credentials like these would be held (and served) long past their real expiry, so they are
    refused; a later answer may be sane, hence retryable.
    """

    retryable = True


class ExpiredCredentialsError(ImplausibleCredentialsError):
    """Freshly fetched credentials were already expired by the server's own clock."""


class WrongEventLoopError(CredentialHelperError, RuntimeError):
    """An async provider was awaited from an event loop other than the one it is bound to.

    A provider binds to the loop that first uses it (its background task and any fetch in
    flight live there); once that loop is closed, the next loop to use it takes it over.
    """
