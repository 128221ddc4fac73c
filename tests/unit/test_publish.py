"""``gpt4llm publish``: what ``datasets.load_dataset`` reads back is what was published (rows,
columns, values, configs, splits), the card's YAML is the Hub's, provenance comes from the records
and the journal, and bad inputs are refused before anything is written."""

import json

import pytest
import yaml

from support import read_jsonl, write_jsonl

from gpt4llm.errors import UserError
from gpt4llm.publish.build import run
from gpt4llm.publish.settings import PublishSettings


def load_dataset(path, *args, cache, **kw):
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(str(path), *args, cache_dir=str(cache), **kw)


def front_matter(readme) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def meta(model="gpt-4", **kw):
    return {"model": model, "backend": "openai", "params": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512},
            "usage": {"prompt_tokens": 40, "completion_tokens": 12}, "finish_reason": "stop", "latency_s": 1.5,
            "created": "2024-05-01T10:00:00+00:00", "cost_usd": 0.0019, **kw}


# Messy, as real files are: no meta, other meta keys, None values, null input, non-ASCII, a long
# output, an extra field whose type changes from record to record.
MESSY = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat.\n2. Sleep.\n3. Move.",
     "id": "a1", "meta": meta()},
    {"instruction": "把这句话翻译成英文", "input": "今天天气很好。", "output": "The weather is nice today. " * 4000,
     "id": "a2", "meta": meta(language="zh", finish_reason="length", cost_usd=None)},
    {"instruction": "No meta at all", "input": None, "output": "ok", "label": "x"},
    {"instruction": "Other meta", "input": "", "output": "émoji 🎉", "meta": {"score": 9, "nested": [1, {"a": None}]},
     "label": 7},
    {"instruction": "Empty meta", "input": "", "output": None, "meta": {}, "label": None},
]


def test_alpaca_round_trip_through_load_dataset(tmp_path):
    src = write_jsonl(tmp_path / "teacher.jsonl", MESSY)
    out = tmp_path / "pub"
    r = run(PublishSettings(source=src, to=out))
    assert r.configs == [{"name": "default", "rows": 5, "files": ["data/train-00000-of-00001.parquet"],
                          "source": "teacher.jsonl"}]
    ds = load_dataset(out, cache=tmp_path / "cache")
    assert list(ds) == ["train"] and ds["train"].num_rows == 5
    assert ds["train"].column_names == ["instruction", "input", "output", "id", "meta", "label"]
    for got, want in zip(ds["train"], MESSY):
        assert got["instruction"] == want["instruction"] and got["output"] == want["output"]
        assert got["input"] == (want["input"] or "")  # null input reads as "", as AlpacaRecord reads it
        assert got["id"] == want.get("id")
        assert (json.loads(got["meta"]) if got["meta"] is not None else None) == want.get("meta")
        # a field of mixed types (a string, an int, null) is kept as JSON text
        assert (json.loads(got["label"]) if got["label"] is not None else None) == want.get("label")
    assert len(ds["train"][1]["output"]) == len("The weather is nice today. ") * 4000


def test_card_metadata_is_the_hubs_and_says_where_the_data_came_from(tmp_path):
    from huggingface_hub import DatasetCard

    src = write_jsonl(tmp_path / "teacher.jsonl", MESSY)
    run(PublishSettings(source=src, to=tmp_path / "pub"))
    fm = front_matter(tmp_path / "pub" / "README.md")
    assert fm["license"] == "cc-by-nc-4.0" and fm["size_categories"] == ["n<1K"]
    assert fm["language"] == ["en", "zh"] and "text-generation" in fm["task_categories"]
    assert fm["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert fm["dataset_info"]["splits"] == [{"name": "train", "num_bytes": fm["dataset_info"]["splits"][0]["num_bytes"],
                                            "num_examples": 5}]
    card = DatasetCard.load(tmp_path / "pub" / "README.md")  # the Hub's own parser reads it
    assert card.data.license == "cc-by-nc-4.0"
    body = card.text
    assert "`openai:gpt-4` (2 records)" in body
    assert "max_tokens=512, temperature=1.0, top_p=1.0 (2 records)" in body
    assert "80 prompt + 24 completion" in body  # 40 + 40 prompt tokens, 12 + 12 completion
    assert "$0.0019 for the records with a price, unknown for 1" in body
    assert "stop (1), length (1)" in body
    assert "@article{peng2023instruction" in body and "arXiv:2304.03277" in body


