"""A loopback HTTP server for the tests: serves bytes from memory on 127.0.0.1 (port 0: the OS picks a free one).

`LoopbackServer` runs in a daemon thread and can misbehave on purpose (modes below), so tests of
`drmoe_repro.data.fetch` can cut, stall or hang a download. `serve_files` serves whole files, e.g. the miniature
real-format archives of tests/realformat.py, as the URLs of asset specs.

Only the standard library is used; nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections import Counter, defaultdict
from pathlib import Path

# urllib honours these; a proxy must not stand between a client and the loopback server (clear them in a test).
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")

class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv: LoopbackServer = self.server.owner
        with srv.lock:
            srv.hits[self.path] += 1
            hit = srv.hits[self.path]
            srv.ranges[self.path].append(self.headers.get("Range"))
        route = srv.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        data, mode = route
        if mode == "hang":
            # Accept the connection, read the request, then say nothing (bounded, so the thread always ends).
            srv.stop.wait(10)
            self.close_connection = True
            return
        start = 0
        header = self.headers.get("Range")
        if header and mode in ("ok", "cut_once", "stall_once", "no_length", "cut_once_no_length"):
            start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if mode.endswith("no_length"):
            self.close_connection = True  # HTTP/1.0 without a length: the body ends where the connection closes
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "stall_once" and hit == 1:
            # Send half, then go quiet with the connection open: a stalled transfer, not a closed one.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            srv.stop.wait(3)
            self.close_connection = True
            return
        if mode.startswith("cut_once") and hit == 1:
            # Announce the whole length (or none), send half, hang up: a dropped connection, as the client sees it.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class LoopbackServer:
    """Serves `routes` {path: (bytes, mode)}.

    Modes: ok (honours Range), cut_once (first answer hangs up after half), stall_once (first answer goes quiet
    after half), cut_once_ignore_range, ignore_range (always 200 with the whole file), hang (never answers),
    no_length (honours Range, sends no Content-Length) and cut_once_no_length (both: the first answer's cut cannot
    be told from the end of the file).

    `lifetime`: seconds after `start` at which the server closes itself, a safety net for a test that never tears it
    down; a test that downloads for longer (an end-to-end run) passes more.
    """

    def __init__(self, lifetime: float = 60) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: Counter[str] = Counter()
        self.ranges: defaultdict[str, list[str | None]] = defaultdict(list)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.safety = threading.Timer(lifetime, self.close)  # stops by itself even if a test never tears down
        self.safety.daemon = True

    def start(self) -> "LoopbackServer":
        self.thread.start()
        self.safety.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.safety.cancel()
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self, path: str, data: bytes, mode: str = "ok") -> str:
        self.routes[path] = (data, mode)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def serve_files(server: LoopbackServer, files: dict[str, Path], mode: str = "ok") -> dict[str, str]:
    """Serve each file (read into memory) at ``/<name>/<file name>``; return {name: its URL}.

    The URL ends with the file's own name, as the real hosts' URLs do (``.../zips/train2014.zip``), so a spec
    without a `filename` still gets the right one. `mode` is one of `LoopbackServer`'s modes, for every file.
    """
    urls = {}
    for name, path in files.items():
        path = Path(path)
        urls[name] = server.serve(f"/{name}/{path.name}", path.read_bytes(), mode)
    return urls
