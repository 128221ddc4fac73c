"""``openai``: any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, SGLang, llama.cpp
server, Ollama) through the official SDK's ``AsyncOpenAI``, hardened for long paid runs.

- Flow control: ``AdaptiveLimiter`` (``--concurrency``, ``--rpm``, ``--tpm``; a 429 slows the
  whole run).
- Retries of our own (the SDK's are off, so a 429 can pause everyone): 429, 5xx, timeouts,
  dropped connections and malformed bodies, with exponential backoff and full jitter, honouring
  ``Retry-After`` / ``retry-after-ms``.
- Fail fast: 401/403 (key) and 404 (model or URL) stop the run; a 400/422 fails only its own
  request, journaled with the reason; an endpoint never reached stops the run naming the URL.
- Many endpoints (``base_url`` a list: several servers, nodes, regions, or an engine's replicas):
  each request goes to the endpoint with the fewest requests in flight; an endpoint that fails
  (refused or dropped connection, timeout, 5xx) is taken out for a cool-down that doubles with each
  failure, the request is retried at once on another, and the endpoint is probed back in when its
  cool-down ends. The journal key does not name the endpoint: it is the same call, paid once.
- Budget: before sending, a request reserves its worst-case cost (``pricing.Budget``); a
  refused request is returned as ``Result(skipped=...)`` and never sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import time
from typing import Any, AsyncIterator

from gpt4llm.backends.base import Backend, FatalBackendError, Request, Result, RunContext
from gpt4llm.backends.limits import AdaptiveLimiter
from gpt4llm.backends.pricing import estimate_prompt_tokens, max_prompt_tokens
from gpt4llm.errors import UserError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _reason(e: BaseException) -> str:
    """A one-line reason for the journal and errors.jsonl."""
    import openai

    if isinstance(e, openai.APIStatusError):
        body = e.body.get("error", e.body) if isinstance(e.body, dict) else None
        msg = body.get("message") if isinstance(body, dict) else None
        msg = str(msg or e.message or "").strip()
        return f"HTTP {e.status_code}: {msg.splitlines()[0][:300] if msg else e.response.reason_phrase}"
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}".rstrip(": ")


def retry_after_seconds(headers: Any) -> float | None:
    """``retry-after-ms`` (OpenAI), else ``Retry-After`` as seconds or an HTTP date."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def result_from_body(body: Any, chat: bool, latency: float) -> Result:
    """A completion response (SDK object or plain dict, e.g. a Batch API line) -> Result."""
    get = (lambda o, k: o.get(k) if isinstance(o, dict) else getattr(o, k, None))
    choices = get(body, "choices")
    if not choices:
        return Result(error="malformed response: no choices", latency_s=latency)
    choice = choices[0]
    text = get(get(choice, "message") or {}, "content") if chat else get(choice, "text")
    if not isinstance(text, str):
        return Result(error="malformed response: no text", latency_s=latency)
    usage = get(body, "usage") or {}
    # which model answered, as the endpoint names it ("gpt-4o" is served by a dated snapshot), and its
    # serving configuration: a judge's verdicts carry both (eval.judge_fingerprint)
    model, fingerprint = get(body, "model"), get(body, "system_fingerprint")
    return Result(text=text, finish_reason=get(choice, "finish_reason"),
                  prompt_tokens=get(usage, "prompt_tokens") or 0,
                  completion_tokens=get(usage, "completion_tokens") or 0, latency_s=latency,
                  model_returned=model if isinstance(model, str) else None,
                  system_fingerprint=fingerprint if isinstance(fingerprint, str) else None)


