"""A fake OpenAI Batch API on loopback, for tests of the ``openai`` batch backend.

It speaks the wire format the official ``openai`` SDK uses: ``POST /v1/files`` (multipart
upload, purpose ``batch``), ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches`` (list, newest first), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``, plus synchronous ``/v1/chat/completions`` and
``/v1/completions`` for the fallback path. Answers are deterministic (``answer_for`` of the
last message), so a test can check that every record got its own answer.

Controls (attributes, settable while the server runs):
- ``polls_to_complete``: a batch finishes on its K-th ``retrieve``; before that it is
  ``validating`` then ``in_progress`` with growing ``request_counts``.
- ``fault(custom_id, attempt)``: ``None`` (answer), ``"error"`` (error-file line with an
  ``error`` object), or an int (error-file line whose ``response.status_code`` is that int).
  ``attempt`` counts the batches that have run this id, from 1.
- ``expire`` / ``fail`` / ``cancel``: sets of batch indices (creation order, from 0) that end
  ``expired`` (after ``expire_done`` lines ran), ``failed`` (no output) or ``cancelled``.
- ``hold_create``: clear it to make ``POST /v1/batches`` create the batch but not answer
  until it is set again (the window between create and the client's journal write).

Every request line is validated the way OpenAI does when a batch is created; problems go to
``invalid`` (and the batch fails), so a test can assert the client never sent a bad file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlparse

from support.openai_server import answer_for

MAX_LINES = 50_000
MAX_BYTES = 200_000_000


def completion(body: dict, chat: bool) -> dict:
    """The response body the synchronous endpoint would give for ``body``."""
    content = body["messages"][-1]["content"] if chat else body["prompt"]
    text = answer_for(content)
    finish = "length" if body.get("max_tokens", 512) < 2 else "stop"
    usage = {"prompt_tokens": len(content.split()), "completion_tokens": 2,
             "total_tokens": len(content.split()) + 2}
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    return {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model"), "choices": [choice], "usage": usage}


def line_content(line: dict) -> str:
    body = line["body"]
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


class BatchServer:
    def __init__(self, api_key: str = "test-key", polls_to_complete: int = 2,
                 fault: Callable[[str, int], object] | None = None):
        self.api_key = api_key
        self.polls_to_complete = polls_to_complete
        self.fault = fault
        self.expire: set[int] = set()
        self.expire_done = 1
        self.fail: set[int] = set()
        self.cancel: set[int] = set()
        self.hold_create = threading.Event()
        self.hold_create.set()
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.order: list[str] = []            # batch ids in creation order
        self.uploads: list[str] = []          # file ids uploaded with purpose batch
        self.downloads: Counter = Counter()   # file id -> GET content count
        self.attempts: Counter = Counter()    # custom_id -> batches that ran it
        self.sync_requests: list[dict] = []
        self.invalid: list[str] = []
        self.gets = 0                         # GET requests (polls, lists, downloads)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict | bytes, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed while we held the answer (hold_create)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while (size := int(self.rfile.readline().strip() or b"0", 16)):
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return out
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
                    return False
                return True

            def do_GET(self):
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if not self._authorized():
                    return
                with server.lock:
                    server.gets += 1
                    if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                        f = server.files.get(parts[2])
                        if f is None:
                            return self._error(404, f"No such File object: {parts[2]}")
                        server.downloads[parts[2]] += 1
                        return self._send(200, f["data"], "application/octet-stream")
                    if parts == ["v1", "batches"]:
                        q = parse_qs(url.query)
                        ids = server.order[::-1]
                        if "after" in q:
                            ids = ids[ids.index(q["after"][0]) + 1:] if q["after"][0] in ids else []
                        limit = int(q.get("limit", ["20"])[0])
                        page = [server._public(server.batches[i]) for i in ids[:limit]]
                        return self._send(200, {"object": "list", "data": page, "has_more": len(ids) > limit,
                                                "first_id": page[0]["id"] if page else None,
                                                "last_id": page[-1]["id"] if page else None})
                    if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                        b = server.batches.get(parts[2])
                        if b is None:
                            return self._error(404, f"No batch found with id '{parts[2]}'.")
                        server._advance(b)
                        return self._send(200, server._public(b))
                self._error(404, "not found")

            def do_POST(self):
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                raw = self._body()
                if not self._authorized():
                    return
                if parts == ["v1", "files"]:
                    return self._send(200, server._upload(self.headers.get("Content-Type", ""), raw))
                body = json.loads(raw or b"{}")
                if parts == ["v1", "batches"]:
                    with server.lock:
                        status, obj = server._create(body)
                    if status == 200:
                        server.hold_create.wait()
                    return self._send(status, obj)
                if parts[:2] == ["v1", "batches"] and len(parts) == 4 and parts[3] == "cancel":
                    with server.lock:
                        b = server.batches.get(parts[2])
                        if b is None:
                            return self._error(404, "not found")
                        if b["status"] in ("validating", "in_progress"):
                            b["status"] = "cancelling"
                        return self._send(200, server._public(b))
                if parts in (["v1", "chat", "completions"], ["v1", "completions"]):
                    chat = parts[1] == "chat"
                    with server.lock:
                        server.sync_requests.append({"path": url.path, "body": body})
                    return self._send(200, completion(body, chat))
                self._error(404, "not found")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- state changes (called with the lock held, except _upload) --------------------------

    def _upload(self, ctype: str, raw: bytes) -> dict:
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + raw)
        fields = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        filename, data = fields["file"]
        purpose = fields["purpose"][1].decode()
        with self.lock:
            fid = f"file-{len(self.files) + 1:06d}"
            self.files[fid] = {"data": data, "purpose": purpose, "filename": filename}
            if purpose == "batch":
                self.uploads.append(fid)
        return {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename or "upload", "purpose": purpose, "status": "processed"}

    def _validate(self, data: bytes, endpoint: str) -> tuple[list[dict], list[str]]:
        problems, lines, seen, models = [], [], set(), set()
        if len(data) > MAX_BYTES:
            problems.append(f"file is {len(data)} bytes, over {MAX_BYTES}")
        text = data.decode("utf-8")
        rows = [r for r in text.split("\n") if r.strip()]
        if len(rows) > MAX_LINES:
            problems.append(f"{len(rows)} lines, over {MAX_LINES}")
        for i, row in enumerate(rows, 1):
            try:
                line = json.loads(row)
            except ValueError:
                problems.append(f"line {i}: not JSON")
                continue
            cid, body = line.get("custom_id"), line.get("body")
            if not isinstance(cid, str) or not cid or cid in seen:
                problems.append(f"line {i}: custom_id missing or duplicate")
            seen.add(cid)
            if line.get("method") != "POST" or line.get("url") != endpoint:
                problems.append(f"line {i}: method/url {line.get('method')} {line.get('url')} != POST {endpoint}")
            chat = endpoint.endswith("/chat/completions")
            if not isinstance(body, dict) or not body.get("model") or (("messages" if chat else "prompt") not in body):
                problems.append(f"line {i}: body needs model and {'messages' if chat else 'prompt'}")
                continue
            models.add(body["model"])
            lines.append(line)
        if len(models) > 1:
            problems.append(f"more than one model in a file: {sorted(models)}")
        return lines, problems

    def _create(self, body: dict) -> tuple[int, dict]:
        f = self.files.get(body.get("input_file_id"))
        endpoint = body.get("endpoint")
        if f is None or f["purpose"] != "batch":
            return 400, {"error": {"message": "input_file_id is not a batch file", "type": "invalid_request_error"}}
        if endpoint not in ("/v1/chat/completions", "/v1/completions") or body.get("completion_window") != "24h":
            return 400, {"error": {"message": f"bad endpoint or window: {body}", "type": "invalid_request_error"}}
        lines, problems = self._validate(f["data"], endpoint)
        self.invalid += problems
        index = len(self.order)
        bid = f"batch_{index + 1:06d}"
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": endpoint, "input_file_id": body["input_file_id"],
            "completion_window": "24h", "status": "validating", "created_at": int(time.time()),
            "metadata": body.get("metadata"), "output_file_id": None, "error_file_id": None, "errors": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_lines": lines, "_problems": problems, "_polls": 0, "_index": index}
        self.order.append(bid)
        return 200, self._public(self.batches[bid])

    def _advance(self, b: dict) -> None:
        """One retrieve: move the batch on; on the K-th, run it."""
        if b["status"] in ("completed", "expired", "failed", "cancelled"):
            return
        b["_polls"] += 1
        if b["_problems"]:
            b["status"] = "failed"
            b["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message": p, "line": None}
                                                      for p in b["_problems"]]}
            return
        n = len(b["_lines"])
        if b["status"] == "cancelling":
            return self._finish(b, "cancelled", b["request_counts"]["completed"])
        if b["_polls"] < self.polls_to_complete:
            b["status"] = "in_progress"
            b["request_counts"]["completed"] = n * b["_polls"] // max(self.polls_to_complete, 1)
            return
        i = b["_index"]
        if i in self.fail:
            b["status"], b["failed_at"] = "failed", int(time.time())
            b["errors"] = {"object": "list", "data": [{"code": "injected", "message": "injected batch failure"}]}
            return
        if i in self.expire:
            return self._finish(b, "expired", min(self.expire_done, n))
        if i in self.cancel:
            return self._finish(b, "cancelled", min(self.expire_done, n))
        self._finish(b, "completed", n)

    def _finish(self, b: dict, status: str, ran: int) -> None:
        out, err = [], []
        chat = b["endpoint"].endswith("/chat/completions")
        for j, line in enumerate(b["_lines"][:ran]):
            cid = line["custom_id"]
            self.attempts[cid] += 1
            f = self.fault(cid, self.attempts[cid]) if self.fault else None
            rid = f"batch_req_{b['id']}_{j}"
            if f == "error":
                err.append({"id": rid, "custom_id": cid, "response": None,
                            "error": {"code": "server_error", "message": "injected failure"}})
            elif isinstance(f, int):
                err.append({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": f, "request_id": rid,
                    "body": {"error": {"message": f"injected status {f}", "type": "server_error"}}}})
            else:
                out.append({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": 200, "request_id": rid, "body": completion(line["body"], chat)}})
        for kind, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = f"file-{len(self.files) + 1:06d}"
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                self.files[fid] = {"data": data, "purpose": "batch_output", "filename": f"{b['id']}_{kind}.jsonl"}
                b[kind] = fid
        b["status"] = status
        b[f"{status}_at"] = int(time.time())
        b["request_counts"] = {"total": len(b["_lines"]), "completed": len(out), "failed": len(err)}

    @staticmethod
    def _public(b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    # -- for tests ---------------------------------------------------------------------------

    def batch_ids(self, index: int) -> list[str]:
        """The custom_ids of the index-th batch created."""
        with self.lock:
            return [line["custom_id"] for line in self.batches[self.order[index]]["_lines"]]

    def input_lines(self, index: int) -> list[dict]:
        with self.lock:
            return list(self.batches[self.order[index]]["_lines"])

    def __enter__(self) -> "BatchServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.hold_create.set()
        self.httpd.shutdown()
        self.httpd.server_close()
