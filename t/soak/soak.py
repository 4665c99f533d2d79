#!/usr/bin/python3
"""Soak: completed and aborted offloaded requests, for minutes, while the
child's memory and file descriptors are sampled.

Starts its own httpd with the integration harness (t/integration/
conftest.py: event MPM, one child, 4 workers, 2 carriers, the demo
handlers offloaded) and keeps N client threads alternating requests that
complete and requests whose client goes away while the fiber waits:

  sleep       keep-alive sleep?ms=20 x3   | sleep?ms=5000, closed at 50 ms
  fetch       fetch of a static file      | fetch from a silent backend
  big         big?kb=256, read whole      | big?kb=65536, closed mid-stream
  upload      64 KiB POST                 | half a body, then closed
  poll        poll timeout=1 (204)        | poll timeout=30, closed

Every `--sample` seconds it records the child's RSS (VmRSS) and open file
descriptors (/proc/<pid>/fd). At the end it waits for the server to be
idle, takes a last sample and fits a least-squares line to the samples
after the warm-up: the slopes (KiB/min, fds/min) are the leak figures.

  VT_BUILD_DIR=/tmp/build /usr/bin/python3 t/soak/soak.py --duration 600

Exit status 1 if a completed request failed, the child changed (crash),
or a slope is above --max-rss-slope / --max-fd-slope.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import conftest  # noqa: E402  (the harness, for Httpd and the client)
from conftest import Conn, Httpd, SilentBackend, build_request, \
    server_status  # noqa: E402


# mod_vthread's own live counters (event's connection counts in
# server-status are refreshed only now and then by its listener).
VT_BUSY = ("VThreadFibers", "VThreadHandlers", "VThreadConnsOwned",
           "VThreadConnsWriting", "VThreadConnsKeepAlive",
           "VThreadConnsLingering")


def vthread_busy(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = server_status(port)
        why = ["%s: %s" % (k, st[k]) for k in VT_BUSY if st.get(k)]
        if not why or time.monotonic() >= deadline:
            return why
        time.sleep(0.2)


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_list(pid):
    out = []
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append("%s->%s" % (f, os.readlink("/proc/%d/fd/%s"
                                                  % (pid, f))))
        except OSError:
            pass
    return out


def slope_per_min(samples, idx):
    """Least-squares slope of samples[i][idx] against time, per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    xs = [s[0] for s in samples]
    ys = [s[idx] for s in samples]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / sxx * 60.0


class Load:
    def __init__(self, h, threads):
        self.h, self.port = h, h.port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = {"completed": 0, "aborted": 0}
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def count(self, what):
        with self.lock:
            self.done[what] += 1

    def fail(self, what):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(what)
            self.done.setdefault("failed", 0)
            self.done["failed"] += 1

    def expect(self, r, status, body=None):
        if r.status != status or (body is not None and r.body != body):
            self.fail("%s %r" % (r.status, r.body[:80]))
        else:
            self.count("completed")

    # -- completed
    def sleep_ok(self):
        with Conn(self.port, timeout=30) as c:
            for _ in range(3):
                self.expect(c.exchange("GET", "/sleep?ms=20"), 200,
                            b"slept 20 ms\n")

    def fetch_ok(self):
        self.expect(self.h.get("/fetch?path=/static/hello.txt"), 200,
                    b"hello, static\n")

    def big_ok(self):
        r = self.h.get("/big?kb=256")
        self.expect(r, 200, conftest.big_body(256))

    def upload_ok(self):
        data = os.urandom(65536)
        r = self.h.get("/upload", method="POST", body=data)
        self.expect(r, 200)

    def poll_ok(self):
        self.expect(self.h.get("/poll?topic=soak-%d" % random.randrange(8)
                               + "&timeout=1"), 204)

    # -- aborted
    def abort_after(self, data, pause=0.05, rcvbuf=None, read=0,
                    host=None):
        c = Conn(self.port, timeout=30, rcvbuf=rcvbuf)
        try:
            c.send(data)
            time.sleep(pause)
            while len(c.buf) < read:
                if not c.recv_some(65536):
                    break
        finally:
            c.close()
        self.count("aborted")

    def sleep_abort(self):
        self.abort_after(build_request(self.port, "GET", "/sleep?ms=5000"))

    def fetch_abort(self):
        self.abort_after(build_request(self.port, "GET", "/fetch?path=/x",
                                       {"Host": "silent.test"}))

    def big_abort(self):
        self.abort_after(build_request(self.port, "GET", "/big?kb=65536"),
                         pause=0.01, rcvbuf=16384, read=100000)

    def upload_abort(self):
        self.abort_after(build_request(self.port, "POST", "/upload",
                                       {"Content-Length": "100000"})
                         + b"u" * 50000)

    def poll_abort(self):
        self.abort_after(build_request(self.port, "GET",
                                       "/poll?topic=gone&timeout=30"))

    def run(self, i):
        ops = [self.sleep_ok, self.sleep_abort, self.fetch_ok,
               self.fetch_abort, self.big_ok, self.big_abort,
               self.upload_ok, self.upload_abort, self.poll_ok,
               self.poll_abort]
        k = i
        while not self.stop.is_set():
            op = ops[k % len(ops)]
            k += 1
            try:
                op()
            except Exception as e:     # noqa: BLE001 - counted
                if op.__name__.endswith("_ok"):
                    self.fail("%s: %r" % (op.__name__, e))

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600,
                    help="seconds of load (default 600)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds excluded from the slopes (default: "
                    "a tenth of the duration, at least 15)")
    ap.add_argument("--sample", type=float, default=5,
                    help="seconds between samples (default 5)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--max-rss-slope", type=float, default=512,
                    help="KiB per minute allowed (default 512)")
    ap.add_argument("--max-fd-slope", type=float, default=5,
                    help="fds per minute allowed under load (default 5; "
                    "the count at rest must also come back to the start)")
    ap.add_argument("--json", help="write the samples and figures here")
    args = ap.parse_args(argv)
    warmup = args.warmup if args.warmup is not None \
        else max(15.0, args.duration / 10)

    if not conftest.BUILD_DIR:
        print("VT_BUILD_DIR is not set", file=sys.stderr)
        return 2
    backend = SilentBackend()
    vhosts = """
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName silent.test
    VThreadDemoBackend 127.0.0.1:{silent}
</VirtualHost>
"""
    port = conftest.free_port()
    h = Httpd(name="soak", port=port, timeout=30,
              extra=vhosts.format(port=port, silent=backend.port))
    rc = 1
    try:
        rc = run(args, warmup, h, backend)
    finally:
        h.stop()
        crashes = h.crashes()
        if crashes:
            print("child crashed:\n" + "\n".join(crashes), file=sys.stderr)
            rc = 1
        if rc == 0:
            h.cleanup()
        else:
            print("httpd files kept in %s" % h.root, file=sys.stderr)
        backend.close()
    return rc


