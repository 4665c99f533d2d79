"""Slow and hostile clients delay only themselves.

One carrier (VThreadCarriers 1), mod_reqtimeout loaded with its defaults
(header=20-40,MinRate=500 body=20,MinRate=500), all at once:

- slowloris: a request line and then one header line a second, on a new
  connection (read by an MPM worker, as in stock httpd) and on a keep-alive
  connection that mod_vthread owns (its next request is read after
  mod_vthread's keep-alive wait): both get 408 from mod_reqtimeout;
- a stalled request body to an offloaded handler: 100 bytes of a declared
  100000, then nothing: 408 (the handler's read on the fiber is bounded by
  mod_reqtimeout's body timeout);
- a client that never reads a 64 MiB response.

Meanwhile a probe of sleep?ms=10 on new connections and one on a
keep-alive connection run on the same single carrier: their p99 stays
under 300 ms. Figures: the probes' p99 and worst, when each 408 came.

test_request_bodies.py covers slow (not stalled) uploads and slow readers
that eventually read; this file covers clients that never finish.
"""

import threading
import time

from conftest import SCALE, SYS_MODULES, Conn, Prober, build_request, running

REQTIMEOUT = "LoadModule reqtimeout_module %s/mod_reqtimeout.so\n" % SYS_MODULES
P99_LIMIT = 0.3


def p99(times):
    s = sorted(times)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


class KeepAliveProber(Prober):
    """Prober over one keep-alive connection (the path through mod_vthread's
    keep-alive wait and hand-off), reconnecting only if it is closed."""

    def _run(self):
        c = None
        while not self._stop.is_set():
            try:
                if c is None:
                    c = Conn(self.port, timeout=30)
                r = c.exchange("GET", self.path)
                if r.status != 200:
                    self.errors.append("status %d" % r.status)
                self.times.append(r.elapsed)
                if not r.keeps_alive():
                    c.close()
                    c = None
            except Exception as e:     # noqa: BLE001 - reported by check()
                self.errors.append(repr(e))
                if c is not None:
                    c.close()
                c = None
            self._stop.wait(self.pause)
        if c is not None:
            c.close()


def slowloris(port, results, key, keepalive_first):
    """Send a request line, then a header line a second, until the server
    answers or closes; record (status or what happened, seconds)."""
    t0 = time.monotonic()
    try:
        with Conn(port, timeout=60) as c:
            if keepalive_first:
                r = c.exchange("GET", "/sleep?ms=1")
                assert r.status == 200 and r.keeps_alive(), r
                t0 = time.monotonic()
            c.send(b"GET /sleep?ms=1 HTTP/1.1\r\nHost: x\r\n")
            c.settimeout(1.0)
            i = 0
            while time.monotonic() - t0 < 60:
                try:
                    if c.recv_some(65536) == 0:
                        results[key] = ("closed", time.monotonic() - t0)
                        return
                    break
                except TimeoutError:
                    pass
                except OSError as e:
                    results[key] = (repr(e), time.monotonic() - t0)
                    return
                i += 1
                try:
                    c.send(b"X-Slow-%d: %d\r\n" % (i, i))
                except OSError as e:
                    results[key] = (repr(e), time.monotonic() - t0)
                    return
            c.settimeout(10)
            r = c.response()
            results[key] = (r.status, time.monotonic() - t0)
    except Exception as e:              # noqa: BLE001 - asserted below
        results[key] = (repr(e), time.monotonic() - t0)


def stalled_body(port, results, key):
    t0 = time.monotonic()
    try:
        with Conn(port, timeout=60) as c:
            c.send(build_request(port, "POST", "/upload",
                                 {"Content-Length": "100000"}) + b"x" * 100)
            r = c.response()
            results[key] = (r.status, time.monotonic() - t0)
    except Exception as e:              # noqa: BLE001 - asserted below
        results[key] = (repr(e), time.monotonic() - t0)


def test_hostile_clients_only_delay_themselves():
    with running(name="hostile", carriers=1, timeout=60,
                 extra=REQTIMEOUT) as h:
        assert h.get("/sleep?ms=1").status == 200
        results = {}
        threads = [
            threading.Thread(target=slowloris,
                             args=(h.port, results, "slowloris-new", False)),
            threading.Thread(target=slowloris,
                             args=(h.port, results, "slowloris-keepalive",
                                   True)),
            threading.Thread(target=stalled_body,
                             args=(h.port, results, "stalled-body")),
        ]
        # A client that never reads a 64 MiB response: its fiber waits
        # (up to Timeout, 60 s) for the socket to drain.
        nonreader = Conn(h.port, timeout=60, rcvbuf=16384)
        nonreader.request("GET", "/big?kb=65536")
        with Prober(h.port, "/sleep?ms=10", pause=0.02) as probe, \
                KeepAliveProber(h.port, "/sleep?ms=10", pause=0.02) as kprobe:
            for t in threads:
                t.daemon = True
                t.start()
            for t in threads:
                t.join(90)
            # The non-reader is still waiting, and still costs nobody.
            st = h.status()
            time.sleep(0.5)
        nonreader.recv_some(65536)
        got = len(nonreader.buf)
        nonreader.close()

        print("hostile clients: %s" % ", ".join(
            "%s %s after %.1fs" % (k, v[0], v[1])
            for k, v in sorted(results.items())))
        for name, p in (("new-connection probe", probe),
                        ("keep-alive probe", kprobe)):
            print("%s: %d probes of sleep?ms=10, p99 %.1f ms, worst %.1f ms"
                  % (name, len(p.times), p99(p.times) * 1000,
                     max(p.times) * 1000))
        for key in ("slowloris-new", "slowloris-keepalive", "stalled-body"):
            status, took = results.get(key, ("no result", 0))
            assert status == 408, (key, status, took, h.logs(20))
            # reqtimeout's defaults: 20 s, extended by 1 s per 500 bytes.
            assert 19 <= took < 30 * SCALE, (key, took)
        for p in (probe, kprobe):
            assert not p.errors, p.errors[:5]
            assert len(p.times) >= 200, len(p.times)
            assert p99(p.times) < P99_LIMIT * SCALE, (
                "p99 %.3fs over %d probes" % (p99(p.times), len(p.times)))
        assert st.get("VThreadFibers", 0) >= 1, st
        assert got > 0
