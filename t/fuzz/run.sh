#!/bin/sh
# Build and run the libFuzzer targets of mod_vthread's own parsers:
#   fuzz_config  the directive values (vtm_config.c): sizes, durations,
#                counts, On/Off/auto, handler lists; checked against a
#                reference parser written from docs/directives.md;
#   fuzz_demo    the demo module's parsers of untrusted input: backend
#                responses, integer query arguments, paths, topic names.
#
# Usage: t/fuzz/run.sh [SECONDS [TARGET...]]
#   SECONDS  run time per target (default 60; 0 only builds and replays
#            the seed corpus)
#   TARGET   fuzz_config and/or fuzz_demo (default both)
# Environment: VT_FUZZ_DIR (build and corpus directory, default
#   /tmp/vt-fuzz), CLANG (default clang), VT_FUZZ_JOBS (parallel jobs per
#   target, default 1).
#
# Needs Debian's clang (apt-get install clang), libapr1-dev,
# libaprutil1-dev, apache2-dev and libboost-context-dev (the project's
# build dependencies). Exit status: 0 if no target found anything; the
# crashing input is left in $VT_FUZZ_DIR/<target>/ as crash-*.
set -eu

SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"fuzz_config fuzz_demo"}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${VT_FUZZ_DIR:-/tmp/vt-fuzz}
CLANG=${CLANG:-clang}
JOBS=${VT_FUZZ_JOBS:-1}

command -v "$CLANG" >/dev/null || {
    echo "run.sh: $CLANG not found (apt-get install clang)" >&2; exit 2; }

APR_FLAGS="$(apr-1-config --includes --cppflags)"
APU_FLAGS="$(apu-1-config --includes)"
HTTPD_INC=$(apxs -q INCLUDEDIR 2>/dev/null || echo /usr/include/apache2)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
 -Wno-unused-function -Wno-unused-parameter -Wno-null-pointer-subtraction \
 -Wno-missing-field-initializers $SAN"
CPPFLAGS="$APR_FLAGS $APU_FLAGS -I$SRC/include -I$SRC/mod_vthread/runtime -I$SRC/mod_vthread/httpd -I$HTTPD_INC"
LIBS="$(apr-1-config --link-ld) $(apu-1-config --link-ld) -lboost_context \
 -lpthread"

mkdir -p "$OUT"

# Seeds: "<index> <text>" lines -> one corpus file each, first byte the
# index, escapes (\r \n \t \xNN) decoded.
seed_corpus() {
    dir=$1; seeds=$2
    mkdir -p "$dir"
    i=0
    grep -v '^#' "$seeds" | while IFS= read -r line; do
        [ -n "$line" ] || continue
        i=$((i + 1))
        idx=${line%% *}
        text=${line#* }
        printf "\\$(printf '%03o' "$idx")" > "$dir/seed-$i"
        printf '%b' "$text" >> "$dir/seed-$i"
    done
}

build_config() {
    b="$OUT/fuzz_config"
    mkdir -p "$b/obj"
    objs=""
    # The fiber runtime, for vt_config_check() and its helpers.
    for f in "$SRC"/mod_vthread/runtime/vt_*.c; do
        o="$b/obj/$(basename "$f" .c).o"
        $CLANG $CFLAGS -fsanitize=fuzzer-no-link $CPPFLAGS -c "$f" -o "$o"
        objs="$objs $o"
    done
    $CLANG $CFLAGS -fsanitize=fuzzer $CPPFLAGS "$HERE/fuzz_config.c" $objs \
        $LIBS -o "$b/fuzz_config"
    seed_corpus "$b/seeds" "$HERE/config.seeds"
}

build_demo() {
    b="$OUT/fuzz_demo"
    mkdir -p "$b/obj"
    $CLANG $CFLAGS -fsanitize=fuzzer-no-link $CPPFLAGS \
        -c "$HERE/fuzz_demo.c" -o "$b/obj/fuzz_demo.o"
    # fuzz_demo.c #includes the demo files that hold the parsers
    # (demo_request.c, demo_fetch.c, demo_poll.c). httpd's and
    # mod_vthread's functions that those files refer to but the fuzzed
    # parsers never call: stubs that abort.
    {
        echo '#include <stdlib.h>'
        nm -u "$b/obj/fuzz_demo.o" | awk '{print $NF}' \
            | grep -E '^(ap_|vthread_)' | sort -u \
            | sed 's/.*/void &(void); void &(void) { abort(); }/'
    } > "$b/obj/stubs_demo.c"
    $CLANG -c "$b/obj/stubs_demo.c" -o "$b/obj/stubs_demo.o"
    $CLANG $CFLAGS -fsanitize=fuzzer "$b/obj/fuzz_demo.o" \
        "$b/obj/stubs_demo.o" $LIBS -o "$b/fuzz_demo"
    seed_corpus "$b/seeds" "$HERE/demo.seeds"
}

status=0
for t in $TARGETS; do
    case $t in
    fuzz_config) build_config ;;
    fuzz_demo) build_demo ;;
    *) echo "run.sh: unknown target $t" >&2; exit 2 ;;
    esac
    b="$OUT/$t"
    mkdir -p "$b/corpus"
    echo "== $t: ${SECS}s"
    cd "$b"
    if [ "$SECS" -eq 0 ]; then
        set -- -runs=0
    else
        set -- -max_total_time="$SECS"
    fi
    if [ "$JOBS" -gt 1 ]; then
        set -- "$@" -jobs="$JOBS" -workers="$JOBS"
    fi
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./$t" "$@" -max_len=512 -dict="$HERE/fuzz.dict" \
            -print_final_stats=1 corpus seeds >"$b/log" 2>&1; then
        status=1
        echo "== $t: FAILED (see $b/log and $b/crash-*)"
        tail -40 "$b/log"
    else
        grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)|^#[0-9]+ *DONE' \
            "$b/log" | tail -3 || true
        echo "== $t: no finding"
    fi
    cd - >/dev/null
done
exit $status
