#!/usr/bin/python3
"""httpd benchmark driver for bench/run.sh: mod_vthread vs stock httpd vs
nginx + lua, on loopback, in one run; and for the proxy endpoint, stock
mod_proxy_http on mod_vthread's fibers vs stock httpd (Debian's worker
settings, and 1000 workers) vs nginx proxy_pass, in front of one backend.

run.sh installs the packages, builds the modules, raises the limits, then
runs this with Debian's python3. It can also be run by hand (as root, after
`ulimit -n 20000`):

    /usr/bin/python3 bench/lib/bench.py --vt-modules BUILD/mod_vthread/.libs \
        --parkclient /path/to/parkclient --out /tmp/vthread-bench/x --quick

Every server runs on 127.0.0.1 on a free port, is started with its own
session (process group) and stopped by its own pid; every wait is bounded.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
TOP = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024

SERVERS = ["httpd-inline", "httpd-vthread", "nginx-lua", "httpd-stock", "httpd-stock1000"]
# The servers of the demo endpoints (hello ... cpu), and of the proxy one.
BASE_SERVERS = ["httpd-inline", "httpd-vthread", "nginx-lua"]
PROXY_SERVERS = ["httpd-vthread", "httpd-stock", "httpd-stock1000", "nginx-lua"]
LABELS = {
    "httpd-inline": "httpd inline",
    "httpd-vthread": "httpd + mod_vthread",
    "nginx-lua": "nginx + lua",
    "httpd-stock": "stock httpd (Debian defaults)",
    "httpd-stock1000": "stock httpd, 1000 workers",
}
ENDPOINTS = ["hello", "close", "sleep", "fetch", "cpu", "proxy"]
BASE_ENDPOINTS = ["hello", "close", "sleep", "fetch", "cpu"]
# proxy: GET /proxy (?ms=N) -> the backend's /slow (?ms=N), 100 ms by
# default. httpd + mod_vthread runs stock mod_proxy_http on a fiber
# (VThreadHandler On, transparent mode on); the stock httpd servers load no
# mod_vthread (bench/conf/httpd-stock.conf.in); nginx-lua's /proxy is a
# plain proxy_pass with upstream keepalive. All keep their connections to
# the backend. Parked proxied requests wait 1 s at the backend.
PROXY_PATH = "/proxy"
PROXY_PARK_PATH = "/proxy?ms=1000"
# Stock httpd's MPM settings (bench/conf/httpd-stock.conf.in; with no
# max=, mod_proxy's pool per child is ThreadsPerChild).
STOCK_MPM = {
    # Debian 12's /etc/apache2/mods-available/mpm_event.conf, as shipped
    # (ServerLimit: httpd's default; AsyncRequestWorkerFactor: default 2).
    "httpd-stock": dict(
        STARTSERVERS=2, SERVERLIMIT=16, THREADLIMIT=64, THREADS=25, MAXWORKERS=150,
        MAXSPARE=75,
        MPMNOTE="Debian 12's mods-available/mpm_event.conf as shipped "
                "(ServerLimit: httpd's default 16)."),
    # 1000 workers, 4 children of 250 threads, all started at once and kept
    # (MaxSpareThreads = MaxRequestWorkers), as the demo endpoints' httpd.
    "httpd-stock1000": dict(
        STARTSERVERS=4, SERVERLIMIT=4, THREADLIMIT=250, THREADS=250, MAXWORKERS=1000,
        MAXSPARE=1000,
        MPMNOTE="1000 workers: 4 children x 250 threads, all started at once "
                "and kept (MaxSpareThreads = MaxRequestWorkers)."),
}


def label(server, ep=None):
    """A server's name in the tables; nginx-lua serves /proxy with a plain
    proxy_pass, no lua."""
    if ep == "proxy" and server == "nginx-lua":
        return "nginx proxy_pass"
    return LABELS[server]

# "close": hello with "Connection: close", a new connection per request
# (where httpd 2.4 costs mod_vthread the most: the MPM cannot recycle the
# pool of a connection it suspended). Not at c=10,000: 10 s of that would
# cycle through the client's ephemeral ports.
CLOSE_MAX_CONNS = 1000
# Parked-request runs: wait 1 s (the measure), then 0 s (the floor: what
# taking N new connections at once costs the server by itself).
PARK_WAITS = (1, 0)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(template, out, values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit("bench: %s: unfilled %s" % (template, left))
    with open(out, "w") as f:
        f.write(text)


def http_get(port, path, timeout=5.0):
    """One GET over HTTP/1.0; returns (status, body) or (None, error)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")
    except (OSError, ValueError, IndexError) as e:
        return None, str(e)


# ---------------------------------------------------------------- processes

def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo and len(pids) < 512:
        p = todo.pop()
        if p in pids:
            continue
        pids.append(p)
        todo += children(p)
    return pids


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class Sampler(threading.Thread):
    """Samples the server's RSS (sum over its processes) every interval."""

    def __init__(self, server, interval=0.25):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.stop_ev = threading.Event()
        self.samples = []

    def run(self):
        pids, refreshed = self.server.pids(), time.monotonic()
        while not self.stop_ev.is_set():
            if time.monotonic() - refreshed > 1.0:
                pids, refreshed = self.server.pids(), time.monotonic()
            self.samples.append(rss_kb(pids))
            self.stop_ev.wait(self.interval)

    def finish(self):
        self.stop_ev.set()
        self.join(5)
        return max(self.samples) if self.samples else 0


