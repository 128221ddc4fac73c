"""``openai`` through the OpenAI Batch API (``--batch-api``): half the price, results within 24 h.

Load: the pending requests. Do: write them as JSONL request files split by both of OpenAI's
limits (50,000 lines and 200 MB per file, one endpoint per file; the 52,002 Alpaca
instructions need two files), upload each, create a batch per file, poll, download the output
and error files, and yield a ``Result`` per ``custom_id`` (the journal key). Failed ids alone
are resubmitted (``max_resubmits`` rounds); what still fails goes through the synchronous
``OpenAIBackend`` (``fallback``) or is yielded failed, for the journal to retry next run.

Never pay twice: every batch is a row of the ``batches`` table in the journal file, written
with our own id *before* ``batches.create`` and sent as the batch's metadata, so a kill -9
between the create and the row's update is repaired by finding the batch by that id. A
re-run reattaches to every unfinished batch holding pending keys (the newest batch holding a
key owns it) and submits only keys no batch holds. A row becomes ``collected`` only when
each of its keys is journaled ok, was yielded this run, or moved to a newer batch, so a kill
after a download loses nothing: the output file is fetched again.

Journal keys are the synchronous backend's (``kind = "openai"``), so batch results and
fallback results share one journal. Costs: ``price_factor`` tells ``calls`` to bill half.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from gpt4llm.backends.base import Backend, FatalBackendError, Request, Result, RunContext
from gpt4llm.backends.openai import OpenAIBackend, _reason, result_from_body
from gpt4llm.backends.pricing import BATCH_DISCOUNT, Prices
from gpt4llm.errors import UserError

MAX_REQUESTS_PER_FILE = 50_000  # OpenAI's limits per batch input file
MAX_FILE_BYTES = 200_000_000    # "200 MB": the decimal reading, the smaller of the two
CONTROL_RETRIES = 4             # the SDK's own retries (backoff 0.5-8 s) for upload/create/poll/download
MAX_POLL_ERRORS = 10            # consecutive failed polls of one batch before giving up (a re-run reattaches)
TERMINAL = ("completed", "expired", "failed", "cancelled")
CLOSED = ("collected", "abandoned")  # ours: every key handed over / the batch was never created



# ---- request files ---------------------------------------------------------------------------

def request_body(model: str, req: Request) -> dict[str, Any]:
    """The body of the chat or text completion call for ``req``."""
    p = req.params
    body: dict[str, Any] = {"model": model}
    body.update({"messages": req.messages} if req.messages is not None else {"prompt": req.prompt})
    body.update(temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens)
    if p.seed is not None:
        body["seed"] = p.seed
    return body


def endpoint_for(req: Request, prefix: str = "/v1") -> str:
    return f"{prefix}/chat/completions" if req.messages is not None else f"{prefix}/completions"


@dataclass
class RequestFile:
    path: Path
    endpoint: str
    keys: list[str] = field(default_factory=list)
    bytes: int = 0


def write_request_files(requests: list[Request], model: str, directory: str | Path, *,
                        max_requests: int = MAX_REQUESTS_PER_FILE, max_bytes: int = MAX_FILE_BYTES,
                        url_prefix: str = "/v1") -> list[RequestFile]:
    """JSONL request files, one endpoint each, with at most ``max_requests`` lines and
    ``max_bytes`` bytes (newlines included) per file, in request order."""
    if max_requests < 1 or max_bytes < 1:
        raise UserError(f"max_requests_per_file {max_requests} / max_file_bytes {max_bytes}: must be >= 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    by_endpoint: dict[str, list[Request]] = {}
    for r in requests:
        by_endpoint.setdefault(endpoint_for(r, url_prefix), []).append(r)
    files: list[RequestFile] = []
    for endpoint, reqs in by_endpoint.items():
        out, cur = None, None
        try:
            for req in reqs:
                line = json.dumps({"custom_id": req.key, "method": "POST", "url": endpoint,
                                   "body": request_body(model, req)},
                                  ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
                if len(line) > max_bytes:
                    raise UserError(f"request {req.key[:12]} is {len(line):,} bytes as a Batch API line, over "
                                    f"the {max_bytes:,}-byte file cap; shorten it or run without --batch-api")
                if cur is None or len(cur.keys) >= max_requests or cur.bytes + len(line) > max_bytes:
                    if out is not None:
                        out.close()
                    cur = RequestFile(directory / f"batch-{len(files):04d}.jsonl", endpoint)
                    files.append(cur)
                    out = cur.path.open("wb")
                out.write(line)
                cur.keys.append(req.key)
                cur.bytes += len(line)
        finally:
            if out is not None:
                out.close()
    return files


def result_from_line(line: dict, chat: bool, latency: float) -> Result:
    """One line of a batch output or error file -> Result (failed with the reason if not 200)."""
    err, resp = line.get("error"), line.get("response") or {}
    if err:
        code, msg = (err.get("code"), err.get("message")) if isinstance(err, dict) else (None, err)
        return Result(error=f"batch error {code or ''}: {str(msg or '')[:300]}".replace(" :", ":"), latency_s=latency)
    status, body = resp.get("status_code"), resp.get("body")
    if status != 200:
        e = body.get("error") if isinstance(body, dict) else None
        msg = e.get("message") if isinstance(e, dict) else None
        return Result(error=f"HTTP {status}: {str(msg or 'no message').splitlines()[0][:300]}", latency_s=latency)
    return result_from_body(body, chat, latency)


# ---- the backend -----------------------------------------------------------------------------

@dataclass
class _Batch:
    """A batch this run waits for: ``owned`` are the pending keys it is to answer."""

    id: str
    batch_id: str
    endpoint: str
    round: int
    keys: list[str]
    owned: set[str]
    claimed: set[str] = field(default_factory=set)  # its keys a newer batch owns
    poll_errors: int = 0
    task: Any = None


class OpenAIBatchBackend(Backend):
    kind = "openai"  # the synchronous backend's key space: one journal for both
    price_factor = BATCH_DISCOUNT
    OPTIONS = OpenAIBackend.OPTIONS | {"poll_interval", "max_requests_per_file", "max_file_bytes",
                                       "max_resubmits", "fallback", "completion_window", "quiet"}

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, *,
                 poll_interval: float = 30.0, max_requests_per_file: int = MAX_REQUESTS_PER_FILE,
                 max_file_bytes: int = MAX_FILE_BYTES, max_resubmits: int = 2, fallback: bool = False,
                 completion_window: str = "24h", quiet: bool = False, **sync_options: Any):
        super().__init__(model)
        if not poll_interval > 0:
            raise UserError(f"--poll-interval {poll_interval}: must be a positive number of seconds")
        if max_requests_per_file < 1 or max_file_bytes < 1:
            raise UserError("max_requests_per_file and max_file_bytes must be at least 1")
        if max_resubmits < 0:
            raise UserError(f"max_resubmits {max_resubmits}: must be >= 0")
        # The synchronous backend resolves the key and endpoint (same rules, same messages),
        # makes our client, and is the fallback for stragglers.
        self.sync = OpenAIBackend(model, base_url, api_key, **sync_options)
        self.base_url = self.sync.base_url
        # Azure's batch lines and endpoint say "/chat/completions", OpenAI's "/v1/chat/completions".
        self.url_prefix = "" if sync_options.get("api_version") else "/v1"
        self.poll_interval, self.max_resubmits, self.fallback = poll_interval, max_resubmits, fallback
        self.max_requests, self.max_bytes = max_requests_per_file, max_file_bytes
        self.completion_window, self.quiet = completion_window, quiet
        self.client = None
        self.ctx = RunContext()  # the current run's (journal, prices at the batch price, budget, console)
        self.created: list[str] = []      # batch ids created by the last run
        self.reattached: list[str] = []   # batch ids of earlier runs the last run waited for
        self.sent_sync = 0                # stragglers sent through the fallback by the last run

    def describe(self) -> dict[str, Any]:
        return {**self.sync.describe(), "batch_api": True, "poll_interval": self.poll_interval,
                "fallback": self.fallback}

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.sync.aclose()

    # -- the table ------------------------------------------------------------------------------

    def _set(self, row_id: str, **cols: Any) -> None:
        self.ctx.journal.update_batch(row_id, **cols)

    def _open_rows(self) -> list[tuple]:
        return self.ctx.journal.open_batches(self.base_url, self.model, CLOSED)

    # -- API calls ------------------------------------------------------------------------------

    async def _api(self, what: str, make_call, transient_ok: bool = False):
        """One control call; fatal errors become one-line messages. With ``transient_ok``, a
        connection error, timeout, 429 or 5xx (after the SDK's retries) returns None."""
        import openai

        try:
            return await make_call()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise FatalBackendError(f"openai:{self.model} at {self.base_url}: the API key was refused "
                                    f"({_reason(e)}); check OPENAI_API_KEY") from e
        except openai.NotFoundError as e:
            raise FatalBackendError(f"{what} at {self.base_url}: not found ({_reason(e)}); the Batch API needs "
                                    "OpenAI or Azure OpenAI (vLLM, Ollama: run without --batch-api)") from e
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
            if transient_ok:
                return None
            raise FatalBackendError(f"{what} at {self.base_url} failed ({_reason(e.__cause__ or e)}); check "
                                    "--base-url and retry: batches already created are in the journal") from e
        except openai.APIStatusError as e:
            raise FatalBackendError(f"{what} at {self.base_url} refused: {_reason(e)}") from e

    async def _find_created(self, rows: list[tuple]) -> dict[str, Any]:
        """Batches whose creation was interrupted before we wrote their id, by our metadata id."""
        wanted = {r[0] for r in rows}
        oldest = min(r[6] for r in rows) - 3600  # clocks differ; look an hour further back
        found: dict[str, Any] = {}
        page = await self._api("listing batches", lambda: self.client.batches.list(limit=100))
        async for b in page:
            gid = (b.metadata or {}).get("gpt4llm_id")
            if gid in wanted:
                found[gid] = b
            if len(found) == len(wanted) or b.created_at < oldest:
                break
        return found

    async def _reattach(self, pending: dict[str, Request]) -> list[_Batch]:
        rows = [r for r in self._open_rows() if not pending.keys().isdisjoint(json.loads(r[4]))]
        creating = [r for r in rows if r[1] is None]
        if creating:
            found = await self._find_created(creating)
            for r in creating:
                b = found.get(r[0])
                if b is None:  # never created: its keys are submitted afresh
                    self._set(r[0], status="abandoned")
                else:
                    self._set(r[0], batch_id=b.id, status=b.status)
            rows = [r if r[1] is not None else (r[0], found[r[0]].id, *r[2:]) for r in rows
                    if r[1] is not None or r[0] in found]
        owner: dict[str, str] = {}
        for r in rows:  # oldest first: the newest batch holding a key owns it
            for k in json.loads(r[4]):
                if k in pending:
                    owner[k] = r[0]
        out = []
        for row_id, batch_id, endpoint, rnd, keys, _, _ in rows:
            keys = json.loads(keys)
            owned = {k for k in keys if owner.get(k) == row_id}
            if owned:
                out.append(_Batch(row_id, batch_id, endpoint, rnd, keys, owned,
                                  claimed={k for k in keys if k in owner and owner[k] != row_id}))
        return out

    async def _submit(self, requests: list[Request], rnd: int) -> list[_Batch]:
        out = []
        with tempfile.TemporaryDirectory(prefix="gpt4llm-batch-") as tmp:
            files = write_request_files(requests, self.model, tmp, max_requests=self.max_requests,
                                        max_bytes=self.max_bytes, url_prefix=self.url_prefix)
            for f in files:
                up = await self._api("uploading a batch file", lambda: self.client.files.create(
                    file=f.path, purpose="batch"))
                row_id = uuid.uuid4().hex
                # Written before the batch exists: a kill during create is repaired by this id.
                self.ctx.journal.add_batch(row_id, self.base_url, self.model, f.endpoint, up.id, rnd, f.keys)
                b = await self._api("creating a batch", lambda: self.client.batches.create(
                    input_file_id=up.id, endpoint=f.endpoint, completion_window=self.completion_window,
                    metadata={"gpt4llm_id": row_id}))
                self._set(row_id, batch_id=b.id, status=b.status)
                self.created.append(b.id)
                out.append(_Batch(row_id, b.id, f.endpoint, rnd, f.keys, set(f.keys)))
        return out

    async def _collect(self, b: _Batch, info: Any) -> dict[str, Result]:
        """The results of a finished batch for its owned keys; missing ones are failures."""
        chat = b.endpoint.endswith("/chat/completions")
        end = next((t for t in (info.completed_at, info.expired_at, info.failed_at, info.cancelled_at) if t), None)
        latency = float(end - info.created_at) if end and info.created_at else 0.0
        results: dict[str, Result] = {}
        for fid in (info.output_file_id, info.error_file_id):
            if not fid:
                continue
            content = await self._api(f"downloading {fid} of {b.batch_id}", lambda: self.client.files.content(fid))
            for raw in content.text.splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # its key gets "no result" below
                key = line.get("custom_id") if isinstance(line, dict) else None
                if key in b.owned and not (key in results and results[key].ok):
                    results[key] = result_from_line(line, chat, latency)
        why = f"batch {b.batch_id} {info.status} without a result for this request"
        errors = getattr(getattr(info, "errors", None), "data", None) or []
        if errors:
            why += f" ({'; '.join(str(e.message) for e in errors[:3])[:300]})"
        for key in b.owned - results.keys():
            results[key] = Result(error=why, latency_s=latency)
        return results

    # -- the run --------------------------------------------------------------------------------

    def _progress(self):
        from rich.errors import LiveError
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from rich.console import Console

        console = self.ctx.console or Console(stderr=True)  # the caller's: rich nests our bars in its display
        bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                       TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                       disable=self.quiet or self.ctx.quiet or not console.is_terminal, transient=True)
        try:
            bar.start()
        except LiveError:  # an older rich without nested live displays
            bar.disable = True
        return bar

    async def run(self, requests: list[Request], ctx: RunContext) -> AsyncIterator[tuple[Request, Result]]:
        if ctx.journal is None:
            raise UserError("the Batch API backend keeps its batch ids in the journal: run it through "
                            "gpt4llm.calls.run_calls")
        self.ctx = ctx
        budget = ctx.budget
        self.created, self.reattached, self.sent_sync = [], [], 0
        pending = {r.key: r for r in requests}
        if not pending:
            return
        if self.client is None:
            self.client = self.sync._make_client(self.sync.base_urls[0]).with_options(max_retries=CONTROL_RETRIES)
        order = {k: i for i, k in enumerate(pending)}
        active = await self._reattach(pending)
        self.reattached = [b.batch_id for b in active]
        reserved: dict[str, float] = {}  # budget reservations, key -> worst-case USD
        for b in active:  # already committed: counted against the cap, never refused
            for k in b.owned:
                reserved[k] = self._worst(pending[k])
                if budget is not None:
                    budget.reserved += reserved[k]
        covered = set().union(*(b.owned for b in active))
        fresh = []
        for k, r in pending.items():
            if k in covered:
                continue
            worst = self._worst(r)
            if budget is not None and not budget.reserve(worst):
                yield r, Result(skipped="budget")  # a batch commits its spend: reserve before creating
                continue
            reserved[k] = worst
            fresh.append(r)
        to_submit: dict[int, list[Request]] = {0: fresh} if fresh else {}  # round -> requests
        stragglers: dict[str, str] = {}  # key -> reason, after the last batch round
        handled: set[str] = set()        # keys yielded, resubmitted or straggling this run
        finished: list[_Batch] = []
        bar = self._progress()
        try:
            for b in active:
                b.task = bar.add_task(f"batch {b.batch_id}", total=len(b.owned), status="reattached")
            while True:
                for rnd, reqs in sorted(to_submit.items()):
                    for b in await self._submit(reqs, rnd):
                        b.task = bar.add_task(f"batch {b.batch_id}", total=len(b.owned), status="created")
                        active.append(b)
                to_submit = {}
                for b in finished:  # after resubmissions are recorded, so no key is ever unowned
                    self._close_if_done(b, handled)
                finished = []
                if not active:
                    break
                for b in list(active):
                    info = await self._api(f"polling batch {b.batch_id}", lambda: self.client.batches.retrieve(b.batch_id),
                                           transient_ok=True)
                    if info is None:
                        b.poll_errors += 1
                        if b.poll_errors >= MAX_POLL_ERRORS:
                            raise FatalBackendError(f"lost contact with {self.base_url} while polling batch "
                                                    f"{b.batch_id}; re-run the same command to reattach to it")
                        continue
                    b.poll_errors = 0
                    counts = info.request_counts
                    done = (counts.completed or 0) + (counts.failed or 0) if counts else 0
                    bar.update(b.task, completed=min(done, len(b.owned)), status=info.status)
                    if info.status not in TERMINAL:
                        self._set(b.id, status=info.status)
                        continue
                    active.remove(b)
                    results = await self._collect(b, info)
                    self._set(b.id, status=info.status)
                    retry = []
                    for key in sorted(b.owned, key=order.__getitem__):
                        res = results[key]
                        handled.add(key)
                        if res.ok:
                            res.cost_usd = ctx.prices.cost(res.prompt_tokens, res.completion_tokens) \
                                if ctx.prices is not None else None
                            self._settle(reserved, key, res.cost_usd)
                            yield pending[key], res
                        elif b.round < self.max_resubmits:
                            retry.append(pending[key])
                        else:
                            stragglers[key] = f"{res.error} (after {b.round + 1} batch submissions)"
                    if retry:  # the failures of all batches finished in this pass go in one submission
                        to_submit.setdefault(b.round + 1, []).extend(retry)
                    finished.append(b)
                    bar.remove_task(b.task)
                if active and not to_submit:
                    await asyncio.sleep(self.poll_interval)
        finally:
            bar.stop()
        if not stragglers:
            return
        for k in stragglers:
            self._settle(reserved, k, 0.0)  # failed batch lines are not billed
        reqs = [pending[k] for k in sorted(stragglers, key=order.__getitem__)]
        if self.fallback:
            # Synchronous calls at the synchronous price, under the same budget.
            p = ctx.prices
            sync_prices = Prices(p.usd_in / self.price_factor, p.usd_out / self.price_factor,
                                 p.source.removesuffix(f" x{self.price_factor}")) if p is not None and p.known else p
            self.sent_sync = len(reqs)
            async for req, res in self.sync.run(reqs, RunContext(ctx.journal, sync_prices, budget, ctx.console, ctx.quiet)):
                yield req, res
        else:
            for req in reqs:
                yield req, Result(error=stragglers[req.key])

    def _worst(self, req: Request) -> float:
        if self.ctx.budget is None:
            return 0.0
        return OpenAIBackend.worst_case(req, self.ctx.prices)

    def _settle(self, reserved: dict[str, float], key: str, cost: float | None) -> None:
        worst = reserved.pop(key, 0.0)
        if self.ctx.budget is not None:
            self.ctx.budget.settle(worst, cost or 0.0)

    def _close_if_done(self, b: _Batch, handled: set[str]) -> None:
        """``collected`` once each key is handled this run, owned by a newer batch, or journaled
        ok; otherwise the row stays open for a later run that asks for the rest."""
        rest = set(b.keys) - handled - b.claimed
        if rest:
            found = self.ctx.journal.lookup(rest)
            rest = {k for k in rest if not (k in found and found[k].ok)}
        if not rest:
            self._set(b.id, status="collected")
