"""One provider configuration: every argument checked once, into one frozen value.

:class:`ProviderConfig` is what ``IotCredentialProvider``, ``Boto3SessionProvider`` and the CLI
(``credential-process``, ``serve``, ``update`` and ``check``) all build a provider from, and the
functions here make each decision about it exactly once: what a private-key argument is
(:func:`key_kind`, :func:`check_key_arguments`), which settings are required
(:func:`missing_settings`), and the defaults. Building a config reads no file (a ``pkcs11:``
URI's ``pin-source`` aside) and touches no network: ``IotCredentialProvider.from_config`` does.

Cheap to import: ``os``, the argument checks and the exceptions only; the validators load when
a config is built. The CLI's cached ``credential-process`` path does not import it at all: it
needs only the defaults and the required settings, from ``_arguments``.
"""

from __future__ import annotations

import os

# The defaults and the required settings are decided in _arguments, which the CLI's cached
# path imports without this module; they are part of the configuration's API here.
from ._arguments import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT,
    REQUIRED_SETTINGS,
    check_max_attempts,
    check_timeout,
    is_pem_text,
    is_pkcs11_uri,
    missing_settings,
    shown_path,
)
from .exceptions import ConfigurationError, ConflictingOptionsError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable, Optional, Union

    from ._endpoint import Endpoint
    from ._pem import PemSource
    from ._pkcs11 import Pkcs11Config
    from ._proxy import ProxySettings

    #: A private key as a config holds it: PEM bytes, PEM text, a path, or a token.
    KeyArgument = Union[PemSource, Pkcs11Config]

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "PATH",
    "PEM_BYTES",
    "PEM_TEXT",
    "PKCS11",
    "PKCS11_URI",
    "REQUIRED_SETTINGS",
    "ProviderConfig",
    "argument_errors",
    "check_key_arguments",
    "key_kind",
    "missing_settings",
]

# What a private-key argument is (key_kind's answers).
#: ``bytes`` (or ``bytearray``, ``memoryview``): the PEM itself.
PEM_BYTES = "pem-bytes"
#: A ``str`` holding a ``-----BEGIN`` line: the PEM itself.
PEM_TEXT = "pem-text"
#: Any other ``str``, or an ``os.PathLike``: the path of a PEM file.
PATH = "path"
#: A ``str`` starting ``pkcs11:``: an RFC 7512 URI naming a key in a token.
PKCS11_URI = "pkcs11-uri"
#: A ``Pkcs11Config``, or a mapping of its fields (1.x's ``TypedDict``).
PKCS11 = "pkcs11"

_ONE_KEY = (
    "pass exactly one (a key file, PEM bytes or text, or a pkcs11: URI; or the PKCS#11 token "
    "that holds the key)"
)


