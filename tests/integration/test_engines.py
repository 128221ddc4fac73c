"""Engines for local: models (issue 15), on the CPU with a stand-in engine: the ``command`` engine
running ``gpt4llm serve`` (a real OpenAI-compatible server on the embedded model). Two replicas
share the work; the prompts they receive are byte for byte those the transformers engine builds;
a replica killed with -9 mid-run loses nothing and no call is paid twice; no server outlives the
command (normal end, Ctrl-C, kill -9 of gpt4llm); a dead replica is never asked again, and when
the only one dies the run stops at once and the same command resumes (issue 22). Also: the command
lines built for vLLM and SGLang read by those engines' own flags, a list of endpoints with a dead
one and one that dies mid-run, and bad engines."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import DATA, run_cli, write_jsonl
from support.openai_server import OpenAIServer

from gpt4llm.backends.engines import command_line, gpu_groups
from gpt4llm.errors import UserError

@pytest.fixture(autouse=True)
def one_thread_per_replica(monkeypatch):
    """Each `gpt4llm serve` replica on one CPU thread: two replicas with a thread per core each fight
    over this machine's 2 cores and answer 10x slower (200 s instead of 20 for 40 answers)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


QUESTIONS = [json.loads(x) for x in (DATA / "vicuna-eval-2023" / "question.jsonl").read_text().splitlines()]


def serve_command(marker: str) -> str:
    # {local_model}: what gpt4llm serve takes; the marker names this test's servers in `ps`
    return f"{sys.executable} -m gpt4llm serve --model {{local_model}} --port {{port}} --served-name {marker}"


