"""What an operator sees: mod_status, the access-log notes, the error log.

One server with mod_status, the demo locations (offloaded under /NAME,
inline under /inline/NAME), VThreadPinnedWarn 50ms, VThreadMaxFibers 60 and
a LogFormat that writes mod_vthread's request notes; and one with
LogLevel vthread:trace4 for the story of a keep-alive connection. The
names asserted here are the ones docs/operations.md documents.
"""

import os
import re
import threading
import time

import pytest

from conftest import (SCALE, Conn, failures, get, run_concurrently, running,
                      server_status, wait_until)

MAX_FIBERS = 60
NOTES = "%U %>s offload=%{vthread-offload}n carrier=%{vthread-carrier}n " \
        "park=%{vthread-park-us}n run=%{vthread-run-us}n " \
        "queue=%{vthread-queue-us}n"
EXTRA = """
VThreadPinnedWarn 50ms
VThreadMaxFibers %d
LogFormat "%s" vtnotes
CustomLog "logs/notes.log" vtnotes
""" % (MAX_FIBERS, NOTES.replace('"', '\\"'))

NOTE_RE = re.compile(r"^(\S+) (\d+) offload=(\S+) carrier=(\S+) park=(\S+) "
                     r"run=(\S+) queue=(\S+)$")

# Every key of the ?auto form (docs/operations.md, "Reading the status
# page").
KEYS = ("VThreadChildPid", "VThreadCarriers", "VThreadFibers", "VThreadFibersLimit",
        "VThreadRunnable", "VThreadParkedTimer", "VThreadParkedIO",
        "VThreadParkedSync", "VThreadStarted", "VThreadSwitches",
        "VThreadStacksCached", "VThreadStacksCachedBytes", "VThreadPinned",
        "VThreadHandlers", "VThreadHandlerLongestMs", "VThreadOffloaded",
        "VThreadOffloadInline", "VThreadOffloadOverflowInline",
        "VThreadOffload503", "VThreadConnsOwned", "VThreadConnsWriting",
        "VThreadConnsKeepAlive", "VThreadConnsLingering",
        "VThreadConnWaitLongestMs", "VThreadConnMemoryKept",
        "VThreadConnMemoryReused", "VThreadTransparent", "VThreadHookCalls",
        "VThreadHookParked", "VThreadHookPassed", "VThreadHookPinned") + tuple(
            "VThreadHook%s%s" % (call, what)
            for call in ("Poll", "Select", "EpollWait", "Connect", "Accept",
                         "Read", "Write", "Sendfile", "Sleep", "Mutex",
                         "Cond", "Getaddrinfo")
            for what in ("Calls", "Parked", "Pinned")) + (
        "VThreadBlockingThreads", "VThreadBlockingBusy",
        "VThreadBlockingQueued", "VThreadBlockingDone",
        "VThreadBlockingRefused")
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                    "operations.md")


@pytest.fixture(scope="module")
def httpd():
    with running(name="ops", extra=EXTRA) as h:
        yield h


def notes(h, path_prefix):
    """Parsed notes.log lines whose URL path starts with path_prefix."""
    try:
        with open(h.path("logs", "notes.log")) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        m = NOTE_RE.match(line)
        assert m, "unexpected notes.log line %r" % line
        if m.group(1).startswith(path_prefix):
            out.append(m.groups())
    return out


def wait_notes(h, path_prefix, n=1, timeout=5.0):
    """Wait until notes.log has n lines for path_prefix (requests are
    logged just after their response is sent)."""
    return wait_until(lambda: len(notes(h, path_prefix)) >= n and
                      notes(h, path_prefix), timeout * SCALE) or []


def ok200(r):
    return r.status == 200


