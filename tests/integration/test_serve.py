"""``gpt4llm serve`` with the official openai client, and ``generate`` against it (the real HTTP path)."""

import asyncio
import json
import subprocess
import sys
import urllib.request

import openai
import pytest

from support import free_port, read_jsonl, run_cli, wait_http

from gpt4llm.generate import load_instructions


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", "serve", "--port", str(port), "--api-key", "sekret",
                             "--max-wait-ms", "50"], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health")
    yield base
    proc.terminate()
    proc.wait()


def health(base):
    return json.loads(urllib.request.urlopen(base + "/health").read())


def test_official_client_chat_completions_and_models(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="sekret")
    assert [m.id for m in client.models.list()] == ["smollm2-135m-instruct"]
    r = client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hi."}],
                                       max_tokens=6, temperature=0)
    assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 3
    c = client.completions.create(model="smollm2-135m-instruct", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert c.choices[0].text and c.usage.completion_tokens <= 4


def test_key_model_and_validation_errors_are_openai_shaped(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server + "/v1", api_key="wrong").models.list()
    client = openai.OpenAI(base_url=server + "/v1", api_key="sekret", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2-135m-instruct", messages=[], max_tokens=2)
    assert e.value.body["type"] == "invalid_request_error" and "messages" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "x"}], stream=True)
    req = urllib.request.Request(server + "/v1/completions", data=b"{not json", method="POST",
                                 headers={"Authorization": "Bearer sekret", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400 and "error" in json.loads(e.value.read())


def test_concurrent_requests_are_batched_and_answer_as_alone(server):
    prompts = [s.instruction for s in load_instructions("seeds")[:8]]

    async def ask(client, p):
        r = await client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": p}],
                                                 max_tokens=8, temperature=0)
        return r.choices[0].message.content

    async def all_at_once():
        client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="sekret")
        return await asyncio.gather(*(ask(client, p) for p in prompts))

    async def one_by_one():
        client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="sekret")
        return [await ask(client, p) for p in prompts]

    before = health(server)["batches"]
    together = asyncio.run(all_at_once())
    batches = health(server)["batches"] - before
    assert batches < 8  # eight concurrent callers shared batches
    alone = asyncio.run(one_by_one())
    assert together == alone  # and batching does not change greedy answers


def test_generate_against_serve_is_the_real_http_path(server, tmp_path):
    out = tmp_path / "out.jsonl"
    r = run_cli("generate", "--limit", "3", "--max-tokens", "8", "--teacher", "openai:smollm2-135m-instruct",
                "--base-url", server + "/v1", "-o", str(out), "-q", env={"OPENAI_API_KEY": "sekret"})
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(x["output"] and x["meta"]["backend"] == "openai" for x in rows)
    assert "sekret" not in out.read_text()


def test_a_trained_student_is_served_with_its_saved_template(tmp_path, tiny_checkpoint, toy_sft_data):
    student = tmp_path / "student"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(student), "--model", f"local:{tiny_checkpoint}",
                "--max-steps", "1", "--batch-size", "4", "--per-device-batch", "4", "-q")
    assert r.returncode == 0, r.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", "serve", "--model", f"local:{student}", "--port", str(port),
                             "--served-name", "student"], stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health")
        from transformers import AutoTokenizer

        from gpt4llm.templates import ALPACA

        tok = AutoTokenizer.from_pretrained(student)
        client = openai.OpenAI(base_url=base + "/v1", api_key="none")
        for content in ("Repeat the word three times: tea", ALPACA.prompt("Repeat the word three times: tea")):
            r = client.chat.completions.create(model="student", messages=[{"role": "user", "content": content}],
                                               max_tokens=3, temperature=0)
            # Wrapped once in the training template, whether the caller sent the raw instruction or the template.
            assert r.usage.prompt_tokens == len(tok(ALPACA.prompt("Repeat the word three times: tea"))["input_ids"])
    finally:
        proc.terminate()
        proc.wait()
