"""The provider's one seam to the network: a Transport (``send``, ``close``), taken as
``transport=``; and awscrt imported by the transport and the credentials adapter only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from awsiot_credentialhelper import IotCredentialProvider, ProviderConfig
from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._endpoint import parse_endpoint
from awsiot_credentialhelper._keys import PemKey
from awsiot_credentialhelper._protocol import Request, Response
from awsiot_credentialhelper._transport import CrtTransport, Transport, build_tls_context

from ..conftest import provider_options
from ..servers import DeviceFiles, Reply, TlsServer, error_body

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "awsiot_credentialhelper"


class Recording:
    """A Transport around a real CrtTransport that records what crosses the seam."""

    def __init__(self, inner: CrtTransport) -> None:
        self.inner = inner
        self.requests: list[Request] = []
        self.timeouts: list[float] = []
        self.closed = False

    def send(self, request: Request, *, timeout: float) -> Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        return self.inner.send(request, timeout=timeout)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def _recording(server: TlsServer, device: DeviceFiles, ca: bytes) -> Recording:
    key = PemKey(device.private_key_pem, device.certificate_pem, origin="test key")
    context = build_tls_context(key, device.certificate_pem, ca_pem=ca, verify_peer=True)
    return Recording(CrtTransport(parse_endpoint(server.endpoint), context))


def test_a_provider_sends_through_the_transport_it_is_given(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    transport = _recording(server, device, Path(ca_file).read_bytes())
    checked: Transport = transport  # the protocol is structural
    config = ProviderConfig(**provider_options(server, device, ca_file), timeout=7)
    with IotCredentialProvider.from_config(config, transport=checked) as provider:
        assert provider.fetch().access_key_id == "ASIATEST"
    (request,) = transport.requests
    assert request.path == "/role-aliases/test-alias/credentials"
    assert ("x-amzn-iot-thingname", "test-thing") in request.headers
    assert 0 < transport.timeouts[0] <= 7
    assert transport.closed, "the provider closes the transport it was given"
    assert server.request_count == 1


def test_retries_happen_above_the_seam(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    server.set_default(Reply(status=503, body=error_body("down")))
    transport = _recording(server, device, Path(ca_file).read_bytes())
    provider = IotCredentialProvider(
        **provider_options(server, device, ca_file), max_attempts=2, transport=transport
    )
    with provider, pytest.raises(errors.ServiceUnavailableError):
        provider.fetch()
    assert len(transport.requests) == 2


def test_the_files_are_still_checked_with_a_transport(
    server: TlsServer, device: DeviceFiles, ca_file: str, tmp_path: Path
) -> None:
    transport = _recording(server, device, Path(ca_file).read_bytes())
    arguments = provider_options(server, device, ca_file)
    arguments["private_key"] = str(tmp_path / "no.key")
    with pytest.raises(errors.CredentialFileError, match="does not exist"):
        IotCredentialProvider(**arguments, transport=transport)
    transport.close()


def _imports_awscrt(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "awscrt" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "awscrt":
            return True
    return False


def test_awscrt_is_imported_by_the_transport_and_credentials_adapter_only() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "emulator" not in path.parts and _imports_awscrt(path)
    )
    # _crt_credentials: awscrt.auth's delegate provider, for awscrt-based AWS clients.
    assert importers == ["_crt_credentials.py", "_transport.py"]