class Server:
    def __init__(self, name, kind, conf, run, port, probe="/hello"):
        self.name, self.kind, self.conf, self.run, self.port = name, kind, conf, run, port
        self.probe = probe          # a path that answers 200 once it is up
        self.defines = ()           # httpd -D names
        self.proc = None
        # Work a server does by itself some time after a run: mod_vthread
        # gives back the memory of closed connections kept 1 s unused
        # (its reaper looks twice a second), which unmaps; that must not
        # land in the next run, on whichever server.
        self.later_work_s = 2.0 if name == "httpd-vthread" else 0.0
        self.used_at = 0.0          # time.monotonic() when a run ended

    def start(self):
        out = open(os.path.join(self.run, self.name + ".out"), "w")
        if self.kind == "httpd":
            cmd = ["/usr/sbin/apache2", "-f", self.conf, "-DFOREGROUND"]
            cmd += ["-D%s" % d for d in self.defines]
        else:
            cmd = ["/usr/sbin/nginx", "-p", self.run, "-c", self.conf,
                   "-e", os.path.join(self.run, self.name + "-early.log")]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("bench: %s exited at start (status %s): see %s"
                                 % (self.name, self.proc.returncode, self.run))
            st, _ = http_get(self.port, self.probe, timeout=1)
            if st == 200:
                # all children up (httpd starts StartServers of them)
                time.sleep(0.5)
                log("%s up on 127.0.0.1:%d, pid %d, %d processes"
                    % (self.name, self.port, self.proc.pid, len(self.pids())))
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit("bench: %s did not answer in 20 s: see %s" % (self.name, self.run))

    def pids(self):
        return tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            log("%s: no exit 20 s after SIGTERM: SIGKILL to its process group" % self.name)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        except OSError:
            pass

    def established(self):
        try:
            out = subprocess.run(["ss", "-Htn", "state", "established",
                                  "( sport = :%d )" % self.port],
                                 capture_output=True, text=True, timeout=10).stdout
            return len(out.splitlines())
        except (OSError, subprocess.TimeoutExpired):
            return 0

    def settle(self, limit=45.0):
        """Wait until the server has dropped its connections and is idle:
        what a run left behind (queued requests of closed connections)
        must not eat into the next run. Bounded."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            pids = self.pids()
            c0 = cpu_ticks(pids)
            time.sleep(0.5)
            busy = (cpu_ticks(pids) - c0) / CLK_TCK / 0.5
            if busy < 0.10 and self.established() <= 2:
                return time.monotonic() - t0
        log("%s: still busy or connected after %.0f s" % (self.name, limit))
        return limit


def settle_all(servers, target, limit=60.0):
    """Before a run on target: every server (the one of the previous run,
    the backend) idle, and done with the work it does later by itself
    (Server.later_work_s), and target without connections. Bounded."""
    t0 = time.monotonic()
    until = max(s.used_at + s.later_work_s for s in servers)
    time.sleep(max(0.0, min(until - t0, limit)))
    while time.monotonic() - t0 < limit:
        pids = {s.name: s.pids() for s in servers}
        c0 = {n: cpu_ticks(p) for n, p in pids.items()}
        time.sleep(0.5)
        busy = {n: (cpu_ticks(p) - c0[n]) / CLK_TCK / 0.5 for n, p in pids.items()}
        if max(busy.values()) < 0.10 and target.established() <= 2:
            return time.monotonic() - t0
    log("still busy after %.0f s: %s" % (limit, ", ".join(
        "%s %.0f%%" % (n, 100 * b) for n, b in busy.items())))
    return limit


# ---------------------------------------------------------------- clients

def wrk(port, path, conns, duration, threads=2, timeout="30s", headers=()):
    cmd = ["wrk", "-t%d" % min(threads, conns), "-c%d" % conns, "-d%ds" % duration,
           "--timeout", timeout, "--latency", "-s", os.path.join(HERE, "report.lua")]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90)
    except subprocess.TimeoutExpired:
        return None, "wrk did not end"
    m = re.search(r"^BENCH (.*)$", p.stdout, re.M)
    if not m:
        return None, (p.stdout + p.stderr)[-2000:]
    r = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r, p.stdout + p.stderr


# First guesses for the cpu endpoint's n: about 1 ms on this 2-core VM
# (vthread-cpu: 91,000 -> 930 us; lua: 23,800 -> 1,056 us). calibrate()
# corrects them; a good guess saves points in quick mode.
CPU_GUESS_HTTPD = 80000
CPU_GUESS_LUA = 20000


def calibrate(server, path_fmt, guess, cal_d, target_us=1000.0, reps=3):
    """n such that GET path_fmt % n costs about target_us more than n=1,
    from wrk's mean latency at one connection (the mean: CPU per request is
    what the cpu endpoint is about). Returns (n, measured_us). With reps=1
    (quick mode) only the first point gets a warm-up run."""
    warmed = []

    def p50(n):
        # the median of 3 short runs after a warm-up (the machine is noisy)
        if reps > 1 or not warmed:
            wrk(server.port, path_fmt % n, 1, 1, threads=1)
            warmed.append(n)
        got = []
        for _ in range(reps):
            r, out = wrk(server.port, path_fmt % n, 1, cal_d, threads=1)
            if r is None:
                raise SystemExit("bench: calibration on %s failed: %s" % (server.name, out))
            got.append(r["lat_mean"])
        return sorted(got)[len(got) // 2]

    base = p50(1)
    n = guess
    for _ in range(5):
        extra = p50(n) - base
        if extra >= 300:
            break
        n *= 4
    for _ in range(3):          # correct until within 10 %
        n = max(1, int(n * target_us / max(extra, 1.0)))
        extra = p50(n) - base
        if abs(extra - target_us) <= 0.10 * target_us:
            break
    return n, extra


def parkclient(binary, server, path, n, deadline):
    pids = ",".join(str(p) for p in server.pids())
    cmd = [binary, "-p", str(server.port), "-u", path, "-n", str(n),
           "-d", str(deadline), "-r", pids, "-i", "20"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline + 60)
    except subprocess.TimeoutExpired:
        return None, "parkclient did not end"
    r = {}
    for line in p.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            r[k] = float(v)
    if "wall_s" not in r:
        return None, p.stdout + p.stderr
    return r, p.stdout + p.stderr


# ---------------------------------------------------------------- reports

def fmt_ms(us):
    ms = us / 1000.0
    if ms >= 1000:
        return "%.2f s" % (ms / 1000)
    if ms >= 100:
        return "%.0f" % ms
    if ms >= 10:
        return "%.1f" % ms
    return "%.2f" % ms


def machine_info():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"
    model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    return {
        "nproc": sh("nproc"),
        "cpu": model,
        "kernel": sh("uname -r"),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "apache2": sh("dpkg-query -W -f='${Version}' apache2-bin"),
        "nginx": sh("dpkg-query -W -f='${Version}' nginx-common"),
        "lua_module": sh("dpkg-query -W -f='${Version}' libnginx-mod-http-lua"),
        "luajit": sh("dpkg-query -W -f='${Version}' libluajit2-5.1-2 2>/dev/null || dpkg-query -W -f='${Version}' libluajit-5.1-2"),
        "wrk": sh("dpkg-query -W -f='${Version}' wrk"),
        "mem": sh("free -g | awk '/Mem:/ {print $2 \" GiB\"}'"),
    }


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_reports(args, results, parks, pparks, meta, targets):
    out = args.out
    cols = ["endpoint", "conns", "server", "rps", "p50_ms", "p99_ms", "max_ms",
            "requests", "err_connect", "err_read", "err_write", "err_timeout",
            "non2xx", "rss_peak_mb", "rss_idle_mb", "cpu_pct"]
    with open(os.path.join(out, "results.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in results:
            f.write("\t".join(str(r[c]) for c in cols) + "\n")
    pcols = ["server", "n", "wait_s", "wall_s", "ok", "non2xx", "connect_err", "read_err",
             "timeout", "all_sent_s", "lat_p50_s", "lat_max_s", "rss_idle_mb",
             "rss_peak_mb", "kib_per_parked"]
    with open(os.path.join(out, "park.tsv"), "w") as f:
        f.write("\t".join(pcols) + "\n")
        for r in parks:
            f.write("\t".join(str(r[c]) for c in pcols) + "\n")
    if pparks:
        with open(os.path.join(out, "proxy_park.tsv"), "w") as f:
            f.write("\t".join(pcols + ["lat_p99_s"]) + "\n")
            for r in pparks:
                f.write("\t".join(str(r[c]) for c in pcols + ["lat_p99_s"]) + "\n")
    base = [r for r in results if r["endpoint"] != "proxy"]
    prox = [r for r in results if r["endpoint"] == "proxy"]

    md = []
    md.append("Mode: %s, %d s per wrk run (wrk -t2, keep-alive, --timeout 30s), "
              "date %s." % (args.mode, args.duration, meta["date"]))
    md.append("Machine: %s CPUs (%s), %s, kernel %s, %s RAM; apache2 %s, nginx %s "
              "(libnginx-mod-http-lua %s, LuaJIT %s), wrk %s."
              % (meta["nproc"], meta["cpu"], meta["os"], meta["kernel"], meta["mem"],
                 meta["apache2"], meta["nginx"], meta["lua_module"], meta["luajit"],
                 meta["wrk"]))
    md.append("Load average (1/5/15 min) before: %s; after: %s."
              % (meta["load_before"], meta["load_after"]))
    md.append("CPU work: vthread-cpu n=%d (%.0f us at c=1), lua loop n=%d (%.0f us at c=1)."
              % (meta["cpu_n"], meta["cpu_us"], meta["lua_n"], meta["lua_us"]))
    if meta.get("backend"):
        md.append("Backend alone (nginx + lua, ngx.sleep(0.1), new connection per "
                  "request) at c=1000: %s." % meta["backend"])
    if meta.get("backend_ka"):
        md.append("Backend alone (keep-alive, as the proxy endpoint uses it) at "
                  "c=1000: %s." % meta["backend_ka"])
    md.append("")
    md.append("Requests/s, latency (ms) from wrk, errors = connect/read/write/timeout "
              "+ non-2xx, RSS = peak of the server's processes' summed RSS (MB) "
              "sampled every 0.25 s, CPU = server CPU time / wall time (200% = "
              "both cores).")
    md.append("")
    md.append("| endpoint | c | server | req/s | p50 | p99 | max | errors | RSS MB (idle -> peak) | CPU % |")
    md.append("|---|---:|---|---:|---:|---:|---:|---|---:|---:|")
    for r in base:
        md.append("| %s | %d | %s | %s |"
                  % (r["endpoint"], r["conns"], label(r["server"]), wrk_cells(r)))
    md.append("")
    md.append("N concurrent requests that each wait 1 s (`/sleep?ms=1000`, one "
              "connection each, all opened at once, bench/lib/parkclient.c): wall "
              "time from the first connect to the last answer; RSS per parked "
              "request = (peak RSS - idle RSS) / N. Wait 0 s: the same with "
              "`/hello?ms=0`, what taking N new connections at once costs the "
              "server by itself (the floor under the 1 s figure).")
    md.append("")
    md.append("| server | N | wait | wall | answered 2xx | errors | all sent after | RSS idle MB | RSS peak MB | KiB per parked request |")
    md.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in sorted(parks, key=lambda r: (r["n"], -r["wait_s"])):
        errs = "%d/%d/%d + %d" % (r["connect_err"], r["read_err"], r["timeout"], r["non2xx"])
        md.append("| %s | %d | %d s | %s | %d | %s | %.2f s | %.1f | %.1f | %s |"
                  % (LABELS[r["server"]], r["n"], r["wait_s"],
                     ("%.3f s" % r["wall_s"]) if r["wall_s"] >= 0 else "not all answered",
                     r["ok"], errs, r["all_sent_s"], r["rss_idle_mb"], r["rss_peak_mb"],
                     ("%.1f" % r["kib_per_parked"]) if r["wait_s"] else "-"))
    md.append("")
    if prox or pparks:
        md += proxy_report(prox, pparks)
    md.append("Targets (httpd + mod_vthread):")
    md.append("")
    md.append("| target | measured | |")
    md.append("|---|---|---|")
    for t in targets:
        md.append("| %s | %s | %s |" % t)
    md.append("")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    return "\n".join(md)


def wrk_cells(r):
    """A wrk run's cells of a results table, from req/s to CPU %."""
    errs = "%d/%d/%d/%d + %d" % (r["err_connect"], r["err_read"], r["err_write"],
                                 r["err_timeout"], r["non2xx"])
    return "%.0f | %s | %s | %s | %s | %.1f -> %.1f | %.0f" % (
        r["rps"], fmt_ms(r["p50_ms"] * 1000), fmt_ms(r["p99_ms"] * 1000),
        fmt_ms(r["max_ms"] * 1000), errs, r["rss_idle_mb"], r["rss_peak_mb"],
        r["cpu_pct"])


