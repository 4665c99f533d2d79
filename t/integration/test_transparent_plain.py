"""Transparent mode with a handler that knows nothing of mod_vthread:
vthread-plain calls apr_sleep() and apr_socket_*() only. On a fiber with
VThreadTransparent On (the default) those calls park the fiber, so a few
carriers serve many such waits at once; with Off they hold the carrier.
The counters in /server-status?auto show which calls parked."""
import time

from conftest import (running, get, run_concurrently, failures,
                      server_status, wait_until, SCALE)
from backends import SlowHTTP


def plain_off(path="/plain-off"):
    return ('<Location "%s">\n    SetHandler vthread-plain\n'
            '    VThreadHandler On\n    VThreadTransparent Off\n'
            '</Location>\n' % path)


def test_apr_sleep_parks_the_fiber():
    # 1 child x 4 workers, 2 carriers: 200 handlers sleeping 1 s each in
    # apr_sleep() all end in about 1 s, far below the 100 s of 2 carriers
    # taking turns, and below the 50 s of 4 workers.
    with running(name="plain-sleep", transparent="") as h:
        res, wall = run_concurrently(
            lambda i: get(h.port, "/plain?ms=1000", timeout=60),
            [(i,) for i in range(200)], timeout=90)
        bad = failures(res, ok=lambda r: r.status == 200
                       and r.text == "plain slept 1000 ms\n")
        assert not bad, bad[:3]
        assert wall < 3.0 * SCALE, "200 x apr_sleep(1 s) took %.1fs" % wall
        st = server_status(h.port)
        assert st["VThreadTransparent"] == 1
        # apr_sleep is select(0, NULL, NULL, NULL, &tv) in APR 1.7.
        assert st["VThreadHookSelectParked"] >= 200, st
        assert st["VThreadHookPinned"] == 0, st


def test_plain_sockets_park_the_fiber():
    # The handler GETs from a backend that answers after 1 s, with plain
    # apr_socket_connect/send/recv: with a socket timeout (non-blocking
    # fd, the wait is APR's poll) and without one (a blocking fd: the
    # hooks wait for readiness themselves).
    with SlowHTTP() as be, running(
            name="plain-fetch", transparent="",
            extra="VThreadDemoBackend 127.0.0.1:%d\n" % be.port) as h:
        for blocking in (0, 1):
            res, wall = run_concurrently(
                lambda i: get(h.port, "/plain?path=/x%%3Fdelay%%3D1%%26id%%3D%d"
                              "&blocking=%d" % (i, blocking), timeout=60),
                [(i,) for i in range(100)], timeout=90)
            bad = [r for i, r in enumerate(res)
                   if isinstance(r, BaseException) or r.status != 200
                   or r.text != "id=%d path=/x\n" % i]
            assert not bad, (blocking, bad[:3])
            assert wall < 3.0 * SCALE, \
                "100 plain 1 s fetches (blocking=%d) took %.1fs" % (blocking,
                                                                   wall)
        st = server_status(h.port)
        assert st["VThreadHookPollParked"] >= 100, st    # timeout set
        assert st["VThreadHookReadParked"] >= 100, st    # blocking fd
        assert st["VThreadHookPinned"] == 0, st
        assert wait_until(lambda: server_status(h.port)["VThreadFibers"]
                          <= 1, 10)


def test_transparent_off_holds_the_carrier():
    # The same handler where VThreadTransparent Off: apr_sleep blocks its
    # carrier, so 8 sleeps of 0.5 s on 2 carriers take turns (>= 1.5 s;
    # about 2 s), while /plain beside it still overlaps them all.
    with running(name="plain-off", extra=plain_off(), transparent="") as h:
        res, wall = run_concurrently(
            lambda i: get(h.port, "/plain-off?ms=500", timeout=60),
            [(i,) for i in range(8)], timeout=60)
        assert not failures(res), failures(res)[:3]
        assert wall >= 1.5, "Off did not hold the carrier: %.2fs" % wall
        res, wall = run_concurrently(
            lambda i: get(h.port, "/plain?ms=500", timeout=60),
            [(i,) for i in range(8)], timeout=60)
        assert not failures(res), failures(res)[:3]
        assert wall < 1.4 * SCALE, "On did not overlap: %.2fs" % wall


def test_off_at_server_level_installs_nothing():
    with running(name="plain-none", transparent="Off") as h:
        t0 = time.monotonic()
        r = get(h.port, "/plain?ms=100")
        assert r.status == 200 and r.text == "plain slept 100 ms\n"
        assert time.monotonic() - t0 >= 0.09
        st = server_status(h.port)
        assert st["VThreadTransparent"] == 0
        assert st["VThreadHookCalls"] == 0
