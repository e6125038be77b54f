#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need on a fresh machine: system packages
# (SoftHSM2, and a software TPM 2.0 with its PKCS#11 module, for the key-store tests) and a
# virtualenv with the project and its extras. Needs only bash, make and a Python 3.9+.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every package whose program or library the tests run or load, named explicitly: some are
# loaded by name at run time, so no other package depends on them (nor recommends them).
APT_PACKAGES=(
    softhsm2 libsofthsm2        # softhsm2-util; the PKCS#11 module awscrt loads
    swtpm                       # the software TPM 2.0
    dbus-daemon                 # a private session bus for tpm2-abrmd
    tpm2-abrmd                  # the resource manager between the TPM and its clients
    libtss2-tcti-swtpm0         # TCTI tpm2-abrmd reaches swtpm through
    libtss2-tcti-tabrmd0        # TCTI tpm2-tools, tpm2_ptool, tpm2-pkcs11 reach tpm2-abrmd by
    tpm2-tools                  # tpm2_getcap, tpm2_dictionarylockout
    libtpm2-pkcs11-1            # the TPM's PKCS#11 module awscrt loads
    libtpm2-pkcs11-tools python3-tpm2-pytss  # tpm2_ptool, and the TSS binding it imports
    openssl                     # docs/protecting-keys.md's walkthrough
    iproute2                    # ip netns: serve on a container network, in a test's namespace
    systemd                     # systemd-analyze verify: docs/service.md's unit file
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
        echo "bootstrap: please install ${missing[*]} (without them the PKCS#11 tests skip," \
            "and fail under CI=true)" >&2
    fi
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        # A pyenv shim can exist for a version that is not selected: run it to be sure.
        if "$candidate" -c "" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $python"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[aio,emulator,dev]"
echo "bootstrap: ready"