def proxy_report(prox, pparks):
    """The proxy endpoint's tables (markdown lines): wrk runs, ratios,
    parked proxied requests."""
    md = []
    if prox:
        md.append("proxy: `GET /proxy` -> the backend's `/slow` (ngx.sleep(0.1)), "
                  "keep-alive from wrk and to the backend. httpd + mod_vthread: stock "
                  "mod_proxy_http on a fiber (VThreadHandler On, transparent mode); "
                  "stock httpd: no mod_vthread, Debian's worker settings (150 "
                  "workers, 2 children at start) or 1000 workers (4 x 250); nginx: "
                  "proxy_pass with upstream keepalive. Same columns as above.")
        md.append("")
        md.append("| c | server | req/s | p50 | p99 | max | errors | RSS MB (idle -> peak) | CPU % |")
        md.append("|---:|---|---:|---:|---:|---:|---|---:|---:|")
        for r in prox:
            md.append("| %d | %s | %s |"
                      % (r["conns"], label(r["server"], "proxy"), wrk_cells(r)))
        md.append("")
        by = {(r["conns"], r["server"]): r for r in prox}
        rows = []
        for c in sorted({r["conns"] for r in prox}):
            v = by.get((c, "httpd-vthread"))
            if not v:
                continue
            cells = []
            for ref in ("nginx-lua", "httpd-stock", "httpd-stock1000"):
                o = by.get((c, ref))
                cells.append(("%.2f" % (v["rps"] / o["rps"])) if o and o["rps"] > 0 else "-")
            rows.append("| %d | %.0f | %s |" % (c, v["rps"], " | ".join(cells)))
        if rows:
            md.append("httpd + mod_vthread's req/s on proxy, as a multiple of the others':")
            md.append("")
            md.append("| c | httpd + mod_vthread req/s | vs nginx proxy_pass | "
                      "vs stock httpd (Debian defaults) | vs stock httpd, 1000 workers |")
            md.append("|---:|---:|---:|---:|---:|")
            md += rows
            md.append("")
    if pparks:
        md.append("N concurrent proxied requests that each wait 1 s at the backend "
                  "(`/proxy?ms=1000`, one connection each, all opened at once, "
                  "parkclient); latencies per request from the client's connect.")
        md.append("")
        md.append("| server | N | wall | answered 2xx | errors | latency p50 | p99 | max | "
                  "RSS idle MB | RSS peak MB |")
        md.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in pparks:
            errs = "%d/%d/%d + %d" % (r["connect_err"], r["read_err"], r["timeout"], r["non2xx"])
            md.append("| %s | %d | %s | %d | %s | %.3f s | %.3f s | %.3f s | %.1f | %.1f |"
                      % (label(r["server"], "proxy"), r["n"],
                         ("%.3f s" % r["wall_s"]) if r["wall_s"] >= 0 else "not all answered",
                         r["ok"], errs, r["lat_p50_s"], r["lat_p99_s"], r["lat_max_s"],
                         r["rss_idle_mb"], r["rss_peak_mb"]))
        md.append("")
    return md


