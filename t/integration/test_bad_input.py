"""Bad input is refused clearly: directive values and absurd queries.

Extends test_config_errors.py (which has the common cases) with the edges
of every directive's range, number syntaxes that C parsers tend to accept
(hex, signs, exponents, fractions, overflow), arity, contexts, and the
demo module's directives (VThreadDemoUnsafe included). Each refusal must
name the directive, quote the value, and (for mod_vthread's own
directives) say what is allowed; each acceptance at a boundary must
pass `apache2 -t`.

Then absurd query values on every demo handler, beyond those
test_demo_handlers.py tries: each is answered 400 (405 for a wrong
method), and the server still serves afterwards.
"""

import re
import urllib.parse

import pytest

from conftest import UNSAFE, line_of, running, vthread_busy


# (config lines, regex the message must match)
BAD = [
    ("VThreadStackSize 0", r"VThreadStackSize: '0' is not allowed .*"
     r"allowed: 16K to 64M"),
    ("VThreadStackSize 16383", r"VThreadStackSize: '16383' is not allowed"),
    ("VThreadStackSize 15K", r"VThreadStackSize: '15K' is not allowed"),
    ("VThreadStackSize 65M", r"VThreadStackSize: '65M' is not allowed"),
    ("VThreadStackSize 256KK", r"VThreadStackSize: unknown unit 'KK'; "
     r"allowed:"),
    ("VThreadStackSize 2.5M", r"VThreadStackSize: unknown unit '.5M'"),
    ("VThreadStackSize 0x1000", r"VThreadStackSize: unknown unit 'x1000'"),
    ("VThreadStackSize +256K", r"VThreadStackSize: '\+256K' is not a size"),
    ("VThreadStackSize 99999999999999999999",
     r"VThreadStackSize: '99999999999999999999' is not a size"),
    ("VThreadStackSize 256 K", r"VThreadStackSize takes one argument"),
    ("VThreadCarriers 257", r"VThreadCarriers: '257' is not allowed; "
     r"allowed: 1 to 256, or auto"),
    ("VThreadCarriers 1.5", r"VThreadCarriers: '1.5' is not allowed"),
    ("VThreadCarriers 0x2", r"VThreadCarriers: '0x2' is not allowed"),
    ("VThreadCarriers 99999999999999999999",
     r"VThreadCarriers: '99999999999999999999' is not allowed"),
    ("VThreadMaxFibers 4294967296",
     r"VThreadMaxFibers: '4294967296' is not allowed; allowed: a whole "
     r"number from 1 to 4294967295, or 0"),
    ("VThreadMaxFibers 1e3", r"VThreadMaxFibers: '1e3' is not allowed"),
    ("VThreadMaxFibers +5", r"VThreadMaxFibers: '\+5' is not allowed"),
    ("VThreadMaxFibers 0x10", r"VThreadMaxFibers: '0x10' is not allowed"),
    ("VThreadMaxFibers 10 20", r"VThreadMaxFibers takes one argument"),
    ("VThreadPinnedWarn 1us", r"VThreadPinnedWarn: '1us' is not a duration; "
     r"allowed: .*100ms, 2s.*Off"),
    ("VThreadPinnedWarn 0.5s", r"VThreadPinnedWarn: '0.5s' is not a duration"),
    ("VThreadPinnedWarn 2S", r"VThreadPinnedWarn: '2S' is not a duration"),
    ("VThreadPinnedWarn 20000000000000000ms",
     r"VThreadPinnedWarn: '20000000000000000ms' is not a duration"),
    ("VThreadPinnedWarn 9223372036854775807",
     r"VThreadPinnedWarn: '9223372036854775807' is not a duration"),
    ("VThreadPinnedWarn", r"VThreadPinnedWarn takes one argument"),
    ("VThreadOverflow 503 inline", r"VThreadOverflow takes one argument"),
    ("VThreadOverflow 0503", r"VThreadOverflow: '0503' is not allowed; "
     r"allowed: 503 or inline"),
    ("VThreadHandler ON OFF", r"VThreadHandler: 'ON' must stand alone"),
    ('<Location "/x">\nVThreadOverflow 503\n</Location>',
     r"VThreadOverflow not allowed in <Location> context"),
    ('<Location "/x">\nVThreadPinnedWarn 1s\n</Location>',
     r"VThreadPinnedWarn not allowed in <Location> context"),
    ('<VirtualHost 127.0.0.1:9>\nVThreadMaxFibers 5\n</VirtualHost>',
     r"VThreadMaxFibers cannot occur within <VirtualHost>"),
    ('<VirtualHost 127.0.0.1:9>\nVThreadPinnedWarn 1s\n</VirtualHost>',
     r"VThreadPinnedWarn cannot occur within <VirtualHost>"),
    # The demo module.
    ("VThreadDemoUnsafe maybe", r"VThreadDemoUnsafe must be On or Off"),
    ('<Location "/x">\nVThreadDemoUnsafe On\n</Location>',
     r"VThreadDemoUnsafe not allowed in <Location> context"),
    ("VThreadDemoBackend 127.0.0.1", r"VThreadDemoBackend: '127.0.0.1' is "
     r"not host:port"),
    ("VThreadDemoBackend :80", r"VThreadDemoBackend: ':80' is not host:port"),
    ("VThreadDemoBackend [fe80::1%eth0]:80",
     r"VThreadDemoBackend: '\[fe80::1%eth0\]:80' is not host:port"),
    ("VThreadDemoBackend no.such.host.invalid:80",
     r"VThreadDemoBackend: cannot resolve 'no.such.host.invalid'"),
]