class StatusSampler:
    """Polls /server-status?auto in the background; keeps each answer."""

    def __init__(self, port, interval=0.05):
        self.port, self.interval = port, interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(server_status(self.port))
            except (OSError, EOFError, AssertionError, ValueError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def peak(self, key):
        return max((s.get(key, 0) for s in self.samples), default=0)


# ------------------------------------------------------------ status page

def test_auto_status_has_every_key_with_sane_values(httpd):
    assert get(httpd.port, "/sleep?ms=1").status == 200
    # Once its connection is closed (a lingering close parks its fiber
    # for a moment), nothing is left.
    st = wait_until(lambda: (lambda s: s.get("VThreadFibers") == 0 and s)(
        server_status(httpd.port)), 5 * SCALE) or server_status(httpd.port)
    missing = [k for k in KEYS if k not in st]
    assert not missing, (missing, st)
    for k in KEYS:
        assert isinstance(st[k], int) and st[k] >= 0, (k, st[k])
    assert st["VThreadChildPid"] in httpd.children()
    assert st["VThreadCarriers"] == 2
    assert st["VThreadFibersLimit"] == MAX_FIBERS
    assert st["VThreadOffloaded"] >= 1
    assert st["VThreadStarted"] >= st["VThreadOffloaded"]
    assert st["VThreadSwitches"] >= st["VThreadStarted"]
    # Nothing is waiting now (the status request itself runs inline).
    assert st["VThreadFibers"] == 0, st
    assert st["VThreadParkedTimer"] == 0 and st["VThreadHandlers"] == 0, st
    assert st["VThreadHandlerLongestMs"] == 0, st
    # The per-carrier table is in the HTML form.
    r = get(httpd.port, "/server-status")
    assert r.status == 200
    assert "mod_vthread (this child only: pid " in r.text
    assert r.text.count("<tr><td>") >= 2, r.text[-2000:]


def test_every_status_key_is_documented(httpd):
    st = server_status(httpd.port)
    shown = sorted(k for k in st if k.startswith("VThread"))
    with open(DOCS) as f:
        doc = f.read()
    assert sorted(KEYS) == shown
    undocumented = [k for k in shown if "`%s`" % k not in doc]
    assert not undocumented, undocumented


def thread_names(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass  # a thread that just ended
    return sorted(names)


def test_threads_are_named_for_top_and_gdb(httpd):
    """`top -H`, `ps -L`, perf and gdb tell mod_vthread's threads apart
    from the MPM's (docs/operations.md, "Threads of a child")."""
    assert get(httpd.port, "/sleep?ms=1").status == 200
    kids = httpd.children()
    assert kids
    for pid in kids:
        names = thread_names(pid)
        ours = [n for n in names if n.startswith("vt-")]
        assert ours == ["vt-carrier-0", "vt-carrier-1", "vt-hangup",
                        "vt-reaper", "vt-watchdog"], names
        # The MPM's threads keep the process's name: only our own were
        # renamed (ThreadsPerChild workers, the listener, the main thread).
        with open("/proc/%d/comm" % pid) as f:
            process_name = f.read().strip()
        assert names.count(process_name) >= httpd.threads + 2, names


def test_parked_fibers_rise_under_load_and_fall_back(httpd):
    before = server_status(httpd.port)
    n, ms = 50, 1000
    with StatusSampler(httpd.port) as sampler:
        results, wall = run_concurrently(
            lambda: get(httpd.port, "/sleep?ms=%d" % ms),
            [()] * n, timeout=60)
    assert not failures(results), failures(results)[:3]
    # 50 sleeps of 1 s on 4 workers: they were parked together.
    assert wall < 3 * SCALE, wall
    assert sampler.peak("VThreadParkedTimer") >= 40, sampler.samples[-3:]
    assert sampler.peak("VThreadHandlers") >= 40
    assert sampler.peak("VThreadFibers") >= 40
    assert sampler.peak("VThreadConnsOwned") >= 40
    assert sampler.peak("VThreadHandlerLongestMs") >= 500
    st = wait_until(lambda: (lambda s: s["VThreadParkedTimer"] == 0
                             and s["VThreadHandlers"] == 0
                             and s["VThreadFibers"] == 0
                             and s["VThreadConnsOwned"] == 0 and s)(
                                 server_status(httpd.port)),
                    10 * SCALE)
    assert st, server_status(httpd.port)
    assert st["VThreadSwitches"] >= before["VThreadSwitches"] + 2 * n
    assert st["VThreadOffloaded"] >= before["VThreadOffloaded"] + n
    assert st["VThreadStacksCached"] >= 1      # stacks kept for reuse
    assert st["VThreadConnsLingering"] == 0


def test_keepalive_connection_shows_in_status(httpd):
    with Conn(httpd.port) as c:
        assert c.exchange("GET", "/sleep?ms=1").status == 200
        time.sleep(0.4)
        st = server_status(httpd.port)
        assert st["VThreadConnsOwned"] >= 1, st
        assert st["VThreadConnsKeepAlive"] >= 1, st
        assert st["VThreadConnWaitLongestMs"] >= 300, st
    st = wait_until(lambda: (lambda s: s["VThreadConnsKeepAlive"] == 0
                             and s["VThreadConnsOwned"] == 0 and s)(
                                 server_status(httpd.port)), 10 * SCALE)
    assert st, server_status(httpd.port)


def test_total_accesses_count_offloaded_requests_like_inline_ones(httpd):
    def counted(paths):
        """How much Total Accesses grew for these requests (the status
        requests made meanwhile taken out)."""
        first = server_status(httpd.port)["Total Accesses"]
        for p in paths:
            assert get(httpd.port, p).status == 200
        polls = [0]

        def grown():
            polls[0] += 1
            total = server_status(httpd.port)["Total Accesses"]
            # Each earlier status request (the first one too) is counted
            # once logged.
            return total - first - polls[0]
        return wait_until(lambda: grown() == len(paths) and len(paths),
                          5 * SCALE) or grown()

    assert counted(["/sleep?ms=1"] * 10) == 10
    assert counted(["/inline/sleep?ms=1"] * 10) == 10


# ------------------------------------------------------------- access log

def test_access_log_notes(httpd):
    assert get(httpd.port, "/sleep?ms=300").status == 200
    assert get(httpd.port, "/inline/sleep?ms=10").status == 200
    assert get(httpd.port, "/static/hello.txt").status == 200
    off = wait_notes(httpd, "/sleep")
    assert off, "no /sleep line in notes.log"
    path, status, offload, carrier, park, run, queue = off[-1]
    assert (status, offload) == ("200", "fiber")
    assert carrier in ("0", "1"), carrier
    # Slept 300 ms on the fiber: parked about that long, ran far less.
    assert 270000 <= int(park) < 5000000 * SCALE, park
    assert 0 <= int(run) < 200000 * SCALE, run
    # From the request line read to the fiber's start: a hand-off, not
    # the sleep (generous: a loaded CI machine).
    assert 0 <= int(queue) < 200000 * SCALE, queue
    inline = wait_notes(httpd, "/inline/sleep")[-1]
    assert inline[2:] == ("-",) * 5, inline
    static = wait_notes(httpd, "/static/hello.txt")[-1]
    assert static[2:] == ("-",) * 5, static


def test_access_log_notes_follow_an_error_document(httpd):
    # /off is offloaded, with "ErrorDocument 404 /static/notfound.html":
    # %{...}n reads the notes of the redirect (%U the original URL), which
    # carries the offloaded request's notes.
    r = get(httpd.port, "/off/missing.txt")
    assert r.status == 404 and "custom not found" in r.text
    line = wait_notes(httpd, "/off/missing.txt")[-1]
    assert line[1:4] == ("404", "fiber", line[3]) and line[3] in ("0", "1")
    assert "-" not in line[4:7], line


def test_access_log_notes_on_the_worker_mpm():
    # Not asynchronous: the handler runs on a fiber while its worker waits.
    with running(name="ops-worker", mpm="worker", extra=EXTRA) as h:
        assert get(h.port, "/sleep?ms=100").status == 200
        line = wait_notes(h, "/sleep")[-1]
        assert line[1:3] == ("200", "fiber") and line[3] in ("0", "1"), line
        assert int(line[4]) >= 90000, line
        st = server_status(h.port)
        assert st["VThreadOffloaded"] >= 1 and st["VThreadConnsOwned"] == 0


def test_refused_requests_are_noted_and_counted(httpd):
    before = server_status(httpd.port)
    n = MAX_FIBERS + 15
    results, _ = run_concurrently(
        lambda: get(httpd.port, "/echo-id?ms=1500",
                    headers={"X-Request-Id": "refuse"}),
        [()] * n, timeout=60)
    assert not [r for r in results if isinstance(r, BaseException)]
    refused = sum(1 for r in results if r.status == 503)
    served = sum(1 for r in results if r.status == 200)
    assert refused + served == n and refused >= 1, [r.status for r in results]
    lines = wait_notes(httpd, "/echo-id", n)
    assert len(lines) == n
    assert sorted((l[1], l[2]) for l in lines) == sorted(
        [("503", "503")] * refused + [("200", "fiber")] * served)
    for l in lines:
        if l[1] == "503":
            assert l[3:] == ("-",) * 4, l
    st = server_status(httpd.port)
    assert st["VThreadOffload503"] - before["VThreadOffload503"] == refused


# -------------------------------------------------------------- error log

def test_pinned_fiber_is_counted_and_logged_with_its_uri(httpd):
    before = server_status(httpd.port)["VThreadPinned"]
    r = get(httpd.port, "/cpu?n=10000000")
    assert r.status == 200
    if r.elapsed < 0.08:
        pytest.skip("the CPU loop took %.3fs, too short to pin" % r.elapsed)
    after = wait_until(
        lambda: server_status(httpd.port)["VThreadPinned"] > before and
        server_status(httpd.port)["VThreadPinned"], 3 * SCALE)
    assert after, "VThreadPinned did not grow after a %.3fs CPU loop" % (
        r.elapsed)
    line = wait_until(lambda: [l for l in httpd.error_log().splitlines()
                               if "GET /cpu?n=10000000" in l], 3 * SCALE)
    assert line, httpd.logs()
    assert "AH10907" in line[0] and "[vthread:warn]" in line[0], line[0]
    assert "VThreadPinnedWarn 50 ms" in line[0], line[0]


STORY = [
    # (what, regular expression), in the order of one connection's life
    ("offload decision", r'offloaded: handler "vthread-sleep" will run on '
                         r'a fiber; the worker goes back to the MPM'),
    ("MPM lets go", r"the MPM let go of the connection"),
    ("fiber start", r"fiber started on carrier [01], \d+ us after"),
    ("handler end", r'handler "vthread-sleep" returned 0 on carrier [01]: '
                    r"ran \d+ us, parked \d+ us"),
    ("write completion", r"write completion done after \d+ us"),
    ("keep-alive wait", r"keep-alive wait \(KeepAliveTimeout 5000 ms\)"),
    ("keep-alive end", r"keep-alive wait ended after \d+ ms: the next "
                       r"request is there"),
    ("next request read", r"reading the next request on the connection's "
                          r"fiber"),
    ("next offload", r'handler "vthread-sleep" runs here, on the '
                     r"connection's fiber"),
    ("second handler end", r'handler "vthread-sleep" returned 0'),
    ("third request read", r"reading the next request on the connection's "
                           r"fiber"),
    ("inline handler", r'no VThreadHandler here: handler "[^"]*" runs on an '
                       r"MPM worker"),
    ("fourth request read", r"reading the next request on the connection's "
                            r"fiber"),
    ("fourth handler end", r'handler "vthread-sleep" returned 0'),
    ("close", r"closing the connection \(lingering close\)"),
    ("teardown", r"connection done: releasing it"),
]


def test_trace_log_tells_the_story_of_a_connection():
    with running(name="ops-trace", loglevel="info vthread:trace4") as h:
        with Conn(h.port) as c:
            assert c.exchange("GET", "/sleep?ms=20").status == 200
            time.sleep(0.1)
            assert c.exchange("GET", "/sleep?ms=20").status == 200
            r = c.exchange("GET", "/static/hello.txt")
            assert r.status == 200 and r.text == "hello, static\n", r
            assert c.exchange("GET", "/sleep?ms=20",
                              headers={"Connection": "close"}).status == 200
            assert c.closed_by_server(5)
        text = wait_until(lambda: "connection done" in h.error_log() and
                          h.error_log(), 5 * SCALE)
        assert text, h.logs()
        lines = [l for l in text.splitlines() if "[vthread:" in l]
        pos = 0
        for what, pattern in STORY:
            rx = re.compile(pattern)
            at = next((i for i in range(pos, len(lines))
                       if rx.search(lines[i])), None)
            assert at is not None, "no %s line after line %d:\n%s" % (
                what, pos, "\n".join(lines))
            pos = at + 1
        # Every mod_vthread message above trace level has a number.
        unnumbered = [l for l in lines if not re.search(r"\[vthread:trace", l)
                      and not re.search(r"AH\d{5}", l)]
        assert not unnumbered, unnumbered
