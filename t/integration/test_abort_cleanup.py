"""Clients that abort while their fiber waits leave nothing behind.

Extends test_client_hangup.py (which checks that server-status goes back
to idle) with what an operator would find leaked otherwise: the backend
connection of a cancelled fetch must be closed (the backend here accepts
and stays silent, and records when each of its connections sees EOF), the
child's file descriptors must come back to their baseline
(/proc/<pid>/fd), and a response being streamed to a client that goes away
(vthread-big to a closed socket) must stop. Each kind is measured: how
long from the clients' close until the last fiber was gone.
"""

import os
import time

import pytest

from conftest import SCALE, Conn, SilentBackend, running, vthread_busy, \
    wait_until


@pytest.fixture(scope="module")
def backend():
    b = SilentBackend(backlog=512, hold_timeout=300)
    yield b
    b.close()


@pytest.fixture(scope="module")
def httpd(backend):
    with running(name="abort", timeout=60, carriers=2,
                 extra="VThreadDemoBackend 127.0.0.1:%d\n" % backend.port) \
            as h:
        yield h


def child_of(h):
    kids = h.children()
    assert len(kids) == 1, kids
    return kids[0]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fibers(h):
    return h.status().get("VThreadFibers", -1)


def baseline(h):
    """The child's fd count once idle (after a warm-up of every kind)."""
    why = vthread_busy(h.port, timeout=10)
    assert not why, why
    pid = child_of(h)
    # Settle: lingering closes and pool teardown of the last connections.
    counts = []
    for _ in range(5):
        counts.append(fd_count(pid))
        time.sleep(0.2)
    return pid, min(counts)


KINDS = {
    # name: (path, clients, bytes to read before closing)
    "sleep": ("/sleep?ms=60000", 30, 0),
    "fetch": ("/fetch?path=/never", 30, 0),
    "fanout": ("/fanout?a=/never&b=/never", 10, 0),
    "big": ("/big?kb=262144", 10, 200000),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_aborted_clients_leave_no_fiber_fd_or_backend_socket(httpd, backend,
                                                             kind):
    path, n, read_first = KINDS[kind]
    # Warm-up of this kind (stacks, pools, carriers' epoll registrations).
    with Conn(httpd.port) as c:
        c.request("GET", path)
        time.sleep(0.3)
    pid, base_fds = baseline(httpd)
    backend_open0 = backend.open_count()

    conns = []
    for _ in range(n):
        c = Conn(httpd.port, timeout=30, rcvbuf=16384 if read_first else None)
        c.request("GET", path)
        conns.append(c)
    if read_first:
        for c in conns:
            while len(c.buf) < read_first:
                assert c.recv_some(65536), "closed early"
    ok = wait_until(lambda: fibers(httpd) >= n, 5 * SCALE)
    assert ok, httpd.status()
    if kind in ("fetch", "fanout"):
        want = n * (2 if kind == "fanout" else 1)
        assert wait_until(lambda: backend.open_count() - backend_open0
                          >= want, 5 * SCALE), backend.open_count()
    peak_fds = fd_count(pid)

    t0 = time.monotonic()
    for c in conns:
        c.close()
    # Fibers: cancelled at their park, gone soon.
    assert wait_until(lambda: fibers(httpd) == 0, 5 * SCALE, 0.02), \
        httpd.status()
    fibers_gone = time.monotonic() - t0
    # Backend sockets of cancelled fetches: closed.
    if kind in ("fetch", "fanout"):
        assert wait_until(lambda: backend.open_count() == backend_open0,
                          5 * SCALE, 0.02), (
            "%d backend connections still open"
            % (backend.open_count() - backend_open0))
        backend_gone = max(backend.closed) - t0
    else:
        backend_gone = None
    why = vthread_busy(httpd.port, timeout=10)
    assert not why, "%s: not idle after the aborts: %s" % (kind, why)
    # File descriptors: back to the baseline (client sockets, backend
    # sockets, nothing else left open).
    assert wait_until(lambda: fd_count(pid) <= base_fds, 5 * SCALE, 0.1), (
        "child fds %d, baseline %d, peak %d: %s"
        % (fd_count(pid), base_fds, peak_fds,
           sorted(os.readlink("/proc/%d/fd/%s" % (pid, f))
                  for f in os.listdir("/proc/%d/fd" % pid))))
    assert child_of(httpd) == pid
    print("abort %-6s x%d: fds %d -> peak %d -> %d; last fiber gone %.0f ms"
          " after close%s" % (kind, n, base_fds, peak_fds, fd_count(pid),
                              fibers_gone * 1000,
                              "" if backend_gone is None else
                              ", last backend socket closed %.0f ms after"
                              % (backend_gone * 1000)))
    # The server still serves.
    assert httpd.get("/sleep?ms=1").status == 200
