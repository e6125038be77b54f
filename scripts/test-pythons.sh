#!/usr/bin/env bash
# Runs the pytest suite (no coverage, two workers) on each Python version given, e.g.
# `scripts/test-pythons.sh 3.9 3.13`, in a virtualenv of its own (.venv-3.9, .venv-3.13) with
# ".[aio,emulator,dev]": the oldest and newest supported Pythons, next to `make test` on 3.11.
# The system packages come from scripts/bootstrap.sh (`make test-pythons` runs it first).
# A Python that is not installed is reported loudly and skipped; under CI=true that fails the
# run, so CI cannot silently lose a version.
set -euo pipefail
cd "$(dirname "$0")/.."

on_ci() {
    case "${CI:-}" in true | TRUE | True | 1) return 0 ;; *) return 1 ;; esac
}

# find_python VERSION prints the path of a working Python VERSION.
# shellcheck source=scripts/find-python.sh
source scripts/find-python.sh

# Creates or refreshes .venv-$1; reinstalls only when pyproject.toml changed since last time.
make_venv() {
    local version=$1 python=$2 venv=".venv-$1"
    local stamp="$venv/.bootstrap-stamp"
    if [ ! -x "$venv/bin/python" ]; then
        echo "test-pythons: creating $venv with $python"
        "$python" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[aio,emulator,dev]"
        touch "$stamp"
    fi
}

if [ $# -eq 0 ]; then
    echo "usage: $0 VERSION... (e.g. 3.9 3.13)" >&2
    exit 2
fi

passed=()
failed=()
absent=()
for version in "$@"; do
    if ! python=$(find_python "$version"); then
        echo "test-pythons: ******** Python $version is NOT installed: its tests did NOT run ********" >&2
        absent+=("$version")
        continue
    fi
    make_venv "$version" "$python"
    echo "test-pythons: pytest on $("$python" --version 2>&1) (.venv-$version)"
    if ".venv-$version/bin/python" -m pytest -n 2 -p no:cov; then
        passed+=("$version")
    else
        failed+=("$version")
    fi
done

echo "test-pythons: passed on: ${passed[*]:-none}; failed on: ${failed[*]:-none};" \
    "not installed: ${absent[*]:-none}" >&2
if [ ${#failed[@]} -gt 0 ]; then exit 1; fi
if [ ${#absent[@]} -gt 0 ] && on_ci; then
    echo "test-pythons: CI=true, so a supported Python that is not installed fails the run" >&2
    exit 1
fi