GOOD = [
    "VThreadStackSize 16K", "VThreadStackSize 64M", "VThreadStackSize 64MB",
    "VThreadStackSize 256k", "VThreadStackSize 20000",
    "VThreadCarriers 256", "VThreadCarriers AUTO", "VThreadCarriers 08",
    "VThreadMaxFibers 4294967295", "VThreadOverflow INLINE",
    "VThreadPinnedWarn OFF", "VThreadPinnedWarn 1mi", "VThreadPinnedWarn 2h",
    "VThreadHandler on", "VThreadDemoUnsafe On", "VThreadDemoUnsafe Off",
    '<Directory "/">\nVThreadHandler On\n</Directory>',
]


@pytest.mark.parametrize("snippet,message", BAD,
                         ids=[b[0].replace("\n", " ") for b in BAD])
def test_bad_directive_value_is_refused(tmp_httpd, snippet, message):
    h = tmp_httpd(extra=snippet)
    rc, out = h.check_config()
    assert rc != 0, "apache2 -t accepted %r:\n%s" % (snippet, out)
    m = re.search(r"Syntax error on line (\d+) of [^\n]*:\n(.*)", out)
    assert m, out
    assert int(m.group(1)) == line_of(h.config_text(), snippet), out
    assert re.search(message, m.group(2)), (
        "message %r does not match %r" % (m.group(2), message))


@pytest.mark.parametrize("line", GOOD, ids=[g.replace("\n", " ")
                                            for g in GOOD])
def test_boundary_value_is_accepted(tmp_httpd, line):
    rc, out = tmp_httpd(extra=line).check_config()
    assert rc == 0 and "Syntax OK" in out, out


# ------------------------------------------------------------- queries

def q(s):
    return urllib.parse.quote(s, safe="")


ABSURD = [
    # echo-id: ms like sleep's, and its header.
    "/echo-id?ms=-1", "/echo-id?ms=60001", "/echo-id?ms=", "/echo-id?ms=1e3",
    "/echo-id?ms=" + "9" * 40, "/echo-id?ms=%00",
    # cpu
    "/cpu?n=", "/cpu?n=-1", "/cpu?n=1e3", "/cpu?n=" + "9" * 40,
    "/cpu?n=%2B5", "/cpu?n=5%00",
    # big
    "/big?kb=", "/big?kb=1e3", "/big?kb=" + "9" * 40, "/big?kb=0x10",
    "/big?kb=1&chunked=", "/big?kb=1&chunked=-1", "/big?kb=1&chunked=yes",
    # sleep: more syntaxes than test_demo_handlers tries
    "/sleep?ms=%2D1", "/sleep?ms=1%20", "/sleep?ms=%", "/sleep?ms=%4",
    "/sleep?ms=1&ms=99999999",
    # fetch and fanout paths
    "/fetch?path=" + q("/" + "a" * 2100), "/fetch?path=" + q("/a\x00b"),
    "/fetch?path=" + q("/a\x7fb"), "/fetch?path=" + q("/\xe9"),
    "/fanout?a=/ok&b=" + q("relative"), "/fanout?a=" + q("/a b"),
    # poll
    "/poll?topic=" + q("\x00"), "/poll?topic=ok&timeout=" + "9" * 40,
    "/poll?topic=ok&timeout=-5",
    # test-only handlers, enabled here: ranges still apply
    "/spin?ms=10001", "/spin?ms=-1", "/spin?ms=1&after=60001",
    "/recurse?depth=0", "/recurse?depth=1000001", "/recurse?depth=x",
]