def evaluate(results, parks, mode):
    def get(ep, c, srv):
        for r in results:
            if r["endpoint"] == ep and r["conns"] == c and r["server"] == srv:
                return r
        return None

    def park(srv, n, wait=1):
        for r in parks:
            if r["server"] == srv and r["n"] == n and r["wait_s"] == wait:
                return r
        return None

    T = []

    def add(name, measured, ok):
        T.append((name, measured, "not run" if ok is None else ("met" if ok else "**missed**")))

    s, ng = get("sleep", 1000, "httpd-vthread"), get("sleep", 1000, "nginx-lua")
    if s:
        add("sleep c=1000: >= 9,800 req/s (98% of 10,000)", "%.0f req/s" % s["rps"],
            s["rps"] >= 9800)
        if ng:
            add("sleep c=1000: not below nginx + lua", "%.0f vs %.0f req/s" % (s["rps"], ng["rps"]),
                s["rps"] >= ng["rps"])
        add("sleep c=1000: p99 <= 105 ms", "%s ms" % fmt_ms(s["p99_ms"] * 1000),
            s["p99_ms"] <= 105)
        add("sleep c=1000: server RSS <= 60 MB", "%.1f MB" % s["rss_peak_mb"],
            s["rss_peak_mb"] <= 60)
    else:
        add("sleep c=1000", "-", None)
    for n, lim in ((1000, 1.15), (10000, 1.5)):
        p = park("httpd-vthread", n)
        if p:
            measured = ("%.3f s" % p["wall_s"]) if p["wall_s"] >= 0 else "%d of %d answered" % (p["ok"], n)
            floor = park("httpd-inline", n, 0)
            if floor and floor["wall_s"] >= 0:
                measured += " (httpd inline, no wait: %.3f s)" % floor["wall_s"]
            add("%d x 1 s: all answered in <= %.2f s" % (n, lim), measured,
                p["wall_s"] >= 0 and p["ok"] == n and p["wall_s"] <= lim)
        else:
            add("%d x 1 s: all answered in <= %.2f s" % (n, lim), "-", None)
    p = park("httpd-vthread", 10000)
    add("10,000 x 1 s: <= 16 KiB RSS per parked request",
        ("%.1f KiB" % p["kib_per_parked"]) if p else "-", (p["kib_per_parked"] <= 16) if p else None)
    for ep in ("hello", "cpu"):
        for c in sorted({r["conns"] for r in results if r["endpoint"] == ep}):
            v, i = get(ep, c, "httpd-vthread"), get(ep, c, "httpd-inline")
            if v and i and i["rps"] > 0:
                add("%s c=%d: offloaded >= 90%% of inline" % (ep, c),
                    "%.0f vs %.0f req/s (%.0f%%)" % (v["rps"], i["rps"], 100 * v["rps"] / i["rps"]),
                    v["rps"] >= 0.9 * i["rps"])
    v, ng, st = (get("proxy", 1000, "httpd-vthread"), get("proxy", 1000, "nginx-lua"),
                 get("proxy", 1000, "httpd-stock"))
    if v and ng and ng["rps"] > 0:
        add("proxy c=1000: >= 0.95 x nginx proxy_pass",
            "%.0f vs %.0f req/s (%.2f x)" % (v["rps"], ng["rps"], v["rps"] / ng["rps"]),
            v["rps"] >= 0.95 * ng["rps"])
    if v and st and st["rps"] > 0:
        add("proxy c=1000: > 5 x stock httpd (Debian defaults)",
            "%.0f vs %.0f req/s (%.2f x)" % (v["rps"], st["rps"], v["rps"] / st["rps"]),
            v["rps"] > 5 * st["rps"])
    # Not a target: a new connection per request, reported for operators.
    for c in sorted({r["conns"] for r in results if r["endpoint"] == "close"}):
        v, i = get("close", c, "httpd-vthread"), get("close", c, "httpd-inline")
        if v and i and i["rps"] > 0:
            T.append(("close c=%d (hello, Connection: close): offloaded vs inline" % c,
                      "%.0f vs %.0f req/s (%.0f%%)" % (v["rps"], i["rps"], 100 * v["rps"] / i["rps"]),
                      "no target"))
    return T


