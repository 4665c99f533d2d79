"""No response ever reaches the wrong client, at 1000 connections.

test_offload_frees_workers.py checks 150 overlapping requests on new
connections. Here 1000 connections are open at once (asyncio, one
thread), each with its own unique request ids, and each does one of:
a keep-alive sequence of three requests, two pipelined requests, or one
request with Connection: close; sleeps are mixed (0 to 300 ms) so that
fibers finish out of order, and a third of the Connection: close ones run
inline (on the MPM's 4 workers). Every
answer must carry its own request's id (body and X-Request-Id header) and
come in request order on its connection. Figure: the wall time.
"""

import asyncio
import random
import re
import time

from conftest import HOST, SCALE, vthread_busy


N_CONN = 1000


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    rid = re.search(rb"\r\nx-request-id: *([^\r]*)", head, re.I)
    close = re.search(rb"\r\nconnection: *close", head, re.I) is not None
    return status, body, rid.group(1).decode() if rid else None, close


def request(port, rid, ms, inline, close=False):
    path = "/inline/echo-id" if inline else "/echo-id"
    return ("GET %s?ms=%d HTTP/1.1\r\nHost: %s:%d\r\nX-Request-Id: %s\r\n"
            "%s\r\n" % (path, ms, HOST, port, rid,
                        "Connection: close\r\n" if close else "")).encode()


async def one_connection(port, i, rnd, start, out):
    kind = ("keepalive", "pipelined", "close")[i % 3]
    ids = ["c%04d-%s-%d-%08x" % (i, kind, k, rnd.getrandbits(32))
           for k in range(3 if kind == "keepalive" else
                          2 if kind == "pipelined" else 1)]
    # Inline requests only on Connection: close connections: after an
    # inline request the connection is the MPM's, and event closes idle
    # keep-alive connections of its own when all its workers are busy
    # (stock behaviour, which a burst of 1000 connections on 4 workers
    # triggers).
    plan = [(rid, rnd.randint(0, 300), kind == "close" and rnd.random() < 0.3)
            for rid in ids]
    await start.wait()
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as e:
        out.append((ids[0], "connect: %r" % e))
        return 0
    done = 0
    try:
        if kind == "pipelined":
            writer.write(b"".join(request(port, rid, ms, inl)
                                  for rid, ms, inl in plan))
            await writer.drain()
            for rid, _, _ in plan:
                status, body, hdr, _ = await read_response(reader)
                if status != 200 or body != (rid + "\n").encode() \
                        or hdr != rid:
                    out.append((rid, status, body[:60], hdr))
                done += 1
        else:
            for rid, ms, inl in plan:
                writer.write(request(port, rid, ms, inl,
                                     close=(kind == "close")))
                await writer.drain()
                status, body, hdr, _ = await read_response(reader)
                if status != 200 or body != (rid + "\n").encode() \
                        or hdr != rid:
                    out.append((rid, status, body[:60], hdr))
                done += 1
    except Exception as e:              # noqa: BLE001 - reported
        out.append((ids[done] if done < len(ids) else ids[-1], repr(e)))
    finally:
        writer.close()
    return done


async def run_all(port, n):
    rnd = random.Random(20240605)
    start = asyncio.Event()
    out = []
    tasks = [asyncio.create_task(one_connection(port, i, rnd, start, out))
             for i in range(n)]
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    start.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks), 120 * SCALE)
    return sum(done), out, time.monotonic() - t0


def test_every_response_reaches_its_own_client_at_1000_connections(
        httpd_factory):
    # One child: 4 workers, 2 carriers; AsyncRequestWorkerFactor 1000 and
    # ListenBacklog 4096 (the harness's) admit 1000 connections at once.
    h = httpd_factory(name="isolation", timeout=60)
    total, wrong, wall = asyncio.run(run_all(h.port, N_CONN))
    expected = sum(3 if i % 3 == 0 else 2 if i % 3 == 1 else 1
                   for i in range(N_CONN))
    print("isolation: %d connections, %d of %d requests answered with "
          "their own id in %.2fs; %d wrong or failed"
          % (N_CONN, total - len(wrong), expected, wall, len(wrong)))
    assert not wrong, wrong[:10]
    assert total == expected, (total, expected)
    why = vthread_busy(h.port, timeout=15)
    assert not why, why
    # Each request logged once, under its own id.
    log = open(h.path("logs", "access.log")).read()
    assert len(re.findall(r" id=c\d{4}-", log)) == expected
