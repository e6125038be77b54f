#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need on a fresh machine: system packages
# (SoftHSM2, and a software TPM 2.0 with its PKCS#11 module, for the key-store tests) and a
# virtualenv with the project and its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    softhsm2
    swtpm swtpm-tools tpm2-tools tpm2-abrmd dbus libtpm2-pkcs11-1 libtpm2-pkcs11-tools
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: please install ${missing[*]} (PKCS#11 tests will be skipped without them)" >&2
    fi
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $python"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[emulator,dev]"
echo "bootstrap: ready"
