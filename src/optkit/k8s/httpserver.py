"""A bounded HTTP/1.1 server for the extender: every limit a network-facing service needs, stdlib only.

- one `send` per response (status line, headers and body written together) with TCP_NODELAY, so
  that a keep-alive client never waits for Nagle's algorithm and a delayed ACK;
- a request body larger than `Limits.max_body` is answered 413 without being read, and the
  connection closed; a body of unknown length (chunked) gets 411; a body is always read whole
  before the answer, or the connection is closed, so that it can never be read as a request;
- `Limits.read_timeout`: the whole request (line, headers, body) must arrive within it once its
  first byte has; `Limits.idle_timeout`: how long a keep-alive connection may wait for its next
  request; `Limits.write_timeout`: how long a client may take to accept an answer;
- `Limits.workers` connections are served at once by a fixed pool of threads; one more is
  answered 503 and closed at once (plain HTTP) or closed (TLS);
- TLS through the stdlib `ssl` module, the handshake done in the worker under the read timeout.

The application is one function `(method, path, body) -> Response`; it never sees the socket.
"""

from __future__ import annotations

import io
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_body: int = 16 * MiB  # bytes; larger requests get 413
    read_timeout: float = 10.0  # seconds for one whole request once it has started
    idle_timeout: float = 60.0  # seconds a keep-alive connection may wait for its next request
    write_timeout: float = 10.0  # seconds for the client to take one answer
    workers: int = 32  # connections served at once


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


App = Callable[[str, str, bytes], Response]


class _DeadlineReader(io.RawIOBase):
    """Socket reads under two clocks: the idle wait for a request, then its read deadline."""

    def __init__(self, sock: socket.socket, limits: Limits):
        self.sock, self.limits = sock, limits
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def next_request(self) -> None:
        self.deadline = None

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            timeout = self.limits.idle_timeout
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("request not received within the read timeout")
        self.sock.settimeout(timeout)
        n = self.sock.recv_into(buffer)
        if n and self.deadline is None:
            self.deadline = time.monotonic() + self.limits.read_timeout
        return n


class _Writer:
    """`wfile`: each write is one `sendall` under the write timeout."""

    closed = False

    def __init__(self, sock: socket.socket, limits: Limits):
        self.sock, self.limits = sock, limits

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> int:
        self.sock.settimeout(self.limits.write_timeout)
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BoundedHTTPServer

    def setup(self) -> None:
        self.connection = self.request
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection, self.server.limits)
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)
        self.wfile = _Writer(self.connection, self.server.limits)

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: metrics count the calls
        pass

    def handle_one_request(self) -> None:
        self._reader.next_request()
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        if self._declared_length() is None:
            return False
        return super().handle_expect_100()

    def _dispatch(self) -> None:
        length = self._declared_length()
        if length is None:
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return
        try:
            answer = self.server.app(self.command, self.path, body)
        except Exception as e:  # noqa: BLE001 - a bug answers 500, the server goes on
            answer = Response(500, f"internal error: {type(e).__name__}\n".encode(), "text/plain")
        self.send(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _declared_length(self) -> int | None:
        """The body's length, or None after answering why it will not be read (and closing)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "a body needs a Content-Length")
            return None
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return 0
        value = next(iter(values))
        if len(values) > 1 or not (value.isascii() and value.isdigit()):
            self._refuse(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            return None
        length = int(value[:19]) if len(value) <= 19 else 1 << 63  # no 4,300-digit int
        if length > self.server.limits.max_body:
            self.server.on_reject("too_large")
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes over the limit of {self.server.limits.max_body}",
            )
            return None
        return length

    def _refuse(self, status: HTTPStatus, why: str) -> None:
        self.close_connection = True
        self.send(Response(status, (why + "\n").encode(), "text/plain; charset=utf-8"))
        self.server.linger(self.connection)

    def send(self, answer: Response) -> None:
        """Status line, headers and body in one write."""
        try:
            phrase = HTTPStatus(answer.status).phrase
        except ValueError:
            phrase = ""
        head = [
            f"HTTP/1.1 {answer.status} {phrase}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
        ]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + (answer.body if self.command != "HEAD" else b""))


class BoundedHTTPServer(socketserver.TCPServer):
    """`app` behind the limits of `Limits`, optionally over TLS (`ssl_context`, server side)."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        limits: Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_reject: Callable[[str], None] | None = None,
    ):
        self.app, self.limits = app, limits or Limits()
        self.ssl_context = ssl_context
        self.on_reject = on_reject or (lambda reason: None)
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="optkit-http")
        self._open: set[socket.socket] = set()  # connections being served, closed on stop
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.on_reject("busy")
            self._busy(request)
            return
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            if self.ssl_context is not None:
                request.settimeout(self.limits.read_timeout)
                raw, request = request, self.ssl_context.wrap_socket(request, server_side=True)
                with self._open_lock:
                    self._open.discard(raw)
                    self._open.add(request)
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001, S110 - a client that went away, a failed handshake
            pass
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)
            self._slots.release()

    def _busy(self, request: socket.socket) -> None:
        try:
            if self.ssl_context is None:
                request.setblocking(False)
                request.send(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    @staticmethod
    def linger(sock: socket.socket, seconds: float = 0.5, most: int = 1 * MiB) -> None:
        """Before closing on an unread body: stop sending, and discard what the client is still
        sending for a moment (bounded), so that it reads our answer rather than a reset."""
        try:
            sock.shutdown(socket.SHUT_WR)
            end, seen = time.monotonic() + seconds, 0
            while seen < most and (left := end - time.monotonic()) > 0:
                sock.settimeout(left)
                chunk = sock.recv(64 * 1024)
                if not chunk:
                    break
                seen += len(chunk)
        except (OSError, ValueError):
            pass

    def server_close(self) -> None:
        """Stop: close the listening socket and every open connection, so that no worker
        waits out its idle timeout (the interpreter joins the pool's threads at exit)."""
        super().server_close()
        with self._open_lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._pool.shutdown(wait=False, cancel_futures=True)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """Server-side TLS (1.2 or later) with the certificate chain and key of these PEM files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
