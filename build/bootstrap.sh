#!/usr/bin/env bash
# Generate configure and Makefile.in (autoreconf -fi). Needs autoconf,
# automake, libtool and pkg-config: build/deps.sh installs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in autoreconf automake libtoolize pkg-config; do
    if ! command -v "$tool" >/dev/null; then
        echo "bootstrap: $tool not found: run build/deps.sh" \
             "(apt-get install autoconf automake libtool pkg-config)" >&2
        exit 1
    fi
done
mkdir -p m4
autoreconf -fi
