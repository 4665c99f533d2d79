"""Transparent mode with stock mod_proxy_http: unmodified proxy code on
fibers parks instead of holding a carrier.

Every server here is 1 child x 4 workers with 2 carriers (the Httpd
defaults), mod_proxy and mod_proxy_http loaded from the system, and
VThreadHandler On where the proxy runs. The backend is SlowHTTP
(backends.py), which answers GET /x?delay=S&id=N with "id=N path=/x\\n"
after S seconds.

- 200 concurrent 1 s proxied requests, with backend connections reused
  (keep-alive) and with disablereuse=On, each answered with its own body,
  in well under the 50 s that 4 workers would need;
- backend faults (hang-up, reset, garbage, a ProxyTimeout) give the usual
  502/504 and log lines while a concurrent batch of normal requests still
  succeeds, and mod_vthread's counters return to idle;
- VThreadTransparent Off really turns the hooks off for its location;
- a vhost proxying to another vhost of the same httpd never stalls.
"""

import re

import pytest

from backends import SlowHTTP
from conftest import (HOST, SCALE, SYS_MODULES, failures, free_port, get,
                      run_concurrently, running, server_status,
                      vthread_busy)

PROXY_MODS = """
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
""".format(mods=SYS_MODULES)


def proxy_conf(port, params="", transparent=None, prefix="/p"):
    t = "" if transparent is None else "    VThreadTransparent %s\n" % (
        "On" if transparent else "Off")
    return PROXY_MODS + """
<Location "{prefix}/">
    ProxyPass "http://{host}:{port}/" {params}
    VThreadHandler On
{t}</Location>
""".format(prefix=prefix, host=HOST, port=port, params=params, t=t)


def fetch(h, i, delay=1, prefix="/p", path="x", timeout=60):
    r = get(h.port, "%s/%s?delay=%s&id=%d" % (prefix, path, delay, i),
            timeout=timeout)
    return i, r


def own_body(path="x"):
    def ok(res):
        i, r = res
        return r.status == 200 and r.text == "id=%d path=/%s\n" % (i, path)
    return ok


def burst(h, n, delay=1, **kw):
    results, wall = run_concurrently(lambda i: fetch(h, i, delay, **kw),
                                     [(i,) for i in range(n)], timeout=120)
    return results, wall


def describe(bad):
    out = []
    for b in bad[:5]:
        if isinstance(b, BaseException):
            out.append(repr(b))
        else:
            i, r = b
            out.append("id=%d: %d %r" % (i, r.status, r.body[:100]))
    return out


# ------------------------------------------------------- 200 x 1 s

@pytest.mark.parametrize("params", ["", "disablereuse=On"],
                         ids=["keepalive", "disablereuse"])
def test_200_proxied_1s_requests_on_4_workers(params):
    with SlowHTTP() as be, \
            running(name="tproxy", transparent="On", extra=proxy_conf(be.port, params)) as h:
        assert fetch(h, 0, delay=0)[1].status == 200
        results, wall = burst(h, 200)
        bad = failures(results, own_body())
        print("mod_proxy_http %s: 200 x 1 s in %.2fs, backend saw %d "
              "connections for %d requests" % (params or "keep-alive", wall,
                                               be.connections, be.requests))
        assert not bad, "%d of 200 failed: %s" % (len(bad), describe(bad))
        assert wall < 3.0 * SCALE, "200 x 1 s proxied took %.2fs" % wall
        why = vthread_busy(h.port, timeout=10)
        assert not why, why


# ------------------------------------- a pool smaller than the fibers

