"""``gpt4llm serve``: an OpenAI-compatible server for local models (the embedded one, any
checkpoint, a student trained by gpt4llm), on FastAPI + uvicorn.

Requests from concurrent callers are batched: a scheduler waits up to ``max_wait_ms`` for more
requests (or until ``batch_size``), groups them by decoding parameters and runs one batched
``generate`` through the local backend's own code (left padding, EOS handling, usage), so
concurrency raises throughput. A checkpoint with a saved gpt4llm template is prompted with it:
a chat message that is not already in the template is wrapped in it, exactly as in training.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from typing import Annotated

from pydantic import BaseModel, Field

from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams
from gpt4llm.backends.base import Request as Call
from gpt4llm.settings import Opt, Settings
from gpt4llm.templates import PromptTemplate


class ServeSettings(Settings):
    """gpt4llm serve: an OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models) batching concurrent callers."""

    model: Annotated[str, Opt("-m")] = DEFAULT_MODEL
    """local:NAME|PATH (a gpt4llm checkpoint uses its saved template)."""
    host: str = "127.0.0.1"
    """Bind address (127.0.0.1: this machine only)."""
    port: int = Field(8000, ge=1, le=65535)
    """Port to listen on."""
    api_key: str | None = None
    """Require 'Authorization: Bearer KEY' on every /v1 request."""
    batch_size: int = Field(16, ge=1)
    """Max requests per batched generate."""
    max_wait_ms: float = Field(10.0, ge=0)
    """How long to wait for more requests to batch."""
    served_name: str | None = None
    """The model name clients use (default: the model's name)."""


class Message(BaseModel):
    role: str
    content: str


class _Params(BaseModel):
    model: str
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    n: int = 1
    stream: bool = False

    def gen(self, default_max: int) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=self.top_p,
                         max_tokens=self.max_completion_tokens or self.max_tokens or default_max, seed=self.seed)


class ChatRequest(_Params):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Params):
    prompt: str
    add_special_tokens: bool = True
    """As vLLM's: False for a prompt already rendered with its special tokens (an engine's client)."""


class Batcher:
    """Collects concurrent calls into batches for the local backend."""

    def __init__(self, backend, batch_size: int, max_wait_ms: float):
        self.backend, self.batch_size, self.max_wait = backend, batch_size, max_wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()
        self.batches = self.calls = 0
        self.task: asyncio.Task | None = None

    async def submit(self, call: Call):
        if self.task is None:
            self.task = asyncio.create_task(self.loop())
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((call, fut))
        return await fut

    async def loop(self) -> None:
        from gpt4llm.backends.local import load_model

        tok, model = await asyncio.to_thread(load_model, self.backend.model, self.backend.device, self.backend.dtype)
        while True:
            items = [await self.queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(items) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            groups: dict[Any, list] = {}
            for call, fut in items:
                text, special = self.backend.render(tok, call)
                groups.setdefault((call.params, special), []).append((call, text, special, fut))
            for group in groups.values():
                batch = [(c, t, s) for c, t, s, _ in group]
                self.batches += 1
                self.calls += len(batch)
                try:
                    results = await asyncio.to_thread(self.backend._generate, tok, model, batch)
                except Exception as e:  # one bad batch fails its callers, not the server
                    for *_, fut in group:
                        fut.set_exception(e)
                    continue
                for (*_, fut), res in zip(group, results):
                    fut.set_result(res)


def error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status)


def create_app(model: str, api_key: str | None = None, batch_size: int = 16, max_wait_ms: float = 10.0,
               served_name: str | None = None, default_max_tokens: int = 512):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError

    from gpt4llm.backends.local import LocalBackend

    name = model.removeprefix("local:")
    backend = LocalBackend(name, batch_size=batch_size)
    template = PromptTemplate.load(name) if Path(name).is_dir() else None
    served = served_name or Path(name).name
    batcher = Batcher(backend, batch_size, max_wait_ms)
    prompt_log = os.environ.get("GPT4LLM_SERVE_PROMPT_LOG", "").replace("{pid}", str(os.getpid()))
    app = FastAPI(title="gpt4llm serve", docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"] if x != "body")
        return error(400, f"{loc}: {e['msg']}" if loc else e["msg"], param=loc or None)

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/") and request.headers.get("authorization") != f"Bearer {api_key}":
            return error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return await call_next(request)

    def check(req: _Params):
        if req.model != served:
            return error(404, f"The model `{req.model}` does not exist; this server serves `{served}`.", code="model_not_found")
        if req.stream:
            return error(400, "stream=true is not supported by gpt4llm serve; send stream=false.", param="stream")
        if req.n != 1:
            return error(400, "only n=1 is supported.", param="n")
        return None

    def usage(res) -> dict:
        return {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens,
                "total_tokens": res.prompt_tokens + res.completion_tokens}

    @app.get("/health")
    async def health():
        return {"ok": True, "model": served, "batches": batcher.batches, "calls": batcher.calls}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0, "owned_by": "gpt4llm"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        if (bad := check(req)) is not None:
            return bad
        msgs = [m.model_dump() for m in req.messages]
        if template is not None and template.name != "chat":
            # A student trained on a template: its own prompt, exactly as in training.
            content = msgs[-1]["content"]
            preamble = os.path.commonprefix([template.prompt_input, template.prompt_no_input])
            prompt = content if content.startswith(preamble) else template.prompt(content)
            call = Call(params=req.gen(default_max_tokens), prompt=prompt)
        else:
            call = Call(params=req.gen(default_max_tokens), messages=msgs)
        res = await batcher.submit(call)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": served, "choices": [{"index": 0, "message": {"role": "assistant", "content": res.text},
                                              "finish_reason": res.finish_reason}], "usage": usage(res)}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        if (bad := check(req)) is not None:
            return bad
        if prompt_log:  # GPT4LLM_SERVE_PROMPT_LOG: every prompt received, to check what a client sends
            with open(prompt_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"prompt": req.prompt, "add_special_tokens": req.add_special_tokens}) + "\n")
        res = await batcher.submit(Call(params=req.gen(default_max_tokens), prompt=req.prompt,
                                        extra={"add_special_tokens": req.add_special_tokens}))
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": served,
                "choices": [{"index": 0, "text": res.text, "finish_reason": res.finish_reason, "logprobs": None}],
                "usage": usage(res)}

    return app


def run(cfg: ServeSettings, announce) -> None:
    """Load the model (a bad one fails with one line before binding), then serve until stopped."""
    import uvicorn

    from gpt4llm.backends import parse_model
    from gpt4llm.backends.local import load_model
    from gpt4llm.errors import UserError

    spec = parse_model(cfg.model, "--model")
    if spec.backend != "local":
        raise UserError(f"--model {cfg.model}: serve runs local models; use local:NAME|PATH")
    load_model(spec.name)
    app = create_app(cfg.model, api_key=cfg.api_key, batch_size=cfg.batch_size, max_wait_ms=cfg.max_wait_ms,
                     served_name=cfg.served_name)
    announce(cfg.served_name or Path(spec.name).name)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
