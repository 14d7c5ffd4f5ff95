"""A TCP proxy that can freeze: a link that silently stops carrying data while every socket stays open. It can
also end the sessions through it with an error of its choice, as a pooler in front of PostgreSQL does.

Frozen, it neither reads nor writes: what a client sends is acknowledged by the kernel and goes nowhere,
and keepalive probes are still answered. That is the hardest partition for a client to notice, harder than
a dropped link (which TCP user timeouts and keepalives catch): only the client's own clock can tell.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo

POLL_SECONDS = 0.05


class FreezableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._cut = threading.Event()
        self._sockets: list[socket.socket] = []
        self._clients: set[socket.socket] = set()
        self._ending: dict[socket.socket, bytes] = {}  # client socket -> the error that ends its session
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def in_front_of(cls, url: str) -> FreezableProxy:
        """A proxy to the server `url` names (127.0.0.1:5432 where it names no host or port)."""
        params = conninfo_to_dict(url)
        return cls(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))

    def url_for(self, url: str) -> str:
        """`url`, reached through this proxy."""
        return make_conninfo(url, port=str(self.port))

    def freeze(self) -> None:
        self._frozen.set()

    def cut(self) -> None:
        """Every connection through it ends, and new ones end at once (until restore())."""
        self._cut.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def end_sessions(self, sqlstate: str, message: str) -> int:
        """Each connection open now ends at its client's next message with a FATAL error of this SQLSTATE and
        message, and is closed: what Supavisor does to a session whose server connection it lost (XX000,
        `(EDBHANDLEREXITED) ...`). Connections made later are not touched. Returns how many were open."""
        fields = b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b"\0M" + message.encode() + b"\0\0"
        error = b"E" + struct.pack("!I", len(fields) + 4) + fields
        with self._lock:
            for client in self._clients:
                self._ending[client] = error
            return len(self._clients)

    def restore(self) -> None:
        self._cut.clear()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
                self._clients.add(client)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._frozen.is_set():
                    self._closed.wait(POLL_SECONDS)
                    continue
                readable, _, _ = select.select([a, b], [], [], POLL_SECONDS)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        ending = self._ending.pop(sock, None) if sock is a else None
                    if ending is not None:
                        a.sendall(ending)
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._clients.discard(a)
                self._ending.pop(a, None)
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


class SilentServer:
    """Takes a port (a stopped server's) and accepts every connection without ever answering: a server that
    is there but does not speak, as one slow to come back can look. Closing it resets what it accepted."""

    def __init__(self, port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def close(self) -> None:
        # A listener closed while a thread waits in accept() keeps the port: shutting it down first ends both.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._accepted:
                with contextlib.suppress(OSError):
                    # A reset, not a clean close: what a client sees when a server process goes away.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._accepted.append(client)
