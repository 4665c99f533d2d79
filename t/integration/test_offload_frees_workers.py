"""A handler that waits no longer holds an MPM worker.

One child with 4 worker threads. 200 concurrent requests that each sleep
200 ms: offloaded, they overlap and finish in well under a second; inline,
4 workers serve them 4 at a time (about 10 s).
"""

import random
import threading
import time

from conftest import SCALE, failures, run_concurrently, wait_idle

N = 200
MS = 200


def burst(h, path, n=N):
    return run_concurrently(lambda: h.get(path, timeout=120),
                            [()] * n, timeout=180)


def test_200_waiting_requests_need_not_wait_for_4_workers(httpd):
    # Warm up: the carriers and a connection or two exist.
    assert httpd.get("/sleep?ms=0").status == 200
    assert httpd.get("/inline/sleep?ms=0").status == 200

    results, offloaded = burst(httpd, "/sleep?ms=%d" % MS)
    bad = failures(results, lambda r: r.status == 200
                   and r.text == "slept %d ms\n" % MS)
    assert not bad, "%d of %d failed, e.g. %r" % (len(bad), N, bad[:3])
    assert offloaded < 1.0 * SCALE, (
        "200 offloaded 200 ms requests took %.2fs on 4 workers" % offloaded)

    results, inline = burst(httpd, "/inline/sleep?ms=%d" % MS)
    bad = failures(results, lambda r: r.status == 200
                   and r.text == "slept %d ms\n" % MS)
    assert not bad, "%d of %d inline failed, e.g. %r" % (len(bad), N, bad[:3])
    # The comparison means something only if 4 workers really bound the
    # inline run: 200 x 200 ms / 4 = 10 s.
    assert inline > 4.0, "inline run took only %.2fs: more than 4 workers?" % inline
    assert inline >= 3 * offloaded, (
        "offloaded %.2fs vs inline %.2fs: less than 3x faster"
        % (offloaded, inline))


def test_200_long_polls_on_4_workers(httpd):
    # Long polls parked on fibers hold no worker: one child with 4
    # workers keeps 200 of them waiting and still serves the publisher,
    # whose one POST wakes them all.
    n = 200
    results = []
    waiters = threading.Thread(target=lambda: results.extend(
        run_concurrently(lambda: httpd.get("/poll?topic=crowd&timeout=30",
                                           timeout=60),
                         [()] * n, timeout=90)[0]), daemon=True)
    waiters.start()
    woken, sent = 0, []
    deadline = time.monotonic() + 15 * SCALE
    time.sleep(1.0)
    while woken < n and time.monotonic() < deadline:
        body = b"crowd %d" % len(sent)
        r = httpd.get("/poll?topic=crowd", method="POST", body=body,
                      timeout=10)
        assert r.status == 200 and r.text.startswith("woken "), r
        woken += int(r.text.split()[1])
        sent.append(body)
        if woken < n:
            time.sleep(0.2)
    waiters.join(60)
    assert woken == n, "one publisher woke %d of %d waiters" % (woken, n)
    bad = failures(results, lambda r: r.status == 200 and r.body in sent)
    assert not bad and len(results) == n, (len(bad), bad[:3])



def test_no_response_reaches_the_wrong_client(httpd):
    # Many overlapping requests, each finishing at a random time; each
    # client must get its own id back (body and header).
    rnd = random.Random(7)
    args = [("req-%04d-%08x" % (i, rnd.getrandbits(32)), rnd.randint(0, 60),
             rnd.choice(["/echo-id", "/echo-id", "/inline/echo-id"]))
            for i in range(150)]

    def one(rid, ms, base):
        return rid, httpd.get("%s?ms=%d" % (base, ms),
                              headers={"X-Request-Id": rid}, timeout=60)

    results, wall = run_concurrently(one, args, timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    wrong = [(rid, r.status, r.text) for rid, r in results
             if r.status != 200 or r.text != rid + "\n"
             or r.header("X-Request-Id") != rid]
    assert not wrong, wrong[:5]


def test_counters_return_to_idle_after_the_burst(httpd):
    before = httpd.status().get("Total Accesses", 0)
    results, _ = burst(httpd, "/sleep?ms=50", n=100)
    assert not failures(results)
    why, st = wait_idle(httpd.port, timeout=10)
    assert not why, "server-status not idle 10s after the load: %s\n%r" % (
        why, st)
    # Offloaded requests are still counted as accesses.
    assert st.get("Total Accesses", 0) >= before + 100, (
        before, st.get("Total Accesses"))
