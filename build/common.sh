# shellcheck shell=bash
# Helpers shared by build/test.sh and build/sanitize.sh; sourced, not run.

VT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VT_JOBS=${VT_JOBS:-$(nproc 2>/dev/null || echo 2)}

vt_step() { printf '\n==> %s\n' "$*"; }

# vt_configure DIR [ARGS...]: configure the tree out of tree in $VT_TOP/DIR.
# Runs every time, so the flags are always the ones asked for.
vt_configure() {
    local dir=$1
    shift
    mkdir -p "$VT_TOP/$dir"
    # configure's header was vt_config.h before the runtime took that name
    # (mod_vthread/runtime/vt_config.h); a stale copy in an old build
    # directory would shadow it, since -I. comes first.
    rm -f "$VT_TOP/$dir/vt_config.h"
    (cd "$VT_TOP/$dir" && "$VT_TOP/configure" "$@")
}

# vt_check DIR: `make check` in DIR. VERBOSE=1 makes automake's harness
# print test-suite.log, which holds the .log of every failing test.
vt_check() {
    make -C "$VT_TOP/$1" -j"$VT_JOBS" check VERBOSE=1
}

# vt_check_counts DIR: "P passed, F failed" from DIR/test-suite.log, counted
# per test program by automake (a Check program holds many checks).
vt_check_counts() {
    local log=$VT_TOP/$1/test-suite.log
    if [ ! -f "$log" ]; then
        echo "no result (test programs not run)"
        return
    fi
    awk '/^# (PASS|XFAIL):/ { p += $3 }
         /^# (FAIL|XPASS|ERROR):/ { f += $3 }
         /^# SKIP:/ { s += $3 }
         END { printf "%d passed, %d failed", p, f; if (s) printf ", %d skipped", s; print "" }' "$log"
}
