"""Harness for the integration tests: a real httpd with mod_vthread.

Each test module starts its own httpd (``start_httpd`` / the ``httpd``
fixture) on a free port of 127.0.0.1, from a configuration written into a
fresh temporary directory (config, pid file, logs, document root), with the
modules built in ``$VT_BUILD_DIR``:

    $VT_BUILD_DIR/mod_vthread/.libs/mod_vthread.so
    $VT_BUILD_DIR/mod_vthread/.libs/mod_vthread_demo.so

Without VT_BUILD_DIR the tests are skipped (with a message saying so); with
it set but a module missing they fail. A server is stopped by its own pid
(SIGTERM, a bounded wait, then SIGKILL), and at teardown its error log must
hold no AH00052 line (a child killed by a signal: a crash).

Client side: ``Conn`` (a raw socket for keep-alive and pipelining, with an
HTTP/1.1 response parser), ``get`` (one request on a new connection),
``run_concurrently`` (threads released together), ``server_status``
(``/server-status?auto``) and ``wait_until`` (a bounded poll).
"""

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

APACHE2 = os.environ.get("VT_HTTPD", "/usr/sbin/apache2")
# Preloaded into httpd only (not into this python): the sanitizer runtime
# when the modules were built with --enable-sanitizers, e.g.
# VT_HTTPD_PRELOAD=$(gcc -print-file-name=libasan.so).
PRELOAD = os.environ.get("VT_HTTPD_PRELOAD", "")
SYS_MODULES = os.environ.get("VT_HTTPD_MODULES", "/usr/lib/apache2/modules")
BUILD_DIR = os.environ.get("VT_BUILD_DIR")
HOST = "127.0.0.1"
# Multiplies every timing bound (e.g. 3 under sanitizers or valgrind).
SCALE = float(os.environ.get("VT_TIME_SCALE", "1"))
# Seconds Httpd.stop() waits before its SIGTERM (see there).
STOP_SETTLE = 0.5

# Error log lines that mean a child died of a signal.
CRASH_RE = re.compile(r"AH00052|exit signal")
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|"
                          r"runtime error:")

# The demo handlers, offloaded under /NAME and run inline under /inline/NAME.
DEMO_HANDLERS = ("sleep", "fetch", "cpu", "poll", "fanout", "echo-id",
                 "upload", "big", "plain")


# --------------------------------------------------------------- modules

def module_paths():
    """(mod_vthread.so, mod_vthread_demo.so) from VT_BUILD_DIR.

    Skips the calling test when VT_BUILD_DIR is unset, fails it when the
    variable is set but a module is missing."""
    if not BUILD_DIR:
        pytest.skip("VT_BUILD_DIR is not set: build the modules (build/test.sh "
                    "does) and point VT_BUILD_DIR at the build directory")
    libs = os.path.join(BUILD_DIR, "mod_vthread", ".libs")
    paths = (os.path.join(libs, "mod_vthread.so"),
             os.path.join(libs, "mod_vthread_demo.so"))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        pytest.fail("VT_BUILD_DIR=%s but not built: %s"
                    % (BUILD_DIR, ", ".join(missing)), pytrace=False)
    return paths


def httpd_env():
    env = dict(os.environ)
    if PRELOAD:
        env["LD_PRELOAD"] = PRELOAD
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------- config

MPM_CONF = {
    # One child with few workers: what offloading must make go further.
    # ThreadLimit leaves scoreboard slots for the carriers, which
    # mod_vthread uses to count offloaded requests in mod_status.
    # The event MPM counts suspended connections against
    # ThreadsPerChild + idle workers x AsyncRequestWorkerFactor, hence the
    # high factor; a burst of new connections needs the larger backlog.
    "event": """
StartServers            1
ServerLimit             {server_limit}
ThreadLimit             {thread_limit}
ThreadsPerChild         {threads}
MaxRequestWorkers       {max_workers}
MinSpareThreads         1
MaxSpareThreads         {max_spare}
AsyncRequestWorkerFactor {factor}
ListenBacklog           4096
""",
    "worker": """
StartServers            1
ServerLimit             {server_limit}
ThreadLimit             {thread_limit}
ThreadsPerChild         {threads}
MaxRequestWorkers       {max_workers}
MinSpareThreads         1
MaxSpareThreads         {max_spare}
ListenBacklog           4096
""",
    "prefork": """
StartServers            {threads}
MinSpareServers         1
MaxSpareServers         {threads}
ServerLimit             {threads}
MaxRequestWorkers       {threads}
ListenBacklog           4096
""",
}