def servers(marker: str) -> list[int]:
    """Pids of every live process whose command line carries the marker."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd and "pytest" not in cmd:
                out.append(int(pid))
    return out


def answer_args(tmp_path, n: int, marker: str, *extra: str) -> list[str]:
    q = write_jsonl(tmp_path / "q.jsonl", QUESTIONS[:n])
    return ["answer", "-b", str(q), "-o", str(tmp_path / "a.jsonl"), "--engine", "command", "--engine-command",
            serve_command(marker), "--replicas", "2", "--max-tokens", "8", "--temperature", "0", "--concurrency", "4",
            "-q", *extra]


def test_two_replicas_share_the_work_with_byte_identical_prompts_and_stop(tmp_path):
    from gpt4llm.backends.local import LocalBackend, load_model
    from gpt4llm.eval.answer import build_requests, choose_template
    from gpt4llm.eval.questions import load_questions
    from gpt4llm.backends.base import GenParams

    marker = f"gpt4llm-test-{os.getpid()}-a"
    env = {"GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl")}
    r = run_cli(*answer_args(tmp_path, 12, marker), env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    answers = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(answers) == 12 and all(a["meta"]["model"] == "local+command:smollm2-135m-instruct" for a in answers)
    logs = sorted(tmp_path.glob("prompts.*.jsonl"))
    assert len(logs) == 2, logs  # both replicas got requests
    received = [json.loads(x) for f in logs for x in f.read_text().splitlines()]
    assert len(received) == 12
    # The prompts the servers received are those the transformers engine builds, byte for byte.
    tok, _ = load_model("smollm2-135m-instruct")
    template = choose_template("local:smollm2-135m-instruct", "auto")
    reqs = build_requests(load_questions(str(tmp_path / "q.jsonl")), template, 1, GenParams(temperature=0, max_tokens=8))
    expected = sorted(LocalBackend.render(None, tok, q) for q in reqs)
    assert sorted((x["prompt"], x["add_special_tokens"]) for x in received) == expected
    assert (tmp_path / "engines").is_dir() and len(list((tmp_path / "engines").glob("*.log"))) == 2
    assert servers(marker) == []  # stopped with the command
    # Again: every answer from the journal, no server needed for nothing... and none left behind.
    r = run_cli(*answer_args(tmp_path, 12, marker), env=env, timeout=600)
    assert r.returncode == 0 and "model calls: 0 made" in r.stdout and servers(marker) == []


class Knocks:
    """Listens on a dead replica's port and notes when each connection comes (accepted, then
    closed at once: to the client, a dropped connection)."""

    def __init__(self, port: int):
        import threading

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.times: list[float] = []
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.times.append(time.monotonic())
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def ended(pid: int) -> bool:
    """The process has exited (a zombie its parent has not reaped yet counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_replica_killed_mid_run_loses_nothing_and_no_call_is_paid_twice(tmp_path):
    """Two replicas, one killed with -9 mid-run: the other answers the rest, each call once; the
    dead one is said to be gone and, once gpt4llm has seen it (issue 22, point 2), is never asked
    again. Its port gets a listener right after its supervisor exits: at most one burst of
    connections may reach it (the failures that reveal the death), where before the dead replica
    was probed again each time its cool-down ended (0.5, 1, 2, 4 ... s) until the run ended."""
    marker = f"gpt4llm-test-{os.getpid()}-b"
    env = {**os.environ, "COLUMNS": "200", "GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl")}
    p = subprocess.Popen([sys.executable, "-m", "gpt4llm", *answer_args(tmp_path, 40, marker, "--max-tokens", "24")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    victim = None
    while victim is None:
        assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else "slow"
        for f in tmp_path.glob("prompts.*.jsonl"):
            if len(f.read_text().splitlines()) >= 3:
                victim = int(f.name.split(".")[1])
        time.sleep(0.05)
    argv = Path(f"/proc/{victim}/cmdline").read_bytes().decode().split("\0")
    port = int(argv[argv.index("--port") + 1])
    supervisor = int(Path(f"/proc/{victim}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(victim, signal.SIGKILL)
    while not ended(supervisor):
        assert time.time() < deadline
        time.sleep(0.01)
    knocks = Knocks(port)
    try:
        out, err = p.communicate(timeout=600)
    finally:
        knocks.close()
    assert p.returncode == 0, err[-3000:]
    assert not knocks.times or knocks.times[-1] - knocks.times[0] < 0.5, knocks.times
    assert "exited with status 137 during the run (replica" in err and "carrying on with 1 of 2" in err
    answers = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert sorted(a["question_id"] for a in answers) == [q["question_id"] for q in QUESTIONS[:40]]
    db = sqlite3.connect(tmp_path / "a.jsonl.journal.sqlite")
    rows = db.execute("SELECT status, attempts FROM calls").fetchall()
    assert len(rows) == 40 and all(s == "ok" and a == 1 for s, a in rows)
    assert servers(marker) == []


def prompts_received(tmp_path) -> dict[int, list[str]]:
    """Prompts each `gpt4llm serve` process received, by its pid (GPT4LLM_SERVE_PROMPT_LOG)."""
    return {int(f.name.split(".")[1]): [json.loads(x)["prompt"] for x in f.read_text().splitlines()]
            for f in tmp_path.glob("prompts.*.jsonl")}


def test_the_only_replica_dying_mid_run_stops_the_run_and_the_same_command_resumes(tmp_path):
    """Issue 22, point 2: the only replica is killed with -9 mid-run (what the OOM killer does to
    vLLM). The run ends at once with one error naming the engine and its log tail, exit 2, no
    traceback, no output file, the journal holding every answer that came back; the same command
    (a fresh engine) then asks only for the rest. Before, every remaining request retried with
    back-off for about 90 s (8 retries, up to 60 s each): minutes here, hours in a real run, so the
    60 s below tell the two apart. An http_proxy that is down is set on purpose: the engine is on
    127.0.0.1, so neither its readiness poll nor its requests may go through a proxy."""
    marker = f"gpt4llm-test-{os.getpid()}-only"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "COLUMNS": "200", "GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl"),
           "http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "no_proxy": "", "NO_PROXY": ""}
    args = answer_args(tmp_path, 6, marker, "--replicas", "1", "--concurrency", "2", "--max-tokens", "4")
    p = subprocess.Popen([sys.executable, "-m", "gpt4llm", *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not any(len(v) >= 3 for v in prompts_received(tmp_path).values()):
        assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else "slow"
        time.sleep(0.05)
    (server,) = prompts_received(tmp_path)
    os.kill(server, signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the run went on retrying a dead engine for more than 60 s")
    assert p.returncode == 2 and "Traceback" not in err, err[-3000:]
    assert err.count("error:") == 1 and "error: engine command (" in err
    assert "exited with status 137 during the run" in err
    assert "was killed by signal 9 (SIGKILL)" in err  # the log's tail: the supervisor's line about the server
    assert "run the same command again" in err
    assert not (tmp_path / "a.jsonl").exists()
    assert servers(marker) == []
    db = sqlite3.connect(tmp_path / "a.jsonl.journal.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    done = [(q.get("messages") or [{"content": q.get("prompt")}])[-1]["content"]
            for q in (json.loads(r) for (r,) in db.execute("SELECT request FROM calls WHERE status = 'ok'"))]
    db.close()
    # concurrency 2: a third prompt is sent only once an answer came back
    assert 1 <= len(done) < 6
    # The same command: a new engine, asked only for what the journal lacks.
    r = subprocess.run([sys.executable, "-m", "gpt4llm", *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    again = [x for pid, v in prompts_received(tmp_path).items() if pid != server for x in v]
    assert len(again) == 6 - len(done) and not any(q in x for q in done for x in again)
    answers = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert sorted(a["question_id"] for a in answers) == sorted(q["question_id"] for q in QUESTIONS[:6])
    assert servers(marker) == []


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_no_server_outlives_gpt4llm(how, tmp_path):
    marker = f"gpt4llm-test-{os.getpid()}-{how}"
    env = {**os.environ, "GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl")}
    p = subprocess.Popen([sys.executable, "-m", "gpt4llm", *answer_args(tmp_path, 40, marker, "--max-tokens", "64")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=(how == "sigkill"))
    deadline = time.time() + 300
    while not list(tmp_path.glob("prompts.*.jsonl")):
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.05)
    assert len(servers(marker)) >= 2
    p.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    p.wait(timeout=120)
    deadline = time.time() + 60
    while servers(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert servers(marker) == []
    if how == "sigint":
        assert p.returncode == 130 and b"Traceback" not in p.stderr.read()


# The flags vLLM and SGLang define, from their own parsers (neither installs here: no GPU), each
# with what it does as the source says. A flag we send that is not in these parsers, or a value
# bound to the wrong flag, fails the parse below as it would fail `vllm serve` itself.
VLLM_SERVE = {  # `vllm serve [model_tag] [options]` (vllm >= 0.8; the project's extra is vllm>=0.8)
    # vllm-project/vllm vllm/entrypoints/openai/cli_args.py, FrontendArgs: host, port -> --host, --port
    "--host": {}, "--port": {"type": int},
    # vllm-project/vllm vllm/engine/arg_utils.py, EngineArgs.add_cli_args:
    # parallel_group.add_argument("--tensor-parallel-size", "-tp", ...)
    "--tensor-parallel-size": {"type": int, "aliases": ["-tp"]},
    # ibid., model_group.add_argument("--served-model-name", ...): one or more names (nargs="+")
    "--served-model-name": {"nargs": "+"},
    # ibid., "--generation-config"; vllm/config/model.py ModelConfig.generation_config: "auto" (the
    # model's generation_config.json), "vllm" (none: vLLM's defaults) or a folder path
    "--generation-config": {},
}
SGLANG_LAUNCH_SERVER = {  # `python -m sglang.launch_server [options]`
    # sgl-project/sglang python/sglang/srt/server_args.py, ServerArgs.add_cli_args:
    # "--model-path"/"--model" (required), "--host", "--port", "--tensor-parallel-size"/"--tp-size",
    # "--served-model-name" (overrides the name /v1/models returns)
    "--model-path": {"aliases": ["--model"], "required": True}, "--host": {}, "--port": {"type": int},
    "--tensor-parallel-size": {"type": int, "aliases": ["--tp-size"]}, "--served-model-name": {},
}


def documented_parser(flags: dict, positional: str | None = None):
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False, allow_abbrev=False)
    if positional:
        parser.add_argument(positional)
    for flag, spec in flags.items():
        spec = dict(spec)
        parser.add_argument(flag, *spec.pop("aliases", []), **spec)
    return parser


ENGINE_KW = dict(model="/models/student", local_model="local:/models/student", served_name="student",
                 host="127.0.0.1", port=8123, tensor_parallel=4, gpus="0,1,2,3")


def test_the_vllm_command_line_parses_as_vllm_serve_defines_it():
    argv = command_line("vllm", None, **ENGINE_KW)
    assert argv[:2] == ["vllm", "serve"]
    args, unknown = documented_parser(VLLM_SERVE, "model_tag").parse_known_args(argv[2:])
    assert unknown == []
    assert (args.model_tag, args.host, args.port, args.tensor_parallel_size, args.served_model_name) == \
        ("/models/student", "127.0.0.1", 8123, 4, ["student"])
    assert args.generation_config == "vllm"  # no sampling defaults from the model: gpt4llm sends its own


def test_the_sglang_command_line_parses_as_sglang_defines_it():
    argv = command_line("sglang", None, **ENGINE_KW)
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "sglang.launch_server"]
    args, unknown = documented_parser(SGLANG_LAUNCH_SERVER).parse_known_args(argv[3:])
    assert unknown == []
    assert (args.model_path, args.host, args.port, args.tensor_parallel_size, args.served_model_name) == \
        ("/models/student", "127.0.0.1", 8123, 4, "student")


def test_the_engine_command_lines_parse_with_the_installed_engines():
    """Where vLLM or SGLang is installed (a GPU node), their own parsers read our command lines."""
    import argparse

    checked = 0
    try:
        from vllm.entrypoints.openai.cli_args import make_arg_parser
        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:
            from vllm.utils import FlexibleArgumentParser
    except ImportError:
        pass
    else:
        parser = make_arg_parser(FlexibleArgumentParser())
        parser.add_argument("model_tag", nargs="?")  # `vllm serve`'s positional (vllm/entrypoints/cli/serve.py)
        args = parser.parse_args(command_line("vllm", None, **ENGINE_KW)[2:])
        assert (args.model_tag, args.port, args.tensor_parallel_size) == ("/models/student", 8123, 4)
        checked += 1
    try:
        from sglang.srt.server_args import ServerArgs
    except ImportError:
        pass
    else:
        parser = argparse.ArgumentParser()
        ServerArgs.add_cli_args(parser)
        args = parser.parse_args(command_line("sglang", None, **ENGINE_KW)[3:])
        assert (args.model_path, args.port, args.tp_size) == ("/models/student", 8123, 4)
        checked += 1
    if not checked:
        pytest.skip("neither vllm nor sglang is installed here (they need a GPU)")


def test_command_templates_and_gpu_groups():
    kw = ENGINE_KW
    assert command_line("command", "llama-server -m {model} --port {port} -ngl {tensor_parallel}", **kw) == [
        "llama-server", "-m", "/models/student", "--port", "8123", "-ngl", "4"]
    with pytest.raises(UserError, match="unknown placeholder"):
        command_line("command", "x {nope}", **kw)
    assert gpu_groups("0,1,2,3,4,5,6,7", 2, 4) == ["0,1,2,3", "4,5,6,7"] and gpu_groups(None, 3, 1) == [None] * 3
    with pytest.raises(UserError, match="need 8 GPUs, got 4"):
        gpu_groups("0,1,2,3", 2, 4)


def test_a_list_of_endpoints_with_a_dead_one_and_one_dying_mid_run(tmp_path):
    recs = [{"instruction": f"Describe item {i}.", "input": ""} for i in range(60)]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    with OpenAIServer(delay=0.02) as a, OpenAIServer(delay=0.02) as c:
        import threading

        from support.openai_server import Fault

        answered_by_c = []

        def count(content, attempt):
            if len(c.requests) > 10:  # from its 11th request on, the server is gone: open connections drop,
                if c.httpd.socket.fileno() >= 0:  # new ones are refused
                    threading.Thread(target=lambda: (c.httpd.shutdown(), c.httpd.server_close()), daemon=True).start()
                return Fault("drop")
            answered_by_c.append(content)
            return None

        c.fault = count
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        env = {"OPENAI_API_KEY": a.api_key}
        r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "o.jsonl"), "--teacher", "openai:teacher",
                    "--base-url", a.url, "--base-url", dead, "--base-url", c.url, "--concurrency", "6",
                    "--retry-backoff", "0.01", "--timeout", "2", "-q", env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
        assert len(out) == 60 and len({x["id"] for x in out}) == 60
        # C answered its first requests (about 10: those that came before the 11th), dropped the rest;
        # A answered every other one, each once
        assert 5 <= len(answered_by_c) <= 10 and len(a.requests) == 60 - len(answered_by_c)
        assert len(set(a.contents()) | set(answered_by_c)) == 60
        db = sqlite3.connect(tmp_path / "o.jsonl.journal.sqlite")
        assert db.execute("SELECT COUNT(*), SUM(attempts) FROM calls WHERE status = 'ok'").fetchone() == (60, 60)


def test_bad_engines_are_one_line_and_exit_2(tmp_path):
    q = write_jsonl(tmp_path / "q.jsonl", QUESTIONS[:2])
    base = ["answer", "-b", str(q), "-o", str(tmp_path / "a.jsonl"), "-q"]
    r = run_cli(*base, "--engine", "vllm")
    assert r.returncode == 2 and "'vllm' is not installed or not on PATH" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(*base, "--engine", "command", "--engine-command", f"{sys.executable} -c \"import sys; print('boom: no GPU'); sys.exit(3)\"")
    assert r.returncode == 2 and "exited with status 3 before it was ready" in r.stderr and "boom: no GPU" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "a.jsonl").exists()
    r = run_cli(*base, "--engine", "command")
    assert r.returncode == 2 and "--engine command needs --engine-command" in r.stderr


def test_a_trained_student_is_served_with_the_prompts_it_was_trained_on(tmp_path, tiny_checkpoint, toy_sft_data):
    """`train sft` writes a checkpoint an engine serves as it is: the command engine's server gets
    the Alpaca prompts the transformers engine builds from the saved template, byte for byte."""
    from gpt4llm.templates import ALPACA

    student = tmp_path / "student"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(student), "--model", f"local:{tiny_checkpoint}",
                "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--per-device-batch", "2", "--precision", "fp32",
                "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    marker = f"gpt4llm-test-{os.getpid()}-s"
    q = write_jsonl(tmp_path / "q.jsonl", QUESTIONS[:4])
    env = {"GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl")}
    r = run_cli("answer", "-b", str(q), "-o", str(tmp_path / "a.jsonl"), "--model", f"local:{student}", "--engine",
                "command", "--engine-command", serve_command(marker), "--max-tokens", "4", "--temperature", "0", "-q",
                env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    received = [json.loads(x) for f in tmp_path.glob("prompts.*.jsonl") for x in f.read_text().splitlines()]
    assert sorted((x["prompt"], x["add_special_tokens"]) for x in received) == \
        sorted((ALPACA.prompt(q["text"]), True) for q in QUESTIONS[:4])
    assert all(a["meta"]["template"] == "alpaca" for a in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines()))
    assert servers(marker) == []
