"""Shared options, declared once, resolved once: a flag, else an environment variable, else a
``--profile`` key; then the library's one :class:`ProviderConfig`.

Every subcommand that talks to the Credential Provider takes the same settings. They are
declared once in :data:`OPTIONS` (a row per setting, its flag, variable and profile key each
spelled after the library argument it feeds) and resolved once into an immutable
:class:`Settings`. :func:`provider_config` turns those into a ``ProviderConfig``, where the
library checks every value, so ``credential-process``, ``serve``, ``update`` and ``check`` judge
a setting exactly as ``IotCredentialProvider`` does; the CLI only adds, to an error, where the
value came from. This module stays cheap to import (no awscrt, boto3, botocore, cryptography,
argparse, typing, nor ``_config``): ``credential-process`` answers from its cache with
:class:`Settings` alone (its cache key is computed from them) and builds the config only when
it must fetch.

It evolves the module of the same name rather than adding a new one: ``serve``, ``update`` and
the cache import :class:`Settings`, :func:`resolve` and :func:`build_provider` from here.
"""

from __future__ import annotations

import os
import sys

from .._arguments import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT,
    check_max_attempts,
    check_timeout,
    is_pem_text,
    is_pkcs11_uri,
    looks_like_key_material,
    missing_settings,
    shown_path,
)
from ..exceptions import ConfigurationError, ConflictingOptionsError, CredentialFileError
from . import _environment as env

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from typing import Any, Optional, Union

    from .._config import ProviderConfig
    from .._pkcs11 import Pkcs11Config
    from .._provider import IotCredentialProvider

__all__ = [
    "OPTIONS",
    "TRUE",
    "Option",
    "Settings",
    "add_common_options",
    "build_provider",
    "config_arguments",
    "fast_parse",
    "is_pkcs11_uri",
    "load_profile",
    "pkcs11_config",
    "provider_config",
    "read_password",
    "read_pin",
    "require",
    "resolve",
    "setup_logging",
]

