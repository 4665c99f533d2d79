"""Graceful restart (apachectl graceful) with offloaded requests in flight.

The old child stops taking new connections, finishes what it is serving
(here ten 2 s requests parked on fibers), closes its idle keep-alive
connections at once rather than at KeepAliveTimeout, and exits; the new
child takes the load meanwhile. No client sees an error.
"""

import threading
import time

import pytest

from conftest import SCALE, Conn, failures, pid_alive, running, wait_until


@pytest.fixture
def httpd():
    # ServerLimit 2: room for the new child while the old one finishes.
    with running(name="graceful", server_limit=2, max_workers=4,
                 keepalive_timeout=30) as h:
        yield h


def test_graceful_restart_under_load(httpd):
    old = httpd.note_children()
    assert old, "no child process"
    gen0 = httpd.status().get("ParentServerConfigGeneration")

    # An idle keep-alive connection whose last request was offloaded.
    idle = Conn(httpd.port)
    r = idle.exchange("GET", "/sleep?ms=1")
    assert r.status == 200 and r.keeps_alive()

    # Ten requests in flight for 2 s each.
    inflight = [None] * 10

    def slow(i):
        try:
            inflight[i] = httpd.get("/sleep?ms=2000", timeout=30)
        except Exception as e:      # noqa: BLE001 - asserted below
            inflight[i] = e

    slow_threads = [threading.Thread(target=slow, args=(i,), daemon=True)
                    for i in range(10)]
    for t in slow_threads:
        t.start()

    # Steady load before, during and after the restart.
    load, stop = [], threading.Event()

    def steady():
        while not stop.is_set():
            try:
                load.append(httpd.get("/sleep?ms=20", timeout=30))
            except Exception as e:  # noqa: BLE001 - asserted below
                load.append(e)

    load_threads = [threading.Thread(target=steady, daemon=True)
                    for _ in range(4)]
    for t in load_threads:
        t.start()

    time.sleep(0.5)
    t_restart = time.monotonic()
    httpd.graceful()

    # The old child closes the idle keep-alive connection well before
    # KeepAliveTimeout (30 s).
    closed = idle.closed_by_server(10)
    idle.close()

    for t in slow_threads:
        t.join(30)
    time.sleep(1.0)
    stop.set()
    for t in load_threads:
        t.join(30)

    bad = failures(inflight, lambda r: r.status == 200
                   and r.text == "slept 2000 ms\n")
    assert not bad, "in-flight requests failed across the restart: %r" % (
        bad[:3],)
    bad = failures(load, lambda r: r.status == 200
                   and r.text == "slept 20 ms\n")
    assert not bad, "%d of %d requests under load failed: %r" % (
        len(bad), len(load), bad[:3])
    assert len(load) > 20, len(load)

    # The old child exits once its requests are done.
    gone = wait_until(lambda: not any(pid_alive(p) for p in old),
                      10 * SCALE, interval=0.2)
    took = time.monotonic() - t_restart
    assert gone, "old child %s still running %.1fs after the restart\n%s" % (
        old, took, httpd.logs(20))
    assert closed, "idle keep-alive connection not closed by the old child"

    # A new generation answers.
    st = httpd.status()
    assert st.get("ParentServerConfigGeneration") == gen0 + 1, st
    new = httpd.note_children()
    assert new and not set(new) & set(old), (old, new)
    r = httpd.get("/sleep?ms=1")
    assert r.status == 200 and r.text == "slept 1 ms\n"


def test_repeated_graceful_restarts_while_idle(httpd):
    for _ in range(3):
        old = httpd.note_children()
        httpd.graceful()
        assert wait_until(lambda: not any(pid_alive(p) for p in old),
                          10 * SCALE, interval=0.1), old
        r = wait_until(lambda: ok_get(httpd, "/sleep?ms=1"), 10, 0.1)
        assert r, "no answer after the restart"


def ok_get(h, path):
    try:
        r = h.get(path, timeout=5)
    except OSError:
        return None
    return r if r.status == 200 else None
