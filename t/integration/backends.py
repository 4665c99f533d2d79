"""Backends the transparent-mode tests start: small servers on 127.0.0.1,
each on a free port, in threads of the test process, stopped by the test.

- SlowHTTP: HTTP/1.1 with keep-alive; GET /any?delay=S&id=X waits S
  seconds and answers "id=X path=/any\\n". /hangup closes without an
  answer, /reset resets the connection, /garbage answers bytes that are
  not HTTP.
- SlowHTTPS: the same over TLS (a PEM certificate and key).
- FastCGIResponder: FastCGI over TCP (FCGI_KEEP_CONN honoured); answers
  "fcgi id=X script=SCRIPT_NAME\n" after QUERY_STRING's delay=S.
- WebSocketEcho: the upgrade handshake, then "echo:" + each text or
  binary frame; ws_frame / ws_read_frame are the frame codec for clients.
"""
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        delay = float(q.get("delay", ["0"])[0])
        self.server.count_request(url.path)
        if delay:
            time.sleep(delay)
        if url.path.endswith("/hangup"):
            self.close_connection = True
            return
        if url.path.endswith("/reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            return
        if url.path.endswith("/garbage"):
            self.wfile.write(b"\x00\x01this is not http\r\n\r\n")
            self.close_connection = True
            return
        body = ("id=%s path=%s\n" % (q.get("id", [""])[0],
                                     url.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SlowHTTP(ThreadingHTTPServer):
    """The slow HTTP backend; use as a context manager."""
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self):
        super().__init__((HOST, 0), _SlowHandler)
        self.port = self.server_address[1]
        self.lock = threading.Lock()
        self.requests = 0
        self.connections = 0
        self.errors = 0
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def handle_error(self, request, client_address):
        # A client (httpd) that went away first, e.g. after its
        # ProxyTimeout: counted, not printed.
        with self.lock:
            self.errors += 1

    def count_request(self, path):
        with self.lock:
            self.requests += 1

    def get_request(self):
        conn = super().get_request()
        with self.lock:
            self.connections += 1
        return conn

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class SlowHTTPS(SlowHTTP):
    """SlowHTTP over TLS (certfile/keyfile: a PEM pair). Each connection's
    handshake runs on its own handler thread, so a slow one holds up no
    other."""

    def __init__(self, certfile, keyfile):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.handshakes = 0
        super().__init__()

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except OSError:
            return
        with self.lock:
            self.handshakes += 1
        super().finish_request(request, client_address)


# ------------------------------------------------------------- FastCGI

FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST = 1, 2, 3
FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 4, 5, 6
FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT = 9, 10
FCGI_KEEP_CONN = 1


def _fcgi_record(rtype, rid, content=b""):
    pad = (8 - len(content) % 8) % 8
    return (bytes([1, rtype, rid >> 8, rid & 255, len(content) >> 8,
                   len(content) & 255, pad, 0]) + content + b"\0" * pad)


def _fcgi_pairs(data):
    out, i = {}, 0

    def length():
        nonlocal i
        if data[i] < 128:
            i += 1
            return data[i - 1]
        n = int.from_bytes(data[i:i + 4], "big") & 0x7fffffff
        i += 4
        return n

    while i < len(data):
        nl = length()
        vl = length()
        name = data[i:i + nl].decode("latin-1")
        i += nl
        out[name] = data[i:i + vl].decode("latin-1")
        i += vl
    return out


class _ThreadedTCP:
    """A listening TCP socket on 127.0.0.1 (a free port) whose accepted
    connections each get a thread running self._serve(conn); counts the
    connections. A context manager: leaving it closes the listener."""

    def __init__(self, backlog=1024):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.errors = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()
        self._thread.join(5)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        raise NotImplementedError


class FastCGIResponder(_ThreadedTCP):
    """A threaded FastCGI responder on TCP (one thread per connection, one
    request at a time on each, FCGI_KEEP_CONN honoured). For each request
    it waits delay seconds (QUERY_STRING delay=S) and answers
    "fcgi id=X script=SCRIPT_NAME\\n". Counts requests and connections."""

    def __init__(self, backlog=1024):
        super().__init__(backlog)
        self.requests = 0

    @staticmethod
    def _recv_exact(c, n):
        buf = bytearray()
        while len(buf) < n:
            d = c.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return bytes(buf)

    def _read_record(self, c):
        h = self._recv_exact(c, 8)
        rid = (h[2] << 8) | h[3]
        clen = (h[4] << 8) | h[5]
        content = self._recv_exact(c, clen) if clen else b""
        if h[6]:
            self._recv_exact(c, h[6])
        return h[1], rid, content

    def _serve(self, c):
        c.settimeout(60)
        try:
            while True:
                keep = self._one_request(c)
                if not keep:
                    break
        except (EOFError, OSError):
            pass
        except Exception as e:          # noqa: BLE001 - kept for the test
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()

    def _one_request(self, c):
        params, keep, rid = bytearray(), False, None
        params_done = stdin_done = False
        while not (params_done and stdin_done):
            rtype, r, content = self._read_record(c)
            if rtype == FCGI_GET_VALUES:
                c.sendall(_fcgi_record(FCGI_GET_VALUES_RESULT, 0))
                continue
            if rtype == FCGI_BEGIN_REQUEST:
                rid, keep = r, bool(content[2] & FCGI_KEEP_CONN)
            elif rtype == FCGI_PARAMS:
                if content:
                    params += content
                else:
                    params_done = True
            elif rtype == FCGI_STDIN:
                if not content:
                    stdin_done = True
            elif rtype == FCGI_ABORT_REQUEST:
                return False
        env = _fcgi_pairs(bytes(params))
        q = urllib.parse.parse_qs(env.get("QUERY_STRING", ""))
        delay = float(q.get("delay", ["0"])[0])
        with self.lock:
            self.requests += 1
        if delay:
            time.sleep(delay)
        body = ("fcgi id=%s script=%s\n" % (
            q.get("id", [""])[0], env.get("SCRIPT_NAME", ""))).encode()
        out = (b"Status: 200 OK\r\nContent-Type: text/plain\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        c.sendall(_fcgi_record(FCGI_STDOUT, rid, out)
                  + _fcgi_record(FCGI_STDOUT, rid)
                  + _fcgi_record(FCGI_END_REQUEST, rid, b"\0" * 8))
        return keep


# ------------------------------------------------------------ WebSocket

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept_key(key):
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha1(
        (key + WS_GUID).encode()).digest()).decode()


def ws_frame(payload, opcode=1, mask=True):
    """One final WebSocket frame; clients mask, servers do not."""
    import os
    b0 = 0x80 | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(recv_exact):
    """(opcode, payload) of the next frame; recv_exact(n) reads n bytes."""
    b0, b1 = recv_exact(2)
    n = b1 & 0x7f
    if n == 126:
        n = int.from_bytes(recv_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(8), "big")
    key = recv_exact(4) if b1 & 0x80 else None
    payload = recv_exact(n) if n else b""
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0f, payload


class WebSocketEcho(_ThreadedTCP):
    """A threaded WebSocket echo server: answers the upgrade handshake
    (Sec-WebSocket-Accept), then echoes each text/binary frame as
    "echo:" + payload, answers pings, and closes on a close frame.
    Counts upgrades and echoes; open_count() is the sockets still open."""

    def __init__(self, backlog=1024):
        super().__init__(backlog)
        self.upgrades = 0
        self.echoes = 0
        self.open = 0

    def open_count(self):
        with self.lock:
            return self.open

    def _serve(self, c):
        c.settimeout(120)
        with self.lock:
            self.open += 1
        buf = bytearray()

        def recv_exact(n):
            while len(buf) < n:
                d = c.recv(65536)
                if not d:
                    raise EOFError
                buf.extend(d)
            out = bytes(buf[:n])
            del buf[:n]
            return out

        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    raise EOFError
                buf.extend(d)
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            buf[:] = rest
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            key = headers.get("sec-websocket-key")
            if not key or "websocket" not in headers.get(
                    "upgrade", "").lower():
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n"
                          b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                return
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n\r\n"
                       % ws_accept_key(key)).encode())
            with self.lock:
                self.upgrades += 1
            while True:
                op, payload = ws_read_frame(recv_exact)
                if op == 8:
                    c.sendall(ws_frame(payload[:2], 8, mask=False))
                    return
                if op == 9:
                    c.sendall(ws_frame(payload, 10, mask=False))
                elif op in (1, 2):
                    c.sendall(ws_frame(b"echo:" + payload, op, mask=False))
                    with self.lock:
                        self.echoes += 1
        except (EOFError, OSError):
            pass
        except Exception as e:          # noqa: BLE001 - kept for the test
            with self.lock:
                self.errors.append(repr(e))
        finally:
            with self.lock:
                self.open -= 1
            c.close()
