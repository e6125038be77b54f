#!/usr/bin/env bash
# Checks that the wheel `make dist` built is what was tested: on each Python version given
# (e.g. `scripts/test-wheel.sh 3.9 3.13`), it installs dist/*.whl into two clean virtualenvs,
# bare and with the [emulator] extra, and
#   - runs the console script of each (--version must be the wheel's version);
#   - starts the emulator from the one with the extra, and fetches credentials from it with the
#     bare one's `credential-process` (and `check`), the way a device would;
#   - checks that the bare install says how to get the emulator instead of failing obscurely.
# `pipx install` of the wheel (pipx from the dev extra, in .venv) must give a working command too
# (on Python 3.10+: pipx's own pip no longer runs on 3.9).
# pip's own cache is reused, so a run costs a minute or two, not a download of everything.
# A Python that is not installed is reported; under CI=true that fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/find-python.sh
source scripts/find-python.sh

on_ci() {
    case "${CI:-}" in true | TRUE | True | 1) return 0 ;; *) return 1 ;; esac
}

if [ $# -eq 0 ]; then
    echo "usage: $0 VERSION... (e.g. 3.9 3.13); run \`make dist\` first" >&2
    exit 2
fi
shopt -s nullglob
wheels=(dist/*.whl)
if [ ${#wheels[@]} -ne 1 ]; then
    echo "test-wheel: expected one wheel in dist/ (run \`make dist\`), found ${#wheels[@]}" >&2
    exit 2
fi
wheel=$(realpath "${wheels[0]}")
version=$(basename "$wheel" | cut -d- -f2)

pipx=.venv/bin/pipx
if [ ! -x "$pipx" ]; then
    echo "test-wheel: $pipx is missing: run \`make bootstrap\` (pipx is in the dev extra)" >&2
    exit 2
fi
pipx=$(realpath "$pipx")

scratch=$(mktemp -d)
emulator_pid=""
cleanup() {
    if [ -n "$emulator_pid" ]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

fail() {
    echo "test-wheel: FAILED on Python $1: $2" >&2
    exit 1
}

# install VENV PYTHON REQUIREMENT: a clean virtualenv holding only the wheel (and its extras).
install() {
    "$2" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --quiet --disable-pip-version-check "$3"
}

# Waits up to 60 s for the emulator to write its emulator.json.
wait_for_file() {
    local deadline=$((SECONDS + 60))
    until [ -s "$1" ]; do
        if [ $SECONDS -ge $deadline ] || ! kill -0 "$emulator_pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.2
    done
}

check_python() {
    local python_version=$1 python=$2 home="$scratch/$1"
    local bare="$home/bare" full="$home/emulator" data="$home/emu"
    mkdir -p "$home"
    echo "test-wheel: $("$python" --version 2>&1): installing $(basename "$wheel") bare and with [emulator]"
    install "$bare" "$python" "$wheel" || fail "$python_version" "pip install of the wheel"
    install "$full" "$python" "$wheel[emulator]" || fail "$python_version" "pip install [emulator]"

    for venv in "$bare" "$full"; do
        local shown
        shown=$("$venv/bin/awsiot-credentialhelper" --version)
        [ "$shown" = "awsiot-credentialhelper $version" ] ||
            fail "$python_version" "--version printed '$shown', the wheel is $version"
    done
    "$bare/bin/python" -c "import importlib.resources as r, awsiot_credentialhelper as a; \
assert r.files(a).joinpath('py.typed').is_file(), 'py.typed is missing'" ||
        fail "$python_version" "the installed package has no py.typed"
    local hint
    if hint=$("$bare/bin/awsiot-credentialhelper" emulator --dir "$data" 2>&1); then
        fail "$python_version" "the emulator ran without its extra"
    fi
    grep -q "\[emulator\]" <<<"$hint" ||
        fail "$python_version" "the bare install's emulator error does not name the extra: $hint"

    # The emulator from the wheel with its extra; a device's fetch from the bare wheel.
    (cd "$home" && exec env -u AWS_PROFILE "$full/bin/awsiot-credentialhelper" emulator \
        --dir "$data" --device kitchen >"$home/emulator.log" 2>&1) &
    emulator_pid=$!
    wait_for_file "$data/emulator.json" || {
        cat "$home/emulator.log" >&2
        fail "$python_version" "the emulator did not start"
    }
    local settings
    settings=$("$full/bin/python" -c "import json, sys, shlex
e = json.load(open(sys.argv[1])); d = e['devices'][0]
print(shlex.join(['--endpoint', e['endpoint'], '--role-alias', d['role_alias'],
    '--thing-name', d['thing_name'], '--certificate', d['certificate_file'],
    '--private-key', d['private_key_file'], '--ca', e['ca_file']]))" "$data/emulator.json")
    eval "set -- $settings"
    local document
    document=$(HOME="$home" "$bare/bin/awsiot-credentialhelper" credential-process --no-cache "$@") ||
        fail "$python_version" "credential-process from the emulator"
    "$bare/bin/python" -c "import json, sys; d = json.loads(sys.argv[1]); \
assert d['Version'] == 1 and d['AccessKeyId'].startswith('ASIA'), 'not credentials'" "$document" ||
        fail "$python_version" "credential-process printed no credentials"
    HOME="$home" "$bare/bin/awsiot-credentialhelper" check "$@" >"$home/check.log" ||
        { cat "$home/check.log" >&2; fail "$python_version" "check against the emulator"; }

    # pipx's shared pip (26.1 or later) needs Python 3.10+, so pipx cannot install onto 3.9.
    if "$python" -c "import sys; sys.exit(sys.version_info < (3, 10))"; then
        PIPX_HOME="$home/pipx" PIPX_BIN_DIR="$home/pipx-bin" PIPX_MAN_DIR="$home/pipx-man" \
            "$pipx" install --quiet --python "$python" "$wheel" >"$home/pipx.log" 2>&1 ||
            { cat "$home/pipx.log" >&2; fail "$python_version" "pipx install of the wheel"; }
        HOME="$home" "$home/pipx-bin/awsiot-credentialhelper" credential-process --no-cache "$@" \
            >/dev/null || fail "$python_version" "the pipx-installed command's fetch"
        echo "test-wheel: Python $python_version: pipx install of the wheel works"
    fi
    kill "$emulator_pid"
    wait "$emulator_pid" || true
    emulator_pid=""
    echo "test-wheel: Python $python_version: the wheel installs, runs and fetches credentials"
}

# The sdist carries the tests and the documentation: every tracked file of tests/ and docs/,
# and the site builds from it alone (--strict).
check_sdist() {
    local sdists=(dist/*.tar.gz) unpacked="$scratch/sdist"
    mkdir -p "$unpacked"
    tar -xzf "${sdists[0]}" -C "$unpacked" --strip-components=1
    if git rev-parse --git-dir >/dev/null 2>&1; then
        local file
        while IFS= read -r file; do
            [ -f "$unpacked/$file" ] || { echo "test-wheel: the sdist lacks $file" >&2; exit 1; }
        done < <(git ls-files tests docs mkdocs.yml)
    fi
    (cd "$unpacked" && NO_MKDOCS_2_WARNING=1 "$OLDPWD/.venv/bin/mkdocs" build --strict --quiet \
        --site-dir "$scratch/site") || { echo "test-wheel: the site does not build from the sdist" >&2; exit 1; }
    echo "test-wheel: the sdist holds the tests and docs, and its site builds"
}
check_sdist

passed=()
absent=()
for python_version in "$@"; do
    if ! python=$(find_python "$python_version"); then
        echo "test-wheel: ******** Python $python_version is NOT installed: the wheel was NOT tested on it ********" >&2
        absent+=("$python_version")
        continue
    fi
    check_python "$python_version" "$python"
    passed+=("$python_version")
done
echo "test-wheel: passed on: ${passed[*]:-none}; not installed: ${absent[*]:-none}" >&2
if [ ${#absent[@]} -gt 0 ] && on_ci; then
    echo "test-wheel: CI=true, so a supported Python that is not installed fails the run" >&2
    exit 1
fi