def key_kind(value: object) -> str:
    """What a private-key argument is: the one place that decides.

    Returns:
        :data:`PEM_BYTES`, :data:`PEM_TEXT`, :data:`PATH`, :data:`PKCS11_URI` or :data:`PKCS11`.

    Raises:
        ConfigurationError: none of these (``None``, a number, ...), naming the type.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return PEM_BYTES
    if isinstance(value, str):
        if is_pkcs11_uri(value):
            return PKCS11_URI
        return PEM_TEXT if is_pem_text(value) else PATH
    if isinstance(value, os.PathLike):
        return PATH
    from collections.abc import Mapping  # noqa: PLC0415 - the CLI's cached path has only str

    from ._pkcs11 import Pkcs11Config  # noqa: PLC0415 - it imports typing

    if isinstance(value, (Pkcs11Config, Mapping)):
        return PKCS11
    raise ConfigurationError(
        "private_key must be PEM bytes, PEM text, a file path or a pkcs11: URI, got "
        f"{type(value).__name__}.",
        setting="private_key",
    )


def check_key_arguments(
    private_key: object, pkcs11: object, *, password: Optional[bytes] = None
) -> KeyArgument:
    """The one key a ``private_key``/``pkcs11`` pair names, checked before anything is read.

    A ``pkcs11:`` URI becomes a ``Pkcs11Config`` (its ``pin-source`` file is read now), and so
    does a mapping of its fields; PEM bytes become ``bytes``; PEM text and paths stay as given.

    Raises:
        ConflictingOptionsError: both or neither given, or a password for a key in a token.
        ConfigurationError: ``private_key`` is not a PEM source or URI; ``pkcs11`` is not a
            ``Pkcs11Config`` (or a mapping of its fields) or has no ``pkcs11_lib``.
        Pkcs11Error: a malformed URI, or its PIN file cannot be read.
    """
    setting = "pkcs11" if private_key is None and pkcs11 is not None else "private_key"
    if private_key is not None and pkcs11 is not None:
        raise ConflictingOptionsError(
            f"Both private_key and pkcs11 were given: {_ONE_KEY}.", setting=setting
        )
    if private_key is None and pkcs11 is None:
        raise ConflictingOptionsError(
            f"Neither private_key nor pkcs11 was given: {_ONE_KEY}.", setting=setting
        )
    from ._pkcs11 import Pkcs11Config, parse_pkcs11_uri, pkcs11_config_from  # noqa: PLC0415

    key: KeyArgument
    if private_key is None:
        key = pkcs11_config_from(pkcs11)
    else:
        kind = key_kind(private_key)
        if kind == PKCS11:
            raise ConfigurationError(
                "private_key must be PEM bytes, PEM text, a file path or a pkcs11: URI, got "
                f"{type(private_key).__name__}: a PKCS#11 token goes in pkcs11=.",
                setting=setting,
            )
        if kind == PKCS11_URI:
            assert isinstance(private_key, str)  # noqa: S101 - key_kind said so
            key = parse_pkcs11_uri(private_key)
        elif kind == PEM_BYTES:
            assert isinstance(private_key, (bytes, bytearray, memoryview))  # noqa: S101
            key = bytes(private_key)
        else:
            assert isinstance(private_key, (str, os.PathLike))  # noqa: S101
            key = private_key
    if password is not None and isinstance(key, Pkcs11Config):
        raise ConflictingOptionsError(
            "private_key_password applies to a PEM private key, not to a PKCS#11 token "
            "(its PIN is user_pin, or pin-source in a pkcs11: URI).",
            setting="private_key_password",
        )
    return key


#: Every argument of ProviderConfig but the three required ones, with its default.
_DEFAULTS: dict[str, object] = {
    "private_key": None,
    "pkcs11": None,
    "thing_name": None,
    "ca": None,
    "verify_peer": True,
    "private_key_password": None,
    "timeout": DEFAULT_TIMEOUT,
    "max_attempts": DEFAULT_MAX_ATTEMPTS,
    "proxy": None,
    "trust_env": True,
    "region": None,
}


class ProviderConfig:
    """Everything a provider needs, checked once: frozen, compared by value, with a safe repr.

    Building one checks every argument (types, ranges, the endpoint's form, the names' character
    sets, the proxy URL, which key is meant) and raises the first problem; it reads no
    certificate, key or CA file. Pass it to ``IotCredentialProvider.from_config`` or
    ``Boto3SessionProvider(config=...)``. The ``repr`` never shows key material, a PIN, a
    password or a proxy's password.

    Args:
        endpoint: The Credential Provider endpoint (``aws iot describe-endpoint --endpoint-type
            iot:CredentialProvider``), optionally with ``:port``.
        role_alias: The role alias whose credentials to fetch.
        certificate: The device certificate: PEM ``bytes``, PEM text in a ``str``, or a path.
        private_key: Its private key: PEM ``bytes``, PEM text, a path, or an RFC 7512
            ``pkcs11:`` URI. Exclusive with ``pkcs11``.
        pkcs11: Where the key is in a PKCS#11 token: a ``Pkcs11Config`` (or a ``dict`` of its
            fields, as in 1.x). Exclusive with ``private_key``.
        thing_name: Sent as ``x-amzn-iot-thingname``; needed when policies use thing variables.
        ca: Trusted CA(s) for the server: PEM ``bytes``, PEM text or a path. Default: the system
            trust store.
        verify_peer: Verify the server's certificate. Only ever turn this off for local tests.
        private_key_password: Password of an encrypted private key (``str`` is UTF-8 encoded).
        timeout: Total seconds one fetch may take, retries included (at most a day).
        max_attempts: Attempts per fetch (1 to 10); only network errors, 429 and 5xx are retried.
        proxy: ``http://[user:password@]host:port`` of an HTTP proxy to tunnel through.
        trust_env: When ``proxy`` is not given, use ``HTTPS_PROXY`` unless ``NO_PROXY`` excludes
            the endpoint (read when the provider is built).
        region: The region of boto3 sessions; default: the endpoint's (see
            ``Boto3SessionProvider.get_session``). Not used by ``IotCredentialProvider``.

    Attributes:
        endpoint: The parsed endpoint: host, port, and the region its name says.
        key: The private key: PEM ``bytes``, PEM text, a path, or a ``Pkcs11Config`` (a
            ``pkcs11:`` URI is parsed into one); see :attr:`key_kind`.
        private_key_password: The password as ``bytes``, or ``None``.
        proxy: The parsed proxy (``ProxySettings``), or ``None``.

        The other attributes hold their argument's checked value.

    Raises:
        ConfigurationError: a subclass naming the argument to fix (also in its ``setting``).
    """

    __slots__ = (
        "ca",
        "certificate",
        "endpoint",
        "key",
        "max_attempts",
        "private_key_password",
        "proxy",
        "region",
        "role_alias",
        "thing_name",
        "timeout",
        "trust_env",
        "verify_peer",
    )

    endpoint: Endpoint
    role_alias: str
    thing_name: Optional[str]
    certificate: PemSource
    key: KeyArgument
    private_key_password: Optional[bytes]
    ca: Optional[PemSource]
    verify_peer: bool
    timeout: float
    max_attempts: int
    proxy: Optional[ProxySettings]
    trust_env: bool
    region: Optional[str]

    def __init__(
        self,
        *,
        endpoint: str,
        role_alias: str,
        certificate: PemSource,
        private_key: Optional[PemSource] = None,
        pkcs11: Union[Pkcs11Config, Mapping[str, Any], None] = None,
        thing_name: Optional[str] = None,
        ca: Optional[PemSource] = None,
        verify_peer: bool = True,
        private_key_password: Union[str, bytes, None] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        proxy: Optional[str] = None,
        trust_env: bool = True,
        region: Optional[str] = None,
    ) -> None:
        values = _validate(
            {
                "endpoint": endpoint,
                "role_alias": role_alias,
                "certificate": certificate,
                "private_key": private_key,
                "pkcs11": pkcs11,
                "thing_name": thing_name,
                "ca": ca,
                "verify_peer": verify_peer,
                "private_key_password": private_key_password,
                "timeout": timeout,
                "max_attempts": max_attempts,
                "proxy": proxy,
                "trust_env": trust_env,
                "region": region,
            },
            errors=None,
        )
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    @property
    def key_kind(self) -> str:
        """:func:`key_kind` of :attr:`key`: :data:`PEM_BYTES`, :data:`PEM_TEXT`, :data:`PATH`
        or :data:`PKCS11` (a URI was parsed into a ``Pkcs11Config``)."""
        return key_kind(self.key)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ProviderConfig is immutable: build a new one to change {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ProviderConfig is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProviderConfig):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = [
            f"endpoint={str(self.endpoint)!r}",
            f"role_alias={self.role_alias!r}",
            f"certificate={_shown_source(self.certificate)}",
            f"key={_shown_source(self.key)}",
        ]
        if self.thing_name is not None:
            shown.append(f"thing_name={self.thing_name!r}")
        if self.ca is not None:
            shown.append(f"ca={_shown_source(self.ca)}")
        if self.private_key_password is not None:
            shown.append("private_key_password=<hidden>")
        if not self.verify_peer:
            shown.append("verify_peer=False")
        shown.append(f"timeout={self.timeout!r}, max_attempts={self.max_attempts!r}")
        if self.proxy is not None:
            shown.append(f"proxy={str(self.proxy)!r}")  # its password as ***
        if not self.trust_env:
            shown.append("trust_env=False")
        if self.region is not None:
            shown.append(f"region={self.region!r}")
        return f"ProviderConfig({', '.join(shown)})"


def argument_errors(**arguments: Any) -> dict[str, ConfigurationError]:
    """Every argument error ``ProviderConfig(**arguments)`` would meet, by argument name.

    ``ProviderConfig`` stops at the first; ``check`` diagnoses them all, each in its own step.
    Empty when the config would build.

    Raises:
        TypeError: an argument ``ProviderConfig`` does not take.
    """
    unknown = set(arguments) - {"endpoint", "role_alias", "certificate", *_DEFAULTS}
    if unknown:
        raise TypeError(f"ProviderConfig does not take {', '.join(sorted(unknown))}")
    errors: dict[str, ConfigurationError] = {}
    _validate(
        {"endpoint": None, "role_alias": None, "certificate": None, **_DEFAULTS, **arguments},
        errors=errors,
    )
    return errors


def _validate(
    arguments: dict[str, Any], *, errors: Optional[dict[str, ConfigurationError]]
) -> dict[str, Any]:
    """The checked value of every field, argument errors first and in a fixed order.

    With ``errors`` ``None`` the first error is raised; otherwise each is stored there under the
    argument's name (its ``setting``) and the field is left out.
    """
    from ._endpoint import parse_endpoint  # noqa: PLC0415 - see the module docstring
    from ._pem import resolve_password  # noqa: PLC0415
    from ._protocol import validate_role_alias, validate_thing_name  # noqa: PLC0415
    from ._proxy import parse_proxy_url  # noqa: PLC0415

    given = arguments
    key_setting = (
        "pkcs11" if given["private_key"] is None and given["pkcs11"] is not None else "private_key"
    )
    values: dict[str, Any] = {}
    checks: tuple[tuple[str, str, Callable[[], object]], ...] = (
        # (field, the argument a message names, check); programming errors come first.
        ("timeout", "timeout", lambda: check_timeout(given["timeout"])),
        ("max_attempts", "max_attempts", lambda: check_max_attempts(given["max_attempts"])),
        (
            "private_key_password",
            "private_key_password",
            lambda: resolve_password(given["private_key_password"]),
        ),
        (
            "key",
            key_setting,
            lambda: check_key_arguments(
                given["private_key"],
                given["pkcs11"],
                password=values.get("private_key_password"),
            ),
        ),
        ("certificate", "certificate", lambda: _source(given["certificate"], "certificate")),
        ("ca", "ca", lambda: None if given["ca"] is None else _source(given["ca"], "ca")),
        ("endpoint", "endpoint", lambda: parse_endpoint(given["endpoint"])),
        (
            "role_alias",
            "role_alias",
            lambda: _checked(validate_role_alias, given["role_alias"], "role_alias"),
        ),
        (
            "thing_name",
            "thing_name",
            lambda: (
                _checked(validate_thing_name, given["thing_name"], "thing_name")
                if given["thing_name"]
                else None
            ),
        ),
        (
            "proxy",
            "proxy",
            lambda: None if given["proxy"] is None else parse_proxy_url(given["proxy"]),
        ),
        ("region", "region", lambda: _region(given["region"])),
        ("verify_peer", "verify_peer", lambda: bool(given["verify_peer"])),
        ("trust_env", "trust_env", lambda: bool(given["trust_env"])),
    )
    for field, setting, check in checks:
        try:
            values[field] = check()
        except ConfigurationError as error:
            if error.setting is None:
                error.setting = setting
            if errors is None:
                raise
            errors.setdefault(error.setting, error)
    return values


def _source(value: object, what: str) -> object:
    """A certificate or CA argument as the config keeps it: PEM bytes as ``bytes``, else as given.

    Raises:
        ConfigurationError: neither PEM nor a path (``None``, a number), naming ``what``.
    """
    from ._pem import check_source  # noqa: PLC0415

    check_source(value, what=what)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _checked(validate: Callable[[str], str], value: object, name: str) -> str:
    """Run a name validator, turning its ``ValueError`` into our configuration error (and a
    value that is not a ``str``, which would be its ``TypeError``, into one too)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, got {type(value).__name__}.")
    try:
        return validate(value)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _region(value: object) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(
            f"region must be a str such as 'us-east-1', got {type(value).__name__}."
        )
    return value


def _shown_source(value: object) -> str:
    """A PEM source or key as a repr may show it: never key material, a PIN or a password."""
    kind = key_kind(value)
    if kind == PEM_BYTES:
        return "<PEM bytes>"
    if kind == PEM_TEXT:
        return "<PEM text>"
    if kind == PKCS11:
        return repr(value)  # Pkcs11Config's repr hides the PIN
    assert isinstance(value, (str, os.PathLike))  # noqa: S101 - a path, by key_kind
    return shown_path(os.fspath(value))
