"""Keep-alive connections through offloaded handlers.

Once a request is offloaded mod_vthread owns its connection until it ends
(httpd 2.4 cannot take it back), so everything the MPM does between
requests is its job: response framing, the next request, pipelining,
MaxKeepAliveRequests, KeepAliveTimeout, error pages, and counters that
return to idle.
"""

import time
import zlib

import pytest

from conftest import (SCALE, Conn, big_body, build_request, chunked,
                      failures, running, run_concurrently, wait_idle)

ERRDOC = """
<Location "/errdoc">
    SetHandler vthread-sleep
    VThreadHandler On
    ErrorDocument 400 "bad sleep request"
</Location>
"""


@pytest.fixture(scope="module")
def httpd():
    with running(name="keepalive", extra=ERRDOC, keepalive_timeout=10) as h:
        yield h


def crc(data):
    return b"%08x" % zlib.crc32(data)


def check(r, status=200, body=None):
    assert r.status == status, (r.status, r.text[:200])
    if body is not None:
        assert r.body == body, (r.body[:200], body[:200])
    assert r.keeps_alive(), r.headers


# One round of a connection's requests: (method, path, headers, body,
# expected status, expected body or None, check).
def round_requests(conn_no, i):
    rid = "c%d-r%d" % (conn_no, i)
    return [
        ("GET", "/sleep?ms=0", {}, None, 200, b"slept 0 ms\n"),
        ("GET", "/echo-id", {"X-Request-Id": rid}, None, 200,
         (rid + "\n").encode()),
        ("GET", "/big?kb=4&chunked=1", {}, None, 200, big_body(4)),
        ("GET", "/big?kb=1", {}, None, 200, big_body(1)),
        ("POST", "/upload", {}, b"x" * 100, 200,
         b"bytes=100 crc32=%s\n" % crc(b"x" * 100)),
        ("GET", "/fetch?path=/static/hello.txt", {}, None, 200,
         b"hello, static\n"),
    ]


def test_thousands_of_requests_over_20_connections(httpd):
    conns, rounds = 20, 25          # 20 x 25 x 6 = 3000 requests

    def client(conn_no):
        done = 0
        with Conn(httpd.port, timeout=30) as c:
            for i in range(rounds):
                for method, path, hdrs, body, status, want in \
                        round_requests(conn_no, i):
                    r = c.exchange(method, path, hdrs, body)
                    if r.status != status or r.body != want \
                            or not r.keeps_alive():
                        return "conn %d req %d %s %s: %d %r" % (
                            conn_no, done, method, path, r.status,
                            r.body[:80])
                    done += 1
        return done

    results, wall = run_concurrently(client, [(n,) for n in range(conns)],
                                     timeout=120)
    per = rounds * len(round_requests(0, 0))
    bad = [r for r in results if r != per]
    assert not bad, bad[:5]
    # About 0.5 s. Some requests fetch from this same server: when event
    # stopped accepting and nothing woke its listener, those waited for
    # Timeout (30 s) in the listen backlog (vtm_listener.c).
    assert wall < 15 * SCALE, "3000 keep-alive requests took %.1fs" % wall
    # The chunked ones really were chunked, the others had a length.
    with Conn(httpd.port) as c:
        r = c.exchange("GET", "/big?kb=4&chunked=1")
        check(r, body=big_body(4))
        assert r.chunked and r.header("Content-Length") is None
        r = c.exchange("GET", "/big?kb=4")
        check(r, body=big_body(4))
        assert not r.chunked and r.header("Content-Length") == "4096"


def test_request_bodies_content_length_and_chunked(httpd):
    data = bytes(range(256)) * 300
    with Conn(httpd.port) as c:
        for _ in range(3):
            r = c.exchange("POST", "/upload", {}, data)
            check(r, body=b"bytes=76800 crc32=%s\n" % crc(data))
            r = c.exchange("POST", "/upload",
                           {"Transfer-Encoding": "chunked"},
                           chunked([data[:1000], data[1000:50000],
                                    data[50000:]]))
            check(r, body=b"bytes=76800 crc32=%s\n" % crc(data))
            r = c.exchange("PUT", "/upload", {"Content-Length": "0"}, b"")
            check(r, body=b"bytes=0 crc32=00000000\n")
            check(c.exchange("GET", "/sleep?ms=1"), body=b"slept 1 ms\n")


