"""Offloaded and inline locations side by side.

A connection whose request was offloaded belongs to mod_vthread from then
on; its next requests may go to inline locations (run on an MPM worker)
and back. VThreadHandler also selects what to offload by handler name and
by nested location.
"""

import time

import pytest

from conftest import (SCALE, Conn, Prober, big_body, build_request, failures,
                      run_concurrently, running)

NAMED = """
<Location "/named-yes">
    SetHandler vthread-sleep
    VThreadHandler vthread-cpu vthread-sleep
</Location>
<Location "/named-no">
    SetHandler vthread-sleep
    VThreadHandler vthread-cpu
</Location>
<Location "/nest">
    SetHandler vthread-sleep
    VThreadHandler On
</Location>
<Location "/nest/inline">
    VThreadHandler Off
</Location>
"""


@pytest.fixture(scope="module")
def httpd():
    with running(name="mixed", extra=NAMED) as h:
        yield h


# (path, headers, expected status, expected body or None)
MIX = [
    ("/sleep?ms=1", {}, 200, b"slept 1 ms\n"),
    ("/inline/sleep?ms=1", {}, 200, b"slept 1 ms\n"),
    ("/static/hello.txt", {}, 200, b"hello, static\n"),
    ("/echo-id", {"X-Request-Id": "m1"}, 200, b"m1\n"),
    ("/inline/echo-id", {"X-Request-Id": "m2"}, 200, b"m2\n"),
    ("/off/hello.txt", {}, 200, b"hello, offloaded static\n"),
    ("/fetch?path=/static/a.txt", {}, 200, b"alpha\n"),
    ("/inline/fetch?path=/static/b.txt", {}, 200, b"bravo\n"),
    ("/fanout?a=/static/a.txt&b=/static/b.txt", {}, 200, b"alpha\nbravo\n"),
    ("/big?kb=16", {}, 200, big_body(16)),
    ("/inline/big?kb=16&chunked=1", {}, 200, big_body(16)),
    ("/cpu?n=1000", {}, 200, None),
    ("/server-status?auto", {}, 200, None),
    ("/static/missing.txt", {}, 404, None),
]


def test_offloaded_and_inline_on_one_keepalive_connection(httpd):
    with Conn(httpd.port) as c:
        for rnd in range(20):
            for path, hdrs, status, body in MIX:
                r = c.exchange("GET", path, hdrs)
                assert r.status == status, (rnd, path, r.status, r.text[:200])
                if body is not None:
                    assert r.body == body, (rnd, path, r.body[:200])
                assert r.keeps_alive(), (rnd, path, r.headers)


def test_offloaded_and_inline_pipelined(httpd):
    with Conn(httpd.port) as c:
        c.send(b"".join(build_request(httpd.port, "GET", p, h)
                        for p, h, _, _ in MIX))
        for path, hdrs, status, body in MIX:
            r = c.response()
            assert r.status == status, (path, r.status)
            if body is not None:
                assert r.body == body, (path, r.body[:200])


def test_cpu_results_match_inline_and_offloaded(httpd):
    for n in (1, 1000, 123457):
        a = httpd.get("/cpu?n=%d" % n)
        b = httpd.get("/inline/cpu?n=%d" % n)
        assert a.status == b.status == 200
        assert a.body == b.body and a.text.startswith("n=%d result=" % n)


def concurrent_wall(h, path, n=40):
    results, wall = run_concurrently(lambda: h.get(path, timeout=60),
                                     [()] * n)
    bad = failures(results, lambda r: r.status == 200
                   and r.text == "slept 200 ms\n")
    assert not bad, (path, bad[:3])
    return wall


def test_what_is_offloaded_follows_the_configuration(httpd):
    # 40 concurrent 200 ms sleeps on 4 workers: about 0.2 s offloaded,
    # about 2 s inline.
    fast = {p: concurrent_wall(httpd, p + "?ms=200")
            for p in ("/named-yes", "/nest", "/sleep")}
    slow = {p: concurrent_wall(httpd, p + "?ms=200")
            for p in ("/named-no", "/nest/inline", "/inline/sleep")}
    for p, t in fast.items():
        assert t < 1.2 * SCALE, ("expected offloaded", p, fast, slow)
    for p, t in slow.items():
        assert t > 1.4, ("expected inline", p, fast, slow)


def test_inline_handler_on_an_owned_connection_runs_on_a_worker():
    """A keep-alive connection mod_vthread owns reads its next requests on
    its fiber; a handler without VThreadHandler must still run on an MPM
    worker, not block the carrier. One carrier: while four owned
    connections each run a blocking 1.5 s inline sleep, probes of the
    offloaded sleep (on that same carrier) keep answering in time."""
    with running(name="mixed-borrow", carriers=1, threads=8) as h:
        conns = [Conn(h.port) for _ in range(4)]
        try:
            for c in conns:     # offloaded first: mod_vthread owns them
                r = c.exchange("GET", "/sleep?ms=1")
                assert r.status == 200 and r.keeps_alive(), r
            with Prober(h.port, "/sleep?ms=10") as probe:
                t0 = time.monotonic()
                for c in conns:
                    c.request("GET", "/inline/sleep?ms=1500")
                rs = [c.response() for c in conns]
                took = time.monotonic() - t0
            for r in rs:
                assert r.status == 200 and r.body == b"slept 1500 ms\n", r
                assert r.keeps_alive(), r
            # Run side by side on workers: not 4 x 1.5 s in a row.
            assert took < 3.0 * SCALE, took
            probe.check(0.5, at_least=20)
            # The connections carry on, offloaded again.
            for c in conns:
                assert c.exchange("GET", "/sleep?ms=1").status == 200
        finally:
            for c in conns:
                c.close()
