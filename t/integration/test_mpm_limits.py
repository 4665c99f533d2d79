"""Capacity limits, mod_vthread's and the MPM's, with fibers parked.

- Beyond VThreadMaxFibers (test_fiber_limits.py checks the 503s and the
  inline overflow): the 503 carries Retry-After, is logged once (AH10926),
  and is counted in server-status (VThreadOffload503).
- The event MPM's own connection limit (ThreadsPerChild + idle workers x
  AsyncRequestWorkerFactor) refuses connections before mod_vthread does
  with the default factor: an operator is told at start-up (AH10914, with
  the numbers and the fix), the MPM's "Too many open connections" line
  shows it at run time (at LogLevel debug: that is the MPM's choice), and
  nothing is lost: the connections wait in the listen backlog and every
  request is answered once earlier ones finish; mod_vthread answers no 503.
- MaxRequestWorkers reached (every worker busy with inline requests)
  while fibers are parked: the fibers finish, keep-alive connections go on,
  nothing is lost.
- MaxConnectionsPerChild 50: children are recycled under keep-alive load
  while fibers are parked; every request gets its 200.
"""

import collections
import re
import threading
import time

from conftest import SCALE, Conn, failures, run_concurrently


def statuses(results):
    return collections.Counter(
        r.status if not isinstance(r, BaseException) else repr(r)
        for r in results)


def test_503_over_the_fiber_cap_says_when_to_retry(httpd_factory):
    h = httpd_factory(name="cap-retry",
                      extra="VThreadMaxFibers 10\nVThreadOverflow 503\n")
    results, _ = run_concurrently(lambda: h.get("/sleep?ms=500"), [()] * 40)
    seen = statuses(results)
    assert set(seen) <= {200, 503} and seen[503] >= 1, seen
    for r in results:
        if r.status == 503:
            assert r.header("Retry-After") == "1", r.headers
    log = h.error_log()
    assert len(re.findall(r"AH10926: VThreadMaxFibers \(10\) reached", log)) \
        == 1, log[-2000:]
    st = h.status()
    assert st.get("VThreadOffload503") == seen[503], (st, seen)
    assert st.get("VThreadFibersLimit") == 10, st
    print("VThreadMaxFibers 10, 40 concurrent: %s" % dict(seen))


def test_mpm_connection_limit_is_reported_and_loses_nothing(httpd_factory):
    # AsyncRequestWorkerFactor 2 (event's default): 4 + 4 x 2 = 12
    # connections per child, far below VThreadMaxFibers 10000.
    h = httpd_factory(name="mpm-limit", factor=2,
                      loglevel="info mpm_event:debug")
    log = h.error_log()
    warn = re.search(r"AH10914: the event MPM accepts at most (\d+) "
                     r"connections per child .*AsyncRequestWorkerFactor.*"
                     r"VThreadMaxFibers 10000.*Too many open connections",
                     log)
    assert warn and warn.group(1) == "12", log[-2000:]
    n, ms = 40, 1000
    results, wall = run_concurrently(
        lambda: h.get("/sleep?ms=%d" % ms, timeout=60), [()] * n,
        timeout=90)
    bad = failures(results, lambda r: r.status == 200
                   and r.text == "slept %d ms\n" % ms)
    assert not bad, (statuses(results), bad[:3])
    log = h.error_log()
    refusals = len(re.findall(r"Too many open connections", log))
    st = h.status()
    print("MPM limit 12 conns/child, %d parked %d ms requests: all 200 in "
          "%.2fs (one batch would be %.1fs); %d 'Too many open "
          "connections' lines; mod_vthread 503s: %d"
          % (n, ms, wall, ms / 1000, refusals,
             st.get("VThreadOffload503", 0)))
    # The MPM, not mod_vthread, held the requests back: at least three
    # batches of 12, and no 503 from mod_vthread.
    assert wall >= 2.5 * ms / 1000, wall
    assert refusals >= 1, log[-2000:]
    assert st.get("VThreadOffload503", 0) == 0, st


