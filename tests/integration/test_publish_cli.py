"""``gpt4llm publish`` on the command line: a trained checkpoint gets its model card beside its
weights; bad input and every way an upload cannot happen are one line and exit 2, with the local
copy complete when the push is what was refused."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from support import free_port, run_cli, write_jsonl

ROWS = [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat, sleep, move."},
        {"instruction": "把这句话翻译成英文", "input": "你好", "output": "Hello"}]


def refused(r, *fragments) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def no_token_env(tmp_path, **extra) -> dict:
    """No token anywhere: HF_TOKEN unset and an empty HF_HOME (no `hf auth login` file)."""
    return {"HF_HOME": str(tmp_path / "hf_home"), "HF_TOKEN": "", "HF_HUB_OFFLINE": "0", **extra}


def published_and_loadable(out, tmp_path) -> None:
    import datasets

    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert [(x["instruction"], x["output"]) for x in ds] == [(r["instruction"], r["output"]) for r in ROWS]


def test_malformed_input_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"instruction": "a"}\n{"instruction": \n')
    refused(run_cli("publish", str(tmp_path / "in.jsonl"), "--to", str(tmp_path / "pub")), "in.jsonl:2:", "malformed JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_push_without_a_token_is_refused_after_the_local_copy_is_complete(tmp_path):
    src, out = write_jsonl(tmp_path / "a.jsonl", ROWS), tmp_path / "pub"
    line = refused(run_cli("publish", str(src), "--to", str(out), "--push-to-hub", "me/alpaca-test",
                           env=no_token_env(tmp_path)),
                   "--push-to-hub me/alpaca-test", "no Hugging Face token", "HF_TOKEN", f"{out} is complete")
    assert "hf upload me/alpaca-test" in line
    published_and_loadable(out, tmp_path)


def test_push_in_offline_mode_is_refused(tmp_path):
    src, out = write_jsonl(tmp_path / "a.jsonl", ROWS), tmp_path / "pub"
    refused(run_cli("publish", str(src), "--to", str(out), "--push-to-hub", "me/alpaca-test",
                    env=no_token_env(tmp_path, HF_TOKEN="hf_fake", HF_HUB_OFFLINE="1")),
            "offline mode is on (HF_HUB_OFFLINE=1)", "nothing was uploaded", f"{out} is complete")
    published_and_loadable(out, tmp_path)


def test_push_to_an_unreachable_hub_is_refused(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    src, out = write_jsonl(tmp_path / "a.jsonl", ROWS), tmp_path / "pub"
    refused(run_cli("publish", str(src), "--to", str(out), "--push-to-hub", "me/alpaca-test",
                    env=no_token_env(tmp_path, HF_TOKEN="hf_fake", HF_ENDPOINT=endpoint), timeout=120),
            f"cannot reach the Hub at {endpoint}", f"{out} is complete")
    published_and_loadable(out, tmp_path)


class RejectingHub:
    """A loopback server that answers 401 to everything (the Hub's answer to a bad token) and
    records the paths asked, so the test sees that nothing past the token check was attempted."""

    def __init__(self):
        self.paths = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reject(self):
                hub.paths.append((self.command, self.path))
                body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _reject

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_push_with_a_token_the_hub_rejects_is_refused_before_any_repo_is_made(tmp_path):
    hub = RejectingHub()
    try:
        src, out = write_jsonl(tmp_path / "a.jsonl", ROWS), tmp_path / "pub"
        refused(run_cli("publish", str(src), "--to", str(out), "--push-to-hub", "me/alpaca-test",
                        env=no_token_env(tmp_path, HF_TOKEN="hf_bad", HF_ENDPOINT=hub.url), timeout=120),
                f"{hub.url} rejected the token (401)", f"{out} is complete")
    finally:
        hub.close()
    assert ("GET", "/api/whoami-v2") in hub.paths
    assert not any(p.startswith("/api/repos") or m != "GET" for m, p in hub.paths)  # no repo created, nothing sent
    published_and_loadable(out, tmp_path)


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, toy_sft_data, tmp_path_factory):
    """train sft for 2 steps on the tiny 2-layer model: a real checkpoint directory."""
    out = tmp_path_factory.mktemp("sft") / "student"
    r = run_cli("train", "sft", "--data", str(toy_sft_data), "--model", f"local:{tiny_checkpoint}", "-o", str(out),
                "--max-steps", "2", "--batch-size", "4", "--per-device-batch", "4", "--save-steps", "1",
                "--lr", "1e-3", "--logging-steps", "1", "--eval-split", "0.04", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_a_checkpoint_gets_its_model_card_beside_the_weights(trained, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "model"
    r = run_cli("publish", str(trained), "--to", str(out), "--license", "apache-2.0")
    assert r.returncode == 0, r.stderr
    # The final model's files, byte for byte; not the intermediate checkpoints
    names = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in names and "gpt4llm_template.json" in names and "README.md" in names
    assert not any(n.startswith("checkpoint-") for n in names)
    assert (out / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    card = ModelCard.load(out / "README.md")
    fm = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert fm["library_name"] == "transformers" and fm["pipeline_tag"] == "text-generation"
    assert fm["license"] == "apache-2.0" and "base_model" not in fm  # a local path is not a Hub id
    meta = json.loads((trained / "gpt4llm_train.json").read_text())
    text = card.text
    assert f"| learning_rate | {meta['config']['learning_rate']} |" in text and "| template | alpaca |" in text
    assert f"| batch_size | {meta['effective_batch']} |" in text
    assert f"- optimizer steps: {meta['steps']}" in text and f"- mean training loss: {round(meta['train_loss'], 4)}" in text
    # --eval-split 0.04 of 32 records: one held out, its loss (example mean, as trained) on the card
    assert meta["held_out"] == 1 and "On 1 held-out prompts" in text
    assert f"| eval_loss | {round(meta['metrics']['eval_loss'], 4)} |" in text
    # the published directory is a model transformers loads and that prompts as it was trained
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    AutoModelForCausalLM.from_pretrained(str(out))
    assert "### Instruction:" in tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                                         add_generation_prompt=True)


def test_the_held_out_loss_is_the_final_models_loss_on_one_unseen_record(trained, toy_sft_data):
    """Independent of the trainer: the final weights' loss on each of the 32 records, by
    transformers' own loss; the held-out loss is one of them (computed after training)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt4llm.templates import ALPACA

    meta = json.loads((trained / "gpt4llm_train.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(trained))
    model = AutoModelForCausalLM.from_pretrained(str(trained)).eval()
    losses = []
    for r in map(json.loads, toy_sft_data.read_text().splitlines()):
        ex = ALPACA.encode(tok, r["instruction"], r["input"], r["output"])
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ex["input_ids"]]), labels=torch.tensor([ex["labels"]]))
        losses.append(out.loss.item())
    got = meta["metrics"]["eval_loss"]
    assert min(abs(got - x) for x in losses) < 1e-4, (got, losses)
    from gpt4llm.train.sft import SFTSettings

    assert SFTSettings(data="d", output_dir="o").fingerprint() != SFTSettings(data="d", output_dir="o",
                                                                               eval_split=0.1).fingerprint()


def test_an_unfinished_run_is_not_published(trained, tmp_path):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(trained, ck)
    meta = json.loads((ck / "gpt4llm_train.json").read_text())
    (ck / "gpt4llm_train.json").write_text(json.dumps({**meta, "status": "running"}))
    refused(run_cli("publish", str(ck), "--to", str(tmp_path / "pub")), "training did not finish", "--resume")
    assert not (tmp_path / "pub").exists()
