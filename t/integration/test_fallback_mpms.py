"""prefork and worker MPMs: no worker saving, but correct answers.

These MPMs cannot take a suspended request back, so an offloaded handler
still runs on a fiber while its worker waits for it. Everything must work
as inline: the demo handlers, bodies, keep-alive, errors.
"""

import time
import zlib

import pytest

from conftest import (Conn, big_body, build_request, chunked, failures,
                      run_concurrently, running)


@pytest.fixture(scope="module", params=["worker", "prefork"])
def httpd(request):
    threads = 8 if request.param == "worker" else 4
    with running(name=request.param, mpm=request.param,
                 threads=threads) as h:
        yield h


def test_startup_names_the_mpm(httpd):
    st = httpd.status()
    assert st["ServerMPM"] == httpd.mpm


CASES = [
    ("/sleep?ms=20", 200, b"slept 20 ms\n"),
    ("/inline/sleep?ms=20", 200, b"slept 20 ms\n"),
    ("/fetch?path=/static/hello.txt", 200, b"hello, static\n"),
    ("/fanout?a=/static/a.txt&b=/static/b.txt", 200, b"alpha\nbravo\n"),
    ("/big?kb=256", 200, big_body(256)),
    ("/big?kb=64&chunked=1", 200, big_body(64)),
    ("/off/hello.txt", 200, b"hello, offloaded static\n"),
    ("/off/missing.txt", 404,
     b"<html><body>custom not found</body></html>\n"),
    ("/sleep?ms=99999999", 400, None),
    ("/poll?topic=nobody&timeout=1", 204, b""),
]


@pytest.mark.parametrize("path,status,body", CASES,
                         ids=[c[0] for c in CASES])
def test_demo_handlers_answer(httpd, path, status, body):
    r = httpd.get(path)
    assert r.status == status, (r.status, r.text[:200])
    if body is not None:
        assert r.body == body


def test_cpu_and_echo(httpd):
    r = httpd.get("/cpu?n=5000")
    assert r.status == 200 and r.text.startswith("n=5000 result=")
    r = httpd.get("/echo-id?ms=5", headers={"X-Request-Id": "fb-1"})
    assert r.status == 200 and r.text == "fb-1\n"


def test_uploads(httpd):
    data = bytes(range(256)) * 4096 * 2          # 2 MiB
    want = b"bytes=%d crc32=%08x\n" % (len(data), zlib.crc32(data))
    with Conn(httpd.port, timeout=60) as c:
        r = c.exchange("POST", "/upload", {}, data)
        assert r.status == 200 and r.body == want
        r = c.exchange("POST", "/upload", {"Transfer-Encoding": "chunked"},
                       chunked([data[:100000], data[100000:]]))
        assert r.status == 200 and r.body == want


def test_keepalive_and_pipelining(httpd):
    with Conn(httpd.port) as c:
        for i in range(50):
            r = c.exchange("GET", "/echo-id", {"X-Request-Id": "k%d" % i})
            assert r.status == 200 and r.text == "k%d\n" % i
            assert r.keeps_alive()
        c.send(b"".join(build_request(httpd.port, "GET",
                                      "/echo-id?ms=%d" % (30 - 10 * i),
                                      {"X-Request-Id": "p%d" % i})
                        for i in range(4)))
        for i in range(4):
            r = c.response()
            assert r.status == 200 and r.text == "p%d\n" % i


def test_concurrent_requests(httpd):
    results, _ = run_concurrently(
        lambda i: httpd.get("/echo-id?ms=100", headers={"X-Request-Id":
                                                         "c%d" % i}),
        [(i,) for i in range(24)])
    bad = [r for i, r in enumerate(results)
           if isinstance(r, BaseException) or r.status != 200
           or r.text != "c%d\n" % i]
    assert not bad, bad[:3]


def test_poll_wakes_a_waiter(httpd):
    # Topics are per process: with prefork the publisher may land in
    # another process than the waiter, so only the worker MPM is checked.
    if httpd.mpm == "prefork":
        pytest.skip("topics are per child process; prefork has several")

    def wait():
        return httpd.get("/poll?topic=fb&timeout=10", timeout=30)

    def publish():
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            r = httpd.get("/poll?topic=fb", method="POST", body=b"news")
            if r.text != "woken 0\n":
                return r
            time.sleep(0.1)
        return r

    results, _ = run_concurrently(lambda f: f(), [(wait,), (publish,)])
    waited, published = results
    assert not failures([waited], lambda r: r.status == 200
                        and r.body == b"news"), waited
    assert published.status == 200 and published.text == "woken 1\n"