def test_max_request_workers_reached_while_fibers_are_parked(httpd_factory):
    h = httpd_factory(name="mrw", threads=4, max_workers=4)
    n_fib, n_inline = 100, 8

    def offloaded(i):
        # Two requests on one keep-alive connection: the second is read
        # by an MPM worker after the first's fiber (all workers busy).
        with Conn(h.port, timeout=60) as c:
            a = c.exchange("GET", "/sleep?ms=1000")
            b = c.exchange("GET", "/sleep?ms=10")
            return a, b

    def inline(i):
        return h.get("/inline/sleep?ms=1000", timeout=60)

    args = [(offloaded, i) for i in range(n_fib)] + \
        [(inline, i) for i in range(n_inline)]
    results, wall = run_concurrently(lambda f, i: f(i), args, timeout=90)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    pairs = results[:n_fib]
    bad = [p for p in pairs if p[0].status != 200 or p[1].status != 200
           or p[0].text != "slept 1000 ms\n" or p[1].text != "slept 10 ms\n"]
    assert not bad, bad[:3]
    assert not failures(results[n_fib:], lambda r: r.status == 200
                        and r.text == "slept 1000 ms\n")
    print("MaxRequestWorkers 4 busy with %d inline 1 s requests, %d "
          "offloaded keep-alive pairs: all 200 in %.2fs"
          % (n_inline, n_fib, wall))
    # 8 inline requests on 4 workers take 2 s; the fibers add little.
    assert wall < 6 * SCALE, wall


def test_max_connections_per_child_recycles_with_parked_fibers(
        httpd_factory):
    h = httpd_factory(name="mcpc", server_limit=3, max_workers=4,
                      extra="MaxConnectionsPerChild 50\n")
    stop = threading.Event()
    lock = threading.Lock()
    counts = collections.Counter()
    bad = []
    pids = set(h.note_children())

    def keepalive_client(i):
        # Up to 5 requests per connection; a request on a connection the
        # server closed before any byte of the answer is retried on a new
        # one (what HTTP clients do for idempotent requests), and counted.
        c, n = None, 0
        while not stop.is_set():
            if c is None:
                c, n = Conn(h.port, timeout=30), 0
            sent = False
            try:
                c.request("GET", "/sleep?ms=20")
                sent = True
                r = c.response()
            except (EOFError, ConnectionError):
                c.close()
                c = None
                with lock:
                    counts["retried" if sent else "reconnect"] += 1
                continue
            except Exception as e:      # noqa: BLE001 - asserted below
                with lock:
                    bad.append(repr(e))
                c.close()
                c = None
                continue
            with lock:
                if r.status == 200 and r.text == "slept 20 ms\n":
                    counts["ok"] += 1
                else:
                    bad.append((r.status, r.text[:80]))
            n += 1
            if n >= 5 or not r.keeps_alive():
                c.close()
                c = None
        if c is not None:
            c.close()

    def parked_client(i):
        while not stop.is_set():
            try:
                r = h.get("/sleep?ms=1500", timeout=30)
            except Exception as e:      # noqa: BLE001 - asserted below
                with lock:
                    bad.append(("parked", repr(e)))
                continue
            with lock:
                if r.status == 200 and r.text == "slept 1500 ms\n":
                    counts["parked ok"] += 1
                else:
                    bad.append(("parked", r.status))

    threads = [threading.Thread(target=keepalive_client, args=(i,),
                                daemon=True) for i in range(12)]
    threads += [threading.Thread(target=parked_client, args=(i,),
                                 daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    t_end = time.monotonic() + 8
    while time.monotonic() < t_end:
        pids.update(h.note_children())
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    pids.update(h.note_children())
    print("MaxConnectionsPerChild 50: %d children in 8 s; %s; retried "
          "after a keep-alive close: %d" % (len(pids), dict(counts),
                                            counts["retried"]))
    assert not bad, bad[:5]
    assert len(pids) >= 3, pids
    assert counts["ok"] > 200 and counts["parked ok"] >= 40, counts
    assert not h.crashes()