#: Spellings of true and false accepted from environment variables and profiles.
TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Option:
    """One setting: its flag, environment variable and profile key, and older spellings of each.

    ``argument`` is the library argument the setting feeds (``ProviderConfig``'s, or a
    ``Pkcs11Config`` field as ``pkcs11.<field>``), which every spelling follows.

    A plain class, not a NamedTuple: building namedtuple classes costs start-up time, and
    ``credential-process`` runs once per AWS CLI command.
    """

    __slots__ = (
        "aliases",
        "argument",
        "env",
        "env_aliases",
        "flag",
        "group",
        "help",
        "kind",
        "metavar",
        "name",
        "profile_aliases",
        "profile_key",
    )

    def __init__(  # noqa: PLR0917 - one row of the OPTIONS table
        self,
        name: str,
        flag: str,
        env: str,
        profile_key: str,
        help: str,
        metavar: Optional[str] = None,
        kind: str = "str",  # "str", "int", "float" or "bool"
        group: str = "connection",
        *,
        argument: Optional[str] = None,
        aliases: tuple[str, ...] = (),
        profile_aliases: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.flag = flag
        self.env = env
        self.profile_key = profile_key
        self.help = help
        self.metavar = metavar
        self.kind = kind
        self.group = group
        self.argument = argument or name
        self.aliases = aliases
        self.env_aliases = _ALIASES.get(env, ())
        self.profile_aliases = profile_aliases

    def dest(self, flag: str) -> str:
        """The argparse destination of ``flag``: an alias has its own, so messages name it."""
        return self.name if flag == self.flag else f"{self.name}@{flag}"


_ALIASES = env.ALIASES

OPTIONS: tuple[Option, ...] = (
    Option(
        "endpoint",
        "--endpoint",
        env.CLI_ENDPOINT,
        "iot_endpoint",
        "Credential Provider endpoint (`aws iot describe-endpoint --endpoint-type "
        "iot:CredentialProvider`)",
        "HOST[:PORT]",
        profile_aliases=("iot_credential_endpoint",),
    ),
    Option(
        "role_alias", "--role-alias", env.CLI_ROLE_ALIAS, "iot_role_alias", "role alias", "ALIAS"
    ),
    Option(
        "thing_name",
        "--thing-name",
        env.CLI_THING_NAME,
        "iot_thing_name",
        "thing name, sent as x-amzn-iot-thingname",
        "NAME",
    ),
    Option(
        "certificate",
        "--certificate",
        env.CLI_CERTIFICATE,
        "iot_certificate",
        "device certificate: a PEM file (the variable may hold the PEM text itself)",
        "PATH",
    ),
    Option(
        "private_key",
        "--private-key",
        env.CLI_PRIVATE_KEY,
        "iot_private_key",
        "private key: a PEM file or a pkcs11: URI (the variable may hold the PEM text itself)",
        "PATH|URI",
    ),
    Option(
        "private_key_password_file",
        "--private-key-password-file",
        env.CLI_PRIVATE_KEY_PASSWORD_FILE,
        "iot_private_key_password_file",
        f"file holding the password of an encrypted key (or set ${env.CLI_PRIVATE_KEY_PASSWORD})",
        "PATH",
        argument="private_key_password",
    ),
    Option(
        "ca",
        "--ca",
        env.CLI_CA,
        "iot_ca",
        "CA certificate(s) the server must chain to (default: the system trust store)",
        "PATH",
    ),
    Option(
        "region",
        "--region",
        env.CLI_REGION,
        "iot_region",
        "AWS region, for endpoints whose host name does not name one",
        "REGION",
    ),
    Option(
        "no_verify_peer",
        "--no-verify-peer",
        env.CLI_NO_VERIFY_PEER,
        "iot_no_verify_peer",
        "do NOT verify the server's certificate (local tests only)",
        kind="bool",
        argument="verify_peer",
    ),
    Option(
        "timeout",
        "--timeout",
        env.CLI_TIMEOUT,
        "iot_timeout",
        f"seconds one fetch may take, retries included (default {DEFAULT_TIMEOUT:g})",
        "SECONDS",
        kind="float",
    ),
    Option(
        "max_attempts",
        "--max-attempts",
        env.CLI_MAX_ATTEMPTS,
        "iot_max_attempts",
        f"attempts per fetch, 1 to 10 (default {DEFAULT_MAX_ATTEMPTS}); only network errors, "
        "429 and 5xx are retried",
        "N",
        kind="int",
    ),
    Option(
        "proxy",
        "--proxy",
        env.CLI_PROXY,
        "iot_proxy",
        "HTTP proxy, http://host:port (default: $HTTPS_PROXY unless $NO_PROXY matches)",
        "URL",
    ),
    Option(
        "pkcs11_lib",
        "--pkcs11-lib",
        env.CLI_PKCS11_LIB,
        "iot_pkcs11_lib",
        "PKCS#11 module (.so) holding the private key",
        "PATH",
        group="pkcs11",
        argument="pkcs11.pkcs11_lib",
    ),
    Option(
        "slot_id",
        "--slot-id",
        env.CLI_SLOT_ID,
        "iot_slot_id",
        "PKCS#11 slot",
        "ID",
        kind="int",
        group="pkcs11",
        argument="pkcs11.slot_id",
    ),
    Option(
        "token_label",
        "--token-label",
        env.CLI_TOKEN_LABEL,
        "iot_token_label",
        "PKCS#11 token label",
        "LABEL",
        group="pkcs11",
        argument="pkcs11.token_label",
    ),
    Option(
        "private_key_label",
        "--private-key-label",
        env.CLI_PRIVATE_KEY_LABEL,
        "iot_private_key_label",
        "PKCS#11 private key label",
        "LABEL",
        group="pkcs11",
        argument="pkcs11.private_key_label",
        aliases=("--key-label",),
        profile_aliases=("iot_key_label",),
    ),
    Option(
        "user_pin_file",
        "--user-pin-file",
        env.CLI_USER_PIN_FILE,
        "iot_user_pin_file",
        f"file holding the PKCS#11 user PIN (or set ${env.CLI_USER_PIN}; else a prompt on a "
        "terminal)",
        "PATH",
        group="pkcs11",
        argument="pkcs11.user_pin",
        aliases=("--pin-file",),
        profile_aliases=("iot_pin_file",),
    ),
)

_BY_NAME = {option.name: option for option in OPTIONS}


class Settings:
    """The resolved settings, one immutable object; holds no PIN or password.

    ``certificate``, ``private_key`` and ``ca`` are a path, a ``pkcs11:`` URI (key only), or
    PEM text that came from an environment variable: the library tells them apart. ``sources``
    says where each value came from (the flag, variable or profile key as spelled), for messages.
    """

    FIELDS = (*(option.name for option in OPTIONS), "profile")
    __slots__ = (*FIELDS, "sources")

    endpoint: Optional[str]
    role_alias: Optional[str]
    thing_name: Optional[str]
    certificate: Optional[str]
    private_key: Optional[str]
    private_key_password_file: Optional[str]
    ca: Optional[str]
    region: Optional[str]
    no_verify_peer: Optional[bool]
    timeout: Optional[float]
    max_attempts: Optional[int]
    proxy: Optional[str]
    pkcs11_lib: Optional[str]
    slot_id: Optional[int]
    token_label: Optional[str]
    private_key_label: Optional[str]
    user_pin_file: Optional[str]
    profile: Optional[str]
    sources: Mapping[str, str]

    def __init__(self, *, sources: Optional[Mapping[str, str]] = None, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        for name in self.FIELDS:
            object.__setattr__(self, name, values.get(name))
        object.__setattr__(self, "sources", dict(sources or {}))

    # The names these two had before they took the library's (the cache key still uses them).
    @property
    def key_label(self) -> Optional[str]:
        return self.private_key_label

    @property
    def pin_file(self) -> Optional[str]:
        return self.user_pin_file

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Settings are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = []
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if is_pem_text(value):
                value = "<PEM text>"
            elif isinstance(value, str) and looks_like_key_material(value):
                value = "<key material>"
            elif is_pkcs11_uri(value) and "?" in value:
                value = value.split("?", 1)[0] + "?<query hidden: may hold a PIN>"
            elif name == "proxy" and isinstance(value, str) and "@" in value:
                value = "<proxy URL with credentials>"
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def describe(self, name: str) -> str:
        """How the user sets ``name``, and where the current value came from."""
        option = _BY_NAME[name]
        where = self.sources.get(name)
        how = f"{option.flag}, ${option.env} or the profile key {option.profile_key}"
        return f"{how} (now from {where})" if where else how


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Declare every shared option on ``parser``; ``None`` defaults tell unset from set.

    An older spelling of a flag is its own hidden option, so that messages name the spelling
    the user typed; :func:`resolve` merges them.
    """
    import argparse  # noqa: PLC0415 - only when argparse is already building a parser

    groups = {
        "connection": parser.add_argument_group(
            "connection (each flag falls back to its $VARIABLE, then to --profile's key)"
        ),
        "pkcs11": parser.add_argument_group("PKCS#11 (a private key in an HSM, TPM or token)"),
    }
    for option in OPTIONS:
        group = groups[option.group]
        also = "".join(f"; also {alias}" for alias in option.aliases)
        text = f"{option.help} [${option.env}; {option.profile_key}{also}]"
        for flag in (option.flag, *option.aliases):
            shown = text if flag == option.flag else argparse.SUPPRESS
            if option.kind == "bool":
                group.add_argument(
                    flag, dest=option.dest(flag), action="store_const", const=True, help=shown
                )
            else:
                group.add_argument(flag, dest=option.dest(flag), metavar=option.metavar, help=shown)
    general = parser.add_argument_group("general")
    general.add_argument(
        "--profile",
        metavar="NAME",
        help="read the iot_* keys of this profile in ~/.aws/config ($AWS_CONFIG_FILE) "
        f"[${env.CLI_PROFILE}]",
    )
    add_verbose(general)


def add_verbose(parser: Any) -> None:
    """``-v``/``--verbose``, counted; on every subcommand so it may follow the command name."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v progress, -vv debug (secrets are never logged)",
    )


def fast_parse(arguments: Sequence[str], switches: Mapping[str, str]) -> Optional[dict[str, Any]]:
    """What argparse would make of ``arguments``, when they use only exact long flags.

    ``credential-process`` runs once per AWS CLI command, and importing and building argparse
    costs more than the rest of its cached path. This recognises ``--flag value``,
    ``--flag=value``, the bool flags, ``switches`` (``store_true`` flags) and ``-v``; for
    anything else (``--help``, abbreviations, typos, values starting with ``-``) it returns
    ``None`` and argparse parses, so the result never differs (a test checks this).
    """
    takes_value = {"--profile": "profile"}
    flags: dict[str, str] = {}
    values: dict[str, Any] = {"profile": None, "verbose": 0}
    for option in OPTIONS:
        for flag in (option.flag, *option.aliases):
            (flags if option.kind == "bool" else takes_value)[flag] = option.dest(flag)
            values[option.dest(flag)] = None
    values.update(dict.fromkeys(switches.values(), False))
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        name, equals, value = argument.partition("=")
        if name in takes_value:
            if not equals:
                if index >= len(arguments) or arguments[index].startswith("-"):
                    return None
                value = arguments[index]
                index += 1
            values[takes_value[name]] = value
        elif equals:
            return None
        elif argument in flags:
            values[flags[argument]] = True
        elif argument in switches:
            values[switches[argument]] = True
        elif argument == "--verbose":
            values["verbose"] += 1
        elif len(argument) > 1 and argument == "-" + "v" * (len(argument) - 1):
            values["verbose"] += len(argument) - 1
        else:
            return None
    return values


def resolve(namespace: Any, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Merge flags, environment variables and the profile (in that order of precedence).

    A setting's newer spelling wins over an older one from the same place.

    Raises:
        ConfigurationError: a value of the wrong type, a missing profile, or a private key
            given as PEM text on the command line.
    """
    environ = os.environ if environ is None else environ
    profile_name = getattr(namespace, "profile", None) or environ.get(env.CLI_PROFILE) or None
    profile = load_profile(profile_name, environ) if profile_name else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        found = _find(option, namespace, environ, profile, profile_name)
        if found is None:
            continue
        raw, source = found
        values[option.name] = _convert(option, raw, source)
        sources[option.name] = source
    key = values.get("private_key")
    if key and sources["private_key"] == "--private-key":
        _refuse_secret_on_command_line(key)
    return Settings(profile=profile_name, sources=sources, **values)


def _find(
    option: Option,
    namespace: Any,
    environ: Mapping[str, str],
    profile: Mapping[str, str],
    profile_name: Optional[str],
) -> Optional[tuple[Any, str]]:
    """The raw value of ``option`` and where it was found (as spelled there), or ``None``."""
    for flag in (option.flag, *option.aliases):
        raw = getattr(namespace, option.dest(flag), None)
        if raw is not None:
            return raw, flag
    for variable in (option.env, *option.env_aliases):
        text = environ.get(variable) or None
        if text is not None:
            return text, f"${variable}"
    for key in (option.profile_key, *option.profile_aliases):
        if key in profile:
            return profile[key], f"profile {profile_name!r} key {key}"
    return None


def _refuse_secret_on_command_line(key: str) -> None:
    """A command line is visible to every user (ps, shell history): no key or PIN there."""
    if is_pem_text(key):
        raise ConfigurationError(
            "--private-key holds PEM text: a private key on the command line is visible to every "
            f"user (ps, shell history). Pass a file path, or put the PEM in ${env.CLI_PRIVATE_KEY}."
        )
    if is_pkcs11_uri(key) and "pin-value=" in key:
        raise ConfigurationError(
            "--private-key holds a pkcs11: URI with pin-value: a PIN on the command line is "
            "visible to every user (ps, shell history). Use pin-source=file:<path>, "
            f"--user-pin-file, or put the URI in ${env.CLI_PRIVATE_KEY}."
        )


def _convert(option: Option, raw: Any, source: str) -> Any:
    """``raw`` as the option's type; numbers are checked by the library's own checks, named
    after ``source``."""
    if option.kind == "bool":
        if raw is True:
            return True
        text = str(raw).strip().lower()
        if text in TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigurationError(f"{source} must be true or false, got {raw!r}.")
    text = str(raw).strip()
    if option.kind == "str":
        return raw if is_pem_text(text) else text
    return _number(option, text, source)


def _number(option: Option, text: str, source: str) -> Union[int, float]:
    try:
        number: Union[int, float] = int(text) if option.kind == "int" else float(text)
    except ValueError:
        raise ConfigurationError(f"{source} must be a number, got {text[:40]!r}.") from None
    if option.name == "timeout":
        return check_timeout(number, name=source)
    if option.name == "max_attempts":
        return check_max_attempts(number, name=source)
    if number < 0:
        raise ConfigurationError(f"{source} must be positive, got {text!r}.")
    return number


def config_file_path(environ: Mapping[str, str]) -> str:
    """The AWS shared config file, as the AWS CLI finds it."""
    return os.path.expanduser(environ.get(env.AWS_CONFIG_FILE) or "~/.aws/config")


def load_profile(name: str, environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The keys of profile ``name`` in the AWS config file (``[default]`` or ``[profile name]``).

    Raises:
        ConfigurationError: the file is missing or malformed, or has no such profile.
    """
    import configparser  # noqa: PLC0415 - only when a profile is used

    path = config_file_path(os.environ if environ is None else environ)
    parser = configparser.RawConfigParser(strict=False)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise CredentialFileError(
            f"--profile {name!r} was given but the AWS config file {shown_path(path)} does not "
            f"exist (set ${env.AWS_CONFIG_FILE} to use another file)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise CredentialFileError(
            f"Cannot read the AWS config file {shown_path(path)}: {why}."
        ) from None
    except configparser.Error as exc:
        # Never quote the offending line: config files can hold secret keys.
        line = getattr(exc, "lineno", None) or _first_error_line(exc)
        where = f" at line {line}" if line else ""
        raise ConfigurationError(
            f"The AWS config file {shown_path(path)} is malformed{where}: fix it (the AWS CLI "
            "cannot read it either)."
        ) from None
    candidates = ["default", "profile default"] if name == "default" else [f"profile {name}"]
    for section in candidates:
        if parser.has_section(section):
            return {key: value.strip() for key, value in parser.items(section)}
    raise ConfigurationError(
        f"The AWS config file {shown_path(path)} has no [{candidates[0]}] section for --profile "
        f"{name!r}."
    )


def _first_error_line(exc: Exception) -> Optional[int]:
    errors = getattr(exc, "errors", None)
    if errors:
        return int(errors[0][0])
    return None


# --- from settings to the library's configuration ---------------------------------------------


def missing(settings: Settings) -> list[str]:
    """The required settings without a value (the library's rule: ``missing_settings``; the
    PKCS#11 module stands for the key)."""
    return missing_settings(
        endpoint=settings.endpoint,
        role_alias=settings.role_alias,
        certificate=settings.certificate,
        private_key=settings.private_key,
        pkcs11=settings.pkcs11_lib,
    )


def require(settings: Settings) -> None:
    """Fail with a message naming every way to set each missing required setting.

    Raises:
        ConfigurationError: a required setting has no value.
    """
    names = missing(settings)
    if names:
        lines = "; ".join(settings.describe(name) for name in names)
        token = " (or --pkcs11-lib for a key in a token)" if "private_key" in names else ""
        raise ConfigurationError(f"Missing setting(s): {lines}{token}.", setting=names[0])


def read_pin(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The PKCS#11 PIN from its variable, its file, or a prompt on a terminal; else ``None``.

    Raises:
        ConflictingOptionsError: both the variable and a PIN file are set.
        CredentialFileError: the PIN file is missing, unreadable, empty or not UTF-8.
    """
    environ = os.environ if environ is None else environ
    variable, from_env = _variable(environ, env.CLI_USER_PIN)
    if from_env is not None and settings.user_pin_file:
        raise ConflictingOptionsError(
            f"The PKCS#11 PIN is set both in ${variable} and by "
            f"{settings.sources.get('user_pin_file', '--user-pin-file')}: keep one."
        )
    if from_env is not None:
        return from_env
    if settings.user_pin_file:
        from .._pkcs11 import read_pin_file  # noqa: PLC0415 - not on the cached path

        return read_pin_file(settings.user_pin_file)
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass  # noqa: PLC0415

        return getpass.getpass("PKCS#11 user PIN: ") or None
    return None


def read_password(
    settings: Settings, environ: Optional[Mapping[str, str]] = None
) -> Optional[bytes]:
    """The private key's password from its variable or its file; else ``None``.

    Raises:
        ConflictingOptionsError: both the variable and a password file are set.
        CredentialFileError: the password file is missing, unreadable or empty.
    """
    environ = os.environ if environ is None else environ
    from_env = environ.get(env.CLI_PRIVATE_KEY_PASSWORD) or None
    if from_env is not None and settings.private_key_password_file:
        raise ConflictingOptionsError(
            f"The private key password is set both in ${env.CLI_PRIVATE_KEY_PASSWORD} and by "
            f"{settings.sources.get('private_key_password_file')}: keep one.",
            setting="private_key_password",
        )
    if from_env is not None:
        return from_env.encode()
    if settings.private_key_password_file:
        from .._pem import read_secret_file  # noqa: PLC0415 - not on the cached path

        return read_secret_file(settings.private_key_password_file, what="private key password")
    return None


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, Optional[str]]:
    """The first of ``name`` and its older spellings that is set, and its value."""
    for variable in (name, *_ALIASES.get(name, ())):
        value = environ.get(variable) or None
        if value is not None:
            return variable, value
    return name, None


def pkcs11_config(
    settings: Settings, environ: Optional[Mapping[str, str]] = None
) -> Optional[Pkcs11Config]:
    """The PKCS#11 key location from a ``pkcs11:`` URI and/or the PKCS#11 settings, with its PIN.

    Raises:
        ConflictingOptionsError: a PEM private key and PKCS#11 settings together, naming both.
        Pkcs11Error: a malformed URI.
        CredentialFileError: the PIN file cannot be read.
    """
    token_options = [
        name for name in ("slot_id", "token_label", "private_key_label") if getattr(settings, name)
    ]
    if is_pkcs11_uri(settings.private_key):
        from .._pkcs11 import parse_pkcs11_uri  # noqa: PLC0415 - not on the cached path

        assert settings.private_key is not None  # noqa: S101 - narrowed by is_pkcs11_uri
        config = parse_pkcs11_uri(settings.private_key, default_module_path=settings.pkcs11_lib)
        if token_options:
            raise ConflictingOptionsError(
                f"The private key is a pkcs11: URI and {_sources(settings, token_options)} also "
                "given: put the token and key in the URI only.",
                setting="pkcs11",
            )
    elif settings.pkcs11_lib:
        if settings.private_key:
            raise ConflictingOptionsError(
                f"Both {settings.describe('private_key')} and {settings.describe('pkcs11_lib')} "
                "are set: the key is either a PEM file or in a PKCS#11 token, keep one.",
                setting="private_key",
            )
        from .._pkcs11 import Pkcs11Config  # noqa: PLC0415 - not on the cached path

        config = Pkcs11Config(
            pkcs11_lib=settings.pkcs11_lib,
            slot_id=settings.slot_id,
            token_label=settings.token_label,
            private_key_label=settings.private_key_label,
        )
    else:
        if token_options:
            raise ConflictingOptionsError(
                f"{_sources(settings, token_options)} given without --pkcs11-lib (or a pkcs11: "
                "URI as the private key): name the PKCS#11 module too.",
                setting="pkcs11",
            )
        return None
    if config.user_pin is None:
        config = config._replace(user_pin=read_pin(settings, environ))
    return config


def _sources(settings: Settings, names: list[str]) -> str:
    """Where each of ``names`` was set, as the user spelled it."""
    return ", ".join(settings.sources.get(name, _BY_NAME[name].flag) for name in names)


def config_arguments(
    settings: Settings, *, pkcs11: Optional[Pkcs11Config], password: Optional[bytes]
) -> dict[str, Any]:
    """The ``ProviderConfig`` arguments these settings stand for, given the token (see
    :func:`pkcs11_config`) and the password (see :func:`read_password`) they resolved to."""
    arguments: dict[str, Any] = {
        "endpoint": settings.endpoint,
        "role_alias": settings.role_alias,
        "certificate": settings.certificate,
        "private_key": None if pkcs11 is not None else settings.private_key,
        "pkcs11": pkcs11,
        "thing_name": settings.thing_name,
        "ca": settings.ca,
        "verify_peer": not settings.no_verify_peer,
        "private_key_password": password,
        "proxy": settings.proxy,
        "region": settings.region,
    }
    if settings.timeout is not None:
        arguments["timeout"] = settings.timeout
    if settings.max_attempts is not None:
        arguments["max_attempts"] = settings.max_attempts
    return arguments


def provider_config(
    settings: Settings,
    environ: Optional[Mapping[str, str]] = None,
    *,
    pkcs11: Optional[Pkcs11Config] = None,
) -> ProviderConfig:
    """The library's one configuration for these settings; every value is checked there.

    Reads what the settings point at that the config holds: the PIN (variable, file or prompt)
    and the key's password. ``pkcs11`` is the token when the caller has resolved it already
    (and so already asked for the PIN).

    Raises:
        ConfigurationError: a subclass; its message ends with where the value came from.
    """
    environ = os.environ if environ is None else environ
    require(settings)
    from .._config import ProviderConfig  # noqa: PLC0415 - loads the validators

    try:
        if pkcs11 is None:
            pkcs11 = pkcs11_config(settings, environ)
        password = None if pkcs11 is not None else read_password(settings, environ)
        if settings.proxy:
            from .._proxy import parse_proxy_url  # noqa: PLC0415

            # First here, so that a malformed URL's message names the flag, variable or key.
            parse_proxy_url(settings.proxy, source=settings.sources.get("proxy", "--proxy"))
        return ProviderConfig(**config_arguments(settings, pkcs11=pkcs11, password=password))
    except ConfigurationError as error:
        add_hint(error, settings, environ)
        raise


def build_provider(
    settings: Settings,
    environ: Optional[Mapping[str, str]] = None,
    *,
    pkcs11: Optional[Pkcs11Config] = None,
) -> IotCredentialProvider:
    """The library's provider for these settings: the one path to the network.

    Raises:
        ConfigurationError: a subclass; its message ends with where the value came from.
    """
    environ = os.environ if environ is None else environ
    config = provider_config(settings, environ, pkcs11=pkcs11)
    from .._provider import IotCredentialProvider  # noqa: PLC0415 - imports awscrt

    try:
        return IotCredentialProvider.from_config(config)
    except ConfigurationError as error:
        add_hint(error, settings, environ)
        raise


#: Library arguments whose setting has another name here.
_SETTING_OF = {
    "verify_peer": "no_verify_peer",
    "private_key_password": "private_key_password_file",
    "pkcs11": "pkcs11_lib",
}


def hint(
    error: ConfigurationError, settings: Settings, environ: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """Where the value ``error`` is about came from, or how to set it: the library's messages
    name its arguments (``private_key``, ``user_pin``...), not the CLI's flags."""
    environ = os.environ if environ is None else environ
    argument = error.setting
    if argument is None:
        return None
    if argument == "pkcs11" and is_pkcs11_uri(settings.private_key):
        argument = "private_key"  # the token came from a URI
    if argument == "private_key_password" and environ.get(env.CLI_PRIVATE_KEY_PASSWORD):
        return f"from ${env.CLI_PRIVATE_KEY_PASSWORD}"
    name = _SETTING_OF.get(argument, argument)
    if name not in _BY_NAME:
        return None
    source = settings.sources.get(name)
    if source is not None:
        return f"from {source}"
    if argument == "private_key_password":
        return (
            f"set it in ${env.CLI_PRIVATE_KEY_PASSWORD}, or with --private-key-password-file or "
            "the profile key iot_private_key_password_file"
        )
    return f"set with {settings.describe(name)}"


def add_hint(
    error: ConfigurationError, settings: Settings, environ: Optional[Mapping[str, str]] = None
) -> None:
    """Append :func:`hint` to ``error``'s message, unless the message already names its source.

    The message stays one line: what ``main`` prints, and what ``check`` shows as a detail.
    """
    text = hint(error, settings, environ)
    if text is None or not error.args:
        return
    message = str(error.args[0])
    if text.startswith("from ") and text[5:] in message:
        return
    error.args = (f"{message} ({text})", *error.args[1:])


def setup_logging(
    verbosity: int, *, quiet_level: int = 30, timestamps: bool = False, background: bool = False
) -> None:
    """Log to stderr: ``quiet_level`` by default, INFO with ``-v``, DEBUG with ``-vv``.

    ``background``: for commands that run for months, a writer thread writes the lines, and a
    stderr that nobody reads drops lines instead of stopping the command (see ``_log_writer``).
    """
    import logging  # noqa: PLC0415 - not on credential-process's cached path

    level = quiet_level if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    if any(getattr(handler, "_awsiot_cli", False) for handler in root.handlers):
        root.setLevel(level)
        return
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler._awsiot_cli = True  # type: ignore[attr-defined]
    fmt = "%(asctime)s " if timestamps else ""
    handler.setFormatter(
        logging.Formatter(f"{fmt}awsiot-credentialhelper: %(levelname)s: %(message)s")
    )
    if background:
        from ._log_writer import BackgroundHandler  # noqa: PLC0415 - serve and update only

        handler = BackgroundHandler(handler)
        handler._awsiot_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
