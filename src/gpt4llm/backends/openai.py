"""``openai``: any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, SGLang, llama.cpp
server, Ollama) through the official SDK's ``AsyncOpenAI``.

At most ``concurrency`` requests are in flight; the SDK retries 429, 5xx, timeouts and dropped
connections with backoff. A request that still fails is returned as a failed ``Result`` (the
journal retries it next run); a wrong key or an unreachable endpoint stops the whole run.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator

from gpt4llm.backends.base import Backend, FatalBackendError, Request, Result
from gpt4llm.errors import UserError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _reason(e: Exception) -> str:
    """A one-line reason for the journal and errors.jsonl."""
    import openai

    if isinstance(e, openai.APIStatusError):
        body = e.body.get("error", e.body) if isinstance(e.body, dict) else None
        msg = body.get("message") if isinstance(body, dict) else None
        msg = str(msg or e.message or "").strip()
        return f"HTTP {e.status_code}: {msg.splitlines()[0][:300] if msg else e.response.reason_phrase}"
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


class OpenAIBackend(Backend):
    kind = "openai"
    OPTIONS = {"base_url", "api_key", "concurrency", "timeout", "max_retries"}

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 600.0, max_retries: int = 2):
        super().__init__(model)
        if concurrency < 1:
            raise UserError(f"--concurrency {concurrency}: must be at least 1")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise UserError(
                f"openai:{model} needs an API key: set OPENAI_API_KEY (for a server without "
                "authentication, such as a local vLLM, any value works, e.g. OPENAI_API_KEY=EMPTY)")
        import openai

        self.client = openai.AsyncOpenAI(api_key=key, base_url=self.base_url, timeout=timeout,
                                         max_retries=max_retries)
        self.concurrency = concurrency

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "concurrency": self.concurrency}

    async def aclose(self) -> None:
        await self.client.close()

    async def run(self, requests: list[Request]) -> AsyncIterator[tuple[Request, Result]]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(req: Request) -> tuple[Request, Result]:
            async with sem:
                return req, await self.call(req)

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            for fut in asyncio.as_completed(tasks):
                yield await fut
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def call(self, req: Request) -> Result:
        import openai

        p = req.params
        args: dict[str, Any] = dict(model=self.model, temperature=p.temperature, top_p=p.top_p,
                                    max_tokens=p.max_tokens)
        if p.seed is not None:
            args["seed"] = p.seed
        t0 = time.perf_counter()
        try:
            if req.messages is not None:
                resp = await self.client.chat.completions.create(messages=req.messages, **args)
            else:
                resp = await self.client.completions.create(prompt=req.prompt, **args)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise FatalBackendError(f"openai:{self.model} at {self.base_url}: the API key was refused "
                                    f"({_reason(e)}); check OPENAI_API_KEY") from e
        except openai.NotFoundError as e:
            raise FatalBackendError(f"openai:{self.model} at {self.base_url}: not found ({_reason(e)}); "
                                    "check the model name and --base-url") from e
        except openai.APITimeoutError as e:
            return Result(error=_reason(e), latency_s=time.perf_counter() - t0)
        except openai.APIConnectionError as e:
            raise FatalBackendError(f"cannot reach {self.base_url} after retries ({_reason(e)}); "
                                    "check --base-url / OPENAI_BASE_URL and that the server is up") from e
        except openai.APIError as e:  # 400, 429 and 5xx after retries: this request only
            return Result(error=_reason(e), latency_s=time.perf_counter() - t0)
        latency = time.perf_counter() - t0
        choice = resp.choices[0] if getattr(resp, "choices", None) else None
        text = None if choice is None else (
            choice.message.content if req.messages is not None else choice.text)
        if text is None:
            return Result(error="malformed response: no choices or no text", latency_s=latency)
        usage = resp.usage
        return Result(text=text, finish_reason=choice.finish_reason,
                      prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0,
                      latency_s=latency)