def test_size_category_follows_the_hubs_buckets(tmp_path):
    rows = [{"instruction": f"Task {i}", "output": str(i)} for i in range(1000)]
    run(PublishSettings(source=write_jsonl(tmp_path / "a.jsonl", rows), to=tmp_path / "pub"))
    assert front_matter(tmp_path / "pub" / "README.md")["size_categories"] == ["1K<n<10K"]  # 1000 is not n<1K


def test_shards_split_the_rows_and_load_in_order(tmp_path):
    rows = [{"instruction": f"Task {i}", "output": "x" * 500} for i in range(40)]
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    r = run(PublishSettings(source=src, to=tmp_path / "pub", max_shard_mb=0.005))  # ~5 KB per shard
    files = r.configs[0]["files"]
    assert len(files) > 1 and files[0] == f"data/train-00000-of-{len(files):05d}.parquet"
    ds = load_dataset(tmp_path / "pub", split="train", cache=tmp_path / "cache")
    assert [x["instruction"] for x in ds] == [f"Task {i}" for i in range(40)]


@pytest.mark.parametrize("to, columns", [("trl", ["prompt", "chosen", "rejected", "margin"]),
                                         ("trl-kto", ["prompt", "completion", "label"]),
                                         ("gpt4llm-v1", ["user_input", "completion_a", "completion_b"])])
def test_preference_exports_round_trip(tmp_path, to, columns):
    """compare export's files (TRL pairs, KTO rows, comparison v1) load back as written, typed."""
    from gpt4llm.pairs import export

    cmp = write_jsonl(tmp_path / "cmp.jsonl", [
        {"user_input": "Q1", "responses_and_scores": [{"response": "a", "score": 9, "source": "x"},
                                                      {"response": "b", "score": 3, "source": "y"},
                                                      {"response": "c", "score": 6, "source": "z"}]}])
    export(cmp, to, tmp_path / "pairs.jsonl")
    want = read_jsonl(tmp_path / "pairs.jsonl")
    run(PublishSettings(source=tmp_path / "pairs.jsonl", to=tmp_path / "pub"))
    ds = load_dataset(tmp_path / "pub", split="train", cache=tmp_path / "cache")
    assert ds.column_names == columns and [dict(x) for x in ds] == want
    if to == "trl-kto":
        assert ds.features["label"].dtype == "bool"


def study_dir(tmp_path):
    """A study's files as gpt4llm run lays them out: the teacher's answers per language, the
    comparisons, pipeline.json."""
    d = tmp_path / "study"
    write_jsonl(d / "data" / "teacher.en.jsonl", MESSY[:1] + [{"instruction": "Hi", "input": "", "output": "Hello"}])
    write_jsonl(d / "data" / "teacher.zh.jsonl", [{"instruction": "你好", "input": "", "output": "你好！",
                                                   "meta": meta(language="zh")}])
    write_jsonl(d / "data" / "comparisons.jsonl", [
        {"user_input": "### Instruction:\nHi", "responses_and_scores": [
            {"response": "Hello", "score": 9, "source": "teacher"}, {"response": "Yo", "score": 4.5, "source": "terse"}],
         "id": "c1", "meta": {"judge": "openai:gpt-4", "rationales": ["good", "short"]}},
        {"user_input": "### Instruction:\n2+2?", "responses_and_scores": [
            {"response": "4", "score": 10.0, "source": "teacher"}, {"response": "5", "score": 1, "source": "terse"}]}])
    pipeline = {"pipeline": {"name": "tiny", "seed": 42, "stages": {"generate": {"languages": ["en", "zh"]}},
                             "backend": {"base_url": ["https://user:secret@gateway.example.com/v1?api-key=sk-123"]}}}
    (d / "pipeline.json").write_text(json.dumps(pipeline))
    return d


