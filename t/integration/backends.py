"""Backends the transparent-mode tests start: small servers on 127.0.0.1,
each on a free port, in threads of the test process, stopped by the test.

- SlowHTTP: HTTP/1.1 with keep-alive; GET /any?delay=S&id=X waits S
  seconds and answers "id=X path=/any\\n". /hangup closes without an
  answer, /reset resets the connection, /garbage answers bytes that are
  not HTTP.
"""
import socket
import socketserver
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
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)

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