def demo_locations(offload=True):
    """<Location> blocks for every demo handler: /NAME offloaded,
    /inline/NAME not."""
    out = []
    for name in DEMO_HANDLERS:
        out.append('<Location "/%s">\n    SetHandler vthread-%s\n'
                   '    VThreadHandler %s\n</Location>\n'
                   % (name, name, "On" if offload else "Off"))
        out.append('<Location "/inline/%s">\n    SetHandler vthread-%s\n'
                   '    VThreadHandler Off\n</Location>\n' % (name, name))
    # Static files through the default handler, offloaded, with an
    # ErrorDocument that is a local URL (an internal redirect).
    out.append('<Location "/off">\n    VThreadHandler %s\n'
               '    ErrorDocument 404 /static/notfound.html\n</Location>\n'
               % ("On" if offload else "Off"))
    return "".join(out)


@dataclasses.dataclass
class Httpd:
    """One httpd with its own config, logs and document root."""

    name: str = "vt"
    mpm: str = "event"
    threads: int = 4                 # ThreadsPerChild (prefork: processes)
    server_limit: int = 1
    max_workers: int = 0             # default: server_limit x threads
    factor: int = 1000               # AsyncRequestWorkerFactor
    carriers: int = 2                # VThreadCarriers; None: leave unset
    vthread: bool = True             # load mod_vthread and the demo
    offload: bool = True             # demo locations offloaded
    keepalive_timeout: int = 5
    max_keepalive: int = 0           # MaxKeepAliveRequests (0: unlimited)
    timeout: int = 30                # Timeout
    loglevel: str = "info"
    extra: str = ""                  # appended at the end of the config
    # VThreadTransparent at server level ("" leaves the default, On);
    # VT_TRANSPARENT=Off runs the suite with transparent mode off
    # (build/test.sh does, for every test but test_transparent_*.py).
    transparent: str = os.environ.get("VT_TRANSPARENT", "")
    port: int = 0
    root: str = ""

    def __post_init__(self):
        self.root = tempfile.mkdtemp(prefix="vt-%s-" % self.name, dir="/tmp")
        # Children run as www-data: they must read the document root.
        os.chmod(self.root, 0o755)
        for d in ("logs", "run", "htdocs/static", "htdocs/off"):
            os.makedirs(os.path.join(self.root, d), mode=0o755)
        self.port = self.port or free_port()
        self.proc = None
        self.pid = None
        self.seen_children = set()
        self._stderr = None
        self.write_docroot()

    # -- files

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write_file(self, rel, data):
        p = self.path("htdocs", rel)
        os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(p, 0o644)
        return p

    def write_docroot(self):
        self.write_file("static/ready.txt", "ready\n")
        self.write_file("static/hello.txt", "hello, static\n")
        self.write_file("static/a.txt", "alpha\n")
        self.write_file("static/b.txt", "bravo\n")
        self.write_file("static/notfound.html",
                        "<html><body>custom not found</body></html>\n")
        self.write_file("off/hello.txt", "hello, offloaded static\n")
        self.write_file("static/1m.bin", bytes(range(256)) * 4096)

    def config_text(self):
        mpm_conf = MPM_CONF[self.mpm].format(
            threads=self.threads, server_limit=self.server_limit,
            thread_limit=self.threads + 16,
            max_workers=self.max_workers or self.server_limit * self.threads,
            max_spare=self.threads + 1, factor=self.factor)
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data\n"
        lines = [
            'ServerRoot "%s"' % self.root,
            "ServerName %s:%d" % (HOST, self.port),
            "Listen %s:%d" % (HOST, self.port),
            'PidFile "%s"' % self.path("httpd.pid"),
            'DefaultRuntimeDir "%s"' % self.path("run"),
            'ErrorLog "%s"' % self.path("logs", "error.log"),
            "LogLevel %s" % self.loglevel,
            'LogFormat "%h \\"%r\\" %>s %b %D id=%{X-Request-Id}i" vt',
            'CustomLog "%s" vt' % self.path("logs", "access.log"),
            user,
            "LoadModule mpm_%s_module %s/mod_mpm_%s.so"
            % (self.mpm, SYS_MODULES, self.mpm),
            "LoadModule authz_core_module %s/mod_authz_core.so" % SYS_MODULES,
            "LoadModule mime_module %s/mod_mime.so" % SYS_MODULES,
            "LoadModule status_module %s/mod_status.so" % SYS_MODULES,
            "TypesConfig /etc/mime.types",
            mpm_conf,
            "Timeout %d" % self.timeout,
            "KeepAlive On",
            "MaxKeepAliveRequests %d" % self.max_keepalive,
            "KeepAliveTimeout %d" % self.keepalive_timeout,
            'DocumentRoot "%s"' % self.path("htdocs"),
            '<Directory "%s">\n    Require all granted\n</Directory>'
            % self.path("htdocs"),
            "ExtendedStatus On",
            '<Location "/server-status">\n    SetHandler server-status\n'
            "</Location>",
        ]
        if self.vthread:
            mod, demo = module_paths()
            lines += [
                "LoadModule vthread_module %s" % mod,
                "LoadModule vthread_demo_module %s" % demo,
            ]
            if self.carriers is not None:
                lines.append("VThreadCarriers %d" % self.carriers)
            if self.transparent:
                lines.append("VThreadTransparent %s" % self.transparent)
            lines.append("VThreadDemoBackend %s:%d" % (HOST, self.port))
            lines.append(demo_locations(self.offload))
        lines.append(self.extra)
        return "\n".join(lines) + "\n"

    @property
    def conf(self):
        return self.path("httpd.conf")

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    # -- process

    def check_config(self):
        """Run `apache2 -t` on the config: (exit status, output)."""
        self.write_config()
        p = subprocess.run([APACHE2, "-t", "-f", self.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30, check=False, env=httpd_env())
        return p.returncode, p.stdout.decode(errors="replace")

    def start(self, ready_timeout=20.0):
        self.write_config()
        self._stderr = open(self.path("logs", "stderr.log"), "wb")
        self.proc = subprocess.Popen(
            [APACHE2, "-f", self.conf, "-DFOREGROUND"],
            stdin=subprocess.DEVNULL, stdout=self._stderr,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=httpd_env())
        self.pid = self.proc.pid
        deadline = time.monotonic() + ready_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("httpd exited with %s at start:\n%s"
                                   % (self.proc.returncode, self.logs()))
            try:
                r = get(self.port, "/static/ready.txt", timeout=2)
                if r.status == 200:
                    self.note_children()
                    return self
                last = "status %d" % r.status
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("httpd not answering after %.0fs (%s):\n%s"
                           % (ready_timeout, last, self.logs()))

    def children(self):
        """Pids of the parent's current child processes."""
        out = []
        if self.pid is None:
            return out
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces.
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == self.pid:
                out.append(int(d))
        return sorted(out)

    def note_children(self):
        kids = self.children()
        self.seen_children.update(kids)
        return kids

    def graceful(self):
        """Graceful restart (what `apachectl graceful` sends)."""
        self.note_children()
        os.kill(self.pid, signal.SIGUSR1)

    def stop(self, timeout=15.0):
        if self.proc is None:
            return
        self.note_children()
        if self.proc.poll() is None:
            # A moment for the MPM to finish closing what the test's
            # clients just closed: a SIGTERM within that window has crashed
            # the child inside event's own close_worker_sockets() (its main
            # thread reading a freed socket while an MPM thread unmapped a
            # pool; every mod_vthread thread idle), about once in 20 runs
            # of test_keepalive.py, before and after the layout change
            # alike. Children that crash for any other reason are still
            # caught by crashes().
            time.sleep(STOP_SETTLE)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Children outlive a killed parent: end those we saw, by pid.
        for pid in sorted(self.seen_children):
            if pid_alive(pid) and self._is_ours(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    def _is_ours(self, pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return self.conf.encode() in f.read()
        except OSError:
            return False

    # -- logs

    def error_log(self):
        try:
            with open(self.path("logs", "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def logs(self, tail=60):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(self.path("logs", name), errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            text += "--- %s (last %d lines)\n%s\n" % (
                name, tail, "\n".join(lines[-tail:]))
        return text

    def crashes(self):
        """Error log lines of children killed by a signal, and sanitizer
        reports (which go to httpd's stderr)."""
        out = [l for l in self.error_log().splitlines() if CRASH_RE.search(l)]
        try:
            with open(self.path("logs", "stderr.log"), errors="replace") as f:
                out += [l for l in f if SANITIZER_RE.search(l)]
        except OSError:
            pass
        return out

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    # -- client shortcuts

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def conn(self, timeout=30):
        return Conn(self.port, timeout=timeout)

    def status(self):
        return server_status(self.port)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def running(**kw):
    """Start an Httpd(**kw); stop it at exit and fail on child crashes."""
    h = Httpd(**kw)
    ok = False
    try:
        h.start()
        yield h
        ok = True
    finally:
        h.stop()
        crashes = h.crashes()
        if crashes:
            pytest.fail("httpd child crashed (error log):\n%s\n%s"
                        % ("\n".join(crashes), h.logs()), pytrace=False)
        if ok:
            h.cleanup()
        else:
            print("httpd files kept in %s" % h.root)


@pytest.fixture
def httpd_factory():
    """Start servers with start(**Httpd fields); all stopped at teardown."""
    stack = contextlib.ExitStack()

    def start(**kw):
        return stack.enter_context(running(**kw))

    with stack:
        yield start


@pytest.fixture(scope="module")
def cert():
    """A self-signed certificate for 127.0.0.1: (cert path, key path),
    readable by the children (www-data); one per test module."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tempfile.mkdtemp(prefix="vt-tls-cert-")
    os.chmod(d, 0o755)
    crt, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    os.chmod(key, 0o644)
    yield crt, key
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def httpd():
    """The default server: event MPM, 1 child x 4 workers, 2 carriers, the
    demo handlers offloaded. Shared by the tests of one module."""
    with running(name="default") as h:
        yield h


# --------------------------------------------------------------- client

@dataclasses.dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list            # [(name, value)] as received
    body: bytes
    chunked: bool = False
    elapsed: float = 0.0

    def header(self, name, default=None):
        name = name.lower()
        for k, v in reversed(self.headers):
            if k.lower() == name:
                return v
        return default

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def keeps_alive(self):
        conn = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


class Conn:
    """A raw client connection: requests written as given, responses parsed
    one at a time, so keep-alive and pipelining are under the test's
    control."""

    def __init__(self, port, timeout=30.0, rcvbuf=None):
        """rcvbuf: a small receive buffer (set before connecting) makes a
        client that does not read push back on the server sooner."""
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                     rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((HOST, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", path="/", headers=None, body=None,
                version="HTTP/1.1"):
        """Send one request; returns nothing (read with response())."""
        self.send(build_request(self.port, method, path, headers, body,
                                version))

    def exchange(self, method="GET", path="/", headers=None, body=None,
                 version="HTTP/1.1"):
        t0 = time.monotonic()
        self.request(method, path, headers, body, version)
        r = self.response(method)
        r.elapsed = time.monotonic() - t0
        return r

    # -- reading

    def recv_some(self, n=65536):
        """Read what is there (up to n bytes) into the buffer; 0 at EOF."""
        data = self.sock.recv(n)
        self.buf += data
        return len(data)

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _readline(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_to_eof(self):
        while True:
            try:
                self._fill()
            except EOFError:
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def response(self, method="GET"):
        """Read one response (HTTP/1.x, Content-Length, chunked or to EOF)."""
        while True:
            line = self._readline()
            if line.strip():
                break
        m = re.match(rb"(HTTP/1\.[01]) (\d{3}) ?(.*)\r?\n$", line)
        if not m:
            raise ValueError("bad status line %r" % line)
        version, status = m.group(1).decode(), int(m.group(2))
        reason = m.group(3).decode(errors="replace").strip()
        headers = []
        while True:
            line = self._readline()
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        r = Response(status, reason, version, headers, b"")
        if 100 <= status < 200:
            return self.response(method)     # skip interim responses
        if method == "HEAD" or status in (204, 304):
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            r.chunked = True
            parts = []
            while True:
                size = int(self._readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):
                        pass                 # trailers
                    break
                parts.append(self._read(size))
                self._readline()
            r.body = b"".join(parts)
        elif r.header("Content-Length") is not None:
            r.body = self._read(int(r.header("Content-Length")))
        else:
            r.body = self._read_to_eof()
        return r

    def closed_by_server(self, timeout):
        """True if the server closes the connection within timeout s
        (nothing else arriving), False if it is still open then."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return data == b""


def build_request(port, method="GET", path="/", headers=None, body=None,
                  version="HTTP/1.1"):
    hdrs = {"Host": "%s:%d" % (HOST, port)}
    hdrs.update(headers or {})
    if body is not None and not any(k.lower() in ("content-length",
                                                  "transfer-encoding")
                                    for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % kv for kv in hdrs.items())
    data = (head + "\r\n").encode("latin-1")
    return data + (body or b"")


def get(port, path, method="GET", headers=None, body=None, timeout=30.0):
    """One request on a new connection (Connection: close)."""
    hdrs = {"Connection": "close"}
    hdrs.update(headers or {})
    with Conn(port, timeout=timeout) as c:
        return c.exchange(method, path, hdrs, body)


def chunked(pieces):
    """Encode pieces as an HTTP/1.1 chunked body."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + b"0\r\n\r\n"


def run_concurrently(fn, args_list, timeout=120.0):
    """Call fn(*args) for every args tuple, each on its own thread, all
    released at once. Returns (results, wall seconds); a result is what fn
    returned or the exception it raised."""
    n = len(args_list)
    results = [None] * n
    barrier = threading.Barrier(n + 1)

    def work(i, args):
        try:
            barrier.wait(timeout=30)
            results[i] = fn(*args)
        except BaseException as e:     # reported to the caller
            results[i] = e

    threads = [threading.Thread(target=work, args=(i, a), daemon=True)
               for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    t0 = time.monotonic()
    deadline = t0 + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    wall = time.monotonic() - t0
    for i, t in enumerate(threads):
        if t.is_alive():
            results[i] = TimeoutError("still running after %.0fs" % timeout)
    return results, wall


def failures(results, ok=lambda r: r.status == 200):
    """The results that are exceptions or fail ok(), for assert messages."""
    bad = []
    for r in results:
        if isinstance(r, BaseException) or not ok(r):
            bad.append(r)
    return bad


def parse_status(text):
    """A /server-status?auto body as a dict (numbers converted)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if not sep:
            continue
        v = v.strip()
        try:
            out[k.strip()] = int(v)
        except ValueError:
            try:
                out[k.strip()] = float(v)
            except ValueError:
                out[k.strip()] = v
    return out


def server_status(port):
    """/server-status?auto as a dict, on a new connection."""
    r = get(port, "/server-status?auto", timeout=10)
    assert r.status == 200, r
    return parse_status(r.text)


def wait_until(predicate, timeout, interval=0.1):
    """Poll predicate() until it returns a true value or timeout s pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def big_body(kb):
    """What /big?kb=N answers: byte i is '\\n' if i % 64 == 63, else
    'a' + (i % 64) % 26."""
    line = bytes(10 if j == 63 else 97 + j % 26 for j in range(64))
    return line * (kb * 16)


# The demo's test-only handlers (a CPU loop, a recursion that overflows
# its stack), gated by VThreadDemoUnsafe: the `extra` of a test's Httpd.
UNSAFE = """
VThreadDemoUnsafe On
<Location "/spin">
    SetHandler vthread-spin
    VThreadHandler On
</Location>
<Location "/recurse">
    SetHandler vthread-recurse
    VThreadHandler On
</Location>
<Location "/inline/recurse">
    SetHandler vthread-recurse
    VThreadHandler Off
</Location>
"""


class SilentBackend:
    """A backend that accepts connections, reads what they send and never
    answers: a fetch from it waits until its fiber is cancelled. Keeps
    every connection (conns) and the monotonic time at which each saw EOF
    or a reset (closed). hold_timeout bounds each connection's wait for
    EOF (None: no bound)."""

    def __init__(self, backlog=1024, hold_timeout=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.hold_timeout = hold_timeout
        self.lock = threading.Lock()
        self.conns = []
        self.closed = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._hold, args=(c,),
                             daemon=True).start()

    def _hold(self, c):
        c.settimeout(self.hold_timeout)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        with self.lock:
            self.closed.append(time.monotonic())
        c.close()

    @property
    def eofs(self):
        with self.lock:
            return len(self.closed)

    def open_count(self):
        with self.lock:
            return len(self.conns) - len(self.closed)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class Prober:
    """Background requests (GET path on a new connection each), one after
    another, recording how long each took: shows whether other work on the
    server delays them."""

    def __init__(self, port, path="/sleep?ms=10", pause=0.02):
        self.port, self.path, self.pause = port, path, pause
        self.times, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _get(self):
        return get(self.port, self.path, timeout=30)

    def _run(self):
        while not self._stop.is_set():
            try:
                r = self._get()
                if r.status != 200:
                    self.errors.append("status %d" % r.status)
                self.times.append(r.elapsed)
            except Exception as e:     # noqa: BLE001 - reported by check()
                self.errors.append(repr(e))
            self._stop.wait(self.pause)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)

    def check(self, limit, at_least=5):
        """Assert no probe failed, at least at_least ran, none over limit s."""
        assert not self.errors, self.errors[:5]
        assert len(self.times) >= at_least, self.times
        worst = max(self.times)
        assert worst < limit * SCALE, (
            "a probe took %.3fs (limit %.3fs); %d probes, median %.3fs"
            % (worst, limit * SCALE, len(self.times),
               sorted(self.times)[len(self.times) // 2]))


def not_idle(st):
    """Why a /server-status?auto dict does not look idle ([] if it does).

    Idle, as seen from a keep-alive connection's request: at most one
    connection counted by the MPM, none in any async state, one busy worker
    (the one serving the status request), no suspended request if the MPM
    shows that count, and no connection, fiber alive or parked if
    mod_vthread's status lines show them.

    Event refreshes ConnsTotal only when one of its keep-alive, lingering or
    write timeouts expires (event.c, the listener's queue pass), so it may
    date from a moment when this status connection was already open, and
    keep that value while the status polls hold that connection in the
    keep-alive queue: 1 is idle. mod_vthread's own VThreadConns* counts
    are live."""
    why = []
    if st.get("ConnsTotal", 0) > 1:
        why.append("ConnsTotal: %s" % st["ConnsTotal"])
    for k in ("ConnsAsyncWriting", "ConnsAsyncKeepAlive",
              "ConnsAsyncClosing", "ConnsAsyncWaitIO", "VThreadFibers",
              "VThreadRunnable", "VThreadParkedTimer", "VThreadParkedIO",
              "VThreadParkedSync", "VThreadConnsOwned", "VThreadConnsWriting",
              "VThreadConnsKeepAlive", "VThreadConnsLingering"):
        if st.get(k, 0):
            why.append("%s: %s" % (k, st[k]))
    for k, v in st.items():
        if "suspended" in k.lower() and isinstance(v, int) and v:
            why.append("%s: %s" % (k, v))
    if st.get("BusyWorkers", 0) > 1:
        why.append("BusyWorkers: %s" % st["BusyWorkers"])
    return why


def wait_idle(port, timeout=10.0, interval=0.25):
    """Wait (bounded) until server-status looks idle; returns the reasons it
    does not ([] once idle) and the last status.

    The status requests go over one keep-alive connection: a connection
    the server closes lingers for up to 2 s in ConnsAsyncClosing, so
    polling with new connections would keep that count above zero. When
    the server does close it, the next poll waits out that linger."""
    deadline = time.monotonic() + timeout * SCALE
    conn, st, why = None, {}, ["no answer from server-status"]
    try:
        while True:
            pause = interval
            try:
                if conn is None:
                    conn = Conn(port, timeout=10)
                r = conn.exchange("GET", "/server-status?auto")
                if r.status == 200:
                    st = parse_status(r.text)
                    why = not_idle(st)
                if not r.keeps_alive():
                    conn.close()
                    conn, pause = None, 2.5
            except (OSError, EOFError, ValueError):
                if conn is not None:
                    conn.close()
                conn, pause = None, 2.5
            if not why or time.monotonic() + pause > deadline:
                return why, st
            time.sleep(pause)
    finally:
        if conn is not None:
            conn.close()


# mod_vthread's own counters in server-status, which are live (event's
# connection counts there are refreshed only now and then by its listener,
# and can show a poller's own keep-alive connection).
VT_BUSY = ("VThreadFibers", "VThreadRunnable", "VThreadParkedTimer",
           "VThreadParkedIO", "VThreadParkedSync", "VThreadHandlers",
           "VThreadConnsOwned", "VThreadConnsWriting",
           "VThreadConnsKeepAlive", "VThreadConnsLingering")


def vthread_busy(port, timeout=10.0):
    """Wait (bounded) until mod_vthread holds no fiber and no connection;
    returns what it still holds ([] once idle)."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        st = server_status(port)
        why = ["%s: %s" % (k, st[k]) for k in VT_BUSY if st.get(k)]
        if not why or time.monotonic() >= deadline:
            return why
        time.sleep(0.1)


def line_of(conf_text, snippet):
    """1-based line number of the snippet's line that names a directive
    (the innermost one for a <Location> block)."""
    wanted = [l for l in snippet.splitlines() if not l.startswith("<")][0]
    lines = conf_text.splitlines()
    start = len(lines) - len(snippet.splitlines()) - 1
    for i in range(max(start, 0), len(lines)):
        if lines[i] == wanted:
            return i + 1
    raise AssertionError("%r not in the config" % wanted)


@pytest.fixture
def tmp_httpd():
    """Make Httpd objects (config tests: often never started) and clean
    each up at the end of the test."""
    made = []

    def make(**kw):
        h = Httpd(name="conf", **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.cleanup()