def test_head(httpd):
    with Conn(httpd.port) as c:
        r = c.exchange("HEAD", "/sleep?ms=5")
        check(r)
        assert r.body == b""
        r = c.exchange("HEAD", "/big?kb=64")
        check(r)
        assert r.header("Content-Length") == "65536"
        # No body bytes were sent after either HEAD: the next response
        # parses cleanly on the same connection.
        check(c.exchange("GET", "/echo-id", {"X-Request-Id": "after-head"}),
              body=b"after-head\n")
        r = c.exchange("HEAD", "/off/hello.txt")
        check(r)
        assert r.header("Content-Length") == str(len(b"hello, offloaded "
                                                     b"static\n"))
        check(c.exchange("GET", "/sleep?ms=0"), body=b"slept 0 ms\n")


def test_not_modified(httpd):
    with Conn(httpd.port) as c:
        # A static file served by the default handler on a fiber.
        r = c.exchange("GET", "/off/hello.txt")
        check(r, body=b"hello, offloaded static\n")
        etag, lm = r.header("ETag"), r.header("Last-Modified")
        assert etag and lm, r.headers
        check(c.exchange("GET", "/off/hello.txt", {"If-None-Match": etag}),
              status=304)
        check(c.exchange("GET", "/off/hello.txt",
                         {"If-Modified-Since": lm}), status=304)
        # A 304 decided by the handler itself.
        r = c.exchange("GET", "/big?kb=8")
        check(r, body=big_body(8))
        etag, lm = r.header("ETag"), r.header("Last-Modified")
        r = c.exchange("GET", "/big?kb=8", {"If-None-Match": etag})
        check(r, status=304)
        assert r.header("Content-Length") in (None, "0")
        check(c.exchange("GET", "/big?kb=8", {"If-Modified-Since": lm}),
              status=304)
        check(c.exchange("GET", "/big?kb=8", {"If-None-Match": '"other"'}),
              body=big_body(8))
        # Inline static file, same connection.
        r = c.exchange("GET", "/static/hello.txt")
        check(r, body=b"hello, static\n")
        check(c.exchange("GET", "/static/hello.txt",
                         {"If-None-Match": r.header("ETag")}), status=304)


def test_error_pages(httpd):
    with Conn(httpd.port) as c:
        # 404 from the default handler on a fiber, with an ErrorDocument
        # that is a local URL (an internal redirect, run inline).
        r = c.exchange("GET", "/off/missing.txt")
        check(r, status=404, body=b"<html><body>custom not found"
                                  b"</body></html>\n")
        # Method not allowed, with Allow.
        r = c.exchange("DELETE", "/sleep")
        check(r, status=405)
        assert "GET" in (r.header("Allow") or ""), r.headers
        # Backend 404 relayed with its status.
        r = c.exchange("GET", "/fetch?path=/static/none.txt")
        check(r, status=404)
        # The connection still serves normal requests.
        check(c.exchange("GET", "/sleep?ms=0"), body=b"slept 0 ms\n")
        # 400 from a demo handler: httpd's own error page, and (as httpd
        # does for a 400) the connection closes.
        r = c.exchange("GET", "/sleep?ms=oops")
        assert r.status == 400 and b"Bad Request" in r.body, r
        assert not r.keeps_alive()
        assert c.closed_by_server(5)
    with Conn(httpd.port) as c:
        # An ErrorDocument given as text.
        r = c.exchange("GET", "/errdoc?ms=-1")
        assert r.status == 400 and r.body == b"bad sleep request", r


