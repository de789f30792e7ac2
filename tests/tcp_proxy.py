"""A TCP proxy on loopback that a test can cut: the fault a network or server outage makes.

`cut()` resets every open connection and makes new ones fail at once (accepted, then reset);
`restore()` forwards again. Put it in front of moto's S3 server or PostgreSQL to fail a run at
an exact moment of the publish protocol (with `etl_project.failpoints.arm`).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target_host:target_port` until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._generation = 0  # a cut ends every connection of the generations before it
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self.cut()
        self._thread.join(5)

    def cut(self) -> None:
        """Reset every open connection; new ones are reset as soon as they arrive."""
        self._cut.set()
        with self._lock:
            self._generation += 1
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def restore(self) -> None:
        self._cut.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
                generation = self._generation
            threading.Thread(
                target=self._pump, args=(client, upstream, generation), daemon=True
            ).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, generation: int) -> None:
        selector = selectors.DefaultSelector()
        peers = {client: upstream, upstream: client}
        for sock in peers:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        try:
            while generation == self._generation and not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    peers[sock].setblocking(True)
                    try:
                        peers[sock].sendall(data)
                    except OSError:
                        return
                    finally:
                        with contextlib.suppress(OSError):
                            peers[sock].setblocking(False)
        finally:
            selector.close()
            cut = generation != self._generation
            with self._lock:
                for sock in peers:
                    self._open.discard(sock)
                    if cut:
                        _reset(sock)
                    else:  # a normal end (one side closed): close gracefully, data was sent
                        with contextlib.suppress(OSError):
                            sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
