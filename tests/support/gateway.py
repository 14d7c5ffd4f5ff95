"""An HTTP proxy in front of PostgREST, as Supabase's gateway is, whose answers a test can change."""

from __future__ import annotations

import http.server
import threading

import httpx

# What the gateway does not pass on: its own connection's headers.
HOP_BY_HOP = frozenset({"host", "content-length", "connection", "accept-encoding", "transfer-encoding"})
UNREACHABLE = b'{"message":"the gateway could not reach the API"}'


class Gateway:
    """Passes every POST on to `upstream` and its answer back (502 while PostgREST is down), counting the
    statuses it answered in `answered`. A subclass may answer a call itself (`refuse`) or change the answer it
    passes back (`rewrite`)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.answered: dict[int, int] = {}
        self.lock = threading.Lock()
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, content = gateway.refuse(self.path), UNREACHABLE
                if status is None:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    try:
                        answer = gateway.upstream.post(self.path, content=body, headers=headers)
                        status, content = answer.status_code, answer.content
                    except (httpx.TransportError, RuntimeError):  # PostgREST stopped; the gateway closing
                        status = 502
                status, content = gateway.rewrite(self.path, status, content)
                with gateway.lock:
                    gateway.answered[status] = gateway.answered.get(status, 0) + 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def refuse(self, path: str) -> int | None:
        """A status to answer this call with instead of passing it on; None passes it on."""
        return None

    def rewrite(self, path: str, status: int, content: bytes) -> tuple[int, bytes]:
        """The answer to pass back for what PostgREST (or the gateway) answered."""
        return status, content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()
