"""Shared options, declared once: a flag, else an environment variable, else a ``--profile`` key.

Every subcommand that talks to the Credential Provider takes the same settings. They are
declared once in :data:`OPTIONS` and resolved once into an immutable :class:`Settings`, which
the subcommand hands to :func:`build_provider`. This module stays cheap to import (no awscrt,
boto3, botocore or cryptography): ``credential-process`` answers from its cache with it alone.
"""

from __future__ import annotations

import os
import sys

from .. import _environment as env
from .._arguments import check_timeout, is_pkcs11_uri, looks_like_key_material, shown_path
from ..exceptions import ConfigurationError, ConflictingOptionsError, CredentialFileError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from typing import Any, Optional, Union

    from .._pkcs11 import Pkcs11Config
    from .._provider import IotCredentialProvider

__all__ = [
    "OPTIONS",
    "TRUE",
    "Option",
    "Settings",
    "add_common_options",
    "build_provider",
    "fast_parse",
    "is_pkcs11_uri",
    "load_profile",
    "resolve",
    "setup_logging",
]

#: Spellings of true and false accepted from environment variables and profiles.
TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_PEM_MARKER = "-----BEGIN"


class Option:
    """One setting: its flag, its environment variable and its key in an AWS config profile.

    A plain class, not a NamedTuple: building namedtuple classes costs start-up time, and
    ``credential-process`` runs once per AWS CLI command.
    """

    __slots__ = ("env", "flag", "group", "help", "kind", "metavar", "name", "profile_key")

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
    ) -> None:
        self.name = name
        self.flag = flag
        self.env = env
        self.profile_key = profile_key
        self.help = help
        self.metavar = metavar
        self.kind = kind
        self.group = group


OPTIONS: tuple[Option, ...] = (
    Option(
        "endpoint",
        "--endpoint",
        env.CLI_ENDPOINT,
        "iot_credential_endpoint",
        "Credential Provider endpoint (`aws iot describe-endpoint --endpoint-type "
        "iot:CredentialProvider`)",
        "HOST[:PORT]",
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
    ),
    Option(
        "timeout",
        "--timeout",
        env.CLI_TIMEOUT,
        "iot_timeout",
        "seconds one fetch may take, retries included (default 30)",
        "SECONDS",
        kind="float",
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
    ),
    Option(
        "slot_id",
        "--slot-id",
        env.CLI_PKCS11_SLOT_ID,
        "iot_slot_id",
        "PKCS#11 slot",
        "ID",
        kind="int",
        group="pkcs11",
    ),
    Option(
        "token_label",
        "--token-label",
        env.CLI_PKCS11_TOKEN_LABEL,
        "iot_token_label",
        "PKCS#11 token label",
        "LABEL",
        group="pkcs11",
    ),
    Option(
        "key_label",
        "--key-label",
        env.CLI_PKCS11_KEY_LABEL,
        "iot_key_label",
        "PKCS#11 private key label",
        "LABEL",
        group="pkcs11",
    ),
    Option(
        "pin_file",
        "--pin-file",
        env.CLI_PKCS11_PIN_FILE,
        "iot_pin_file",
        f"file holding the PKCS#11 user PIN (or set ${env.CLI_PKCS11_PIN}; else a prompt on "
        "a terminal)",
        "PATH",
        group="pkcs11",
    ),
)

_BY_NAME = {option.name: option for option in OPTIONS}


