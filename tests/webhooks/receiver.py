"""A real HTTP endpoint for webhook tests: http.server on a free port, in a thread.

with Receiver(statuses=[500, 500, 200]) as receiver:   # answers in turn, then the last
    ... receiver.url ... receiver.requests
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (epoch seconds)


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=lambda: [200])
    path: str = "/hooks"
    requests: list[Received] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://127.0.0.1:{port}{self.path}"

    def _answer(self) -> int:
        with self._lock:
            index = min(len(self.requests) - 1, len(self.statuses) - 1)
            return self.statuses[index]

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(path=self.path, headers=dict(self.headers.items()), body=body)
                    )
                status = receiver._answer()
                payload = b'{"ok": true}' if status < 300 else b"not today"
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
