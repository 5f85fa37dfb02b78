"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of the test S3 server (test support code).

Each request is read whole from the client, then, by the rules in force, either answered `503 SlowDown`
without reaching the server, or forwarded and its answer delayed, cut in the middle of the body with a TCP
reset, or lost entirely after the server applied it (reset before any byte of the answer). `set_down(True)`
makes the proxy refuse connections (a dead endpoint); `S3Backend.restart()` in conftest restarts the real
server behind it. Counters record every fault injected.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    raw: bytes

    @property
    def is_complete_upload(self) -> bool:
        return self.method == "POST" and "uploadId=" in self.target

    @property
    def is_create_upload(self) -> bool:
        return self.method == "POST" and "uploads" in self.target.split("?", 1)[-1].split("&")

    @property
    def is_upload_part(self) -> bool:
        return self.method == "PUT" and "partNumber=" in self.target


@dataclass
class Rule:
    """A fault: `action` is reset (cut mid-body), drop (answer lost after the server applied the request),
    slowdown (503 without forwarding) or delay (answer held `seconds`). It applies to requests that `match`,
    with `probability` or on `every` Nth one, at most `limit` times (None: unlimited)."""

    action: str
    probability: float = 1.0
    match: Callable[[Request], bool] | None = None
    limit: int | None = None
    seconds: float = 0.0
    every: int = 0  # instead of a probability: the Nth, 2Nth, ... matching request (after `offset` of them)
    offset: int = 0
    used: int = 0
    seen: int = 0


@dataclass
class Counters:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.faults.values())


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (not a FIN), as a crashed server or a middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Conn:
    """Buffered reads of HTTP messages from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 16)
        if not data:
            return False
        self.buf += data
        return True

    def read_until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self._fill():
                return None
        idx = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("peer closed mid-message")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_chunked(self) -> bytes:
        out = b""
        while True:
            line = self.read_until(b"\r\n")
            if line is None:
                raise ConnectionError("peer closed mid-chunk")
            out += line
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = self.read_until(b"\r\n")
                    if trailer is None:
                        raise ConnectionError("peer closed in trailers")
                    out += trailer
                    if trailer == b"\r\n":
                        return out
            out += self.read_exact(size + 2)

    def read_to_close(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _with_header(head: bytes, name: str, value: str | None) -> bytes:
    """The message head with header `name` replaced by `value` (removed when None)."""
    lines = [line for line in head[:-4].split(b"\r\n") if not line.lower().startswith(name.lower().encode() + b":")]
    if value is not None:
        lines.append(f"{name}: {value}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _read_body(conn: _Conn, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return conn.read_chunked()
    length = int(headers.get("content-length", "0") or 0)
    return conn.read_exact(length) if length else b""


class FaultProxy:
    """Listens on 127.0.0.1:`port` (free if 0) and forwards to 127.0.0.1:`upstream_port` with faults."""

    def __init__(self, upstream_port: int, port: int = 0, seed: int = 0):
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.rules: list[Rule] = []
        self.counters = Counters()
        self.lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self.port = port
        self._listen()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control --------------------------------------------------------------------------------------------

    def set_rules(self, *rules: Rule) -> None:
        with self.lock:
            self.rules = list(rules)

    def clear(self) -> None:
        self.set_rules()

    def set_down(self, down: bool) -> None:
        """Down: stop listening and reset every open connection (the endpoint is dead); up: listen again."""
        if down:
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
                listener.close()
            with self.lock:
                clients = list(self._clients)
            for sock in clients:
                _reset(sock)
        elif self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stop.set()
        self.set_down(True)

    # -- serving --------------------------------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _choose(self, request: Request) -> Rule | None:
        with self.lock:
            self.counters.requests += 1
            for rule in self.rules:
                if rule.limit is not None and rule.used >= rule.limit:
                    continue
                if rule.match is not None and not rule.match(request):
                    continue
                rule.seen += 1
                if rule.every:
                    hit = rule.seen > rule.offset and (rule.seen - rule.offset) % rule.every == 0
                else:
                    hit = self.rng.random() < rule.probability
                if hit:
                    rule.used += 1
                    self.counters.faults[rule.action] = self.counters.faults.get(rule.action, 0) + 1
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        conn = _Conn(client)
        try:
            while True:
                head = conn.read_until(b"\r\n\r\n")
                if head is None:
                    return
                first, headers = _parse_head(head)
                method, target = first.split(" ")[:2]
                if headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = _with_header(head, "Expect", None)
                body = _read_body(conn, headers)
                request = Request(method, target, headers, _with_header(head, "Connection", "close") + body)
                rule = self._choose(request)
                if rule is not None and rule.action == "slowdown":
                    client.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(SLOWDOWN_BODY)}\r\n\r\n".encode()
                        + SLOWDOWN_BODY
                    )
                    continue
                answer_head, answer_body = self._forward(request)
                if answer_head is None:
                    _reset(client)  # the server is down: the client sees a dead connection
                    return
                if rule is not None and rule.action == "delay":
                    time.sleep(rule.seconds)
                if rule is not None and rule.action == "drop":
                    _reset(client)
                    return
                if rule is not None and rule.action == "reset":
                    client.sendall(answer_head + answer_body[: len(answer_body) // 2])
                    _reset(client)
                    return
                client.sendall(answer_head + answer_body)
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            with self.lock:
                self._clients.discard(client)
            with contextlib.suppress(OSError):
                client.close()

    def _forward(self, request: Request) -> tuple[bytes | None, bytes]:
        """Send one request to the server on a fresh connection and read its whole answer."""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=120)
        except OSError:
            return None, b""
        try:
            upstream.sendall(request.raw)
            conn = _Conn(upstream)
            head = conn.read_until(b"\r\n\r\n")
            if head is None:
                return None, b""
            status_line, headers = _parse_head(head)
            status = int(status_line.split(" ")[1])
            if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                body = b""
            elif "transfer-encoding" in headers or "content-length" in headers:
                body = _read_body(conn, headers)
            else:
                body = conn.read_to_close()
            return _with_header(head, "Connection", None), body
        except (OSError, ConnectionError, ValueError):
            return None, b""
        finally:
            upstream.close()
