"""Engines for ``local:`` models: vLLM, SGLang, or any OpenAI-compatible server command.

gpt4llm does not generate at scale itself: it starts the engine's own OpenAI-compatible server for
the model (``vllm serve``, ``python -m sglang.launch_server``, or a command template), ``replicas``
copies with ``tensor_parallel`` GPUs each from ``gpus``, each on a free loopback port; waits for
``/v1/models``; sends every request through the ``openai`` backend (journal, limits, retries,
budget, least-loaded balancing with failover over the replicas); and stops the servers when the
stage ends, on Ctrl-C, on SIGTERM, and when gpt4llm itself dies.

No orphan: each server runs under ``gpt4llm.backends.supervisor`` in a process group of its own.
The supervisor asks the kernel for SIGTERM when its parent (gpt4llm) dies (``PR_SET_PDEATHSIG``),
and on SIGTERM it stops its whole group (the server and every worker it forked: SIGTERM, then
SIGKILL after a grace period). gpt4llm stops the groups itself on exit, Ctrl-C and SIGTERM.

A server that dies mid-run (OOM, a CUDA error) is noticed at the first connection that fails
(``EngineBackend.endpoint_lost``; nothing is checked while requests succeed): a dead replica of
several is never asked again and the others carry on; when none is left the run stops at once
with the engine's log tail, as at startup, instead of retrying every request with back-off for
minutes. The journal keeps every answer that came back, so the same command resumes.

Prompts: the engine receives the prompt text gpt4llm renders with the model's own template object
and tokenizer (``/v1/completions``), byte for byte what the transformers engine feeds the model,
so switching engines changes speed, not results.
"""

from __future__ import annotations

import atexit
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gpt4llm.backends.base import FatalBackendError
from gpt4llm.backends.openai import OpenAIBackend
from gpt4llm.errors import UserError

ENGINES = ("transformers", "vllm", "sglang", "command")

