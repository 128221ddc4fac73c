"""``openai`` through the OpenAI Batch API (``--batch-api``): half the price, results within 24 h.

Requests are written to JSONL files split by both of OpenAI's limits (50,000 requests and
200 MB per file; the 52,002 Alpaca instructions need two files) and one endpoint per file,
uploaded, and turned into batches whose ids go into the journal file before polling, so a
kill at any point loses nothing: a re-run reattaches to the batches in flight instead of
creating new ones (an upload whose batch creation was interrupted is found again by its file
id). Finished batches are downloaded and every line is yielded by ``custom_id`` (the journal
key). Failed ids alone are resubmitted (``max_resubmits`` rounds); with ``fallback`` the
stragglers then go through the synchronous endpoint. Journal keys are the synchronous
backend's, so both share one journal.
"""

from __future__ import annotations

import asyncio
import os
import io as _io
import json
import time
from typing import Any, AsyncIterator

from gpt4llm.backends.base import Request, Result
from gpt4llm.backends.openai import OpenAIBackend, _reason, result_from_body
from gpt4llm.backends.pricing import BATCH_DISCOUNT
from gpt4llm.errors import UserError

MAX_REQUESTS = int(os.environ.get("GPT4LLM_BATCH_MAX_REQUESTS", 50_000))  # OpenAI's limit (lower it to test)
MAX_BYTES = 200 * 1024 * 1024
FINAL = {"completed", "failed", "expired", "cancelled"}
TABLE = """CREATE TABLE IF NOT EXISTS batches (
    input_file_id TEXT PRIMARY KEY, batch_id TEXT, model TEXT NOT NULL, status TEXT NOT NULL,
    keys TEXT NOT NULL, created REAL NOT NULL, collected INTEGER NOT NULL DEFAULT 0)"""


