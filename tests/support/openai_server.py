"""A small OpenAI-compatible HTTP server on loopback, for tests of the ``openai`` backend.

It answers deterministically (``answer_for(content)``), so a test can check that every record
got the answer to its own instruction, and it logs every request, so a test can check that no
call was made twice. ``fault`` lets a test make chosen requests fail (e.g. HTTP 400) the way a
real endpoint does. This is a test double for the far side of the wire only: the client under
test is the real CLI with the real ``openai`` SDK.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def answer_for(content: str) -> str:
    return "answer " + hashlib.sha256(content.encode()).hexdigest()[:12]


class OpenAIServer:
    def __init__(self, api_key: str = "test-key", delay: float = 0.0,
                 fault: Callable[[str], tuple[int, dict] | None] | None = None):
        self.api_key, self.delay, self.fault = api_key, delay, fault
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "teacher", "object": "model"}]})
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
                chat = self.path.endswith("/chat/completions")
                content = body["messages"][-1]["content"] if chat else body["prompt"]
                with server.lock:
                    server.requests.append({"path": self.path, "content": content, "body": body,
                                            "auth": self.headers.get("Authorization")})
                if server.delay:
                    time.sleep(server.delay)
                if server.fault and (f := server.fault(content)) is not None:
                    return self._send(*f)
                text = answer_for(content)
                length = body.get("max_tokens", 512) < 2
                usage = {"prompt_tokens": len(content.split()), "completion_tokens": 2, "total_tokens": len(content.split()) + 2}
                if chat:
                    choice = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "length" if length else "stop"}
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "length" if length else "stop"}
                    obj = "text_completion"
                self._send(200, {"id": "cmpl-1", "object": obj, "created": int(time.time()),
                                 "model": body.get("model"), "choices": [choice], "usage": usage})

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
