#!/usr/bin/env bash
# Install the Debian 12 packages needed to build, test and run mod_vthread,
# plus any named as arguments (build/fuzz.sh: clang). Installs only what is
# missing, so it is quick to re-run.
set -euo pipefail

packages=(
    apache2 apache2-dev libapr1-dev libaprutil1-dev libboost-context-dev
    check autoconf automake libtool libtool-bin pkg-config gcc make
    python3-pytest wrk valgrind openssl "$@"
)

missing=()
for pkg in "${packages[@]}"; do
    # shellcheck disable=SC2016 # ${...} is dpkg-query's format, not ours
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages installed"
    exit 0
fi

echo "deps: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "deps: not root and no sudo; as root run:" \
             "apt-get install ${missing[*]}" >&2
        exit 1
    fi
    as_root=(sudo)
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
