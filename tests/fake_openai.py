"""A scriptable fake OpenAI chat-completions server, over real HTTP on 127.0.0.1.

Each POST /v1/chat/completions takes the next behaviour from a queue (or the default responder
when the queue is empty) and records the request (path, headers, JSON body, arrival time).
A behaviour is a `Reply`, or a callable taking the request body and returning one.
Hangs wait on the server's stop event, so every handler ends by itself when the server stops.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (cut short when the server stops)


Behaviour = "Reply | Callable[[dict], Reply]"


def completion(text: str | None) -> bytes:
    return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}]}).encode()


def ok(text: str, delay: float = 0.0) -> Reply:
    return Reply(200, completion(text), delay=delay)


def status(code: int, message: str = "fake error", retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = json.dumps({"error": {"message": message, "type": "fake", "code": code}}).encode()
    return Reply(code, body, headers)


def hang(seconds: float = 2.0) -> Reply:
    """Answer only after `seconds` (past the client's timeout), or never if the server stops."""
    return Reply(200, completion("too late"), delay=seconds)


def malformed(body: bytes = b"<html>upstream gateway glitch</html>") -> Reply:
    return Reply(200, body, {"Content-Type": "text/html"})


def no_content() -> Reply:
    return Reply(200, json.dumps({"choices": []}).encode())


def refuse_rewrite() -> Reply:
    return ok("I'm sorry, but I can't help with rewriting content about that request.")


def echo(body: dict) -> Reply:
    return ok("echo: " + str(body["messages"][-1]["content"]))


class FakeOpenAI:
    def __init__(self, default: Callable[[dict], Reply] = echo) -> None:
        self.default = default
        self.queue: deque = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def push(self, *behaviours: Any) -> FakeOpenAI:
        with self._lock:
            self.queue.extend(behaviours)
        return self

    def _next(self, body: dict) -> Reply:
        with self._lock:
            b = self.queue.popleft() if self.queue else self.default
        return b(body) if callable(b) else b

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append({"path": h.path, "headers": dict(h.headers.items()), "body": body,
                                  "time": time.monotonic()})
        try:
            if h.path.split("?")[0] != "/v1/chat/completions":
                reply = status(404, f"no route {h.path}")
            else:
                reply = self._next(body)
            if reply.delay:
                self._stop.wait(reply.delay)
        finally:
            # Counted out before the reply is written: a client that has read it may send its next
            # request at once, and counting after the write saw 3 in flight under a bound of 2.
            with self._lock:
                self.in_flight -= 1
        if self._stop.is_set():
            return
        try:
            h.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(reply.body)))
            h.end_headers()
            h.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): expected for hangs

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def fake_server():
    with FakeOpenAI() as server:
        yield server