class Settings:
    """The resolved settings, one immutable object; holds no PIN or password.

    ``certificate``, ``private_key`` and ``ca`` are a path, a ``pkcs11:`` URI (key only), or
    PEM text that came from an environment variable. ``sources`` says where each value came
    from, for messages.
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
    proxy: Optional[str]
    pkcs11_lib: Optional[str]
    slot_id: Optional[int]
    token_label: Optional[str]
    key_label: Optional[str]
    pin_file: Optional[str]
    profile: Optional[str]
    sources: Mapping[str, str]

    def __init__(self, *, sources: Optional[Mapping[str, str]] = None, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        for name in self.FIELDS:
            object.__setattr__(self, name, values.get(name))
        object.__setattr__(self, "sources", dict(sources or {}))

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
            if isinstance(value, str) and _PEM_MARKER in value:
                value = "<PEM text>"
            elif isinstance(value, str) and looks_like_key_material(value):
                value = "<key material>"
            elif isinstance(value, str) and value.startswith("pkcs11:") and "?" in value:
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
    """Declare every shared option on ``parser``; ``None`` defaults tell unset from set."""
    groups = {
        "connection": parser.add_argument_group(
            "connection (each flag falls back to its $VARIABLE, then to --profile's key)"
        ),
        "pkcs11": parser.add_argument_group("PKCS#11 (a private key in an HSM, TPM or token)"),
    }
    for option in OPTIONS:
        group = groups[option.group]
        text = f"{option.help} [${option.env}; {option.profile_key}]"
        if option.kind == "bool":
            group.add_argument(
                option.flag, dest=option.name, action="store_const", const=True, help=text
            )
        else:
            group.add_argument(option.flag, dest=option.name, metavar=option.metavar, help=text)
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
    takes_value = {option.flag: option.name for option in OPTIONS if option.kind != "bool"}
    takes_value["--profile"] = "profile"
    flags = {option.flag: option.name for option in OPTIONS if option.kind == "bool"}
    values: dict[str, Any] = {option.name: None for option in OPTIONS}
    values.update(profile=None, verbose=0)
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
        raw: Any = getattr(namespace, option.name, None)
        source = option.flag
        if raw is None:
            raw = environ.get(option.env) or None
            source = f"${option.env}"
        if raw is None and option.profile_key in profile:
            raw = profile[option.profile_key]
            source = f"profile {profile_name!r} key {option.profile_key}"
        if raw is None:
            continue
        values[option.name] = _convert(option, raw, source)
        sources[option.name] = source
    key = values.get("private_key")
    if key and sources["private_key"] == "--private-key":
        _refuse_secret_on_command_line(key)
    return Settings(profile=profile_name, sources=sources, **values)


def _refuse_secret_on_command_line(key: str) -> None:
    """A command line is visible to every user (ps, shell history): no key or PIN there."""
    if _PEM_MARKER in key:
        raise ConfigurationError(
            "--private-key holds PEM text: a private key on the command line is visible to every "
            f"user (ps, shell history). Pass a file path, or put the PEM in ${env.CLI_PRIVATE_KEY}."
        )
    if key.startswith("pkcs11:") and "pin-value=" in key:
        raise ConfigurationError(
            "--private-key holds a pkcs11: URI with pin-value: a PIN on the command line is "
            "visible to every user (ps, shell history). Use pin-source=file:<path>, --pin-file, "
            f"or put the URI in ${env.CLI_PRIVATE_KEY}."
        )


def _convert(option: Option, raw: Any, source: str) -> Any:
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
        return raw if _PEM_MARKER in text else text
    try:
        number: Union[int, float] = int(text) if option.kind == "int" else float(text)
    except ValueError:
        raise ConfigurationError(f"{source} must be a number, got {text[:40]!r}.") from None
    if option.name == "timeout":
        return check_timeout(number, name=source)
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


def require(settings: Settings, *names: str) -> None:
    """Fail with a message naming every way to set each missing setting.

    Raises:
        ConfigurationError: a required setting has no value.
    """
    missing = [name for name in names if not getattr(settings, name)]
    if missing:
        lines = "; ".join(settings.describe(name) for name in missing)
        raise ConfigurationError(f"Missing setting(s): {lines}.")


def pem_or_path(value: str) -> Union[bytes, str]:
    """PEM text (from an environment variable) as bytes; anything else is a file path."""
    if _PEM_MARKER in value:
        return value.encode()
    return os.path.expanduser(value)


def read_pin(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The PKCS#11 PIN from its variable, its file, or a prompt on a terminal; else ``None``.

    Raises:
        ConflictingOptionsError: both the variable and a PIN file are set.
        CredentialFileError: the PIN file is missing, unreadable or empty.
    """
    environ = os.environ if environ is None else environ
    from_env = environ.get(env.CLI_PKCS11_PIN) or None
    if from_env is not None and settings.pin_file:
        raise ConflictingOptionsError(
            f"The PKCS#11 PIN is set both in ${env.CLI_PKCS11_PIN} and by "
            f"{settings.describe('pin_file')}: keep one."
        )
    if from_env is not None:
        return from_env
    if settings.pin_file:
        from .._pem import read_secret_file  # noqa: PLC0415 - imports cryptography

        pin = read_secret_file(settings.pin_file, what="PKCS#11 PIN")
        try:
            return pin.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialFileError(
                f"The PKCS#11 PIN file {shown_path(settings.pin_file)} is not UTF-8 text."
            ) from None
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
            f"{settings.describe('private_key_password_file')}: keep one."
        )
    if from_env is not None:
        return from_env.encode()
    if settings.private_key_password_file:
        from .._pem import read_secret_file  # noqa: PLC0415 - not on the cached path

        return read_secret_file(settings.private_key_password_file, what="private key password")
    return None


