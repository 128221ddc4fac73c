"""A small OpenAI-compatible HTTP server on loopback, for tests of the ``openai`` backend.

It answers deterministically (``answer_for(content)``), so a test can check that every record
got the answer to its own instruction, and it logs every request, so a test can check that no
call was made twice. ``fault(content, attempt)`` makes chosen requests fail the way real
endpoints do: an HTTP status with headers (429 + Retry-After, 500, 400), a slow answer past the
client's timeout, a dropped connection, or a malformed body. This is a test double for the far
side of the wire only: the client under test is the real CLI with the real ``openai`` SDK.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def answer_for(content: str) -> str:
    return "answer " + hashlib.sha256(content.encode()).hexdigest()[:12]


@dataclass
class Fault:
    """``kind``: "status" (send ``status``/``body``/``headers``), "slow" (sleep ``delay``, then
    answer), "drop" (close the socket without a response) or "malformed" (200, broken JSON)."""

    kind: str
    status: int = 500
    body: dict = field(default_factory=lambda: {"error": {"message": "injected", "type": "server_error"}})
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class OpenAIServer:
    """``reply(body)`` (optional) writes the answer to a request instead of ``answer_for``: a text,
    or (text, usage dict); ``delay`` may be a number or a callable giving seconds per request.
    The response names the model as ``served_as`` maps the requested one (default: as requested),
    and carries ``system_fingerprint`` when it is set, as OpenAI's do: change them between runs to
    stand for a new version of the model behind the same name."""

    def __init__(self, api_key: str = "test-key", delay: float | Callable = 0.0, fault: Callable | None = None,
                 reply: Callable | None = None):
        self.api_key, self.delay, self.fault, self.reply = api_key, delay, fault, reply
        self.served_as: dict[str, str] = {}
        self.system_fingerprint: str | None = None
        self.requests: list[dict] = []
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "teacher", "object": "model"}]})
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                auth = self.headers.get("Authorization") or f"Bearer {self.headers.get('api-key')}"
                if auth != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
                chat = "/chat/completions" in self.path
                content = body["messages"][-1]["content"] if chat else body["prompt"]
                with server.lock:
                    server.attempts[content] += 1
                    attempt = server.attempts[content]
                    server.requests.append({"path": self.path, "content": content, "body": body, "time": time.time(),
                                            "auth": auth})
                delay = server.delay() if callable(server.delay) else server.delay
                if delay:
                    time.sleep(delay)
                f = None
                if server.fault is not None:
                    nargs = len(inspect.signature(server.fault).parameters)
                    f = server.fault(content, attempt) if nargs == 2 else server.fault(content)
                if isinstance(f, tuple):
                    return self._send(*f)
                if isinstance(f, Fault):
                    if f.kind == "status":
                        return self._send(f.status, f.body, f.headers)
                    if f.kind == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if f.kind == "malformed":
                        return self._send(200, b'{"id": "cmpl-1", "choices": [{"index": 0, "mess')
                    if f.kind == "slow":
                        time.sleep(f.delay)
                text = answer_for(content)
                length = body.get("max_tokens", 512) < 2
                usage = {"prompt_tokens": len(content.split()), "completion_tokens": 2, "total_tokens": len(content.split()) + 2}
                if server.reply is not None:
                    got = server.reply(body)
                    text, custom = got if isinstance(got, tuple) else (got, None)
                    usage = {**usage, **(custom or {})}
                if chat:
                    choice = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "length" if length else "stop"}
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "length" if length else "stop"}
                    obj = "text_completion"
                try:
                    extra = {"system_fingerprint": server.system_fingerprint} if server.system_fingerprint else {}
                    self._send(200, {"id": "cmpl-1", "object": obj, "created": int(time.time()),
                                     "model": server.served_as.get(body.get("model"), body.get("model")),
                                     "choices": [choice], "usage": usage, **extra})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the slow answer came

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "OpenAIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def contents(self) -> list[str]:
        with self.lock:
            return [r["content"] for r in self.requests]