def plots(args, results, parks, pparks, servers):
    out = args.out
    if any(r["endpoint"] == "proxy" for r in results) or pparks:
        proxy_plot(args, results, pparks)
    servers = [s for s in servers if s in BASE_SERVERS]
    eps = [e for e in BASE_ENDPOINTS if any(r["endpoint"] == e for r in results)]
    if not eps and not parks:
        return
    for srv in servers:
        for ep in eps:
            with open(os.path.join(out, "plot-%s-%s.dat" % (ep, srv)), "w") as f:
                for r in results:
                    if r["endpoint"] == ep and r["server"] == srv:
                        f.write("%d %.1f %.3f\n" % (r["conns"], r["rps"], max(r["p99_ms"], 0.01)))
        with open(os.path.join(out, "plot-park-%s.dat" % srv), "w") as f:
            ps = [p for p in parks if p["server"] == srv and p["wait_s"] == 1]
            if ps:
                f.write("0 %.2f\n" % min(p["rss_idle_mb"] for p in ps))
            for p in sorted(ps, key=lambda p: p["n"]):
                f.write("%d %.2f %.3f\n" % (p["n"], p["rss_peak_mb"], p["wall_s"]))
    colors = {"httpd-inline": "#c0392b", "httpd-vthread": "#2471a3", "nginx-lua": "#229954"}
    concs = sorted({r["conns"] for r in results if r["endpoint"] in eps}) or [1]
    gp = ["set terminal pngcairo noenhanced size %d,760 font 'DejaVu Sans,10'" % (380 * len(eps) + 40),
          "set output '%s'" % os.path.join(out, "throughput_p99.png"),
          "set multiplot layout 2,%d title 'mod_vthread vs stock httpd vs nginx + lua "
          "(%s mode, %d s per point, %s CPUs, client on the same machine)'"
          % (len(eps), args.mode, args.duration, os.cpu_count()),
          "set logscale x", "set xtics (%s)" % ", ".join('"%d" %d' % (c, c) for c in concs),
          "set xrange [%f:%f]" % (concs[0] / 1.5, concs[-1] * 1.5),
          "set grid", "set key top left reverse Left font ',9' box opaque samplen 2",
          "set style data linespoints", "set pointsize 1.2"]
    for ep in eps:
        gp += ["set title '%s: requests/s'" % ep, "set xlabel 'concurrent connections'",
               "set ylabel 'req/s'", "unset logscale y", "set yrange [0:*]",
               "set offsets 0, 0, graph 0.35, 0"]
        gp.append("plot " + ", ".join(
            "'%s' using 1:2 title '%s' lw 2 lc rgb '%s'"
            % (os.path.join(out, "plot-%s-%s.dat" % (ep, s)), LABELS[s], colors[s])
            for s in servers))
    for ep in eps:
        gp += ["set title '%s: p99 latency'" % ep, "set ylabel 'p99 (ms)'",
               "set logscale y", "set yrange [*:*]", "set offsets 0, 0, graph 0.5, 0"]
        gp.append("plot " + ", ".join(
            "'%s' using 1:3 title '%s' lw 2 lc rgb '%s'"
            % (os.path.join(out, "plot-%s-%s.dat" % (ep, s)), LABELS[s], colors[s])
            for s in servers))
    gp.append("unset multiplot")
    if not eps:
        gp = []
    ns = sorted({p["n"] for p in parks})
    if ns:
        gp += ["reset", "set terminal pngcairo noenhanced size 760,480 font 'DejaVu Sans,10'",
               "set output '%s'" % os.path.join(out, "rss_parked.png"),
               "set title 'Server RSS (sum of its processes) with N requests parked 1 s'",
               "set xlabel 'parked requests'", "set ylabel 'RSS (MB)'", "set grid",
               "set key top left", "set style data linespoints", "set pointsize 1.2",
               "set xrange [-%d:%d]" % (ns[-1] // 20, ns[-1] * 21 // 20),
               "set yrange [0:*]"]
        gp.append("plot " + ", ".join(
            "'%s' using 1:2 title '%s' lw 2 lc rgb '%s'"
            % (os.path.join(out, "plot-park-%s.dat" % s), LABELS[s], colors[s])
            for s in servers))
    gnuplot(out, "plots.gp", gp)


PROXY_COLORS = {"httpd-vthread": "#2471a3", "httpd-stock": "#c0392b",
                "httpd-stock1000": "#e67e22", "nginx-lua": "#229954"}


def proxy_plot(args, results, pparks):
    """proxy.png: req/s, p99 and peak RSS versus concurrency, and the
    parked proxied requests' wall time and peak RSS, one line or bar per
    server."""
    out = args.out
    prox = [r for r in results if r["endpoint"] == "proxy"]
    srvs = [s for s in PROXY_SERVERS if any(r["server"] == s for r in prox + pparks)]
    for s in srvs:
        with open(os.path.join(out, "plot-proxy-%s.dat" % s), "w") as f:
            for r in prox:
                if r["server"] == s:
                    f.write("%d %.1f %.3f %.1f\n" % (r["conns"], r["rps"],
                                                    max(r["p99_ms"], 0.01), r["rss_peak_mb"]))
    with open(os.path.join(out, "plot-proxy-park.dat"), "w") as f:
        for i, s in enumerate(srvs):
            for r in pparks:
                if r["server"] == s:
                    f.write("%d \"%s\" %.3f %.1f\n" % (i, label(s, "proxy"), r["wall_s"],
                                                       r["rss_peak_mb"]))
    concs = sorted({r["conns"] for r in prox}) or [100, 1000]
    n = sorted({r["n"] for r in pparks})
    gp = ["set terminal pngcairo noenhanced size 1240,760 font 'DejaVu Sans,10'",
          "set output '%s'" % os.path.join(out, "proxy.png"),
          "set multiplot layout 2,2 title 'proxy: mod_proxy_http on mod_vthread vs stock "
          "httpd vs nginx proxy_pass, backend 100 ms (%s mode, %d s per point, %s CPUs)'"
          % (args.mode, args.duration, os.cpu_count()),
          "set grid", "set style data linespoints", "set pointsize 1.2",
          "set key top left reverse Left font ',9' box opaque samplen 2",
          "set logscale x", "set xtics (%s)" % ", ".join('"%d" %d' % (c, c) for c in concs),
          "set xrange [%f:%f]" % (concs[0] / 1.5, concs[-1] * 1.5),
          "set xlabel 'concurrent connections'"]

    def lines(col):
        return "plot " + ", ".join(
            "'%s' using 1:%d title '%s' lw 2 lc rgb '%s'"
            % (os.path.join(out, "plot-proxy-%s.dat" % s), col, label(s, "proxy"),
               PROXY_COLORS[s]) for s in srvs)
    gp += ["set title 'requests/s'", "set ylabel 'req/s'", "set yrange [0:*]",
           "set offsets 0, 0, graph 0.35, 0", lines(2)]
    gp += ["set title 'p99 latency'", "set ylabel 'p99 (ms)'", "set logscale y",
           "set yrange [*:*]", "set offsets 0, 0, graph 0.5, 0", lines(3)]
    gp += ["unset logscale y", "set title 'peak RSS (sum of the server processes)'",
           "set ylabel 'RSS (MB)'", "set yrange [0:*]", "set offsets 0, 0, graph 0.35, 0",
           lines(4)]
    gp += ["unset logscale x", "unset xtics", "set xtics rotate by -15 font ',8'",
           "set xrange [-0.6:%f]" % (len(srvs) - 0.4), "unset xlabel",
           "set offsets 0, 0, graph 0.15, 0",
           "set title '%s parked proxied requests x 1 s: wall time'"
           % ("/".join(str(x) for x in n) or "no"),
           "set ylabel 'seconds'", "set yrange [0:*]", "set style fill solid 0.6",
           "set boxwidth 0.6", "unset key"]
    if pparks:
        gp.append("plot '%s' using 1:3:xtic(2) with boxes lc rgb '#2471a3', "
                  "'' using 1:3:(sprintf('%%.2f s, %%.0f MB', $3, $4)) with labels offset 0,1"
                  % os.path.join(out, "plot-proxy-park.dat"))
    gp.append("unset multiplot")
    gnuplot(out, "proxy.gp", gp)


def gnuplot(out, name, gp):
    if not gp:
        return
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join(gp) + "\n")
    p = subprocess.run(["gnuplot", os.path.join(out, name)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        log("gnuplot (%s) failed: %s" % (name, p.stderr[-1000:]))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_const", dest="mode", const="quick")
    ap.add_argument("--full", action="store_const", dest="mode", const="full")
    ap.add_argument("--vt-modules", required=True, help="dir of mod_vthread.so and the demo")
    ap.add_argument("--parkclient", required=True, help="the built bench/lib/parkclient.c")
    ap.add_argument("--out", required=True, help="results directory (raw)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help="default: all (%s); the demo endpoints run on %s, proxy on %s"
                    % (",".join(SERVERS), ",".join(BASE_SERVERS), ",".join(PROXY_SERVERS)))
    ap.add_argument("--endpoints", help="default: all (%s); quick mode leaves out "
                    "close, to stay under 4 minutes" % ",".join(ENDPOINTS))
    ap.add_argument("--conns", help="concurrencies, e.g. 100,1000")
    ap.add_argument("--duration", type=int, help="seconds per wrk run")
    ap.add_argument("--park", help="parked-request counts, e.g. 1000,10000 (0: none)")
    ap.add_argument("--proxy-park", default="1000",
                    help="parked proxied-request counts (1 s each; default 1000; 0: none)")
    ap.add_argument("--cpu-n", type=int, default=int(os.environ.get("VT_CPU_N", "0")),
                    help="vthread-cpu n (default: calibrated to ~1 ms)")
    ap.add_argument("--lua-n", type=int, default=int(os.environ.get("LUA_CPU_N", "0")),
                    help="lua loop n (default: calibrated to ~1 ms)")
    ap.add_argument("--children", type=int, default=6, help="httpd children (150 / 25)")
    ap.add_argument("--carriers", type=int, default=2)
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--pause-before-park", type=float, default=0,
                    help="seconds to wait after the servers are up (for perf attach)")
    args = ap.parse_args()
    args.mode = args.mode or "quick"
    quick = args.mode == "quick"
    args.conns = [int(x) for x in (args.conns or ("100,1000" if quick else "100,1000,10000")).split(",")]
    args.duration = args.duration or (2 if quick else 10)
    args.park = [int(x) for x in (args.park or ("1000" if quick else "1000,10000")).split(",") if int(x) > 0]
    args.proxy_park = [int(x) for x in args.proxy_park.split(",") if int(x) > 0]
    servers = [s for s in args.servers.split(",") if s]
    endpoints = [e for e in (args.endpoints or ",".join(
        e for e in ENDPOINTS if not (quick and e == "close"))).split(",") if e]
    for s in servers:
        if s not in SERVERS:
            raise SystemExit("bench: unknown server %s (%s)" % (s, ", ".join(SERVERS)))
    for e in endpoints:
        if e not in ENDPOINTS:
            raise SystemExit("bench: unknown endpoint %s (%s)" % (e, ", ".join(ENDPOINTS)))
    for f in ("mod_vthread.so", "mod_vthread_demo.so"):
        if not os.path.isfile(os.path.join(args.vt_modules, f)):
            raise SystemExit("bench: no %s in %s" % (f, args.vt_modules))

    out = args.out
    os.makedirs(out, exist_ok=True)
    run = os.path.join(out, "run")
    # A reused --out: the servers append to their logs, and the summary
    # at the end must count this run's lines only.
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    os.chmod(out, 0o755)
    os.chmod(run, 0o755)
    meta = machine_info()
    meta["date"] = datetime.date.today().isoformat()
    meta["load_before"] = load_avg()
    log("mode %s: conns %s, %d s per run, parked %s, parked proxied %s, servers %s, "
        "endpoints %s; raw results in %s"
        % (args.mode, args.conns, args.duration, args.park or "none",
           args.proxy_park or "none", servers, endpoints, out))
    log("load average before: %s" % meta["load_before"])

    nofile = 20000
    try:
        import resource
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except Exception:
        pass
    backlog = 16384
    wconn = max(1024, nofile - 500)

    all_srv = {}
    base_srv = [s for s in servers if s in BASE_SERVERS]
    base_eps = [e for e in endpoints if e in BASE_ENDPOINTS and base_srv]
    proxy_srv = [s for s in PROXY_SERVERS if s in servers] if "proxy" in endpoints else []
    results, parks, pparks = [], [], []
    try:
        # the slow backend (used by the fetch and proxy endpoints of all servers)
        bport = free_port()
        os.makedirs(os.path.join(run, "backend.tmp"), exist_ok=True)
        fill(os.path.join(BENCH, "conf", "backend.conf.in"), os.path.join(run, "backend.conf"),
             dict(RUN=run, NAME="backend", PORT=bport, WORKERS=2, NOFILE=nofile,
                  WCONN=wconn, BACKLOG=backlog))
        backend = Server("backend", "nginx", os.path.join(run, "backend.conf"), run, bport)
        backend.start()
        all_srv["backend"] = backend
        backend_addr = "127.0.0.1:%d" % bport

        def make_server(s):
            """Writes s's config; returns its Server, not started."""
            port = free_port()
            conf = os.path.join(run, s + ".conf")
            probe = "/hello"
            if s in STOCK_MPM:
                os.makedirs(os.path.join(run, s + ".rt"), exist_ok=True)
                os.chmod(os.path.join(run, s + ".rt"), 0o755)
                fill(os.path.join(BENCH, "conf", "httpd-stock.conf.in"), conf,
                     dict(RUN=run, NAME=s, PORT=port, SYSMODS="/usr/lib/apache2/modules",
                          BACKEND=backend_addr, BACKLOG=backlog, **STOCK_MPM[s]))
                kind, probe = "httpd", "/server-status?auto"
            elif s.startswith("httpd"):
                os.makedirs(os.path.join(run, s + ".rt"), exist_ok=True)
                os.chmod(os.path.join(run, s + ".rt"), 0o755)
                fill(os.path.join(BENCH, "conf", "httpd.conf.in"), conf,
                     dict(RUN=run, NAME=s, PORT=port, SYSMODS="/usr/lib/apache2/modules",
                          VTMODS=args.vt_modules, BACKEND=backend_addr,
                          VTHANDLER="On" if s == "httpd-vthread" else "Off",
                          CHILDREN=args.children, THREADS=25, MAXWORKERS=25 * args.children,
                          ASYNCFACTOR=400, BACKLOG=backlog, CARRIERS=args.carriers))
                kind = "httpd"
            else:
                os.makedirs(os.path.join(run, s + ".tmp"), exist_ok=True)
                fill(os.path.join(BENCH, "conf", "nginx-lua.conf.in"), conf,
                     dict(RUN=run, NAME=s, PORT=port, WORKERS=args.nginx_workers,
                          NOFILE=nofile, WCONN=wconn, BACKLOG=backlog,
                          BACKEND_HOST="127.0.0.1", BACKEND_PORT=bport))
                kind = "nginx"
            return Server(s, kind, conf, run, port, probe=probe)

        for s in (base_srv if base_eps else []):
            srv = make_server(s)
            srv.start()
            all_srv[s] = srv

        # smoke: every endpoint answers 200 on every server
        for s in (base_srv if base_eps else []):
            for path in ("/hello", "/sleep?ms=1", "/fetch?path=/slow", "/cpu?n=10"):
                st, body = http_get(all_srv[s].port, path, timeout=10)
                if st != 200:
                    raise SystemExit("bench: %s %s answered %s: %s" % (s, path, st, body[:200]))

        if "fetch" in base_eps:
            log("backend alone at c=1000, new connection per request (%d s)" % args.duration)
            r, _ = wrk(bport, "/slow", 1000, args.duration, headers=("Connection: close",))
            if r:
                meta["backend"] = ("%.0f req/s, p50 %s ms, p99 %s ms, %d errors"
                                   % (r["rps"], fmt_ms(r["lat_p50"]), fmt_ms(r["lat_p99"]),
                                      r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]))
                log("backend: " + meta["backend"])
            backend.settle()

        # CPU work of about 1 ms per request
        cal_d = 1 if quick else 2
        meta["cpu_n"], meta["cpu_us"] = args.cpu_n, float("nan")
        meta["lua_n"], meta["lua_us"] = args.lua_n, float("nan")
        if "cpu" in base_eps:
            csrv = all_srv.get("httpd-inline") or all_srv.get("httpd-vthread")
            if csrv and not args.cpu_n:
                meta["cpu_n"], meta["cpu_us"] = calibrate(csrv, "/cpu?n=%d", CPU_GUESS_HTTPD, cal_d, reps=1 if quick else 3)
                log("vthread-cpu: n=%d costs %.0f us on %s" % (meta["cpu_n"], meta["cpu_us"], csrv.name))
            if "nginx-lua" in all_srv and not args.lua_n:
                meta["lua_n"], meta["lua_us"] = calibrate(all_srv["nginx-lua"], "/cpu?n=%d", CPU_GUESS_LUA, cal_d, reps=1 if quick else 3)
                log("lua cpu: n=%d costs %.0f us" % (meta["lua_n"], meta["lua_us"]))
            meta["cpu_n"] = meta["cpu_n"] or 70000
            meta["lua_n"] = meta["lua_n"] or 25000
        else:
            meta["cpu_n"], meta["lua_n"] = meta["cpu_n"] or 0, meta["lua_n"] or 0

        def path_for(ep, srv):
            if ep in ("hello", "close"):
                return "/hello?ms=0"
            if ep == "sleep":
                return "/sleep?ms=100"
            if ep == "fetch":
                return "/fetch?path=/slow"
            if ep == "proxy":
                return PROXY_PATH
            return "/cpu?n=%d" % (meta["lua_n"] if srv == "nginx-lua" else meta["cpu_n"])

        raw = open(os.path.join(out, "wrk.log"), "w")

        def wrk_point(ep, c, s, hdrs=()):
            """One wrk run of endpoint ep at c connections on server s, after
            every server has settled; appends to results."""
            srv = all_srv[s]
            settle_all(all_srv.values(), srv)
            pids = srv.pids()
            idle = rss_kb(pids)
            sampler = Sampler(srv)
            sampler.start()
            c0, t0 = cpu_ticks(pids), time.monotonic()
            r, text = wrk(srv.port, path_for(ep, s), c, args.duration, headers=hdrs)
            srv.used_at = time.monotonic()
            wall = srv.used_at - t0
            cpu = (cpu_ticks(srv.pids()) - c0) / CLK_TCK / wall * 100
            peak = sampler.finish()
            raw.write("=== %s c=%d %s %s\n%s\n" % (ep, c, s, path_for(ep, s), text))
            raw.flush()
            if r is None:
                log("%s c=%d %s: wrk failed: %s" % (ep, c, s, text[-300:]))
                return
            rec = dict(endpoint=ep, conns=c, server=s, rps=round(r["rps"], 1),
                       p50_ms=r["lat_p50"] / 1000, p99_ms=r["lat_p99"] / 1000,
                       max_ms=r["lat_max"] / 1000, requests=int(r["requests"]),
                       err_connect=int(r["connect"]), err_read=int(r["read"]),
                       err_write=int(r["write"]), err_timeout=int(r["timeout"]),
                       non2xx=int(r["status"]), rss_peak_mb=round(peak / 1024, 1),
                       rss_idle_mb=round(idle / 1024, 1), cpu_pct=round(cpu, 0))
            results.append(rec)
            log("%-5s c=%-5d %-15s %8.0f req/s  p50 %7s  p99 %7s  max %7s ms  "
                "err %d/%d/%d/%d+%d  RSS %.1f MB  CPU %.0f%%"
                % (ep, c, s, rec["rps"], fmt_ms(r["lat_p50"]), fmt_ms(r["lat_p99"]),
                   fmt_ms(r["lat_max"]), rec["err_connect"], rec["err_read"],
                   rec["err_write"], rec["err_timeout"], rec["non2xx"],
                   rec["rss_peak_mb"], rec["cpu_pct"]))

        praw = open(os.path.join(out, "park.log"), "w")

        def park_point(s, n, wait, path, into):
            """One parkclient run (n requests on path, each waiting wait s)
            on server s, after every server has settled; appends to into."""
            srv = all_srv[s]
            settle_all(all_srv.values(), srv)
            # a stock httpd answers 150 at a time: N/150 s, bounded
            deadline = max(30, int(n / (25 * args.children) * 1.5 * wait) + 30)
            r, text = parkclient(args.parkclient, srv, path, n, deadline)
            srv.used_at = time.monotonic()
            praw.write("=== %s n=%d %s\n%s\n" % (s, n, path, text))
            praw.flush()
            if r is None:
                log("park %s n=%d %s failed: %s" % (s, n, path, text[-300:]))
                return
            rec = dict(server=s, n=n, wait_s=wait, wall_s=r["wall_s"], ok=int(r["ok"]),
                       non2xx=int(r["non2xx"]), connect_err=int(r["connect_err"]),
                       read_err=int(r["read_err"]), timeout=int(r["timeout"]),
                       all_sent_s=r["all_sent_s"], lat_p50_s=r["lat_p50_s"],
                       lat_p99_s=r["lat_p99_s"], lat_max_s=r["lat_max_s"],
                       rss_idle_mb=round(r["rss_idle_kb"] / 1024, 1),
                       rss_peak_mb=round(r["rss_peak_kb"] / 1024, 1),
                       kib_per_parked=round((r["rss_peak_kb"] - r["rss_idle_kb"]) / n, 2))
            into.append(rec)
            log("park  n=%-5d %-15s %-15s wall %s  ok %d  err %d/%d/%d+%d  sent %.2f s  "
                "p50 %.3f s  RSS %.1f -> %.1f MB  %.1f KiB/request"
                % (n, path, s, ("%.3f s" % rec["wall_s"]) if rec["wall_s"] >= 0 else "-",
                   rec["ok"], rec["connect_err"], rec["read_err"], rec["timeout"],
                   rec["non2xx"], rec["all_sent_s"], rec["lat_p50_s"], rec["rss_idle_mb"],
                   rec["rss_peak_mb"], rec["kib_per_parked"]))

        # warm-up
        for s in (base_srv if base_eps else []):
            wrk(all_srv[s].port, "/hello?ms=0", 50, 1)
            all_srv[s].used_at = time.monotonic()
            all_srv[s].settle()

        for i, ep in enumerate(base_eps):
            if i > 0:
                # Fresh servers for each endpoint: memory that a large run
                # left in allocators would count in the next one's RSS.
                log("restarting the servers for %s" % ep)
                for s in base_srv:
                    all_srv[s].stop()
                    all_srv[s].start()
                    wrk(all_srv[s].port, "/hello?ms=0", 50, 1)
                    all_srv[s].used_at = time.monotonic()
            for c in args.conns:
                if ep == "close" and c > CLOSE_MAX_CONNS:
                    log("close c=%d: skipped (at most c=%d)" % (c, CLOSE_MAX_CONNS))
                    continue
                hdrs = ("Connection: close",) if ep == "close" else ()
                for s in base_srv:
                    wrk_point(ep, c, s, hdrs)

        if args.pause_before_park:
            time.sleep(args.pause_before_park)
        if args.park and base_eps:
            # Fresh servers: what the wrk runs left in allocators and caches
            # (LuaJIT's heap, pools, stack caches) would hide the growth.
            log("restarting the servers for the parked-request runs")
            for s in base_srv:
                all_srv[s].stop()
                all_srv[s].start()
                wrk(all_srv[s].port, "/sleep?ms=10", 200, 1)
                all_srv[s].used_at = time.monotonic()
            for n in args.park:
                for wait in PARK_WAITS:
                    for s in base_srv:
                        path = "/sleep?ms=%d" % (wait * 1000) if wait else "/hello?ms=0"
                        park_point(s, n, wait, path, parks)

        if "httpd-vthread" in all_srv and base_eps:
            st, body = http_get(all_srv["httpd-vthread"].port, "/server-status?auto")
            with open(os.path.join(out, "httpd-vthread-status.txt"), "w") as f:
                f.write(body)

        if proxy_srv:
            # The proxy endpoint: its own servers, started fresh (the demo
            # endpoints' ones that it does not use are stopped first).
            for s in base_srv:
                if s in all_srv and s not in proxy_srv:
                    all_srv[s].stop()
            log("backend alone at c=1000, keep-alive (%d s)" % args.duration)
            r, _ = wrk(bport, "/slow", 1000, args.duration)
            if r:
                meta["backend_ka"] = ("%.0f req/s, p50 %s ms, p99 %s ms, %d errors"
                                      % (r["rps"], fmt_ms(r["lat_p50"]), fmt_ms(r["lat_p99"]),
                                         r["connect"] + r["read"] + r["write"] + r["timeout"]
                                         + r["status"]))
                log("backend: " + meta["backend_ka"])
            backend.used_at = time.monotonic()

            def proxy_restart(warm_conns):
                """(Re)start the proxy servers fresh, check that /proxy
                answers, warm each up with 1 s of wrk on /proxy."""
                for s in proxy_srv:
                    srv = all_srv.get(s)
                    if srv is None:
                        srv = all_srv[s] = make_server(s)
                    srv.stop()
                    if s == "httpd-vthread":
                        srv.defines = ("BENCH_PROXY",)
                    srv.start()
                    st, body = http_get(srv.port, PROXY_PATH, timeout=10)
                    if st != 200:
                        raise SystemExit("bench: %s %s answered %s: %s"
                                         % (s, PROXY_PATH, st, body[:200]))
                    wrk(srv.port, PROXY_PATH, warm_conns, 1)
                    srv.used_at = time.monotonic()

            log("proxy: starting %s" % ", ".join(proxy_srv))
            proxy_restart(50)
            for c in args.conns:
                for s in proxy_srv:
                    wrk_point("proxy", c, s)
            if "httpd-vthread" in proxy_srv:
                st, body = http_get(all_srv["httpd-vthread"].port, "/server-status?auto")
                with open(os.path.join(out, "httpd-vthread-proxy-status.txt"), "w") as f:
                    f.write(body)
            if args.proxy_park:
                log("restarting the proxy servers for the parked proxied requests")
                proxy_restart(50)
                for n in args.proxy_park:
                    for s in proxy_srv:
                        park_point(s, n, 1, PROXY_PARK_PATH, pparks)
        raw.close()
        praw.close()
    finally:
        for s in list(all_srv.values())[::-1]:
            s.stop()

    meta["load_after"] = load_avg()
    log("load average after: %s" % meta["load_after"])
    targets = evaluate(results, parks, args.mode)
    md = write_reports(args, results, parks, pparks, meta, targets)
    plots(args, results, parks, pparks, servers)
    for name in ["backend"] + SERVERS:
        for suffix in ("-error.log", "-early.log"):
            p = os.path.join(run, name + suffix)
            if os.path.isfile(p) and os.path.getsize(p) > 0:
                lines = open(p, errors="replace").read().splitlines()
                log("%s%s: %d lines, last: %s" % (name, suffix, len(lines), lines[-1][:200]))
    print()
    print(md)
    missed = [t for t in targets if "missed" in t[2]]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