def test_explicit_small_pool_queues_fibers_without_pinning():
    # ProxyPass max=4: 100 fibers share 4 backend connections. The 96
    # others wait in mod_proxy's apr_reslist, in pthread_cond_wait: the
    # hook parks them (a blocking wait there, with the 4 holders parked
    # fibers of the same carriers, would never end). The explicit max= is
    # honoured: 100 x 0.2 s through 4 connections take >= 5 s. Meanwhile
    # the carriers serve other requests at once.
    with SlowHTTP() as be, running(
            name="tpool", transparent="On",
            extra=proxy_conf(be.port, "max=4")) as h:
        assert fetch(h, 0, delay=0)[1].status == 200
        before = server_status(h.port)
        side = []

        def load():
            return burst(h, 100, delay=0.2)

        def beside():
            for _ in range(5):
                r = get(h.port, "/plain?ms=0", timeout=30)
                side.append((r.status, r.elapsed))

        (res, _), wall = run_concurrently(
            lambda k: load() if k == 0 else beside(), [(0,), (1,)],
            timeout=120)
        results, burst_wall = res
        bad = failures(results, own_body())
        after = server_status(h.port)
        print("max=4: 100 x 0.2 s in %.2fs, backend connections %d, "
              "condition waits parked %d" % (
                  burst_wall, be.connections,
                  after["VThreadHookCondParked"]
                  - before["VThreadHookCondParked"]))
        assert not bad, "%d of 100 failed: %s" % (len(bad), describe(bad))
        assert burst_wall >= 4.5, "max=4 not honoured: %.2fs" % burst_wall
        assert burst_wall < 30 * SCALE, burst_wall
        assert be.connections <= 4 + 1, be.connections  # + the warm-up
        assert after["VThreadHookCondParked"] \
            - before["VThreadHookCondParked"] >= 50, after
        assert after["VThreadHookPinned"] == 0, after
        assert len(side) == 5 and all(st == 200 and t < 2.0 * SCALE
                                      for st, t in side), side
        why = vthread_busy(h.port, timeout=10)
        assert not why, why


# ------------------------------------------------------------- faults

FAULT_CONF = PROXY_MODS + """
ProxyTimeout 1
<Location "/n/">
    ProxyPass "http://{host}:{port}/n/" timeout=30
    VThreadHandler On
</Location>
<Location "/f/">
    ProxyPass "http://{host}:{port}/f/"
    VThreadHandler On
</Location>
"""

# path -> (status users see, the error log line of httpd's own): what
# stock httpd 2.4.71 answers and logs without mod_vthread, checked by hand.
# A backend that takes longer than ProxyTimeout while httpd reads its
# status line gives 502 (not 504) in stock httpd too. Offloaded requests
# log their client as "[remote IP:PORT]" where stock logs
# "[client IP:PORT]" (httpd's log.c says "client" only when the
# connection has a scoreboard handle, and c->sbh is NULL on a fiber).
CLIENT = r"\[(?:client|remote) 127\.0\.0\.1:\d+\] "
LINE = r"AH01102: error reading status line from remote server " \
       r"127\.0\.0\.1:\d+\n.*AH00898: Error reading from remote server " \
       r"returned by /f/"
FAULTS = {
    "hangup": (502, r"\(20014\)Internal error \(specific information not "
                    r"available\): " + CLIENT + LINE + "hangup"),
    "reset": (502, r"\(20014\)Internal error \(specific information not "
                   r"available\): " + CLIENT + LINE + "reset"),
    "garbage": (502, r"\(22\)Invalid argument: " + CLIENT + LINE
                + "garbage"),
    "timeout": (502, r"\(70007\)The timeout specified has expired: "
                + CLIENT + LINE + "x"),
}


def test_backend_faults_give_502_while_others_succeed():
    n_ok, n_each = 100, 8
    with SlowHTTP() as be, running(name="tfault", transparent="On", extra=FAULT_CONF.format(
            host=HOST, port=be.port)) as h:
        assert fetch(h, 0, 0, prefix="/n")[1].status == 200
        args = [("ok", i) for i in range(n_ok)]
        for kind in FAULTS:
            args += [(kind, i) for i in range(n_each)]

        def one(kind, i):
            if kind == "ok":
                return kind, i, fetch(h, i, 1, prefix="/n")[1]
            if kind == "timeout":
                return kind, i, fetch(h, i, 3, prefix="/f")[1]
            return kind, i, fetch(h, i, 0.5, prefix="/f", path=kind)[1]

        results, wall = run_concurrently(one, args, timeout=120)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors[:5]
        wrong = []
        for kind, i, r in results:
            if kind == "ok":
                if r.status != 200 or r.text != "id=%d path=/n/x\n" % i:
                    wrong.append((kind, i, r.status, r.body[:80]))
            elif r.status != FAULTS[kind][0]:
                wrong.append((kind, i, r.status, r.body[:80]))
        times = {}
        for kind, i, r in results:
            times.setdefault(kind, []).append(r.elapsed)
        print("faults: %d requests in %.2fs; slowest per kind: %s" % (
            len(args), wall, ", ".join("%s %.2fs" % (k, max(v))
                                       for k, v in times.items())))
        assert not wrong, "%d wrong answers: %r" % (len(wrong), wrong[:8])
        # The timeouts are ProxyTimeout's 1 s, not the backend's 3 s.
        assert max(times["timeout"]) < 2.5 * SCALE, times["timeout"]
        assert wall < 3.0 * SCALE, wall
        log = h.error_log()
        for kind, (status, pattern) in FAULTS.items():
            assert re.search(pattern, log), (
                "no %r line in the error log for %s:\n%s"
                % (pattern, kind, log[-3000:]))
        why = vthread_busy(h.port, timeout=10)
        assert not why, why
        st = h.status()
        assert st.get("VThreadPinned", 0) == 0, st
        # Still serving.
        assert fetch(h, 7, 0, prefix="/n")[1].text == "id=7 path=/n/x\n"