def test_a_study_becomes_one_config_per_dataset(tmp_path):
    r = run(PublishSettings(source=study_dir(tmp_path), to=tmp_path / "pub"))
    assert [(c["name"], c["rows"]) for c in r.configs] == [("alpaca-en", 2), ("alpaca-zh", 1), ("comparison", 2)]
    cache = tmp_path / "cache"
    default = load_dataset(tmp_path / "pub", split="train", cache=cache)  # no name: the English config
    assert [x["instruction"] for x in default] == ["Give three tips for staying healthy.", "Hi"]
    zh = load_dataset(tmp_path / "pub", "alpaca-zh", split="train", cache=cache)
    assert zh[0]["output"] == "你好！"
    cmp = load_dataset(tmp_path / "pub", "comparison", split="train", cache=cache)
    assert cmp[0]["responses_and_scores"] == [{"response": "Hello", "score": 9.0, "source": "teacher"},
                                              {"response": "Yo", "score": 4.5, "source": "terse"}]
    assert cmp[1]["meta"] is None and json.loads(cmp[0]["meta"])["rationales"] == ["good", "short"]
    fm = front_matter(tmp_path / "pub" / "README.md")
    assert [c["config_name"] for c in fm["configs"]] == ["alpaca-en", "alpaca-zh", "comparison"]
    assert fm["configs"][0]["default"] is True and fm["language"] == ["en", "zh"]
    text = (tmp_path / "pub" / "README.md").read_text()
    # The endpoint without its user, password or query (a gateway's ?api-key=)
    assert "https://gateway.example.com/v1" in text and "secret" not in text and "sk-123" not in text
    assert "`teacher` (2 responses, mean score 9.5)" in text and "`terse` (2 responses, mean score 2.75)" in text


def test_provenance_from_the_journal_counts_every_call_and_verifies_the_template(tmp_path, monkeypatch, openai_server):
    """generate against a loopback OpenAI server, one call failing on the first run (so it is made
    twice); the card's call count, tokens and cost are what the server saw and billed."""
    from support.openai_server import Fault

    from gpt4llm.backends import BackendSettings
    from gpt4llm.generate import GenerateSettings, run as generate
    from gpt4llm.templates import ALPACA

    rows = [{"instruction": f"Describe the number {i}.", "input": "ctx" if i == 1 else ""} for i in range(3)]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "teacher.jsonl"
    fail = ALPACA.prompt(rows[2]["instruction"])
    openai_server.fault = lambda content, attempt: Fault("status", 400) if content == fail and attempt == 1 else None
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    backend = BackendSettings(base_url=[openai_server.url], price_in=2.0, price_out=10.0, max_retries=0)
    cfg = GenerateSettings(input=str(src), output=out, teacher="openai:teacher", backend=backend)
    assert generate(cfg).failed == 1
    assert generate(cfg).failed == 0
    assert len(openai_server.requests) == 4
    run(PublishSettings(source=out, to=tmp_path / "pub"))
    text = (tmp_path / "pub" / "README.md").read_text()
    prompts = [ALPACA.prompt(r["instruction"], r["input"]) for r in rows]
    tokens = sum(len(p.split()) for p in prompts)  # the server's usage: words of the prompt, 2 completion tokens
    assert f"{tokens} prompt + 6 completion" in text
    assert f"cost: ${(tokens * 2.0 + 6 * 10.0) / 1e6:.4f}" in text
    assert "3 of 3 records' calls found, 4 model calls made for them (retries included)" in text
    assert "every record was asked with exactly the prompt template below" in text
    assert len(read_jsonl(out)) == 3


