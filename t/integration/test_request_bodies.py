"""Request bodies and large responses on a fiber, with slow clients.

One carrier (VThreadCarriers 1): a handler that reads a slow upload or
writes to a slow reader must park its fiber while the socket is not ready,
so other fibers on that same carrier (probe requests that sleep 10 ms)
are not held up.
"""

import os
import time
import zlib

import pytest

from conftest import Conn, Prober, big_body, build_request, chunked, running

PROBE_LIMIT = 0.5       # seconds for a 10 ms sleep request


@pytest.fixture(scope="module")
def httpd():
    with running(name="bodies", carriers=1, timeout=20) as h:
        yield h


def read_paced(c, nbytes, chunk=262144, pause=0.01):
    """Read about nbytes into c's buffer, a chunk at a time with pauses:
    a reader slower than the server (and a client that does not take both
    of the machine's cores while it reads)."""
    since = 0
    while len(c.buf) < nbytes:
        n = c.recv_some(chunk)
        if not n:
            break
        since += n
        if since >= chunk:
            time.sleep(pause)
            since = 0


def upload_answer(data):
    return b"bytes=%d crc32=%08x\n" % (len(data), zlib.crc32(data))


@pytest.mark.parametrize("path", ["/upload", "/inline/upload"])
def test_large_upload_with_content_length(httpd, path):
    data = os.urandom(8 * 1024 * 1024)
    with Conn(httpd.port, timeout=60) as c:
        r = c.exchange("POST", path, {}, data)
        assert r.status == 200 and r.body == upload_answer(data), r.text
        # Same connection, next request.
        r = c.exchange("GET", "/sleep?ms=0")
        assert r.status == 200 and r.text == "slept 0 ms\n"


def test_uploads_on_a_connection_mod_vthread_owns(httpd):
    """Once a connection is owned, its bodies are read by whoever runs the
    handler: an MPM worker for an inline location (blocking reads), the
    connection's fiber for an offloaded one (chunk-size lines included)."""
    data = os.urandom(2 * 1024 * 1024 + 7)
    pieces = [data[i:i + 50000] for i in range(0, len(data), 50000)]
    with Conn(httpd.port, timeout=60) as c:
        r = c.exchange("GET", "/sleep?ms=0")    # offloaded: owned from here
        assert r.status == 200 and r.keeps_alive(), r
        for rnd in range(2):
            r = c.exchange("POST", "/inline/upload", {}, data)
            assert r.status == 200 and r.body == upload_answer(data), rnd
            r = c.exchange("POST", "/upload",
                           {"Transfer-Encoding": "chunked"}, chunked(pieces))
            assert r.status == 200 and r.body == upload_answer(data), rnd
            assert r.keeps_alive(), r


def test_large_chunked_upload(httpd):
    data = os.urandom(4 * 1024 * 1024 + 123)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    with Conn(httpd.port, timeout=60) as c:
        r = c.exchange("POST", "/upload", {"Transfer-Encoding": "chunked"},
                       chunked(pieces))
        assert r.status == 200 and r.body == upload_answer(data), r.text


def test_slow_upload_does_not_delay_other_fibers(httpd):
    piece = os.urandom(10 * 1024)
    pieces = 12
    data = piece * pieces
    with Prober(httpd.port) as probe, Conn(httpd.port, timeout=30) as c:
        c.send(build_request(httpd.port, "POST", "/upload",
                             {"Content-Length": str(len(data))}))
        for _ in range(pieces):
            time.sleep(0.2)             # 2.4 s in all
            c.send(piece)
        r = c.response()
    assert r.status == 200 and r.body == upload_answer(data), r.text
    probe.check(PROBE_LIMIT, at_least=10)


def test_slow_chunked_upload_does_not_delay_other_fibers(httpd):
    piece = b"z" * 5000
    with Prober(httpd.port) as probe, Conn(httpd.port, timeout=30) as c:
        c.send(build_request(httpd.port, "POST", "/upload",
                             {"Transfer-Encoding": "chunked"}))
        for _ in range(10):
            time.sleep(0.15)
            # A chunk split in two writes: its size line, then its data.
            c.send(b"%x\r\n" % len(piece))
            time.sleep(0.05)
            c.send(piece + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.response()
    assert r.status == 200 and r.body == upload_answer(piece * 10), r.text
    probe.check(PROBE_LIMIT, at_least=10)


def test_client_that_stops_sending_does_not_delay_others(httpd):
    # Half a body, then nothing: the handler waits (up to Timeout), but
    # only its own fiber does.
    with Prober(httpd.port) as probe, Conn(httpd.port, timeout=30) as c:
        c.send(build_request(httpd.port, "POST", "/upload",
                             {"Content-Length": "100000"}) + b"x" * 50000)
        time.sleep(2.0)
    probe.check(PROBE_LIMIT, at_least=10)
    # The abandoned request left the server healthy.
    r = httpd.get("/upload", method="POST", body=b"abc")
    assert r.status == 200 and r.body == upload_answer(b"abc")


def test_large_response_to_a_slow_reader(httpd):
    kb = 16 * 1024                      # 16 MiB
    with Prober(httpd.port) as probe, \
            Conn(httpd.port, timeout=30, rcvbuf=16384) as c:
        c.request("GET", "/big?kb=%d" % kb)
        time.sleep(2.0)                 # not reading: the server must wait
        mid = list(probe.times)
        read_paced(c, kb * 1024)
        r = c.response()
    assert r.status == 200
    assert len(r.body) == kb * 1024 and r.body == big_body(kb)
    assert len(mid) >= 5, "probes stalled while the reader was not reading"
    probe.check(PROBE_LIMIT, at_least=10)


def test_chunked_response_to_a_slow_reader(httpd):
    kb = 4 * 1024
    with Prober(httpd.port) as probe, \
            Conn(httpd.port, timeout=30, rcvbuf=16384) as c:
        c.request("GET", "/big?kb=%d&chunked=1" % kb)
        time.sleep(1.5)
        read_paced(c, kb * 1024)
        r = c.response()
    assert r.status == 200 and r.chunked and r.body == big_body(kb)
    probe.check(PROBE_LIMIT, at_least=10)


def test_poll_publish_body_limit(httpd):
    ok = b"m" * (64 * 1024)
    r = httpd.get("/poll?topic=limit", method="POST", body=ok)
    assert r.status == 200 and r.text == "woken 0\n", r.text
    r = httpd.get("/poll?topic=limit", method="POST", body=ok + b"!")
    assert r.status == 413, r.status