# ------------------------------------------- VThreadTransparent Off

def test_transparent_off_holds_the_carriers():
    # Off on the proxied location: mod_proxy_http's poll blocks its carrier,
    # so 8 requests of 1 s on 2 carriers take about 4 s. (Kept small:
    # it is slow by design.)
    with SlowHTTP() as be, running(name="toff", transparent="On", extra=proxy_conf(
            be.port, transparent=False)) as h:
        assert fetch(h, 0, delay=0)[1].status == 200
        results, wall = burst(h, 8)
        bad = failures(results, own_body())
        print("VThreadTransparent Off: 8 x 1 s proxied on 2 carriers in "
              "%.2fs" % wall)
        assert not bad, describe(bad)
        assert wall >= 3.5, (
            "8 x 1 s with transparent mode Off took only %.2fs: the "
            "carriers were not blocked" % wall)
        assert wall < 10 * SCALE, wall


# --------------------------------- a vhost proxying to its own httpd

def test_vhost_proxying_to_a_vhost_of_the_same_httpd():
    back = free_port()
    extra = PROXY_MODS + """
VThreadHandler On
Listen {host}:{back}
<VirtualHost {host}:{back}>
    ServerName back.test
</VirtualHost>
<Location "/v/">
    ProxyPass "http://{host}:{back}/"
</Location>
# The status requests of the checks below are not counted as fibers.
<Location "/server-status">
    VThreadHandler Off
</Location>
""".format(host=HOST, back=back)
    n = 340
    with running(name="tself", transparent="On", timeout=10, extra=extra) as h:
        r = get(h.port, "/v/echo-id?ms=0", headers={"X-Request-Id": "warm"})
        assert r.status == 200 and r.text == "warm\n", r

        def one(i):
            rid = "self-%d" % i
            if i % 5 == 4:
                return rid, get(h.port, "/v/static/hello.txt", timeout=30)
            return rid, get(h.port, "/v/echo-id?ms=%d" % (i % 7 * 50),
                            headers={"X-Request-Id": rid}, timeout=30)

        def ok(res):
            rid, r = res
            want = "hello, static\n" if rid.endswith(("4", "9")) and \
                int(rid.split("-")[1]) % 5 == 4 else rid + "\n"
            return r.status == 200 and r.text == want and r.elapsed < 8.0

        for rnd in range(2):    # the second round reuses backend connections
            results, wall = run_concurrently(one, [(i,) for i in range(n)],
                                             timeout=120)
            bad = failures(results, ok)
            slow = max((res[1].elapsed for res in results
                        if not isinstance(res, BaseException)), default=0)
            print("vhost -> same httpd, round %d: %d requests in %.2fs, "
                  "slowest %.2fs, %d bad" % (rnd + 1, n, wall, slow,
                                             len(bad)))
            assert not bad, [(b if isinstance(b, BaseException) else
                              (b[0], b[1].status, b[1].elapsed,
                               b[1].body[:60])) for b in bad[:8]]
            assert wall < 8.0 * SCALE, wall
        why = vthread_busy(h.port, timeout=15)
        assert not why, why
