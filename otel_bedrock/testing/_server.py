"""Loopback HTTP server machinery shared by the Bedrock and PostHog emulators.

Both emulators answer real clients (boto3, posthog-python) over HTTP/1.1 keep-alive. Two
details keep them fast: every accepted socket gets ``TCP_NODELAY``, and every response is
built as one byte string and written with a single ``sendall``. Without them a client waits
for a delayed ACK (about 40 ms) on each call.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)


def build_response(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """Return the status line, headers and body of an HTTP/1.1 response as one byte string.

    A ``Content-Length`` header is added when ``headers`` has none.
    """
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    has_length = False
    for name, value in headers.items():
        has_length = has_length or name.lower() == "content-length"
        lines.append(f"{name}: {value}")
    if not has_length:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    return head + body


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, TCP_NODELAY, one write per response.

    Called on the server's per-connection thread.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        """Set TCP_NODELAY on the accepted socket and register the connection."""
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        nodelay = self.request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.server.track(self.request, nodelay)

    def finish(self) -> None:
        """Forget the connection once the handler is done with it."""
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        """Send the per-request log line to ``logging`` at DEBUG instead of stderr."""
        logger.debug("%s " + format, self.address_string(), *args)

    def read_body(self) -> bytes:
        """Read the request body, sized by ``Content-Length`` or sent in chunks."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)

        return self.rfile.read(length) if length > 0 else b""

    def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Write a complete response (status line, headers and body) with one write."""
        self.log_request(status, len(body))
        self.wfile.write(build_response(status, headers, body))

    def respond_cut(self, status: int, headers: Mapping[str, str], body: bytes, keep: int) -> None:
        """Announce the whole body but send only its first ``keep`` bytes, then hang up."""
        self.log_request(status, len(body))
        full = build_response(status, headers, body)
        self.wfile.write(full[: len(full) - len(body) + max(0, keep)])
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            logger.debug("socket already closed while cutting a response")


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[QuietHandler], owner: object
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.nodelay: list[bool] = []

    def track(self, sock: socket.socket, nodelay: int) -> None:
        """Record a new connection and the TCP_NODELAY value read back from it."""
        with self._lock:
            self._open.add(sock)
            self.nodelay.append(bool(nodelay))

    def untrack(self, sock: socket.socket) -> None:
        """Forget a finished connection."""
        with self._lock:
            self._open.discard(sock)

    def hang_up_all(self) -> None:
        """Shut down every open connection so that idle keep-alive threads end."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed at shutdown")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a handler failure at DEBUG; a dropped client connection is not news."""
        logger.debug("error while handling a request from %s", client_address, exc_info=True)


class LoopbackServer:
    """Runs a handler class on ``127.0.0.1`` in a daemon thread.

    Args:
        handler: The request handler class; it reaches its owner through ``server.owner``.
        owner: The emulator object that handlers read and write.
        host: Address to bind.
        port: Port to bind; 0 picks a free ephemeral port.
    """

    def __init__(
        self, handler: type[QuietHandler], owner: object, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._handler = handler
        self._owner = owner
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port; raises ``RuntimeError`` before ``start()``."""
        if self._server is None:
            raise RuntimeError("server is not running; call start() first")

        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self._host}:{self.port}"

    @property
    def nodelay(self) -> list[bool]:
        """TCP_NODELAY as read back from each accepted connection, in accept order."""
        return list(self._server.nodelay) if self._server is not None else []

    def start(self) -> None:
        """Bind and start serving in a daemon thread; a second call does nothing."""
        if self._server is not None:
            return
        server = _Server((self._host, self._port), self._handler, self._owner)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{type(self._owner).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("emulator listening on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving, hang up open connections and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.hang_up_all()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None


class EmulatorBase:
    """Lifecycle shared by both emulators: start, stop and use as a context manager."""

    _loop: LoopbackServer

    def start(self) -> Self:
        """Start serving on loopback in a daemon thread and return ``self``."""
        self._loop.start()

        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        self._loop.stop()

    @property
    def port(self) -> int:
        """The port the emulator listens on (after ``start()``)."""
        return self._loop.port

    @property
    def accepted_nodelay(self) -> list[bool]:
        """TCP_NODELAY read back from each accepted connection (for tests of the server)."""
        return self._loop.nodelay

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port that nothing listens on right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]

    return port
