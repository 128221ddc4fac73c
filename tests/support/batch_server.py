"""A fake OpenAI Batch endpoint on loopback: files (multipart upload, content), batches (create,
retrieve, list, cancel). A batch finishes after ``polls`` retrieves; each line is answered like
``OpenAIServer`` answers (``answer_for``); ``fail(content, attempt)`` turns chosen lines into
error-file lines; ``expire`` makes batches expire with no output. Loopback only: it stands for
the far side of the wire; the client under test is the real CLI and the real openai SDK."""

from __future__ import annotations

import email.parser
import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support.openai_server import answer_for


class BatchServer:
    def __init__(self, api_key="test-key", polls=2, fail=None, expire=False):
        self.api_key, self.polls, self.fail, self.expire = api_key, polls, fail, expire
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.attempts: Counter = Counter()
        self.sync_requests: list[str] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, obj, raw=False):
                data = obj if raw else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self):
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def authorized(self):
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self.send(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                    return False
                return True

            def do_GET(self):
                if not self.authorized():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                with server.lock:
                    if parts[1:2] == ["files"] and len(parts) == 4 and parts[3] == "content":
                        return self.send(200, server.files[parts[2]], raw=True)
                    if parts[1:2] == ["batches"] and len(parts) == 3:
                        return self.send(200, server.advance(parts[2]))
                    if parts[1:2] == ["batches"] and len(parts) == 2:
                        return self.send(200, {"object": "list", "data": list(server.batches.values()), "has_more": False})
                self.send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                if not self.authorized():
                    return
                raw = self.body()
                parts = self.path.split("?")[0].strip("/").split("/")
                with server.lock:
                    if parts[1:] == ["files"]:
                        msg = email.parser.BytesParser().parsebytes(
                            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
                        data = next(p.get_payload(decode=True) for p in msg.get_payload() if p.get_filename())
                        fid = f"file-{next(server.ids)}"
                        server.files[fid] = data
                        return self.send(200, {"id": fid, "object": "file", "bytes": len(data), "created_at": 0,
                                               "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})
                    if parts[1:] == ["batches"]:
                        req = json.loads(raw)
                        bid = f"batch-{next(server.ids)}"
                        n = len(server.files[req["input_file_id"]].splitlines())
                        server.batches[bid] = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "status": "validating",
                                               "input_file_id": req["input_file_id"], "completion_window": "24h",
                                               "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
                                               "request_counts": {"total": n, "completed": 0, "failed": 0}, "polls": 0}
                        return self.send(200, server.public(bid))
                    if parts[1:2] == ["chat"]:  # the synchronous fallback
                        content = json.loads(raw)["messages"][-1]["content"]
                        server.sync_requests.append(content)
                        return self.send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                                               "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_for(content)},
                                                            "finish_reason": "stop"}],
                                               "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
                self.send(404, {"error": {"message": "not found"}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def public(self, bid):
        return {k: v for k, v in self.batches[bid].items() if k != "polls"}

    def advance(self, bid):
        b = self.batches[bid]
        b["polls"] += 1
        if b["status"] in ("completed", "expired", "failed", "cancelled") or b["polls"] < self.polls:
            if b["status"] == "validating":
                b["status"] = "in_progress"
            return self.public(bid)
        if self.expire:
            b["status"] = "expired"
            return self.public(bid)
        out, err = [], []
        for raw in self.files[b["input_file_id"]].splitlines():
            line = json.loads(raw)
            content = line["body"]["messages"][-1]["content"]
            self.attempts[content] += 1
            if self.fail and self.fail(content, self.attempts[content]):
                err.append({"id": "r", "custom_id": line["custom_id"], "response": {"status_code": 500, "request_id": "x",
                            "body": {"error": {"message": "injected server error", "type": "server_error"}}}, "error": None})
                continue
            body = {"id": "c", "object": "chat.completion", "created": 0, "model": line["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_for(content)}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
            out.append({"id": "r", "custom_id": line["custom_id"], "response": {"status_code": 200, "request_id": "x", "body": body},
                        "error": None})
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = f"file-{next(self.ids)}"
                self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                b[name] = fid
        b["status"] = "completed"
        b["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}
        return self.public(bid)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def batch_inputs(self) -> list[list[str]]:
        """custom_ids of each created batch, in creation order."""
        return [[json.loads(x)["custom_id"] for x in self.files[b["input_file_id"]].splitlines()] for b in self.batches.values()]
