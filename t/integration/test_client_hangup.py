"""Clients that hang up while their offloaded request waits.

A fiber whose client went away is cancelled (vthread.h: its waits return
APR_ECONNABORTED), so long polls and slow fetches of departed clients do
not pile up: the server soon holds neither their fibers nor their
connections. And a server stopped while fibers are parked stops cleanly.
"""

import socket
import time

import pytest

from conftest import SCALE, Conn, wait_idle


@pytest.fixture(scope="module")
def silent_backend():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def park(h, path, n):
    conns = []
    for _ in range(n):
        c = Conn(h.port)
        c.request("GET", path)
        conns.append(c)
    return conns


def parked(h):
    return h.status().get("VThreadFibers", 0)


@pytest.mark.parametrize("path", ["/poll?topic=gone&timeout=60",
                                  "/sleep?ms=60000",
                                  "/fetch?path=/never",
                                  "/fanout?a=/never&b=/never"])
def test_departed_clients_leave_nothing_behind(httpd_factory, silent_backend,
                                               path):
    h = httpd_factory(name="hangup", timeout=60,
                      extra="VThreadDemoBackend 127.0.0.1:%d"
                      % silent_backend)
    conns = park(h, path, 20)
    time.sleep(0.5)
    assert parked(h) >= 20, h.status()
    t0 = time.monotonic()
    for c in conns:
        c.close()
    why, st = wait_idle(h.port, timeout=5)
    assert not why, "%.1fs after 20 clients hung up on %s: %s" % (
        time.monotonic() - t0, path, why)


def test_stopping_with_parked_fibers(httpd_factory):
    # Teardown (the factory's) stops the server with 20 long polls parked
    # and their clients still connected; it must stop promptly and no
    # child may crash.
    h = httpd_factory(name="stop-parked")
    conns = park(h, "/poll?topic=wait&timeout=60", 20)
    time.sleep(0.5)
    assert parked(h) >= 20, h.status()
    t0 = time.monotonic()
    h.stop()
    took = time.monotonic() - t0
    for c in conns:
        c.close()
    assert took < 10 * SCALE, "stop took %.1fs" % took
    assert not h.crashes(), h.logs(20)


def test_graceful_restart_with_parked_long_polls(httpd_factory):
    # The old child may wait for its in-flight long polls (up to their
    # timeout), but the new child serves at once and nothing crashes.
    h = httpd_factory(name="graceful-parked", server_limit=2)
    conns = park(h, "/poll?topic=wait&timeout=3", 10)
    time.sleep(0.5)
    h.graceful()
    r = h.get("/sleep?ms=1", timeout=10)
    assert r.status == 200 and r.elapsed < 2 * SCALE, r
    for c in conns:
        r = c.response()
        assert r.status == 204, r
        c.close()