def request_line(backend_model: str, req: Request) -> tuple[str, bytes]:
    p = req.params
    body: dict[str, Any] = {"model": backend_model, "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens}
    if p.seed is not None:
        body["seed"] = p.seed
    if req.messages is not None:
        url, body["messages"] = "/v1/chat/completions", req.messages
    else:
        url, body["prompt"] = "/v1/completions", req.prompt
    line = json.dumps({"custom_id": req.key, "method": "POST", "url": url, "body": body}, ensure_ascii=False) + "\n"
    return url, line.encode("utf-8")


def split_lines(lines: list[bytes], max_requests: int = 50_000, max_bytes: int = MAX_BYTES) -> list[list[bytes]]:
    """Consecutive files of at most ``max_requests`` lines and ``max_bytes`` bytes each."""
    files: list[list[bytes]] = []
    size = 0
    for line in lines:
        if len(line) > max_bytes:
            raise UserError(f"one Batch API request is {len(line):,} bytes, over the {max_bytes:,}-byte file cap")
        if not files or len(files[-1]) >= max_requests or size + len(line) > max_bytes:
            files.append([])
            size = 0
        files[-1].append(line)
        size += len(line)
    return files


class OpenAIBatchBackend(OpenAIBackend):
    kind = "openai"
    OPTIONS = OpenAIBackend.OPTIONS | {"poll_interval", "max_requests_per_file", "max_file_bytes", "max_resubmits",
                                       "fallback", "completion_window"}
    price_factor = BATCH_DISCOUNT

    def __init__(self, model: str, poll_interval: float = 30.0, max_requests_per_file: int | None = None,
                 max_file_bytes: int = MAX_BYTES, max_resubmits: int = 2, fallback: bool = False,
                 completion_window: str = "24h", **kw):
        super().__init__(model, **kw)
        self.poll_interval, self.max_bytes = poll_interval, max_file_bytes
        self.max_requests = max_requests_per_file or MAX_REQUESTS
        self.max_resubmits, self.fallback, self.window = max_resubmits, fallback, completion_window

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "batch_api": True}

    # ---- the batches table (in the journal file)
    def _db(self):
        db = self.journal.db
        db.execute(TABLE)
        return db

    def _live(self) -> list[dict]:
        rows = self._db().execute("SELECT input_file_id, batch_id, status, keys FROM batches WHERE model = ? AND collected = 0",
                                  (self.model,)).fetchall()
        return [{"file": f, "batch": b, "status": s, "keys": json.loads(k)} for f, b, s, k in rows]

    async def run(self, requests: list[Request]) -> AsyncIterator[tuple[Request, Result]]:
        if self.client is None:
            self.client = self._make_client()
        pending = {r.key: r for r in requests}
        reserved: dict[str, float] = {}
        for attempt in range(self.max_resubmits + 1):
            if not pending:
                return
            live = [b for b in self._live() if set(b["keys"]) & pending.keys()]
            covered = {k for b in live for k in b["keys"]}
            fresh = []
            for k, r in list(pending.items()):
                if k in covered:
                    continue
                worst = self._estimate(r)[1]
                if self.budget is not None and not self.budget.reserve(worst):
                    yield pending.pop(k), Result(skipped="budget")  # a batch commits its spend: reserve first
                    continue
                reserved[k] = worst
                fresh.append(r)
            live += await self._submit(fresh) if fresh else []
            failed: dict[str, Result] = {}
            async for key, res in self._collect(live):
                if key not in pending:
                    continue
                if self.budget is not None:
                    self.budget.settle(reserved.pop(key, 0.0), res.cost_usd or 0.0)
                if res.ok:
                    yield pending.pop(key), res
                else:
                    failed[key] = res
            for key in list(pending):
                failed.setdefault(key, Result(error="no result in the batch output"))
            if attempt == self.max_resubmits:
                break
        if not pending:
            return
        if self.fallback:  # stragglers through the synchronous endpoint, at the synchronous price
            if self.prices is not None and self.prices.known:
                from gpt4llm.backends.pricing import Prices

                self.prices = Prices(self.prices.usd_in / BATCH_DISCOUNT, self.prices.usd_out / BATCH_DISCOUNT, "sync fallback")
            async for req, res in super().run(list(pending.values())):
                yield req, res
        else:
            for key, req in pending.items():
                yield req, failed.get(key, Result(error="failed in the Batch API"))

    async def _submit(self, requests: list[Request]) -> list[dict]:
        by_url: dict[str, list[tuple[str, bytes]]] = {}
        for r in requests:
            url, line = request_line(self.model, r)
            by_url.setdefault(url, []).append((r.key, line))
        out = []
        for url, items in by_url.items():
            keys_of = {line: key for key, line in items}
            for chunk in split_lines([line for _, line in items], self.max_requests, self.max_bytes):
                keys = [keys_of[line] for line in chunk]
                f = await self.client.files.create(file=("gpt4llm_batch.jsonl", _io.BytesIO(b"".join(chunk))), purpose="batch")
                db = self._db()
                db.execute("INSERT INTO batches VALUES (?, NULL, ?, 'uploaded', ?, ?, 0)",
                           (f.id, self.model, json.dumps(keys), time.time()))
                b = await self.client.batches.create(input_file_id=f.id, endpoint=url, completion_window=self.window,
                                                     metadata={"created_by": "gpt4llm"})
                db.execute("UPDATE batches SET batch_id = ?, status = ? WHERE input_file_id = ?", (b.id, b.status, f.id))
                out.append({"file": f.id, "batch": b.id, "status": b.status, "keys": keys})
        return out

    async def _find_batch(self, file_id: str) -> str | None:
        """The batch made from an upload whose creation was interrupted, if OpenAI has it."""
        page = await self.client.batches.list(limit=100)
        for b in page.data:
            if b.input_file_id == file_id:
                return b.id
        return None

    async def _collect(self, live: list[dict]) -> AsyncIterator[tuple[str, Result]]:
        from rich.console import Console
        from rich.progress import Progress

        db = self._db()
        for b in live:
            if b["batch"] is None:  # killed between upload and create
                b["batch"] = await self._find_batch(b["file"])
                if b["batch"] is None:
                    b["batch"] = (await self.client.batches.create(input_file_id=b["file"], endpoint="/v1/chat/completions",
                                                                   completion_window=self.window)).id
                db.execute("UPDATE batches SET batch_id = ? WHERE input_file_id = ?", (b["batch"], b["file"]))
        console = Console(stderr=True)
        with Progress(console=console, disable=not console.is_terminal, transient=True) as bar:
            tasks = {b["batch"]: bar.add_task(f"batch {b['batch']}", total=len(b["keys"])) for b in live}
            waiting = list(live)
            while waiting:
                still = []
                for b in waiting:
                    try:
                        info = await self.client.batches.retrieve(b["batch"])
                    except Exception as e:  # a poll that fails is retried at the next interval
                        if "APIConnectionError" in type(e).__name__ or "Timeout" in type(e).__name__:
                            still.append(b)
                            continue
                        raise
                    counts = info.request_counts
                    if counts is not None:
                        bar.update(tasks[b["batch"]], completed=(counts.completed or 0) + (counts.failed or 0))
                    db.execute("UPDATE batches SET status = ? WHERE input_file_id = ?", (info.status, b["file"]))
                    if info.status not in FINAL:
                        still.append(b)
                        continue
                    async for item in self._results(info, b):
                        yield item
                    db.execute("UPDATE batches SET collected = 1 WHERE input_file_id = ?", (b["file"],))
                waiting = still
                if waiting:
                    await asyncio.sleep(self.poll_interval)

    async def _results(self, info, b: dict) -> AsyncIterator[tuple[str, Result]]:
        seen = set()
        for file_id in (info.output_file_id, info.error_file_id):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for raw in content.text.splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                key = line.get("custom_id")
                seen.add(key)
                resp, err = line.get("response") or {}, line.get("error")
                if err or resp.get("status_code") != 200:
                    body = resp.get("body") or {}
                    msg = (err or {}).get("message") or (body.get("error") or {}).get("message") or "failed"
                    yield key, Result(error=f"HTTP {resp.get('status_code', '?')}: {msg}" if resp else msg)
                    continue
                body = resp.get("body") or {}
                chat = bool(body.get("choices")) and "message" in body["choices"][0]
                res = result_from_body(body, chat, 0.0)
                if res.ok and self.prices is not None:
                    res.cost_usd = self.prices.cost(res.prompt_tokens, res.completion_tokens)
                yield key, res
        for key in b["keys"]:
            if key not in seen:
                yield key, Result(error=f"batch {info.status} without a result for this request")
