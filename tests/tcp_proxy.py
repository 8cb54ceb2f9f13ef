"""A loopback TCP forwarder that counts the bytes it carries each way (tests and benchmarks)."""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType

log = logging.getLogger(__name__)

BUFFER_BYTES = 1 << 16
ACCEPT_POLL_S = 0.1  # seconds between looks at the closed flag while accepting


class TcpProxy:
    """Accepts on (listen_host, an ephemeral port) and forwards each connection to `target`.

    `up_bytes` counts client → server, `down_bytes` server → client, over all connections.
    A byte is counted when read, before it is passed on, so once a client has its answer every
    byte of the exchange is counted.
    """

    def __init__(
        self,
        target: tuple[str, int],
        listen_host: str = "127.0.0.1",
        buffer_bytes: int | None = None,
    ) -> None:
        """`buffer_bytes`: cap the kernel's socket buffers on the download path, so that a
        slow client slows the server's sending down instead of the proxy holding megabytes."""
        self.target = target
        self._buffer_bytes = buffer_bytes
        self._server = socket.create_server((listen_host, 0))
        self._server.settimeout(ACCEPT_POLL_S)  # so `close` ends the accept loop promptly
        self.host, self.port = self._server.getsockname()[:2]
        self._lock = threading.Lock()
        self._up = 0
        self._down = 0
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def up_bytes(self) -> int:
        with self._lock:
            return self._up

    @property
    def down_bytes(self) -> int:
        with self._lock:
            return self._down

    def reset_counts(self) -> None:
        with self._lock:
            self._up = self._down = 0

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()
        self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            client.settimeout(None)
            if self._buffer_bytes is not None:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._buffer_bytes)
            try:
                upstream = self._connect()
            except OSError as error:
                log.warning("proxy cannot reach %s: %s", self.target, error)
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, up), name="tcp-proxy-pump", daemon=True
                ).start()

    def _connect(self) -> socket.socket:
        if self._buffer_bytes is None:
            return socket.create_connection(self.target, timeout=10)
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._buffer_bytes)
        upstream.settimeout(10)
        upstream.connect(self.target)
        return upstream

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(BUFFER_BYTES):
                with self._lock:
                    if up:
                        self._up += len(data)
                    else:
                        self._down += len(data)
                sink.sendall(data)
        except OSError as error:  # one side went away: close both
            log.debug("proxy connection ended: %s", error)
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("proxy socket already closed")
