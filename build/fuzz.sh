#!/usr/bin/env bash
# The libFuzzer targets of mod_vthread's own parsers (t/fuzz/run.sh), for a
# bounded time: installs clang (Debian's, for libFuzzer) if missing, builds
# the targets with ASan + UBSan, replays the seed corpus and fuzzes each
# target for VT_FUZZ_SECONDS (default 20). Exits non-zero if a target
# crashed, leaked or hit undefined behaviour; the input is left in
# $VT_FUZZ_DIR/<target>/ (default /tmp/vt-fuzz).
set -euo pipefail
# shellcheck source=build/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$VT_TOP"

vt_step "dependencies"
bash build/deps.sh clang
vt_step "fuzz (${VT_FUZZ_SECONDS:-20} s per target)"
sh t/fuzz/run.sh "${VT_FUZZ_SECONDS:-20}"
