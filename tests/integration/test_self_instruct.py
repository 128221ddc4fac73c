import hashlib

from support import read_jsonl, run_cli
from support.openai_server import OpenAIServer

VOCAB = ("rivers volcanoes bread trains chess tea glaciers bees comets violins deserts owls maple copper sonnets tides "
         "lanterns orchards pottery fossils kites harbors meadows pianos saffron tunnels beacons canyons ferns quartz").split()
VERBS = ["Explain", "Compare", "Summarize", "Describe", "Contrast", "Discuss", "Outline", "Define"]


def teacher(content):
    """A teacher that lists new tasks: two fresh ones per prompt, one near-copy of a seed, one about an image."""
    rnd = __import__("random").Random(hashlib.sha256(content.encode()).hexdigest())
    one = " ".join([rnd.choice(VERBS)] + rnd.sample(VOCAB, 6))
    two = " ".join([rnd.choice(VERBS)] + rnd.sample(VOCAB, 6))
    a = rnd.choice(VOCAB)
    text = (f" {one}.\n2. Input:\n<noinput>\n2. Output:\nThey differ.\n"
            f"###\n3. Instruction: {two}?\n3. Input:\n<noinput>\n3. Output:\nFacts.\n"
            "###\n4. Instruction: Write a four-line poem about a lighthouse keeper who cannot sleep.\n4. Input:\n<noinput>\n4. Output:\nPoem.\n"
            f"###\n5. Instruction: Describe the image of {a} below.\n5. Input:\n<noinput>\n5. Output:\nNo.\n###")
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 80}}


def test_self_instruct_filters_and_resumes(tmp_path):
    out = tmp_path / "new.jsonl"
    with OpenAIServer(fault=teacher) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        args = ("self-instruct", "-o", str(out), "--num", "6", "--teacher", "openai:t", "--max-rounds", "20")
        r = run_cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        rows = read_jsonl(out)
        assert len(rows) == 6 and len({x["instruction"] for x in rows}) == 6
        assert all("lighthouse" not in x["instruction"] and "image" not in x["instruction"] for x in rows)
        assert "rejected: ROUGE-L > 0.7" in r.stdout and "rejected: not doable by a text model" in r.stdout
        n = len(server.requests)
        before = out.read_bytes()
        r = run_cli(*args, env=env)
        assert r.returncode == 0 and len(server.requests) == n and out.read_bytes() == before  # replayed from the journal


def test_self_instruct_terminates_on_the_embedded_model(tmp_path):
    args = ("self-instruct", "-o", str(tmp_path / "n.jsonl"), "--num", "3", "--max-rounds", "2", "--max-tokens", "48")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "in 2 rounds" in r.stdout or "kept 3 of 3" in r.stdout
    kept = (tmp_path / "n.jsonl").read_bytes()
    assert len(read_jsonl(tmp_path / "n.jsonl")) <= 3
    r = run_cli(*args)
    assert r.returncode == 0 and "(0 model calls)" in r.stdout and (tmp_path / "n.jsonl").read_bytes() == kept
