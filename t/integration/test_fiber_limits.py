"""VThreadMaxFibers, VThreadOverflow and VThreadPinnedWarn as users see
them: a cap on fibers per child, what a request over the cap gets (503 or
an inline run), and a log line naming a request that holds its carrier.
"""

import collections
import re

from conftest import SCALE, failures, run_concurrently, wait_until

LIMITS = "VThreadMaxFibers 10\nVThreadOverflow %s\n"


def statuses(results):
    return collections.Counter(
        r.status if not isinstance(r, BaseException) else repr(r)
        for r in results)


def test_requests_over_the_cap_get_503(httpd_factory):
    h = httpd_factory(name="cap503", extra=LIMITS % "503")
    results, wall = run_concurrently(lambda: h.get("/sleep?ms=500"),
                                     [()] * 40)
    seen = statuses(results)
    assert set(seen) <= {200, 503}, seen
    assert seen[200] >= 10 and seen[503] >= 1, seen
    assert not failures([r for r in results if r.status == 200],
                        lambda r: r.text == "slept 500 ms\n")
    # Once the fibers are back, requests are served again.
    r = wait_until(lambda: h.get("/sleep?ms=1").status == 200, 5)
    assert r


def test_requests_over_the_cap_run_inline(httpd_factory):
    h = httpd_factory(name="capinline", extra=LIMITS % "inline")
    results, wall = run_concurrently(lambda: h.get("/sleep?ms=300"),
                                     [()] * 30)
    bad = failures(results, lambda r: r.status == 200
                   and r.text == "slept 300 ms\n")
    assert not bad, (statuses(results), bad[:3])


def test_a_request_that_pins_its_carrier_is_logged(httpd_factory):
    h = httpd_factory(name="pinned", extra="VThreadPinnedWarn 20ms\n")
    r = h.get("/cpu?n=10000000")
    assert r.status == 200
    pat = re.compile(r"AH\d+: .*/cpu\?n=10000000.*VThreadPinnedWarn", re.I)
    line = wait_until(lambda: [l for l in h.error_log().splitlines()
                               if pat.search(l)], 5 * SCALE)
    assert line, "no pinned-fiber warning naming the request:\n" + h.logs(20)
    # A request that waits through the API is not reported.
    h.get("/sleep?ms=200")
    assert not re.search(r"/sleep\?ms=200.*VThreadPinnedWarn",
                         h.error_log()), h.logs(20)


def test_pinned_warning_can_be_turned_off(httpd_factory):
    h = httpd_factory(name="unpinned", extra="VThreadPinnedWarn Off\n")
    assert h.get("/cpu?n=10000000").status == 200
    assert h.get("/sleep?ms=1").status == 200
    assert "VThreadPinnedWarn" not in h.error_log(), h.logs(20)