def test_pipelined_requests_are_answered_in_order(httpd):
    # The first requests take longest; mixed offloaded and inline.
    plan = [("/echo-id", 120), ("/inline/echo-id", 0), ("/echo-id", 60),
            ("/echo-id", 0), ("/inline/echo-id", 30), ("/echo-id", 0),
            ("/sleep", 10), ("/echo-id", 0)]
    with Conn(httpd.port) as c:
        data = b""
        for i, (path, ms) in enumerate(plan):
            data += build(c, path, ms, "pipe-%d" % i)
        c.send(data)
        for i, (path, ms) in enumerate(plan):
            r = c.response()
            if path == "/sleep":
                check(r, body=b"slept %d ms\n" % ms)
            else:
                check(r, body=b"pipe-%d\n" % i)
        # And once more on the same connection, with a request split
        # across two writes.
        req = build(c, "/echo-id", 0, "split")
        c.send(req[:10])
        time.sleep(0.05)
        c.send(req[10:])
        check(c.response(), body=b"split\n")


def build(c, path, ms, rid):
    return build_request(c.port, "GET", "%s?ms=%d" % (path, ms),
                         {"X-Request-Id": rid})


def test_status_counters_back_to_idle_after_the_load(httpd):
    def client(n):
        with Conn(httpd.port) as c:
            for i in range(20):
                r = c.exchange("GET", "/sleep?ms=%d" % (i % 3))
                if r.status != 200:
                    return r
        return "ok"

    results, _ = run_concurrently(client, [(n,) for n in range(20)])
    assert all(r == "ok" for r in results), results[:3]
    why, st = wait_idle(httpd.port, timeout=10)
    assert not why, "not idle after the load: %s\n%r" % (why, st)


# ---------------------------------------------------------------- limits

@pytest.fixture(scope="module")
def limited():
    with running(name="ka-limits", max_keepalive=5,
                 keepalive_timeout=1) as h:
        yield h


@pytest.mark.parametrize("path", ["/sleep?ms=1", "/inline/sleep?ms=1"])
def test_max_keepalive_requests(limited, path):
    # httpd allows MaxKeepAliveRequests requests after the first one.
    with Conn(limited.port) as c:
        for i in range(5):
            r = c.exchange("GET", path)
            check(r, body=b"slept 1 ms\n")
        r = c.exchange("GET", path)
        assert r.status == 200 and r.body == b"slept 1 ms\n"
        assert not r.keeps_alive(), ("6th response should close", r.headers)
        assert c.closed_by_server(5), "connection left open after the 6th"


@pytest.mark.parametrize("path", ["/sleep?ms=1", "/inline/sleep?ms=1"])
def test_keepalive_timeout(limited, path):
    with Conn(limited.port) as c:
        check(c.exchange("GET", path), body=b"slept 1 ms\n")
        t0 = time.monotonic()
        closed = c.closed_by_server(10)
        waited = time.monotonic() - t0
    assert closed, "idle connection still open after 10s (timeout 1s)"
    assert 0.5 <= waited <= 4.0 * SCALE, (
        "closed after %.2fs with KeepAliveTimeout 1" % waited)


def test_idle_connections_do_not_pile_up(limited):
    # 30 connections each make one offloaded request then sit idle; after
    # KeepAliveTimeout they are all gone and the counters are idle again.
    def one(n):
        c = Conn(limited.port)
        r = c.exchange("GET", "/sleep?ms=1")
        return c, r

    results, _ = run_concurrently(one, [(n,) for n in range(30)])
    conns = [x[0] for x in results if not isinstance(x, BaseException)]
    try:
        errors = [x for x in results if isinstance(x, BaseException)]
        assert not errors, errors[:3]
        assert not failures([r for _, r in results])
        for c in conns:
            assert c.closed_by_server(5), "an idle connection stayed open"
    finally:
        for c in conns:
            c.close()
    why, st = wait_idle(limited.port, timeout=10)
    assert not why, "not idle: %s\n%r" % (why, st)