def pkcs11_config(
    settings: Settings, environ: Optional[Mapping[str, str]] = None
) -> Optional[Pkcs11Config]:
    """The PKCS#11 key location from a ``pkcs11:`` URI and/or the ``--pkcs11-*`` options.

    Raises:
        ConflictingOptionsError: a PEM private key and PKCS#11 options together.
        Pkcs11Error: a malformed URI.
    """
    token_options = [n for n in ("slot_id", "token_label", "key_label") if getattr(settings, n)]
    if is_pkcs11_uri(settings.private_key):
        from .._pkcs11 import parse_pkcs11_uri  # noqa: PLC0415 - not on the cached path

        assert settings.private_key is not None  # noqa: S101 - narrowed by is_pkcs11_uri
        config = parse_pkcs11_uri(settings.private_key, default_module_path=settings.pkcs11_lib)
        if token_options:
            raise ConflictingOptionsError(
                f"The private key is a pkcs11: URI and {_flags(token_options)} also given: put "
                "the token and key in the URI only."
            )
    elif settings.pkcs11_lib:
        if settings.private_key:
            raise ConflictingOptionsError(
                f"Both {settings.describe('private_key')} and {settings.describe('pkcs11_lib')} "
                "are set: the key is either a PEM file or in a PKCS#11 token, keep one."
            )
        from .._pkcs11 import Pkcs11Config  # noqa: PLC0415 - not on the cached path

        config = Pkcs11Config(
            pkcs11_lib=settings.pkcs11_lib,
            slot_id=settings.slot_id,
            token_label=settings.token_label,
            private_key_label=settings.key_label,
        )
    else:
        if token_options:
            raise ConflictingOptionsError(
                f"{_flags(token_options)} given without --pkcs11-lib (or a pkcs11: URI as the "
                "private key): name the PKCS#11 module too."
            )
        return None
    if config.user_pin is None:
        config = config._replace(user_pin=read_pin(settings, environ))
    return config


def _flags(names: list[str]) -> str:
    return ", ".join(_BY_NAME[name].flag for name in names)


def build_provider(
    settings: Settings,
    environ: Optional[Mapping[str, str]] = None,
    *,
    pkcs11: Optional[Pkcs11Config] = None,
) -> IotCredentialProvider:
    """The library's provider for these settings: the one path to the network.

    ``pkcs11`` is the token configuration when the caller has already resolved it (and so
    already asked for the PIN); otherwise it is resolved here.

    Raises:
        ConfigurationError: a subclass naming the setting to fix.
    """
    environ = os.environ if environ is None else environ
    require(settings, "endpoint", "role_alias", "certificate")
    if not settings.private_key and not settings.pkcs11_lib:
        require(settings, "private_key")
    from .._provider import IotCredentialProvider  # noqa: PLC0415 - imports awscrt

    if pkcs11 is None:
        pkcs11 = pkcs11_config(settings, environ)
    password = None if pkcs11 is not None else read_password(settings, environ)
    if settings.proxy:
        from .._proxy import parse_proxy_url  # noqa: PLC0415 - imports urllib

        # Parsed here first so that a malformed URL names the flag, variable or profile key.
        parse_proxy_url(settings.proxy, source=settings.sources.get("proxy", "--proxy"))
    options: dict[str, Any] = {}
    if settings.timeout is not None:
        options["timeout"] = settings.timeout
    assert settings.endpoint  # noqa: S101 - checked by require()
    assert settings.role_alias  # noqa: S101
    assert settings.certificate  # noqa: S101
    key = settings.private_key
    return IotCredentialProvider(
        endpoint=settings.endpoint,
        role_alias=settings.role_alias,
        thing_name=settings.thing_name,
        certificate=pem_or_path(settings.certificate),
        private_key=None if pkcs11 or not key else pem_or_path(key),
        pkcs11=pkcs11,
        ca=pem_or_path(settings.ca) if settings.ca else None,
        verify_peer=not settings.no_verify_peer,
        private_key_password=password,
        proxy=settings.proxy,
        **options,
    )


def setup_logging(verbosity: int, *, quiet_level: int = 30, timestamps: bool = False) -> None:
    """Log to stderr: ``quiet_level`` by default, INFO with ``-v``, DEBUG with ``-vv``."""
    import logging  # noqa: PLC0415 - not on credential-process's cached path

    level = quiet_level if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    if any(getattr(handler, "_awsiot_cli", False) for handler in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._awsiot_cli = True  # type: ignore[attr-defined]
    fmt = "%(asctime)s " if timestamps else ""
    handler.setFormatter(
        logging.Formatter(f"{fmt}awsiot-credentialhelper: %(levelname)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
