# Sourced by scripts/test-pythons.sh and scripts/test-wheel.sh: find_python VERSION.
# shellcheck shell=bash

# Prints the path of a working Python $1 (e.g. 3.9): pyenv shims can exist for versions that
# are installed but not selected, so every candidate is run and its version checked.
find_python() {
    local version=$1 candidate
    local candidates=("python$version")
    local root=${PYENV_ROOT:-$HOME/.pyenv}
    while IFS= read -r candidate; do
        candidates+=("$candidate/bin/python$version")
    done < <(printf '%s\n' "$root/versions/$version".* | sort -V -r)
    candidates+=("/usr/local/bin/python$version" "/usr/bin/python$version")
    for candidate in "${candidates[@]}"; do
        if "$candidate" -c "import sys; sys.exit(sys.version[:len('$version')+1] != '$version.')" \
            >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
