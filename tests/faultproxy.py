"""A TCP proxy on 127.0.0.1 that can lose the reply to one request.

Armed with a request method (``PUT``, ``POST``), it forwards the next request
that starts with that method to the server in full, then swallows the server's
reply and closes the client's connection: the write happened, the client
never heard. This is how a conditional write's lost reply looks on the wire.
Plain sockets and threads, so that closing it closes everything.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class LostReplyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed: bytes | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, method: str) -> None:
        """Lose the reply of the next request with this method."""
        self.armed = method.encode() + b" "

    def __enter__(self) -> LostReplyProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        with self._lock:
            socks = [self._listener, *self._sockets]
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            doomed = threading.Event()
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._upstream, client, server, doomed)
            self._spawn(self._downstream, server, client, doomed)

    def _upstream(
        self, client: socket.socket, server: socket.socket, doomed: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                armed = self.armed
                if armed is not None and data.startswith(armed):
                    self.armed = None
                    doomed.set()
                server.sendall(data)
        self._close(client, server)

    def _downstream(
        self, server: socket.socket, client: socket.socket, doomed: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if doomed.is_set():
                    self.dropped += 1
                    break
                client.sendall(data)
        self._close(client, server)

    def _close(self, *socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
