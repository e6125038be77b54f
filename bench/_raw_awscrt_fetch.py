"""The floor for a one-shot fetch in Python: awscrt, json and datetime, and nothing else.

No validation, no typed errors, no retries, no timeouts: what remains when everything this
package adds is taken away. bench/cli_startup.py times it next to ``credential-process``.

    python bench/_raw_awscrt_fetch.py HOST:PORT CERTIFICATE KEY CA
"""

import _socket
import datetime
import json
import os
import sys

from awscrt import http, io

endpoint, certificate, key, ca = sys.argv[1:]
host, port = endpoint.rsplit(":", 1)
event_loop_group = io.EventLoopGroup(1)
bootstrap = io.ClientBootstrap(event_loop_group, io.DefaultHostResolver(event_loop_group))
with open(certificate, "rb") as cert_file, open(key, "rb") as key_file, open(ca, "rb") as ca_file:
    options = io.TlsContextOptions.create_client_with_mtls(cert_file.read(), key_file.read())
    options.override_default_trust_store(ca_file.read())
connection_options = io.ClientTlsContext(options).new_connection_options()
connection_options.set_server_name(host)
connection = http.HttpClientConnection.new(
    host_name=host, port=int(port), bootstrap=bootstrap, tls_connection_options=connection_options
).result(10)
for fd in os.listdir("/proc/self/fd"):  # TCP_NODELAY, as the package does (else +40 ms)
    try:
        sock = _socket.socket(fileno=os.dup(int(fd)))
    except OSError:
        continue
    try:
        if sock.getpeername()[1] == int(port):
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    except (OSError, IndexError, TypeError):
        pass
    finally:
        sock.close()
body = bytearray()
request = http.HttpRequest(
    "GET", "/role-aliases/bench/credentials", http.HttpHeaders([("host", endpoint)])
)
stream = connection.request(request, on_body=lambda chunk, **_: body.extend(chunk))
stream.activate()
stream.completion_future.result(10)
connection.close()
answer = json.loads(body)["credentials"]
expiration = datetime.datetime.fromisoformat(answer["expiration"].replace("Z", "+00:00"))
print(
    json.dumps(
        {
            "Version": 1,
            "AccessKeyId": answer["accessKeyId"],
            "SecretAccessKey": answer["secretAccessKey"],
            "SessionToken": answer["sessionToken"],
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
)
