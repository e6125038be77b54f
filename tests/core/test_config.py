"""ProviderConfig: one checked, frozen value that the provider, boto3 sessions and the CLI share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from awsiot_credentialhelper import IotCredentialProvider, Pkcs11Config, ProviderConfig
from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT,
    PATH,
    PEM_BYTES,
    PEM_TEXT,
    PKCS11,
    PKCS11_URI,
    argument_errors,
    key_kind,
    missing_settings,
)
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

from ..servers import DeviceFiles, TlsServer

PEM_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n"
)
SECRET = "s3cret-7351"


def _config(**overrides: Any) -> ProviderConfig:
    arguments: dict[str, Any] = {
        "endpoint": "c1example.credentials.iot.eu-west-1.amazonaws.com",
        "role_alias": "alias",
        "certificate": "/etc/iot/device.pem.crt",
        "private_key": "/etc/iot/device.pem.key",
    }
    arguments.update(overrides)
    return ProviderConfig(**arguments)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        pytest.param(b"-----BEGIN PRIVATE KEY-----", PEM_BYTES, id="bytes"),
        pytest.param(bytearray(b"x"), PEM_BYTES, id="bytearray"),
        pytest.param(PEM_KEY, PEM_TEXT, id="pem-text"),
        pytest.param("/etc/iot/device.pem.key", PATH, id="path-str"),
        pytest.param(Path("device.key"), PATH, id="pathlike"),
        pytest.param("pkcs11:token=t?module-path=/m.so", PKCS11_URI, id="uri"),
        pytest.param("PKCS11:token=t", PKCS11_URI, id="uri-upper-case-scheme"),
        pytest.param(Pkcs11Config("/m.so"), PKCS11, id="pkcs11-config"),
        pytest.param({"pkcs11_lib": "/m.so"}, PKCS11, id="1x-dict"),
    ],
)
def test_key_kind_decides_once(value: object, kind: str) -> None:
    assert key_kind(value) == kind


@pytest.mark.parametrize("value", [None, 42, 1.5], ids=["none", "int", "float"])
def test_key_kind_refuses_what_no_key_is(value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="private_key must be PEM bytes") as caught:
        key_kind(value)
    assert caught.value.setting == "private_key"


def test_the_config_holds_checked_values() -> None:
    config = _config(
        endpoint="C1EXAMPLE.credentials.iot.eu-west-1.amazonaws.com:8443",
        private_key=bytearray(PEM_KEY.encode()),
        thing_name="",
        proxy="http://user:pw@proxy:3128",
        timeout=5,
        region="",
    )
    assert config.endpoint.host == "c1example.credentials.iot.eu-west-1.amazonaws.com"
    assert (config.endpoint.port, config.endpoint.region) == (8443, "eu-west-1")
    assert config.key == PEM_KEY.encode()
    assert type(config.key) is bytes
    assert config.key_kind == PEM_BYTES
    assert config.thing_name is None
    assert config.region is None
    assert (config.proxy.host, config.proxy.port) == ("proxy", 3128)  # type: ignore[union-attr]
    assert config.timeout == 5.0
    assert isinstance(config.timeout, float)
    assert config.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert _config().timeout == DEFAULT_TIMEOUT


def test_a_uri_becomes_a_token_config(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text(SECRET + "\n")
    pin.chmod(0o600)
    config = _config(private_key=f"pkcs11:token=t;object=k?module-path=/m.so&pin-source={pin}")
    assert config.key == Pkcs11Config("/m.so", SECRET, None, "t", "k")
    assert config.key_kind == PKCS11
    assert SECRET not in repr(config)


def test_a_1x_dict_becomes_a_token_config() -> None:
    config = _config(private_key=None, pkcs11={"pkcs11_lib": "/m.so", "user_pin": SECRET})
    assert config.key == Pkcs11Config(pkcs11_lib="/m.so", user_pin=SECRET)
    assert SECRET not in repr(config)


def test_frozen_compared_by_value_and_hashable() -> None:
    config = _config()
    assert config == _config()
    assert hash(config) == hash(_config())
    assert config != _config(thing_name="thing")
    assert config != "not a config"
    with pytest.raises(AttributeError, match="immutable"):
        config.timeout = 1.0
    with pytest.raises(AttributeError):
        del config.timeout
    with pytest.raises(AttributeError):
        config.extra = 1


@pytest.mark.parametrize(
    ("overrides", "secret", "shown"),
    [
        pytest.param({"private_key": PEM_KEY}, "MIGHAgEA", "key=<PEM text>", id="pem-text"),
        pytest.param(
            {"private_key": PEM_KEY.encode()}, "MIGHAgEA", "key=<PEM bytes>", id="pem-bytes"
        ),
        pytest.param(
            {"private_key": "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg" * 2},
            "MIGHAgEA",
            "looks like key material",
            id="key-body-as-path",
        ),
        pytest.param(
            {"private_key": f"pkcs11:token=t?module-path=/m.so&pin-value={SECRET}"},
            SECRET,
            "key=Pkcs11Config(pkcs11_lib='/m.so'",
            id="pin-in-uri",
        ),
        pytest.param(
            {"private_key_password": SECRET},
            SECRET,
            "private_key_password=<hidden>",
            id="password",
        ),
        pytest.param(
            {"proxy": f"http://user:{SECRET}@proxy:3128"},
            SECRET,
            "proxy='http://user:***@proxy:3128'",
            id="proxy-password",
        ),
    ],
)
def test_repr_shows_no_secret(overrides: dict[str, Any], secret: str, shown: str) -> None:
    text = repr(_config(**overrides))
    assert secret not in text
    assert shown in text


def test_the_first_error_names_its_setting_and_argument_errors_lists_them_all() -> None:
    arguments: dict[str, Any] = {
        "endpoint": "a1-ats.iot.us-east-1.amazonaws.com",
        "role_alias": "bad/alias",
        "certificate": 42,
        "private_key": "/k.pem",
        "pkcs11": Pkcs11Config("/m.so"),
        "timeout": 0,
        "proxy": "https://proxy:3128",
        "region": 7,
    }
    with pytest.raises(errors.ConfigurationError, match="timeout must be") as caught:
        ProviderConfig(**arguments)
    assert caught.value.setting == "timeout"
    found = argument_errors(**arguments)
    assert sorted(found) == [
        "certificate",
        "endpoint",
        "private_key",
        "proxy",
        "region",
        "role_alias",
        "timeout",
    ]
    assert isinstance(found["private_key"], errors.ConflictingOptionsError)
    assert isinstance(found["endpoint"], errors.InvalidEndpointError)
    assert argument_errors(**{**arguments, "role_alias": "a"})["endpoint"] is not None
    assert not argument_errors(
        endpoint="localhost:1", role_alias="a", certificate="/c", private_key="/k", ca="/x"
    )
    assert list(argument_errors(endpoint="localhost:1", role_alias="a", certificate="/c")) == [
        "private_key"
    ]
    with pytest.raises(TypeError, match="does not take nope"):
        argument_errors(nope=1)


def test_missing_settings_counts_either_key() -> None:
    assert missing_settings(
        endpoint=None, role_alias="", certificate="/c", private_key=None, pkcs11=None
    ) == ["endpoint", "role_alias", "private_key"]
    assert not missing_settings(
        endpoint="e", role_alias="a", certificate="/c", private_key=None, pkcs11="/lib.so"
    )


def test_from_config_fetches_like_the_keyword_constructor(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    arguments: dict[str, Any] = {
        "endpoint": server.endpoint,
        "role_alias": "test-alias",
        "thing_name": "test-thing",
        "certificate": device.certificate_file,
        "private_key": device.private_key_pem,
        "ca": ca_file,
        "trust_env": False,
    }
    config = ProviderConfig(**arguments)
    with IotCredentialProvider.from_config(config) as from_config:
        assert from_config.config is config
        assert from_config.fetch().access_key_id == "ASIATEST"
    with IotCredentialProvider(**arguments) as from_keywords:
        assert from_keywords.config == config
        assert repr(from_keywords) == repr(from_config)
    assert server.request_count == 1


def test_from_config_takes_only_a_config() -> None:
    with pytest.raises(errors.ConfigurationError, match="config must be a ProviderConfig"):
        IotCredentialProvider.from_config({"endpoint": "x"})  # type: ignore[arg-type]


def test_file_errors_of_from_config_name_their_setting(tmp_path: Path, device: DeviceFiles) -> None:
    with pytest.raises(errors.CredentialFileError) as caught:
        IotCredentialProvider.from_config(
            _config(certificate=str(tmp_path / "missing.pem"), private_key=device.private_key_file)
        )
    assert caught.value.setting == "certificate"
    with pytest.raises(errors.CredentialFileError) as caught:
        IotCredentialProvider.from_config(
            _config(certificate=device.certificate_file, private_key=str(tmp_path / "no.key"))
        )
    assert caught.value.setting == "private_key"


def test_boto3_sessions_take_a_config(server: TlsServer, device: DeviceFiles, ca_file: str) -> None:
    config = ProviderConfig(
        endpoint=server.endpoint,
        role_alias="test-alias",
        certificate=device.certificate_file,
        private_key=device.private_key_file,
        ca=ca_file,
        trust_env=False,
        region="eu-north-1",
    )
    with Boto3SessionProvider(config=config, refresh_in_background=False) as sessions:
        assert sessions.provider.config is config
        assert sessions.get_session().region_name == "eu-north-1"
        credentials = sessions.get_session().get_credentials()
        assert credentials is not None
        assert credentials.get_frozen_credentials().access_key == "ASIATEST"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        pytest.param(("localhost:1",), "endpoint", id="positional-endpoint"),
        pytest.param({"timeout": 5}, "timeout", id="timeout"),
        pytest.param({"verify_peer": False}, "verify_peer", id="verify-peer"),
        pytest.param({"region": "us-east-2"}, "region", id="region"),
    ],
)
def test_boto3_config_and_the_arguments_it_replaces_conflict(arguments: Any, named: str) -> None:
    positional = arguments if isinstance(arguments, tuple) else ()
    keywords = arguments if isinstance(arguments, dict) else {}
    with pytest.raises(errors.ConflictingOptionsError, match=f"Both config and {named} were"):
        Boto3SessionProvider(*positional, config=_config(), **keywords)


def test_boto3_without_config_or_the_required_arguments() -> None:
    with pytest.raises(errors.ConfigurationError, match="needs endpoint, role_alias, certificate"):
        Boto3SessionProvider()
    with pytest.raises(errors.ConfigurationError, match="config must be a ProviderConfig"):
        Boto3SessionProvider(config="x")  # type: ignore[arg-type]


def test_building_a_config_loads_no_network_stack_or_cryptography() -> None:
    code = (
        "import sys\n"
        "from awsiot_credentialhelper import ProviderConfig\n"
        "ProviderConfig(endpoint='localhost:1', role_alias='a', certificate='/c',"
        " private_key='pkcs11:token=t?module-path=/m.so')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'awscrt', '_awscrt', 'botocore', 'boto3', 'cryptography'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert loaded.stdout.strip() == "[]"


def test_the_defaults_live_in_one_place() -> None:
    import inspect  # noqa: PLC0415

    from awsiot_credentialhelper import _provider, _retry  # noqa: PLC0415
    from awsiot_credentialhelper.cli import _credential_process  # noqa: PLC0415

    for function in (IotCredentialProvider, ProviderConfig, Boto3SessionProvider):
        parameters = inspect.signature(function).parameters
        assert parameters["timeout"].default is DEFAULT_TIMEOUT
        assert parameters["max_attempts"].default is DEFAULT_MAX_ATTEMPTS
    assert _provider.DEFAULT_TIMEOUT is DEFAULT_TIMEOUT
    assert _retry.DEFAULT_MAX_ATTEMPTS is DEFAULT_MAX_ATTEMPTS
    assert vars(_credential_process)["DEFAULT_TIMEOUT"] is DEFAULT_TIMEOUT
    assert not hasattr(_credential_process, "FETCH_TIMEOUT")
