#!/usr/bin/env bash
# httpd benchmark: mod_vthread vs stock httpd vs nginx + lua, in one run on
# this machine, with wrk on loopback; and a proxy endpoint: stock
# mod_proxy_http on mod_vthread's fibers vs stock httpd (Debian's worker
# settings, and 1000 workers) vs nginx proxy_pass, in front of one 100 ms
# backend. See docs/BENCHMARKS.md, sections "httpd: mod_vthread vs stock
# httpd vs nginx + lua" and "Proxy: stock mod_proxy_http on fibers".
#
#   bench/run.sh [--quick|--full] [--out DIR] [--publish|--no-publish]
#                [-- extra options of bench/lib/bench.py]
#
#   --quick    (default) c = 100, 1000; 2 s per wrk run; 1000 parked
#              requests, 1000 parked proxied requests; no "close"
#              endpoint. About 3.5 minutes once built (the proxy
#              endpoint about 1 of them). For developers.
#   --full     c = 100, 1000, 10000; 10 s per run; 1000 and 10,000 parked
#              requests, 1000 parked proxied requests. About 15 minutes.
#              For releases.
#   --out DIR  raw results (configs, logs, wrk output, tables, plots);
#              default /tmp/vthread-bench/<date>-<time>-<mode>.
#   --publish  copy the tables and plots to docs/bench/ (default in full
#              mode only; --no-publish to skip).
#
# As root on Debian 12. It installs what is missing (nginx,
# libnginx-mod-http-lua, wrk, gnuplot-nox and the build dependencies),
# builds the modules out of tree (or takes VT_BUILD_DIR, a configured and
# built build directory), raises net.core.somaxconn and
# net.ipv4.tcp_max_syn_backlog (printed, restored on exit) and the file
# descriptor limit (to the hard limit), and runs bench/lib/bench.py with
# Debian's python3. Servers listen on 127.0.0.1 only, on free ports, and
# are stopped by their own pid on exit. Not part of CI.
#
# Environment: VT_BUILD_DIR, VT_JOBS (make -j, default 2), VT_CPU_N and
# LUA_CPU_N (skip the calibration of the ~1 ms CPU work).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=quick
out=
publish=
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --full) mode=full ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --publish) publish=1 ;;
        --no-publish) publish=0 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$publish" ] || { [ "$mode" = full ] && publish=1 || publish=0; }
out=${out:-/tmp/vthread-bench/$(date +%Y%m%d-%H%M%S)-$mode}

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: run as root (it installs packages, raises sysctls, and" \
         "starts httpd and nginx as root so that they drop to www-data)" >&2
    exit 2
fi

step "dependencies"
bash "$top/build/deps.sh"
pkgs=(nginx libnginx-mod-http-lua wrk gnuplot-nox iproute2 gcc)
missing=()
for pkg in "${pkgs[@]}"; do
    # shellcheck disable=SC2016 # dpkg-query's format
    st=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" </dev/null
fi

step "build"
if [ -n "${VT_BUILD_DIR:-}" ]; then
    build=$VT_BUILD_DIR
else
    build=/tmp/vthread-bench/build
    if [ ! -x "$top/configure" ]; then
        bash "$top/build/bootstrap.sh"
    fi
    if [ ! -f "$build/Makefile" ]; then
        mkdir -p "$build"
        (cd "$build" && "$top/configure" >configure.out)
    fi
    make -C "$build" -j"${VT_JOBS:-2}" >"$build/make.out" 2>&1 || {
        tail -30 "$build/make.out" >&2
        exit 1
    }
fi
mods=$build/mod_vthread/.libs
for so in mod_vthread.so mod_vthread_demo.so; do
    [ -f "$mods/$so" ] || { echo "run.sh: no $mods/$so" >&2; exit 1; }
done
echo "modules: $mods (git $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo ?))"

mkdir -p "$out"
gcc -O2 -Wall -o "$out/parkclient" "$top/bench/lib/parkclient.c"

step "limits"
declare -A sys_old=()
# shellcheck disable=SC2317 # run by the EXIT trap
restore() {
    local k
    for k in "${!sys_old[@]}"; do
        sysctl -q -w "$k=${sys_old[$k]}" >/dev/null &&
            echo "restored $k = ${sys_old[$k]}"
    done
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for kv in net.core.somaxconn=16384 net.ipv4.tcp_max_syn_backlog=16384; do
    k=${kv%%=*}
    v=${kv#*=}
    cur=$(sysctl -n "$k")
    if [ "$cur" -lt "$v" ]; then
        sysctl -q -w "$k=$v" >/dev/null
        sys_old[$k]=$cur
        echo "sysctl $k: $cur -> $v (restored on exit)"
    else
        echo "sysctl $k = $cur (enough)"
    fi
done
hard=$(ulimit -Hn)
ulimit -n "$hard"
echo "ulimit -n $(ulimit -n) (hard limit; 10,000 connections need about 10,100)"
if [ "$hard" != unlimited ] && [ "$hard" -lt 12000 ]; then
    echo "run.sh: the hard file descriptor limit ($hard) is too low for" \
         "c=10000" >&2
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

step "benchmark ($mode) -> $out"
rc=0
/usr/bin/python3 "$top/bench/lib/bench.py" "--$mode" --vt-modules "$mods" \
    --parkclient "$out/parkclient" --out "$out" "${extra[@]}" || rc=$?
if [ "$rc" -gt 1 ]; then
    echo "run.sh: the benchmark failed (status $rc): see $out" >&2
    exit "$rc"
fi

if [ "$publish" = 1 ]; then
    step "publish to docs/bench/"
    mkdir -p "$top/docs/bench"
    for f in results.md results.tsv park.tsv proxy_park.tsv throughput_p99.png \
             rss_parked.png proxy.png; do
        [ -f "$out/$f" ] && cp "$out/$f" "$top/docs/bench/$f"
    done
    ls -l "$top/docs/bench"
fi
echo
echo "results: $out/results.md (raw: $out)"
[ "$rc" -eq 0 ] && echo "all targets met" || echo "some targets missed (see the table)"
exit 0
