#!/usr/bin/env bash
# Memory checks of the unit tests, in two phases:
#  1. ASan + UBSan: a second build in _build-asan/ (--enable-sanitizers),
#     then `make check` there. Check forks a child per test, which is fine.
#  2. valgrind: every unit test program of the normal build in _build/
#     (configured here if build/test.sh has not run) under memcheck, with
#     CK_FORK=no so valgrind sees the tests themselves, one timeout each.
#
# Opting out of valgrind: a test program that cannot run under it (e.g. one
# that deliberately crashes a child on a guard page, which with CK_FORK=no
# would kill the whole program) is appended to VALGRIND_SKIP in
# t/unit/unit.am, spelled as in TESTS:
#     VALGRIND_SKIP += t/unit/check_vt_guard
# This script reads the list with `make -s print-valgrind-skip` (a target
# of the top Makefile.am), so it always agrees with the Makefile.
#
# Fiber stacks: the runtime should register each stack with
# VALGRIND_STACK_REGISTER under #ifdef HAVE_VALGRIND_VALGRIND_H (configure
# defines it when valgrind's headers exist). Unregistered, a switch between
# stacks closer than --max-stackframe (default 2 MB) is taken for a frame
# push or pop and gives false "uninitialised value" errors; a larger
# --max-stackframe makes that worse, not better, so it is left at valgrind's
# default. "client switching stacks?" lines are warnings and do not fail.
#
# Environment: VT_JOBS, VT_VALGRIND_TIMEOUT (seconds per program, default
# 300), VT_VALGRIND_FLAGS (extra valgrind options).
set -euo pipefail
# shellcheck source=build/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$VT_TOP"

asan_build=_build-asan
build=_build
vg_timeout=${VT_VALGRIND_TIMEOUT:-300}
read -r -a vg_extra <<<"${VT_VALGRIND_FLAGS:-}"

vt_step "dependencies"
bash build/deps.sh
if [ ! -x configure ]; then
    vt_step "autoreconf"
    bash build/bootstrap.sh
fi

failed=0

# ---------------------------------------------------------------- ASan/UBSan
vt_step "configure ($asan_build/, ASan + UBSan)"
vt_configure "$asan_build" --enable-sanitizers --enable-werror CFLAGS="-g -O1"
vt_step "make ($asan_build/)"
make -C "$asan_build" -j"$VT_JOBS"
vt_step "unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4} \
    vt_check "$asan_build" || failed=1
asan=$(vt_check_counts "$asan_build")

# ---------------------------------------------------------------- valgrind
if [ ! -f "$build/Makefile" ]; then
    vt_step "configure ($build/)"
    vt_configure "$build" --enable-werror
fi
mkvar() { make -s --no-print-directory -C "$build" "print-$1"; }
# Assigned first so that a failing make stops the script (set -e).
programs=$(mkvar check-programs)
tests=$(mkvar tests)
skip=$(mkvar valgrind-skip)
read -r -a programs <<<"$programs"
read -r -a tests <<<"$tests"
read -r -a skip <<<"$skip"
vt_step "make ($build/, unit test programs)"
make -C "$build" -j"$VT_JOBS" all "${programs[@]}"

vt_step "unit tests under valgrind"
in_list() {
    local x=$1
    shift
    local y
    for y in "$@"; do
        [ "$x" = "$y" ] && return 0
    done
    return 1
}
vg_pass=0 vg_fail=0 vg_skip=0
for t in "${tests[@]}"; do
    if ! in_list "$t" "${programs[@]}"; then
        echo "SKIP: $t (not a test program)"
        vg_skip=$((vg_skip + 1))
        continue
    fi
    if in_list "$t" "${skip[@]}"; then
        echo "SKIP: $t (VALGRIND_SKIP)"
        vg_skip=$((vg_skip + 1))
        continue
    fi
    log=$build/$t.valgrind.log
    rc=0
    # libtool --mode=execute runs the real binary if $t is a wrapper script.
    # --fair-sched=yes: valgrind runs one thread at a time, and with its
    # default lock a fiber that busy-waits on its carrier can starve the
    # thread it waits for (test_stop_waits_for_running_fiber did, 10 s).
    (cd "$build" && CK_FORK=no srcdir=$VT_TOP \
        timeout -k 10 "$vg_timeout" ./libtool --mode=execute \
        valgrind --error-exitcode=1 --leak-check=full --fair-sched=yes \
        --errors-for-leak-kinds=definite --num-callers=30 \
        "${vg_extra[@]}" "./$t") >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "PASS: $t"
        vg_pass=$((vg_pass + 1))
    else
        why="exit $rc"
        [ "$rc" -ne 124 ] || why="timed out after ${vg_timeout}s"
        echo "FAIL: $t ($why); $log:"
        cat "$log"
        vg_fail=$((vg_fail + 1))
        failed=1
    fi
done
valgrind="$vg_pass passed, $vg_fail failed"
[ "$vg_skip" -eq 0 ] || valgrind="$valgrind, $vg_skip skipped"

printf '\nASan+UBSan (test programs): %s\nvalgrind (test programs): %s\n' \
    "$asan" "$valgrind"
if [ "$failed" -ne 0 ]; then
    echo "sanitize.sh: FAILED"
    exit 1
fi
echo "sanitize.sh: all passed"
