"""``gpt4llm clean`` in-process: the MinHash path against datasketch's own, near duplicates on clusters
built from real prompts, exact duplicates, every filter's reason code, decontamination against the
real benchmark files (read from ../shared/data) and offline through the packaged n-gram indexes, and
that nothing is dropped without a line in .removed.jsonl."""

import json
import random

from pathlib import Path

import numpy as np
import pytest
from support import DATA, ROOT, read_jsonl, write_jsonl

import gpt4llm
from gpt4llm.clean import CleanSettings, REASONS, decontam, dedup, run
from gpt4llm.clean.text import WordHasher, ngram_hashes, words
from gpt4llm.errors import UserError

PKG_DATA = Path(gpt4llm.__file__).parent / "data"
SEEDS = PKG_DATA / "seed_instructions.jsonl"  # gpt4llm's own seed instructions, not a benchmark
# The canonical files of the benchmarks whose n-gram indexes ship with gpt4llm (AlpacaEval's 805
# instructions: those of a real AlpacaEval 2 annotations file, in order).
SOURCES = {"vicuna80": DATA / "vicuna-eval-2023" / "question.jsonl",
           "vicuna-bench": DATA / "mt-bench-2023" / "vicuna_bench_question.jsonl",
           "mt-bench": DATA / "mt-bench-2023" / "mt_bench_question.jsonl",
           "user-oriented-252": DATA / "gpt4llm-paper" / "user_oriented_instructions.jsonl",
           "alpaca-eval": DATA / "alpaca-eval-2" / "annotations_FuseChat-Llama-3.2-1B-Instruct.json"}


@pytest.fixture(autouse=True)
def empty_benchmark_cache(tmp_path, monkeypatch):
    """Named benchmarks come from the packaged indexes, not whatever a machine has cached."""
    (tmp_path / "no-cache").mkdir()
    monkeypatch.setenv("GPT4LLM_BENCHMARKS", str(tmp_path / "no-cache"))


def prompts() -> list[str]:
    """Real, distinct instructions: Vicuna-80, User-Oriented-252 (with their inputs) and the seeds."""
    out = [r["text"] for r in read_jsonl(SOURCES["vicuna80"])]
    for r in read_jsonl(SOURCES["user-oriented-252"]):
        out.append(r["instruction"] + " " + (r["instances"][0].get("input") or ""))
    out += [r["instruction"] + " " + r["input"] for r in read_jsonl(SEEDS)]
    return out


def bigram_jaccard(a: str, b: str) -> float:
    x, y = words(a), words(b)
    x, y = set(zip(x, x[1:])), set(zip(y, y[1:]))
    return len(x & y) / len(x | y)


def distinct(texts: list[str]) -> list[str]:
    """Texts with no earlier one of bigram Jaccard 0.4 or more (Vicuna-80's Fermi questions share a
    20-word tail: they are near duplicates of each other at 0.6, not heads of separate clusters)."""
    out: list[str] = []
    for t in texts:
        if all(bigram_jaccard(t, o) < 0.4 for o in out):
            out.append(t)
    return out


def clean(tmp_path, rows, **kw) -> tuple[list[dict], list[dict], dict]:
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    s = run(CleanSettings(input=[str(src)], output=out, quiet=True, **kw))
    return read_jsonl(out), read_jsonl(tmp_path / "out.jsonl.removed.jsonl"), s


def answered(instruction: str, input: str = "", output: str = "A fine answer of several words here.", **meta) -> dict:
    return {"instruction": instruction, "input": input, "output": output, **({"meta": meta} if meta else {})}


# ---------------------------------------------------------------- MinHash, as datasketch computes it