class Endpoint:
    """One server of a backend's list, with its client and its health."""

    def __init__(self, url: str, client: Any):
        self.url, self.client = url, client
        self.in_flight = self.sent = self.failures = 0
        self.down_until = 0.0
        self.gone = False  # its server is known to have ended (an engine's replica): never asked again

    def failed(self) -> None:
        self.failures += 1
        # A gone endpoint stays down: a request that was in flight to it may fail after the fact.
        self.down_until = math.inf if self.gone else time.monotonic() + min(30.0, 0.25 * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures, self.down_until = 0, 0.0


class _Retry(Exception):
    """``connection``: refused (nothing listens); ``lost``: refused or dropped mid-request."""

    def __init__(self, reason: str, wait: float | None = None, connection: bool = False, failover: bool = False,
                 lost: bool = False):
        super().__init__(reason)
        self.reason, self.wait, self.connection, self.failover, self.lost = reason, wait, connection, failover, lost


class OpenAIBackend(Backend):
    kind = "openai"
    OPTIONS = {"base_url", "api_key", "concurrency", "timeout", "max_retries", "rpm", "tpm",
               "retry_backoff", "api_version"}

    def __init__(self, model: str, base_url: str | list[str] | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 600.0, max_retries: int = 8,
                 rpm: float | None = None, tpm: float | None = None, retry_backoff: float = 1.0,
                 api_version: str | None = None):
        super().__init__(model)
        if concurrency < 1:
            raise UserError(f"--concurrency {concurrency}: must be at least 1")
        for flag, value in (("--rpm", rpm), ("--tpm", tpm)):
            if value is not None and not value > 0:
                raise UserError(f"{flag} {value}: must be a positive number per minute")
        if max_retries < 0:
            raise UserError(f"--max-retries {max_retries}: must be >= 0")
        import openai

        azure = api_version is not None
        urls = [u for u in ([base_url] if isinstance(base_url, str) else base_url or []) if u]
        self.base_urls = urls or [os.environ.get("AZURE_OPENAI_ENDPOINT" if azure else "OPENAI_BASE_URL")
                                  or ("" if azure else DEFAULT_BASE_URL)]
        self.base_url = self.base_urls[0] if len(self.base_urls) == 1 else ", ".join(self.base_urls)
        key = api_key or os.environ.get("AZURE_OPENAI_API_KEY" if azure else "OPENAI_API_KEY") \
            or os.environ.get("OPENAI_API_KEY")
        if not key:
            var = "AZURE_OPENAI_API_KEY" if azure else "OPENAI_API_KEY"
            raise UserError(
                f"openai:{model} needs an API key: set {var} (for a server without authentication, "
                "such as a local vLLM, any value works, e.g. OPENAI_API_KEY=EMPTY)")
        if azure:
            if not self.base_url:
                raise UserError("--api-version is for Azure OpenAI: also give --base-url "
                                "https://RESOURCE.openai.azure.com (or AZURE_OPENAI_ENDPOINT)")
            # The model name is the Azure deployment name.
            self._make_client = lambda url: openai.AsyncAzureOpenAI(
                api_key=key, azure_endpoint=url, api_version=api_version, timeout=timeout, max_retries=0)
        else:
            self._make_client = lambda url: openai.AsyncOpenAI(api_key=key, base_url=url, timeout=timeout, max_retries=0)
        # Clients per run: their connections belong to that run's event loop (stages such as
        # compare make several runs with one backend).
        self.endpoints: list[Endpoint] = []
        self.request_model = model  # the name the server knows the model by
        self.timeout = timeout
        self.concurrency, self.rpm, self.tpm = concurrency, rpm, tpm
        self.max_retries, self.retry_backoff = max_retries, retry_backoff
        self.any_success = False
        self.lost_message: str | None = None  # why every endpoint is gone, once they are
        self.limiter: AdaptiveLimiter | None = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "concurrency": self.concurrency,
                "rpm": self.rpm, "tpm": self.tpm}

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.client.close()
        self.endpoints = []

    async def _endpoint(self) -> Endpoint:
        """The healthy endpoint with the fewest requests in flight; when all are cooling down, the
        first to come back (a probe). A gone endpoint is down forever (``down_until`` infinite)."""
        while True:
            now = time.monotonic()
            up = [e for e in self.endpoints if e.down_until <= now]
            if up:
                return min(up, key=lambda e: (e.in_flight, e.sent))
            back = min(e.down_until for e in self.endpoints)
            if back == math.inf:
                raise FatalBackendError(self.lost_message or f"every endpoint of {self.base_url} is gone")
            await asyncio.sleep(max(0.0, back - now))

    def endpoint_lost(self, ep: Endpoint) -> None:
        """A connection to ``ep`` was refused or dropped. A URL may come back (a restart, a network
        blip), so here it only cools down; a backend that runs its servers checks whether the
        process is still there (``engines.EngineBackend``). May raise FatalBackendError."""

    async def run(self, requests: list[Request], ctx: RunContext) -> AsyncIterator[tuple[Request, Result]]:
        self.limiter = AdaptiveLimiter(self.concurrency, self.rpm, self.tpm)
        if not self.endpoints:
            self.endpoints = [Endpoint(u, self._make_client(u)) for u in self.base_urls]
        # Workers pull from a queue instead of one task per request: 52K pending tasks would
        # cost memory and scheduler time for nothing.
        queue: asyncio.Queue = asyncio.Queue()
        for r in requests:
            queue.put_nowait(r)
        done: asyncio.Queue = asyncio.Queue()

        async def worker() -> None:
            while True:
                try:
                    req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await done.put((req, await self.call(req, ctx)))
                except BaseException as e:  # fatal: hand it to the consumer
                    await done.put((req, e))
                    return

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(requests)))]
        try:
            for _ in range(len(requests)):
                req, res = await done.get()
                if isinstance(res, BaseException):
                    raise res
                yield req, res
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    @staticmethod
    def worst_case(req: Request, prices) -> float:
        """The most ``req`` can cost: its prompt's bytes (an upper bound of its tokens) at the input
        price plus ``max_tokens`` at the output price; 0 when the price is unknown."""
        if not (prices and prices.known):
            return 0.0
        return prices.cost(max_prompt_tokens(req.messages, req.prompt), req.params.max_tokens)

    async def call(self, req: Request, ctx: RunContext) -> Result:
        budget, prices = ctx.budget, ctx.prices
        worst = self.worst_case(req, prices)
        if budget is not None and not await budget.acquire(worst):
            return Result(skipped="budget")
        cost = None
        try:
            res = await self._call_with_retries(req, estimate_prompt_tokens(req.messages, req.prompt))
            if res.ok and prices is not None:
                cost = prices.cost(res.prompt_tokens, res.completion_tokens)
            res.cost_usd = cost
            return res
        finally:
            if budget is not None:
                await budget.release(worst, cost if cost is not None else 0.0)

    async def _call_with_retries(self, req: Request, est_tokens: int) -> Result:
        attempt, t0 = 0, time.perf_counter()
        many = len(self.endpoints) > 1
        while True:
            await self.limiter.acquire(est_tokens + req.params.max_tokens)
            ok = False
            ep = await self._endpoint()
            ep.in_flight += 1
            ep.sent += 1
            try:
                res = await self._attempt(req, ep)
                ok = True
                self.any_success = True
                ep.succeeded()
                res.latency_s = time.perf_counter() - t0
                return res
            except _Retry as r:
                if r.failover and many:
                    ep.failed()  # out for a cool-down; this request goes to another endpoint at once
                if r.lost:
                    self.endpoint_lost(ep)  # only on a failed connection: nothing on the hot path
                # An endpoint never reached is a wrong URL or a server that is down: say so fast
                # instead of retrying every request for minutes.
                limit = 2 * len(self.endpoints) if (r.connection and not self.any_success) else self.max_retries
                if attempt >= limit:
                    if r.connection and not self.any_success:
                        raise FatalBackendError(
                            f"cannot reach {self.base_url} after retries ({r.reason}); check --base-url / "
                            "OPENAI_BASE_URL and that the server is up") from None
                    return Result(error=f"{r.reason} (after {attempt + 1} attempts)",
                                  latency_s=time.perf_counter() - t0)
                backoff = min(60.0, self.retry_backoff * 2 ** attempt) * random.random()  # full jitter
                healthy_other = many and r.failover and any(e.down_until <= time.monotonic() for e in self.endpoints)
                wait = (r.wait or 0.0) if healthy_other else max(r.wait or 0.0, backoff)
                attempt += 1
            finally:
                ep.in_flight -= 1
                await self.limiter.release(ok)
            await asyncio.sleep(wait)

    async def _attempt(self, req: Request, ep: Endpoint) -> Result:
        import openai

        p = req.params
        args: dict[str, Any] = dict(model=self.request_model, temperature=p.temperature, top_p=p.top_p,
                                    max_tokens=p.max_tokens)
        if p.seed is not None:
            args["seed"] = p.seed
        if req.extra:
            args["extra_body"] = req.extra
        chat = req.messages is not None
        t0 = time.perf_counter()
        try:
            if chat:
                resp = await ep.client.chat.completions.create(messages=req.messages, **args)
            else:
                resp = await ep.client.completions.create(prompt=req.prompt, **args)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise FatalBackendError(f"openai:{self.model} at {ep.url}: the API key was refused "
                                    f"({_reason(e)}); check OPENAI_API_KEY") from e
        except openai.NotFoundError as e:
            raise FatalBackendError(f"openai:{self.model} at {ep.url}: not found ({_reason(e)}); "
                                    "check the model name and --base-url") from e
        except openai.RateLimitError as e:
            wait = retry_after_seconds(e.response.headers)
            self.limiter.rate_limited(wait if wait is not None else self.retry_backoff)
            raise _Retry(_reason(e), wait) from e
        except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
            return Result(error=_reason(e))  # this request is wrong; retrying will not help
        except openai.APITimeoutError as e:
            raise _Retry(f"timeout after {self.timeout} s", failover=True) from e
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            # Refused or unresolvable (ConnectError) means nothing is there; a dropped
            # connection mid-request (RemoteProtocolError, ReadError) is an ordinary retry.
            refused = any(c.__name__ == "ConnectError" for c in type(cause).__mro__)
            raise _Retry(_reason(cause), connection=refused, failover=True, lost=True) from e
        except openai.APIStatusError as e:  # 5xx, 408, 409 ...: transient
            raise _Retry(_reason(e), retry_after_seconds(e.response.headers), failover=e.status_code >= 500) from e
        except (ValueError, openai.APIResponseValidationError) as e:  # a body that is not JSON
            raise _Retry(f"malformed response: {_reason(e)}") from e
        res = result_from_body(resp, chat, time.perf_counter() - t0)
        if not res.ok:
            raise _Retry(res.error)
        return res