# The servers listen on 127.0.0.1: asking through an http_proxy from the environment would reach
# the proxy, not the server (and a proxy that is down makes every server look "not ready").
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback_get(url: str, timeout: float) -> bytes:
    """GET a URL on 127.0.0.1, whatever http_proxy says; raises OSError when nothing answers 200."""
    with _LOOPBACK.open(url, timeout=timeout) as resp:
        return resp.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gpu_groups(gpus: str | None, replicas: int, tensor_parallel: int) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each replica: consecutive groups of ``tensor_parallel`` ids from ``gpus``."""
    if not gpus:
        return [None] * replicas
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    need = replicas * tensor_parallel
    if len(ids) < need:
        raise UserError(f"--gpus {gpus}: {replicas} replicas x {tensor_parallel} tensor parallel need {need} GPUs, "
                        f"got {len(ids)}")
    return [",".join(ids[r * tensor_parallel:(r + 1) * tensor_parallel]) for r in range(replicas)]


def command_line(engine: str, template: str | None, *, model: str, local_model: str, served_name: str, host: str,
                 port: int, tensor_parallel: int, gpus: str | None) -> list[str]:
    """The server command of one replica.

    vLLM (``vllm serve``; flags as its CLI documents them): ``--tensor-parallel-size``,
    ``--served-model-name``, and ``--generation-config vllm`` so that the model's own
    generation_config.json sets no sampling defaults of its own (top_k, repetition penalty): gpt4llm
    sends every decoding parameter it uses. SGLang (``python -m sglang.launch_server``):
    ``--model-path``, ``--tp-size``, ``--served-model-name``. ``command``: the template with
    {model}, {local_model}, {host}, {port}, {tensor_parallel} and {gpus} filled in.
    """
    if engine == "vllm":
        return ["vllm", "serve", model, "--host", host, "--port", str(port), "--tensor-parallel-size",
                str(tensor_parallel), "--served-model-name", served_name, "--generation-config", "vllm"]
    if engine == "sglang":
        return [sys.executable, "-m", "sglang.launch_server", "--model-path", model, "--host", host, "--port", str(port),
                "--tp-size", str(tensor_parallel), "--served-model-name", served_name]
    if engine == "command":
        if not template:
            raise UserError("--engine command needs --engine-command, e.g. \"llama-server -m {model} --port {port}\"")
        try:
            text = template.format(model=shlex.quote(model), local_model=shlex.quote(local_model), host=host, port=port,
                                   tensor_parallel=tensor_parallel, gpus=gpus or "")
        except (KeyError, IndexError, ValueError) as e:
            raise UserError(f"--engine-command {template!r}: unknown placeholder {e}; use {{model}}, {{local_model}}, "
                            "{host}, {port}, {tensor_parallel}, {gpus}") from None
        return shlex.split(text)
    raise UserError(f"--engine {engine}: use one of {', '.join(ENGINES)}")


def _installed(engine: str, argv: list[str]) -> None:
    if engine == "sglang":
        import importlib.util

        if importlib.util.find_spec("sglang") is None:
            raise UserError("--engine sglang: SGLang is not installed here; pip install 'sglang[all]' on the GPU node")
        return
    if shutil.which(argv[0]) is None:
        hint = " (pip install 'gpt4llm[vllm]' on a GPU node)" if engine == "vllm" else ""
        raise UserError(f"--engine {engine}: {argv[0]!r} is not installed or not on PATH{hint}")


class Fleet:
    """The running replicas of one model's engine: start, wait until ready, stop."""

    live: list["Fleet"] = []  # stopped at exit, on Ctrl-C and on SIGTERM

    def __init__(self, engine: str, template: str | None, *, model: str, local_model: str, served_name: str,
                 replicas: int, tensor_parallel: int, gpus: str | None, log_dir: Path, timeout: float):
        self.engine, self.template = engine, template
        self.model, self.local_model, self.served_name = model, local_model, served_name
        self.replicas, self.tensor_parallel, self.gpus = replicas, tensor_parallel, gpus
        self.log_dir, self.timeout = Path(log_dir), timeout
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.commands: list[list[str]] = []

    def start(self) -> list[str]:
        groups = gpu_groups(self.gpus, self.replicas, self.tensor_parallel)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _install_handlers()
        Fleet.live.append(self)
        try:
            for r, devices in enumerate(groups):
                port = free_port()
                argv = command_line(self.engine, self.template, model=self.model, local_model=self.local_model,
                                    served_name=self.served_name, host="127.0.0.1", port=port,
                                    tensor_parallel=self.tensor_parallel, gpus=devices)
                _installed(self.engine, argv)
                env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": devices} if devices else {})}
                supervised = [sys.executable, "-m", "gpt4llm.backends.supervisor", "--parent", str(os.getpid()),
                              "--", *argv]
                with open(self.log(r), "ab") as log:  # the server writes to its own copy of the descriptor
                    self.procs.append(subprocess.Popen(supervised, stdout=log, stderr=subprocess.STDOUT,
                                                       stdin=subprocess.DEVNULL, env=env, start_new_session=True))
                self.commands.append(argv)
                self.urls.append(f"http://127.0.0.1:{port}/v1")
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.urls

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        waiting = set(range(len(self.procs)))
        while waiting:
            for r in sorted(waiting):
                code = self.procs[r].poll()
                if code is not None:
                    raise UserError(self._failed(r, f"exited with status {code} before it was ready"))
                try:
                    loopback_get(self.urls[r] + "/models", timeout=2)
                    waiting.discard(r)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise UserError(self._failed(min(waiting), f"was not ready within {self.timeout:g} s"))
            if waiting:
                time.sleep(0.25)

    def log(self, r: int) -> Path:
        return self.log_dir / f"{self.served_name}-{r}.log"

    def _failed(self, r: int, what: str) -> str:
        log = self.log(r)
        try:
            tail = log.read_text(errors="replace").strip().splitlines()[-6:]
        except OSError:
            tail = []
        last = ("; its log ends:\n  " + "\n  ".join(tail)) if tail else ""
        return f"engine {self.engine} ({shlex.join(self.commands[r])}) {what}; log {log}{last}"

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def exit_status(self, r: int) -> int | None:
        """None while replica ``r`` runs, else its supervisor's exit status (the server's)."""
        return self.procs[r].poll() if r < len(self.procs) else None

    def lost(self, r: int, left: int) -> str:
        """What to say when replica ``r`` ended mid-run, with ``left`` replicas still running."""
        n = len(self.urls)
        what = f"exited with status {self.exit_status(r)} during the run"
        what += f" (replica {r + 1} of {n})" if n > 1 else ""
        if left:
            return f"engine {self.engine} {what}; carrying on with {left} of {n}; log {self.log(r)}"
        return (self._failed(r, what) + "\nthe answers that came back are journaled: run the same command again "
                "to resume")

    def stop(self, grace: float = 15.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # whatever is left of the group
            except (ProcessLookupError, PermissionError):
                pass
        self.procs = []
        if self in Fleet.live:
            Fleet.live.remove(self)


def stop_all() -> None:
    for fleet in list(Fleet.live):
        fleet.stop()


_handlers = False


def _install_handlers() -> None:
    """Stop every engine at exit and on SIGTERM (Ctrl-C arrives as KeyboardInterrupt and unwinds to
    the stage, which stops its engines; atexit covers the rest)."""
    global _handlers
    if _handlers:
        return
    _handlers = True
    atexit.register(stop_all)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        stop_all()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: atexit and the supervisors still stop them
        pass


class EngineBackend(OpenAIBackend):
    """A ``local:`` model served by an engine (vLLM, SGLang, a command): the servers start on the
    first run and stop when the stage closes the backend; requests go through the openai
    backend's client (limits, retries, failover over the replicas). The journal key names the
    engine, not the endpoint: the same call on another replica or port is the same call, but an
    answer of vLLM is not taken for one of transformers (their numerics differ)."""

    OPTIONS = OpenAIBackend.OPTIONS | {"engine", "engine_command", "replicas", "tensor_parallel", "gpus",
                                       "engine_timeout", "log_dir"}

    def __init__(self, model: str, engine: str = "vllm", engine_command: str | None = None, replicas: int = 1,
                 tensor_parallel: int = 1, gpus: str | None = None, engine_timeout: float = 900.0,
                 log_dir: str | Path | None = None, **options):
        from gpt4llm.backends.local import resolve

        resolve(model)  # a bad name fails before any server starts
        options.pop("base_url", None)
        options.pop("api_key", None)
        super().__init__(model, base_url="http://127.0.0.1:0/v1", api_key="EMPTY", **options)
        self.kind = f"local+{engine}"
        self.engine, self.engine_command = engine, engine_command
        self.replicas, self.tensor_parallel, self.gpus = replicas, tensor_parallel, gpus
        self.engine_timeout, self.log_dir = engine_timeout, Path(log_dir or "engines")
        self.fleet: Fleet | None = None
        self._tok = None
        self._console = None

        import openai

        # The servers are on 127.0.0.1: no http_proxy from the environment (trust_env=False).
        self._make_client = lambda url: openai.AsyncOpenAI(
            api_key="EMPTY", base_url=url, timeout=self.timeout, max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(trust_env=False))

    def describe(self) -> dict:
        return {**super().describe(), "backend": self.kind, "engine": self.engine, "replicas": self.replicas,
                "tensor_parallel": self.tensor_parallel, "gpus": self.gpus}

    def _source(self) -> str:
        """The checkpoint directory or hub id the engine loads ({model})."""
        from gpt4llm.backends import EMBEDDED
        from gpt4llm.backends.local import load_model, resolve

        source, _ = resolve(self.model)
        if self.model == EMBEDDED and source.endswith(".gguf"):
            load_model(self.model)  # writes the dequantized checkpoint the engine can load
            source, _ = resolve(self.model)
        return source

    def start(self) -> None:
        import json as _json

        self.fleet = Fleet(self.engine, self.engine_command, model=self._source(), local_model=f"local:{self.model}",
                           served_name=Path(self.model).name.replace("/", "--"), replicas=self.replicas,
                           tensor_parallel=self.tensor_parallel, gpus=self.gpus, log_dir=self.log_dir,
                           timeout=self.engine_timeout)
        self.base_urls = self.fleet.start()
        self.base_url = ", ".join(self.base_urls)
        self.endpoints = []
        self.request_model = _json.loads(loopback_get(self.base_urls[0] + "/models", 10))["data"][0]["id"]  # its name

    def tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self._source())
        return self._tok

    async def run(self, requests, ctx):
        from gpt4llm.backends.base import Request
        from gpt4llm.backends.local import LocalBackend

        if not requests:
            return
        if self.fleet is None:
            # In this (the main) thread, not a worker: the supervisors' parent-death signal follows
            # the thread that started them, and executor threads end with each event loop.
            self.start()
        self._console = ctx.console
        tok = self.tokenizer()
        rendered = []
        for r in requests:  # the prompt text the transformers engine would feed the model, byte for byte
            text, special = LocalBackend.render(None, tok, r)
            rendered.append(Request(params=r.params, prompt=text, sample=r.sample, key=r.key, tag=r,
                                    extra={"add_special_tokens": special}))
        async for rr, res in super().run(rendered, ctx):
            yield rr.tag, res

    def endpoint_lost(self, ep) -> None:
        """A connection to one of our servers failed: if its process has ended, it is gone for good.
        Never route to it again; when no replica is left, stop the run with its log tail. While
        the process runs, the failure is an ordinary retry (the caller's back-off)."""
        if ep.gone:
            ep.down_until = math.inf
        if self.fleet is None or ep.url not in self.base_urls or ep.gone:
            return
        r = self.base_urls.index(ep.url)
        if self.fleet.exit_status(r) is None:
            return
        ep.gone, ep.down_until = True, math.inf
        left = sum(not e.gone for e in self.endpoints)
        message = self.fleet.lost(r, left)
        if not left:
            self.lost_message = message
            raise FatalBackendError(message)
        if self._console is not None:
            self._console.print(f"warning: {message}", markup=False, highlight=False)
        else:
            print(f"warning: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