def run(args, warmup, h, backend):
    if True:
        h.start()
        kids = h.children()
        if len(kids) != 1:
            print("expected one child, got %r" % kids, file=sys.stderr)
            return 1
        pid = kids[0]
        # Warm-up round of every operation, so that what the child opens
        # once (on first use) is in the baseline.
        warm = Load(h, 1)
        for op in (warm.sleep_ok, warm.sleep_abort, warm.fetch_ok,
                   warm.fetch_abort, warm.big_ok, warm.big_abort,
                   warm.upload_ok, warm.upload_abort, warm.poll_ok,
                   warm.poll_abort):
            op()
        vthread_busy(h.port, 15)
        time.sleep(2.5)
        fds_before = fd_list(pid)
        load = Load(h, args.threads)
        t0 = time.monotonic()
        samples = []

        def sample():
            st = h.status()
            samples.append((time.monotonic() - t0, vm_rss_kb(pid),
                            fd_count(pid), st.get("VThreadFibers", 0),
                            st.get("VThreadStacksCachedBytes", 0)))

        sample()
        load.start()
        next_report = t0 + 60
        while time.monotonic() - t0 < args.duration:
            time.sleep(args.sample)
            if h.children() != [pid]:
                print("the child changed: %r (was %d)" % (h.children(), pid),
                      file=sys.stderr)
                load.finish()
                return 1
            sample()
            if time.monotonic() >= next_report:
                s = samples[-1]
                print("t=%4.0fs rss=%d KiB fds=%d fibers=%d %s"
                      % (s[0], s[1], s[2], s[3], load.done), flush=True)
                next_report += 60
        load.finish()
        why = vthread_busy(h.port, 15)
        time.sleep(2.5)         # lingering closes of the last connections
        sample()
        # Slopes under load: after the warm-up, without the idle sample
        # taken at the end (compared with the first one instead).
        steady = [s for s in samples[:-1] if s[0] >= warmup]
        rss_slope = slope_per_min(steady, 1)
        fd_slope = slope_per_min(steady, 2)
        fig = {
            "duration_s": round(samples[-1][0], 1),
            "requests": load.done,
            "rss_kib": {"start": samples[0][1], "after_warmup":
                        steady[0][1] if steady else None,
                        "end": samples[-1][1],
                        "max": max(s[1] for s in samples)},
            "fds": {"start": samples[0][2], "end": samples[-1][2],
                    "max": max(s[2] for s in samples)},
            "rss_slope_kib_per_min": round(rss_slope, 1),
            "fd_slope_per_min": round(fd_slope, 3),
            "idle_at_end": not why,
            "backend_open_at_end": backend.open_count(),
            "errors": load.errors[:10],
        }
        print(json.dumps(fig, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"figures": fig, "samples": samples}, f)
        failed = []
        if load.done.get("failed"):
            failed.append("%d completed requests failed" %
                          load.done["failed"])
        if rss_slope > args.max_rss_slope:
            failed.append("RSS slope %.1f KiB/min" % rss_slope)
        if fd_slope > args.max_fd_slope:
            failed.append("fd slope %.3f /min" % fd_slope)
        if why:
            failed.append("not idle at the end: %s" % why)
        if fig["fds"]["end"] > samples[0][2]:
            failed.append("fds %d at the end, %d at the start; new: %s"
                          % (fig["fds"]["end"], samples[0][2],
                             sorted(set(fd_list(pid)) - set(fds_before))))
        if failed:
            print("SOAK FAILED: " + "; ".join(failed), file=sys.stderr)
            return 1
        print("SOAK OK")
        return 0


if __name__ == "__main__":
    sys.exit(main())
