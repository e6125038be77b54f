"""How long ``credential-process`` takes, cached and uncached, next to a bare Python start.

Targets (from the issue): cached <= 1.5 x ``python -c pass``; uncached <= bare start + one
fetch + ``import awscrt``. Runs against a loopback mTLS server (tests/servers.py), so no
traffic leaves the machine. Runs are interleaved so machine load affects every figure alike.

    .venv/bin/python bench/cli_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench._loopback import in_process_server  # noqa: E402 - after the sys.path set-up

SCRIPT = str(Path(sys.executable).with_name("awsiot-credentialhelper"))


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.decode()}")
    return elapsed


def describe(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (
        f"{name:<28} min {ms[0]:7.1f} ms   median {statistics.median(ms):7.1f} ms   "
        f"p90 {ms[int(len(ms) * 0.9) - 1]:7.1f} ms"
    )


def _fetch_time(endpoint: str, certificate: str, key: str, ca_file: str) -> float:
    """Median seconds of one fetch by a warm provider in this process (TLS handshake included)."""
    from awsiot_credentialhelper import IotCredentialProvider  # noqa: PLC0415

    with IotCredentialProvider(
        endpoint=endpoint,
        role_alias="bench",
        certificate=certificate,
        private_key=key,
        ca=ca_file,
        trust_env=False,
    ) as provider:
        provider.fetch()
        times = []
        for _ in range(20):
            start = time.perf_counter()
            provider.fetch()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="runs per figure (default 40)")
    runs = parser.parse_args().runs
    with in_process_server() as local:
        directory, server, device = local.directory, local.server, local.device
        env = dict(os.environ, AWSIOT_CREDENTIAL_CACHE_DIR=os.path.join(directory, "cache"))
        # An installed package has its bytecode compiled; give every run a private, warm
        # bytecode cache instead of recompiling the sources (this tree sets DONTWRITEBYTECODE).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(directory, "pycache")
        process = [
            SCRIPT,
            "credential-process",
            "--role-alias=bench",
            *local.flags(),
        ]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import awscrt'": [sys.executable, "-c", "import awscrt.http"],
            "+ import cryptography.x509": [
                sys.executable,
                "-c",
                "import awscrt.http, cryptography.x509",
            ],
            # The floor set by the package's own __init__.
            "import awsiot_credentialhelper": [
                sys.executable,
                "-c",
                "import awsiot_credentialhelper",
            ],
            "credential-process cached": process,
            "credential-process --no-cache": [*process, "--no-cache"],
        }
        for command in commands.values():  # fill the caches (bytecode, page cache, credentials)
            timed(command, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                samples[name].append(timed(command, env))
        fetches = server.request_count
        fetch = _fetch_time(
            server.endpoint, device.certificate_file, device.private_key_file, local.ca_file
        )
    for name, values in samples.items():
        print(describe(name, values))
    bare = statistics.median(samples["python -c pass"])
    crt = statistics.median(samples["python -c 'import awscrt'"]) - bare
    cached = statistics.median(samples["credential-process cached"])
    uncached = statistics.median(samples["credential-process --no-cache"])
    floor = statistics.median(samples["import awsiot_credentialhelper"])
    best = min(samples["credential-process cached"]) / min(samples["python -c pass"])
    print(f"cached / bare start: median {cached / bare:.2f}x, min {best:.2f}x (target <= 1.5x)")
    print(f"(importing the package alone costs {floor / bare:.2f}x a bare start)")
    crypto = statistics.median(samples["+ import cryptography.x509"]) - bare - crt
    budget = bare + crt + fetch
    print(
        f"uncached: {uncached * 1000:.1f} ms; target bare + import awscrt + one fetch "
        f"({fetch * 1000:.1f} ms, in-process) = {budget * 1000:.1f} ms ({uncached / budget:.2f}x); "
        f"the library's provider also imports cryptography ({crypto * 1000:.1f} ms)"
    )
    print(f"server saw {fetches} requests for {runs} uncached runs (+1 to fill the cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