@pytest.mark.parametrize("content, fragments", [
    ('{"instruction": "a"}\n{"instruction": "b"\n', ["in.jsonl:2:", "malformed JSON"]),
    ('{"question_id": 1, "text": "x"}\n', ["in.jsonl:1:", "not a dataset gpt4llm publishes", "question_id"]),
    ('[1, 2]\n', ["expected a JSON object"]),
    ('{"instruction": "a"}\n{"instruction": "b", "output": 5}\n', ["in.jsonl:2:", "not a alpaca record", "'output'"]),
    ('{"user_input": "u", "responses_and_scores": [{"response": "r", "score": "nine"}]}\n',
     ["in.jsonl:1:", "not a comparison record", "score"]),
    ('', ["no records"]),
])
def test_bad_files_are_refused_and_nothing_is_written(tmp_path, content, fragments):
    (tmp_path / "in.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as e:
        run(PublishSettings(source=tmp_path / "in.jsonl", to=tmp_path / "new" / "pub"))
    for f in fragments:
        assert f in str(e.value), str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no output, no temporary directory, no parent


def test_sources_and_destinations_that_cannot_be_published(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(UserError, match="not found"):
        run(PublishSettings(source=tmp_path / "missing.jsonl", to=tmp_path / "pub"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="neither a checkpoint .* nor a study"):
        run(PublishSettings(source=tmp_path / "empty_dir", to=tmp_path / "pub"))
    with pytest.raises(UserError, match="would replace the source"):
        run(PublishSettings(source=tmp_path / "empty_dir", to=tmp_path, overwrite=True))
    with pytest.raises(UserError, match="not a Hub repo id"):
        run(PublishSettings(source=src, to=tmp_path / "pub", push_to_hub="no spaces allowed"))
    assert not (tmp_path / "pub").exists()


def test_an_existing_output_is_refused_unless_overwrite(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b"}])
    out = tmp_path / "pub"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty.*--overwrite"):
        run(PublishSettings(source=src, to=out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # untouched
    run(PublishSettings(source=src, to=out, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "pub"]  # the old copy is gone too


def test_cleaned_data_carries_the_clean_summary_and_a_study_publishes_the_cleaned_answers(tmp_path):
    """gpt4llm clean's <output>.summary.json is shown on the card; in a study the cleaned file
    (the one its summary names the teacher's answers as input of) is the published config."""
    clean = pytest.importorskip("gpt4llm.clean")
    d = study_dir(tmp_path)
    raw = d / "data" / "teacher.en.jsonl"
    write_jsonl(raw, [
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, sleep, move daily."},
        {"instruction": "Give three tips for staying healthy!", "input": "", "output": "Sleep and exercise."},  # same words
        {"instruction": "Write a poem about the sea.", "input": "", "output": "  "},  # empty
        {"instruction": "Name a color.", "input": "", "output": "As an AI language model, I cannot do that."},
        {"instruction": "Explain gravity in one sentence.", "input": "", "output": "Masses attract each other."}])
    clean.run(clean.CleanSettings(input=[str(raw)], output=d / "data" / "teacher.en.clean.jsonl", quiet=True))
    r = run(PublishSettings(source=d, to=tmp_path / "pub"))
    assert r.configs[0] == {"name": "alpaca-en", "rows": 2, "files": ["alpaca-en/train-00000-of-00001.parquet"],
                            "source": "data/teacher.en.clean.jsonl"}
    text = (tmp_path / "pub" / "README.md").read_text()
    assert "From `data/teacher.en.clean.jsonl`." in text
    assert "kept 2 of 5 records; removed: empty 1, refusal 1, exact_duplicate 1" in text
    assert "decontaminated against vicuna80: 0 records matched 0 of its 80 prompts" in text
