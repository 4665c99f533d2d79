"""What a user of the demo module sees from each handler, offloaded.

The backends for vthread-fetch are the server itself (its /static/ files
and its own offloaded /sleep), a closed port (502) and a socket that never
answers (504 after Timeout), the last two selected with name-based virtual
hosts that set their own VThreadDemoBackend.
"""

import socket
import threading
import time
import urllib.parse
import zlib

import pytest

from conftest import (SCALE, Conn, big_body, failures, free_port,
                      run_concurrently, running)


@pytest.fixture(scope="module")
def silent_backend():
    """A listening socket that never accepts: connects succeed, no reply."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope="module")
def httpd(silent_backend):
    port, dead = free_port(), free_port()
    vhosts = """
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName dead.test
    VThreadDemoBackend 127.0.0.1:{dead}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName local.test
    VThreadDemoBackend localhost:{port}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName silent.test
    VThreadDemoBackend 127.0.0.1:{silent}
    Timeout 2
</VirtualHost>
""".format(port=port, dead=dead, silent=silent_backend)
    with running(name="demo", port=port, extra=vhosts) as h:
        yield h


def q(s):
    return urllib.parse.quote(s, safe="")


# ---------------------------------------------------------------- sleep

def test_sleep_default_and_explicit(httpd):
    r = httpd.get("/sleep")
    assert r.status == 200 and r.text == "slept 100 ms\n"
    assert r.elapsed >= 0.09
    r = httpd.get("/sleep?ms=0")
    assert r.status == 200 and r.text == "slept 0 ms\n"
    r = httpd.get("/sleep?ms=300")
    assert r.status == 200 and r.text == "slept 300 ms\n"
    assert 0.29 <= r.elapsed < 1.5 * SCALE, r.elapsed
    assert r.header("Content-Type", "").startswith("text/plain")


@pytest.mark.parametrize("value", ["-1", "60001", "abc", "", "1e3", "+5",
                                   "5%20", "99999999999999999999", "0x10"])
def test_sleep_bad_values(httpd, value):
    r = httpd.get("/sleep?ms=" + value)
    assert r.status == 400, (value, r.status, r.text[:100])


def test_sleep_bad_escape_in_query(httpd):
    assert httpd.get("/sleep?ms=%zz").status == 400


# ---------------------------------------------------------------- cpu

def cpu_result(n):
    h = 0xcbf29ce484222325
    mask = (1 << 64) - 1
    for i in range(n):
        for k in range(8):
            h ^= (i >> (k * 8)) & 0xff
            h = (h * 0x100000001b3) & mask
        h ^= h >> 29
    return h


@pytest.mark.parametrize("n", [None, 1, 777, 20000])
def test_cpu_result(httpd, n):
    r = httpd.get("/cpu" if n is None else "/cpu?n=%d" % n)
    n = 1000 if n is None else n
    assert r.status == 200
    assert r.text == "n=%d result=%016x\n" % (n, cpu_result(n))


@pytest.mark.parametrize("value", ["0", "10000001", "x"])
def test_cpu_bad_values(httpd, value):
    assert httpd.get("/cpu?n=" + value).status == 400


# ---------------------------------------------------------------- fetch

def test_fetch_relays_the_body(httpd):
    r = httpd.get("/fetch?path=/static/hello.txt")
    assert r.status == 200 and r.body == b"hello, static\n"
    assert r.header("Content-Type", "").startswith("text/plain")
    r = httpd.get("/fetch?path=/static/1m.bin")
    assert r.status == 200 and r.body == bytes(range(256)) * 4096
    r = httpd.get("/fetch?path=" + q("/sleep?ms=5"))
    assert r.status == 200 and r.body == b"slept 5 ms\n"


def test_fetch_tries_every_address_of_the_backend(httpd):
    # localhost may resolve to ::1 first; the server listens on 127.0.0.1.
    r = httpd.get("/fetch?path=/static/hello.txt",
                  headers={"Host": "local.test"})
    assert r.status == 200 and r.body == b"hello, static\n"


def test_fetch_default_path_is_root(httpd):
    # "/" on the backend: no index, so httpd answers 404 (or 403); the
    # status is relayed either way.
    r = httpd.get("/fetch")
    assert r.status in (403, 404), r.status


def test_fetch_relays_the_backend_status(httpd):
    r = httpd.get("/fetch?path=/static/missing.txt")
    assert r.status == 404
    r = httpd.get("/fetch?path=" + q("/sleep?ms=bad"))
    assert r.status == 400


@pytest.mark.parametrize("path", ["static/hello.txt", "/a b", "/a\r\nX: y",
                                  "http://example.com/"])
def test_fetch_bad_path(httpd, path):
    assert httpd.get("/fetch?path=" + q(path)).status == 400


def test_fetch_unreachable_backend_is_502(httpd):
    r = httpd.get("/fetch?path=/static/hello.txt",
                  headers={"Host": "dead.test"})
    assert r.status == 502, r.status


def test_fetch_silent_backend_times_out_with_timeout(httpd):
    # Timeout 2 in that virtual host; meanwhile others are served.
    def slow():
        return httpd.get("/fetch?path=/", headers={"Host": "silent.test"})

    results, _ = run_concurrently(
        lambda f: f(), [(slow,)] + [(lambda: httpd.get("/sleep?ms=10"),)] * 5)
    r = results[0]
    assert not isinstance(r, BaseException), r
    assert r.status == 504, r.status
    assert 1.5 <= r.elapsed < 6 * SCALE, r.elapsed
    assert not failures(results[1:])


# ---------------------------------------------------------------- fanout

def test_fanout_concatenates_in_order(httpd):
    r = httpd.get("/fanout?a=/static/a.txt&b=/static/b.txt")
    assert r.status == 200 and r.body == b"alpha\nbravo\n"
    r = httpd.get("/fanout?a=/static/b.txt&b=/static/a.txt")
    assert r.status == 200 and r.body == b"bravo\nalpha\n"


def test_fanout_fetches_in_parallel(httpd):
    a = q("/sleep?ms=400")
    r = httpd.get("/fanout?a=%s&b=%s" % (a, a))
    assert r.status == 200
    assert r.body == b"slept 400 ms\nslept 400 ms\n"
    assert r.elapsed < 0.75 * SCALE, (
        "two 400 ms fetches took %.2fs: not in parallel" % r.elapsed)


def test_fanout_failures(httpd):
    r = httpd.get("/fanout?a=/static/a.txt&b=/static/missing.txt")
    assert r.status == 502
    r = httpd.get("/fanout?a=/static/a.txt&b=/static/b.txt",
                  headers={"Host": "dead.test"})
    assert r.status == 502
    assert httpd.get("/fanout?a=nope").status == 400
    # /echo-id wants a header the fanout's backend requests do not send:
    # that half answers 400, so the whole is a 502.
    r = httpd.get("/fanout?a=/static/a.txt&b=" + q("/echo-id?ms=100"))
    assert r.status == 502


def test_many_concurrent_fanouts(httpd):
    results, wall = run_concurrently(
        lambda: httpd.get("/fanout?a=%s&b=/static/b.txt"
                          % q("/sleep?ms=200")), [()] * 40)
    bad = failures(results, lambda r: r.status == 200
                   and r.body == b"slept 200 ms\nbravo\n")
    assert not bad, bad[:3]
    assert wall < 2.0 * SCALE, wall


# ---------------------------------------------------------------- echo-id

def test_echo_id(httpd):
    r = httpd.get("/echo-id?ms=20", headers={"X-Request-Id": "abc-123"})
    assert r.status == 200 and r.text == "abc-123\n"
    assert r.header("X-Request-Id") == "abc-123"
    assert httpd.get("/echo-id").status == 400


# ---------------------------------------------------------------- upload, big

def test_upload(httpd):
    data = b"hello world" * 1000
    r = httpd.get("/upload", method="POST", body=data)
    assert r.status == 200
    assert r.text == "bytes=%d crc32=%08x\n" % (len(data), zlib.crc32(data))
    r = httpd.get("/upload", method="POST", body=b"")
    assert r.text == "bytes=0 crc32=00000000\n"
    r = httpd.get("/upload")
    assert r.status == 405 and "POST" in r.header("Allow", "")


def test_big(httpd):
    r = httpd.get("/big?kb=100")
    assert r.status == 200 and r.body == big_body(100)
    assert r.header("Content-Length") == str(100 * 1024)
    assert r.header("ETag") == '"big-100"'
    r = httpd.get("/big?kb=0")
    assert r.status == 200 and r.body == b""
    r = httpd.get("/big")
    assert r.status == 200 and r.body == big_body(1)
    for bad in ("-1", "1048577", "x"):
        assert httpd.get("/big?kb=" + bad).status == 400
    assert httpd.get("/big?chunked=2").status == 400


# ---------------------------------------------------------------- poll

def test_poll_times_out_with_204(httpd):
    r = httpd.get("/poll?topic=quiet&timeout=1")
    assert r.status == 204 and r.body == b""
    assert 0.9 <= r.elapsed < 3 * SCALE, r.elapsed


@pytest.mark.parametrize("query", ["", "topic=", "topic=a%20b",
                                   "topic=" + "x" * 65, "topic=a/b",
                                   "topic=ok&timeout=0",
                                   "topic=ok&timeout=301",
                                   "topic=ok&timeout=x"])
def test_poll_bad_queries(httpd, query):
    assert httpd.get("/poll?" + query).status == 400


def publish(h, topic, body):
    r = h.get("/poll?topic=" + topic, method="POST", body=body)
    assert r.status == 200, r
    m = r.text.strip().split()
    assert m[0] == "woken", r.text
    return int(m[1])


def wait_for_all(h, topic, n, body_for):
    """Publish (distinct bodies) until n waiters were woken in all,
    bounded; returns the bodies published."""
    sent, woken = [], 0
    deadline = time.monotonic() + 15 * SCALE
    while woken < n and time.monotonic() < deadline:
        body = body_for(len(sent))
        woken += publish(h, topic, body)
        sent.append(body)
        if woken < n:
            time.sleep(0.2)
    assert woken == n, "woke %d of %d waiters" % (woken, n)
    return sent


def test_poll_publish_wakes_every_waiter(httpd):
    n = 5

    def waiter():
        return httpd.get("/poll?topic=news&timeout=20", timeout=40)

    results = []
    t = _start(lambda: results.extend(run_concurrently(
        waiter, [()] * n, timeout=60)[0]))
    time.sleep(0.5)
    sent = wait_for_all(httpd, "news", n, lambda i: b"message %d" % i)
    t.join(60)
    bad = failures(results, lambda r: r.status == 200 and r.body in sent)
    assert not bad and len(results) == n, (bad[:3], len(results))
    if len(sent) == 1:
        assert all(r.header("X-Topic-Seq") == results[0].header(
            "X-Topic-Seq") for r in results)


def test_poll_message_published_before_waiting_is_not_seen(httpd):
    assert publish(httpd, "stale", b"old news") == 0
    r = httpd.get("/poll?topic=stale&timeout=1")
    assert r.status == 204


def test_poll_topics_are_separate(httpd):
    results = []
    t = _start(lambda: results.append(
        httpd.get("/poll?topic=left&timeout=2")))
    time.sleep(0.5)
    assert publish(httpd, "right", b"for right") == 0
    t.join(10)
    assert results and results[0].status == 204


def test_poll_large_message(httpd):
    body = bytes(range(256)) * 256              # 64 KiB
    results = []
    t = _start(lambda: results.append(
        httpd.get("/poll?topic=big&timeout=10")))
    time.sleep(0.5)
    wait_for_all(httpd, "big", 1, lambda i: body)
    t.join(20)
    assert results[0].status == 200 and results[0].body == body


def _start(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------- methods

@pytest.mark.parametrize("path", ["/sleep", "/cpu", "/fetch", "/fanout",
                                  "/echo-id", "/big"])
def test_get_only_handlers_refuse_post(httpd, path):
    with Conn(httpd.port) as c:
        r = c.exchange("POST", path, {}, b"x")
        assert r.status == 405, (path, r.status)
        assert "GET" in r.header("Allow", "")