def test_signatures_and_buckets_equal_datasketch_record_by_record():
    """The vectorised signatures are datasketch's MinHash.update_batch of the same n-gram hashes, and
    the candidate pairs are exactly the pairs MinHashLSH (same bands and rows) returns on query."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    texts = prompts()[:120]
    texts += [t.replace(" the ", " a ", 1) for t in texts[:40]]  # some near pairs, so buckets are shared
    hasher = WordHasher()
    ws = [hasher(words(t)) for t in texts]
    flat, lengths = np.array([h for w in ws for h in w], dtype=np.uint64), np.array([len(w) for w in ws])
    sig = dedup.signatures(flat, lengths, 2, 64, seed=7, chunk_words=300)  # small chunks: several of them
    h, owner = ngram_hashes(flat, lengths, 2)
    lsh = MinHashLSH(num_perm=64, params=dedup.bands(0.6, 64))
    for i in range(len(texts)):
        m = MinHash(num_perm=64, seed=7, hashfunc=lambda x: x)
        m.update_batch(dedup.fold32(h[owner == i]).tolist())
        assert np.array_equal(m.hashvalues, sig[i]), i
        lsh.insert(i, LeanMinHash(m))
    theirs = {(min(i, j), max(i, j)) for i in range(len(texts))
              for j in lsh.query(LeanMinHash(seed=7, hashvalues=sig[i], scheme="affine32")) if j != i}
    ours = {tuple(p) for p in dedup.candidate_pairs(sig, *dedup.bands(0.6, 64)).tolist()}
    assert theirs and ours == theirs


# ---------------------------------------------------------------- near and exact duplicates


def edit(text: str, rnd: random.Random) -> str:
    """One light edit: a word replaced, removed or added, a polite prefix, or a closing request."""
    w = text.split()
    k = rnd.randrange(len(w))
    kind = rnd.randrange(5)
    if kind == 0:
        w[k] = rnd.choice(["quick", "simple", "detailed", "short", "good"])
    elif kind == 1 and len(w) > 6:
        del w[k]
    elif kind == 2:
        w.insert(k, rnd.choice(["really", "also", "please", "now"]))
    elif kind == 3:
        w = ["Please"] + w
    else:
        w += ["Be", "brief."]
    return " ".join(w)


def test_near_duplicates_found_in_known_clusters(tmp_path):
    """Real prompts, each the head of a cluster of 0-3 lightly edited copies placed later in the file:
    the copies are removed as near duplicates of their own head, and nothing else is."""
    rnd = random.Random(0)
    heads = distinct(prompts())
    rows, cluster = [answered(h) for h in heads], list(range(len(heads)))
    for c, h in enumerate(heads):
        for _ in range(rnd.randrange(4)):
            rows.append(answered(edit(h, rnd)))
            cluster.append(c)
    kept, removed, s = clean(tmp_path, rows, decontaminate=False)
    line = {r["where"]: int(r["where"].rsplit(":", 1)[1]) - 1 for r in removed}
    copies = {i for i in range(len(heads), len(rows))}
    found = {line[r["where"]] for r in removed if r["reason"] in ("near_duplicate", "exact_duplicate")}
    right = {line[r["where"]] for r in removed
             if r["reason"] in ("near_duplicate", "exact_duplicate")
             and cluster[int(r["matched"]["where"].rsplit(":", 1)[1]) - 1] == cluster[line[r["where"]]]}
    recall, precision = len(right & copies) / len(copies), len(right) / len(found)
    assert len(heads) > 300 and len(copies) > 400 and recall >= 0.93 and precision >= 0.99, (recall, precision)
    assert all(h not in found for h in range(len(heads)))  # the first of each cluster is kept
    assert len(kept) + len(removed) == len(rows) == s["records"]
    # The same seed gives the same clusters.
    _, again, _ = clean(tmp_path / "again", rows, decontaminate=False)
    lines = lambda rs: [(r["where"].rsplit(":", 1)[1], r["reason"], r["matched"]["where"].rsplit(":", 1)[1]) for r in rs]
    assert lines(again) == lines(removed)


def test_exact_duplicates_up_to_case_whitespace_and_punctuation(tmp_path):
    rows = [answered("Give three tips for staying healthy."),
            answered("give  THREE tips, for staying healthy!"),
            answered("Give three tips for staying healthy.", input="You are a runner."),  # another input: kept
            answered("Summarize the text.", input="The cat sat on the mat."),
            answered("Summarize the text", input="the cat sat on the mat")]
    kept, removed, s = clean(tmp_path, rows, decontaminate=False, near=False)
    assert [r["reason"] for r in removed] == ["exact_duplicate", "exact_duplicate"]
    assert [r["matched"]["where"].rsplit(":", 1)[1] for r in removed] == ["1", "4"]
    assert [r["where"].rsplit(":", 1)[1] for r in removed] == ["2", "5"]
    assert len(kept) == 3 and s["by_reason"]["exact_duplicate"] == 2


# ---------------------------------------------------------------- quality filters


def test_each_filter_has_its_reason_code_and_can_be_switched_off(tmp_path):
    rows = [answered("Write a haiku about rain.", output=None),
            answered("Write a haiku about snow.", output="   \n"),
            answered("Explain photosynthesis in detail.", output="Plants use light to", finish_reason="length"),
            answered("Explain gravity in one sentence.", output="Mass attracts mass.", finish_reason="stop"),
            answered("Tell me a joke about cats.", output="As an AI language model, I don't tell jokes."),
            answered("How do I pick a lock?", output="I\u2019m sorry, but I can't help with that request."),
            answered("Write a short apology to a friend.", output="I'm sorry I missed your party; I'll make it up to you."),
            answered("Describe the water cycle in simple words.", output="Describe the water cycle in simple words."),
            answered("描述一下水循环。", output="Water evaporates from the sea, forms clouds and falls again as rain.",
                     language="zh"),
            answered("描述一下光合作用。", output="植物利用阳光、水和二氧化碳制造葡萄糖，并释放出氧气。", language="zh"),
            # a degenerate loop is no language at all (py3langid: Serbian with p = 0.014): not wrong_language
            answered("Give four names for a coffee shop.", output="### Response:\n" * 12, language="en")]
    kept, removed, s = clean(tmp_path, rows, decontaminate=False, exact=False, near=False)
    got = {int(r["where"].rsplit(":", 1)[1]): r["reason"] for r in removed}
    assert got == {1: "empty", 2: "empty", 3: "truncated", 5: "refusal", 6: "refusal", 8: "copies_instruction",
                   9: "wrong_language"}
    assert {r["instruction"] for r in kept} == {rows[i - 1]["instruction"] for i in (4, 7, 10, 11)}
    assert next(r for r in removed if r["reason"] == "wrong_language")["detail"] == "expected zh, detected en"
    assert set(s["by_reason"]) == set(REASONS)
    off = {"empty": False, "truncated": False, "refusal": False, "wrong_language": False, "copies_instruction": False}
    kept, removed, _ = clean(tmp_path / "off", rows, decontaminate=False, exact=False, near=False, **off)
    assert removed == [] and len(kept) == len(rows)


def test_expected_language_from_the_flag(tmp_path):
    rows = [answered("Décris le cycle de l'eau.", output="L'eau s'évapore de la mer, forme des nuages et retombe en pluie."),
            answered("Décris la photosynthèse.", output="Plants turn light, water and carbon dioxide into sugar and oxygen.")]
    _, removed, _ = clean(tmp_path, rows, decontaminate=False, language="French")
    assert [(r["where"].rsplit(":", 1)[1], r["reason"]) for r in removed] == [("2", "wrong_language")]


# ---------------------------------------------------------------- decontamination


def test_contamination_found_for_exact_recased_and_edited_copies_not_for_unrelated(tmp_path):
    vicuna, mt = read_jsonl(SOURCES["vicuna80"]), read_jsonl(SOURCES["mt-bench"])
    q7, q33 = vicuna[6]["text"], vicuna[32]["text"]
    edited = q33.split()
    edited[len(edited) // 2] = "purple"  # one word in the middle replaced
    rows = [answered(q7), answered(q7.upper()), answered(" ".join(edited)),
            answered(mt[0]["turns"][1]),  # MT-Bench's second turn of question 81
            answered("Translate the following sentence into French.", input="The weather is nice today.")]
    rows += [answered(r["instruction"], r["input"]) for r in read_jsonl(SEEDS)]
    kept, removed, s = clean(tmp_path, rows, exact=False, near=False, copies_instruction=False)
    got = {int(r["where"].rsplit(":", 1)[1]): r["matched"][0] for r in removed}
    assert set(got) == {1, 2, 3, 4}
    assert [(got[i]["benchmark"], got[i]["id"]) for i in (1, 2, 3)] == [("vicuna80", "7")] * 2 + [("vicuna80", "33")]
    assert (got[4]["benchmark"], got[4]["id"]) == ("mt-bench", f"{mt[0]['question_id']}#2")
    assert got[1]["score"] == 1.0 and 0.5 < got[3]["score"] < 1.0
    c = s["contamination"]
    assert c["vicuna80"]["records"] == 3 and c["vicuna80"]["prompts_matched"] == 2 and c["vicuna80"]["prompts"] == 80
    assert c["mt-bench"]["records"] == 1 and c["user-oriented-252"]["records"] == 0
    assert {m["benchmark_id"] for m in c["vicuna80"]["matches"]} == {"7", "33"}


def test_alpaca_evals_copies_of_vicuna80_are_found_in_a_real_file(tmp_path):
    """AlpacaEval's 805 instructions include the Vicuna-80 questions (its 'vicuna' subset): read as
    training data, every one of them is contaminated for vicuna80, and none of the others."""
    ae = json.loads((DATA / "alpaca-eval-2" / "annotations_FuseChat-Llama-3.2-1B-Instruct.json").read_text())
    rows = [answered(x["instruction"]) for x in ae]
    _, removed, _ = clean(tmp_path, rows, against=["vicuna80"], exact=False, near=False, copies_instruction=False)
    hit = {int(r["where"].rsplit(":", 1)[1]) - 1 for r in removed}
    assert hit == {i for i, x in enumerate(ae) if x["dataset"] == "vicuna"}


def test_against_a_question_file(tmp_path):
    qs = write_jsonl(tmp_path / "my_eval.jsonl", [{"question_id": "a", "text": "Name three rivers that flow through Germany today."}])
    _, removed, s = clean(tmp_path, [answered("name three rivers that flow through germany today"),
                                     answered("Name three mountains in Spain.")], against=[str(qs)])
    assert [(r["matched"][0]["benchmark"], r["matched"][0]["id"]) for r in removed] == [("my_eval", "a")]
    assert s["against"] == ["my_eval"]


# ---------------------------------------------------------------- offline: the packaged n-gram indexes


def _matches(bench: decontam.Benchmark, texts: list[str]) -> dict[int, list[tuple]]:
    hasher = WordHasher()
    ws = [hasher(words(t)) for t in texts]
    flat, lengths = np.array([h for w in ws for h in w], dtype=np.uint64), np.array([len(w) for w in ws])
    found = decontam.Index([bench], 6, 0.5).match(flat, lengths)
    return {i: [(m.benchmark, m.id, m.score) for m in ms] for i, ms in found.items()}


@pytest.mark.parametrize("name", list(SOURCES))
def test_packaged_index_matches_like_the_benchmark_file(name):
    """With an empty benchmark cache, --against NAME reads gpt4llm's packaged index; it finds exactly
    what an index built from the real file finds, on exact, re-cased and lightly edited copies of
    every prompt and on unrelated prompts (the seeds)."""
    packed = decontam.load(name, 6)
    assert Path(packed.source) == PKG_DATA / "decontam" / f"{name}.npz"
    ids, texts = decontam.prompts(str(SOURCES[name]))
    real = decontam.hashed(name, str(SOURCES[name]), ids, texts, 6)
    assert packed.ids == ids and np.array_equal(packed.sizes, real.sizes) and np.array_equal(packed.hashes, real.hashes)
    rnd = random.Random(2)
    seeds = [r["instruction"] + " " + r["input"] for r in read_jsonl(SEEDS)]
    records = texts + [t.upper() for t in texts] + [edit(t, rnd) for t in texts] + seeds
    got = _matches(packed, records)
    assert got == _matches(real, records)
    k = len(texts)
    # every exact and re-cased copy: all of a prompt's words (its own, or an identical one's)
    for i in range(2 * k):
        assert got[i][0][2] == 1.0 and words(texts[ids.index(got[i][0][1])]) == words(texts[i % k]), i
    assert sum(i in got for i in range(2 * k, 3 * k)) >= 0.85 * k  # README: 94% of one-word edits at 6-grams
    assert not any(i in got for i in range(3 * k, len(records)))


def _probes() -> list[str]:
    """Every prompt of the shipped benchmarks as the file has it and as clean normalises it."""
    texts = [t for path in SOURCES.values() for t in decontam.prompts(str(path))[1]]
    return [x for t in texts for x in (t[:40], " ".join(words(t))[:40])]


def _holds_benchmark_text(folder: Path) -> list[str]:
    """The files under ``folder`` (and the members of .npz archives, decompressed) that contain any
    benchmark prompt's first 40 characters, as UTF-8 or as numpy's UTF-32 strings."""
    import zipfile

    probes = [p for x in _probes() for p in (x.encode(), x.encode("utf-32-le"))]
    hits = []
    for f in sorted(x for x in folder.rglob("*") if x.is_file()):
        blobs = [f.read_bytes()]
        if f.suffix == ".npz":
            with zipfile.ZipFile(f) as z:
                blobs += [z.read(m) for m in z.namelist()]
        if any(p in b for b in blobs for p in probes):
            hits.append(f.name)
    return hits


def test_the_package_holds_no_benchmark_text():
    """gpt4llm ships hashes, not the benchmarks: no prompt of the five benchmarks (their first 40
    characters, raw or normalised) appears in any file of gpt4llm/data, packed or unpacked."""
    assert sorted(p.name for p in (PKG_DATA / "decontam").iterdir()) == sorted(f"{n}.npz" for n in SOURCES)
    assert _holds_benchmark_text(PKG_DATA) == []
    assert _holds_benchmark_text(DATA / "mt-bench-2023") != []  # the check does see text where there is some


def test_another_n_needs_the_file_the_cache_serves_any_n(tmp_path):
    from gpt4llm.eval.benchmarks import download

    with pytest.raises(UserError, match=r"--against vicuna80: not available offline at n=8 .*gpt4llm benchmarks "
                                        r"download vicuna80.*--contamination-ngram 6"):
        decontam.load("vicuna80", 8)
    cached = download("vicuna80", str(SOURCES["vicuna80"]))  # the real file in the cache: preferred, any n
    for n in (6, 8):
        b = decontam.load("vicuna80", n)
        assert b.source == str(cached) and b.n == n and len(b.ids) == 80


def test_quickstarts_planted_vicuna_question_is_found_offline(tmp_path):
    """configs/quickstart.yaml cleans its instructions against vicuna80 with nothing but the package:
    Vicuna-80's question 2, planted among them, is the one contaminated record; AlpacaEval's
    instructions are found the same way against alpaca-eval."""
    rows = [answered(r["instruction"], r["input"]) for r in read_jsonl(ROOT / "configs" / "quickstart_instructions.jsonl")]
    q2 = next(r["text"] for r in read_jsonl(SOURCES["vicuna80"]) if r["question_id"] == 2)
    _, removed, s = clean(tmp_path, rows, against=["vicuna80"], exact=False, near=False)
    assert [(r["record"]["instruction"], r["matched"]) for r in removed if r["reason"] == "contaminated"] == \
        [(q2, [{"benchmark": "vicuna80", "id": "2", "score": 1.0}])]
    assert s["contamination"]["vicuna80"]["source"].endswith("vicuna80.npz")
    assert s["contamination"]["vicuna80"]["matches"][0]["benchmark_id"] == "2"
    ae = json.loads(SOURCES["alpaca-eval"].read_text())
    koala = next(x["instruction"] for x in ae if x["dataset"] == "koala")
    _, removed, s = clean(tmp_path / "ae", [answered(koala), answered("Name three rivers in Spain.")],
                          against=["alpaca-eval"])
    ids, _ = decontam.prompts(str(SOURCES["alpaca-eval"]))
    assert [r["matched"][0]["id"] for r in removed] == [ids[ae.index(next(x for x in ae if x["instruction"] == koala))]]
    assert s["contamination"]["alpaca-eval"]["prompts"] == 805


# ---------------------------------------------------------------- nothing dropped silently


def test_every_record_is_kept_or_listed_once_with_its_reason(tmp_path):
    rnd = random.Random(1)
    base = prompts()[-40:]  # the seeds
    rows = [answered(p) for p in base] + [answered(edit(rnd.choice(base), rnd)) for _ in range(30)]
    rows += [answered(base[0].lower()), answered("Write a haiku.", output=""), answered(prompts()[0])]
    kept, removed, s = clean(tmp_path, rows)
    lines = [int(r["where"].rsplit(":", 1)[1]) for r in removed]
    assert lines == sorted(set(lines)) and len(kept) + len(removed) == len(rows)
    assert {r["reason"] for r in removed} == {"near_duplicate", "exact_duplicate", "empty", "contaminated"}
    # each input record is either kept, as it was and in its place, or listed with its reason
    assert kept == [row for i, row in enumerate(rows, 1) if i not in lines]
    assert all(r["reason"] in REASONS and r["record"] == rows[int(r["where"].rsplit(":", 1)[1]) - 1] for r in removed)
    assert s["kept"] == len(kept) and s["removed"] == len(removed) == sum(s["by_reason"].values())
    assert json.loads((tmp_path / "out.jsonl.summary.json").read_text()) == s
