"""What the protocol peers (ollama_peer.py, openai_peer.py) share: an HTTP server that knows its open
connections, so a peer can cut them as a server taken down mid-request would."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

Peer = TypeVar("Peer")


class PeerServer(ThreadingHTTPServer, Generic[Peer]):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        peer: Peer,
        lock: threading.Lock,
        connections: set[Any],
    ) -> None:
        self.peer = peer
        self._lock, self._connections = lock, connections
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)