@pytest.fixture(scope="module")
def httpd():
    with running(name="badquery", extra=UNSAFE) as h:
        yield h


@pytest.mark.parametrize("path", ABSURD)
def test_absurd_query_is_answered_400(httpd, path):
    r = httpd.get(path)
    assert r.status == 400, (path, r.status, r.text[:200])


def test_duplicate_parameter_last_one_wins_within_range(httpd):
    r = httpd.get("/sleep?ms=99999999&ms=5")
    assert r.status == 200 and r.text == "slept 5 ms\n"
    # Escaped digits are digits.
    r = httpd.get("/sleep?ms=%31%30")
    assert r.status == 200 and r.text == "slept 10 ms\n"


def test_echo_id_takes_odd_ids_verbatim(httpd):
    for rid in ("x" * 8000, "ünïcödé".encode().decode("latin-1"),
                "a;b=c, d", "<script>"):
        r = httpd.get("/echo-id", headers={"X-Request-Id": rid})
        assert r.status == 200 and r.body == (rid + "\n").encode("latin-1")
    # Over LimitRequestFieldSize (8190): core refuses it, as for any URL.
    r = httpd.get("/echo-id", headers={"X-Request-Id": "y" * 9000})
    assert r.status == 400


def test_wrong_methods_on_test_only_handlers(httpd):
    for path in ("/spin?ms=1", "/recurse?depth=1"):
        r = httpd.get(path, method="POST", body=b"x")
        assert r.status == 405 and "GET" in r.header("Allow", ""), path


def test_server_still_serves_after_the_absurd_queries(httpd):
    for path in ABSURD[:5]:
        httpd.get(path)
    assert httpd.get("/sleep?ms=1").status == 200
    assert httpd.get("/recurse?depth=3").status == 200
    why = vthread_busy(httpd.port, timeout=10)
    assert not why, why


# ------------------------------------------------------ backend replies

# Replies of a misbehaving backend to vthread-fetch, by request path: each
# is answered 502 (a relayed Content-Type with a control character would
# otherwise make httpd itself refuse the header with a 500, AH02430).
BAD_REPLIES = {
    "/ctl-cr": b"HTTP/1.1 200 OK\r\nContent-Type:\rinjected: yes\r\n\r\nx",
    "/ctl-mid": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\x01x\r\n\r\nx",
    "/ctl-split": b"HTTP/1.1 200 OK\r\nContent-Type: a\rSet-Cookie: x=1\r\n"
                  b"\r\nx",
    "/garbage": b"\x00\xff not http at all\r\n\r\n",
    "/no-blank-line": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
    "/status-99": b"HTTP/1.1 099 Low\r\n\r\nx",
    "/status-600": b"HTTP/1.1 600 High\r\n\r\nx",
    "/status-short": b"HTTP/1.1 20\r\n\r\n",
    "/http2": b"HTTP/2 200\r\n\r\nx",
    "/empty": b"",
    "/too-big": b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * (8 * 1024 * 1024 + 1),
}


@pytest.fixture(scope="module")
def bad_backend():
    import socket
    import threading

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def one(c):
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                d = c.recv(65536)
                if not d:
                    return
                req += d
            path = req.split(b" ")[1].decode()
            c.sendall(BAD_REPLIES.get(path, b"HTTP/1.1 200 OK\r\n\r\nok"))
        except OSError:
            pass
        finally:
            c.close()

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture(scope="module")
def bad_backend_httpd(bad_backend):
    with running(name="badbackend", extra="VThreadDemoBackend "
                 "127.0.0.1:%d\n" % bad_backend) as h:
        yield h


@pytest.mark.parametrize("path", sorted(BAD_REPLIES))
def test_misbehaving_backend_is_answered_502(bad_backend_httpd, path):
    h = bad_backend_httpd
    r = h.get("/fetch?path=" + path)
    assert r.status == 502, (path, r.status, r.text[:200])
    assert h.get("/fanout?a=/fine&b=" + path).status == 502
    assert "AH02430" not in h.error_log(), h.logs(5)
