"""``gpt4llm run configs/quickstart.yaml`` end to end on CPU, killed with -9 mid-SFT and run again:
every stage completes, nothing is called or trained twice, the report has every section, and
results.json says what the stage outputs say."""

import json

from support import ROOT, read_jsonl, run_cli

from gpt4llm.pipeline.report import SECTIONS


def test_killed_study_resumes_without_repeating_work(quickstart_run):
    r, second = quickstart_run, quickstart_run["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    # Stages finished before the kill were skipped, not redone.
    assert {"generate.en.json", "compare.json"} <= set(r["before_markers"])
    assert "generate.en: done earlier, skipped" in second.stderr and "compare: done earlier, skipped" in second.stderr
    # No model call was made twice: every call journaled before the kill is untouched, each once.
    assert r["before"] and all(r["after"][k] == v for k, v in r["before"].items())
    assert all(attempts == 1 for _, attempts in r["after"].values())
    # SFT continued from its checkpoint (left as it was) to the planned 3 steps.
    assert r["ckpt"].stat().st_mtime_ns == r["ckpt_mtime"]
    meta = json.loads((r["out"] / "models" / "student-en" / "gpt4llm_train.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 3


def test_results_json_matches_the_stage_outputs(quickstart_run):
    out, res = quickstart_run["out"], quickstart_run["results"]
    assert res["sections"] == list(SECTIONS)
    r = res["results"]
    assert set(r) >= {"generate", "clean", "compare", "sft", "rm", "answer", "rank", "judge", "rouge", "stats"}
    assert r["generate"]["en"]["written"] == len(read_jsonl(out / "data" / "teacher.en.jsonl")) == 24
    # clean: the three planted records removed, each for its reason and with what it matched; nothing lost;
    # the student trained on what clean kept
    c = r["clean"]["en"]
    assert c == json.loads((out / "data" / "clean.en.jsonl.summary.json").read_text())
    removed = read_jsonl(out / "data" / "clean.en.jsonl.removed.jsonl")
    kept = read_jsonl(out / "data" / "clean.en.jsonl")
    assert len(kept) + len(removed) == c["records"] == 24 and c["kept"] == len(kept) == r["sft"]["en"]["data_stats"]["records"]
    why = {x["record"]["instruction"]: x for x in removed}
    vicuna = why["What are the most effective ways to deal with stress?"]
    assert vicuna["reason"] == "contaminated" and vicuna["matched"] == [{"benchmark": "vicuna80", "id": "2", "score": 1.0}]
    assert why["list six ways to reduce plastic waste at home"]["reason"] == "exact_duplicate"
    near = why["Suggest five low-cost ideas for a birthday party for an eight-year-old."]
    assert near["reason"] == "near_duplicate" and near["matched"]["where"].endswith("teacher.en.jsonl:15")
    assert c["contamination"]["vicuna80"]["records"] == 1 and c["contamination"]["seeds.first-6"]["records"] == 0
    assert r["compare"]["report"] == json.loads((out / "data" / "comparisons.jsonl.report.json").read_text())
    assert r["compare"]["written"] == len(read_jsonl(out / "data" / "comparisons.jsonl"))
    summaries = json.loads((out / "eval" / "reviews.jsonl.summary.json").read_text())["models"]
    assert r["judge"]["summaries"] == summaries
    assert set(summaries) == {"student-en", "student-en-dpo", "student-en-R1", "student-en-R2", "student-en-R3"}
    for s in summaries.values():  # every question judged in both orders, none silently dropped
        assert s["questions"] == 6 and s["scored"] + s["parse_failures"] + s["call_failures"] == 6
        assert s["flip_rate"] is not None
        # A 135M judge is noise, and the summary says so (here: its little probability on score tokens).
        assert s["reliability"]["unreliable"] and any("score tokens" in x for x in s["reliability"]["reasons"])
        # every verdict names its judge: the embedded model, its weights hashed, the reviewer prompt, the decoding
        assert s["judge_fingerprint"].startswith("12 verdicts: judge local:smollm2-135m-instruct, model_returned "
                                                 "local:smollm2-135m-instruct, system_fingerprint weights-sha256:")
    # the judge is the teacher's model and the students' base: self-preference is flagged, with win rates
    flags = {(f["model"], f["role"]): f for f in r["judge"]["self_preference"]}
    assert set(flags) == {(m, "model") for m in summaries} | {("teacher", "reference")}
    assert all(f["reason"] == "same family smollm" for f in flags.values())
    se = summaries["student-en"]
    assert flags[("student-en", "model")]["win_rate_by_judge"]["local:smollm2-135m-instruct"] == round(
        100 * (se["wins"] + se["ties"] / 2) / (se["wins"] + se["ties"] + se["losses"]), 2)
    assert {f["model"] for f in r["compare"]["report"]["self_preference"]} == {"teacher", "terse"}
    assert r["rouge"]["table"] == json.loads((out / "eval" / "rouge.json").read_text())
    assert r["stats"]["numbers"] == json.loads((out / "stats" / "stats.json").read_text())
    sft = json.loads((out / "models" / "student-en" / "gpt4llm_train.json").read_text())
    assert r["sft"]["en"]["steps"] == sft["steps"] and r["rm"]["pairs"] > 0
    for k in (1, 2, 3):  # each ranking group holds one answer per question
        assert len(read_jsonl(out / "answers" / f"judge.student-en-R{k}.jsonl")) == 6
    # the leaderboard of the same reviews: every judged model against the teacher, the paper's ratio beside it
    board = {row["model"]: row for row in r["judge"]["leaderboard"]["rows"]}
    assert set(board) == set(summaries) | {"teacher"} and r["judge"]["leaderboard"]["baseline"] == "teacher"
    assert board == {row["model"]: row for row in json.loads((out / "eval" / "leaderboard" / "leaderboard.json").read_text())["rows"]}
    for m in summaries:
        assert board[m]["n_total"] + board[m]["n_missing"] == 6 and board[m]["length_controlled_winrate"] is not None
        lo, hi = board[m]["ci95"]
        assert lo <= board[m]["bt_score"] <= hi
    prov = res["provenance"]
    assert prov["models"]["teacher"] == "local:smollm2-135m-instruct" and prov["seed"] == 42
    assert prov["versions"]["transformers"] and "prompts/rating.txt" in prov["prompt_hashes"]
    assert prov["usage_per_stage"]["generate"]["calls"] == 24


def test_report_has_every_section_and_escapes_model_text(quickstart_run):
    html = (quickstart_run["out"] / "report.html").read_text()
    for s in SECTIONS:
        assert f'<section id="{s}">' in html
    assert "<script" not in html  # nothing executable; model text is escaped by autoescape
    assert html.count('<tr class="unreliable">') == 5 and "unreliable judge: " in html
    assert 'src="data:image/png;base64,' in html  # images are embedded: one file opens anywhere
    assert 'id="leaderboard"' in html and "length-controlled win rate" in html
    assert html.count('class="warn self-preference"') == 6 + 2  # 5 judged models and the teacher; 2 compare sources
    assert '<p class="muted judge-fingerprint">Judge: 12 verdicts: judge local:smollm2-135m-instruct' in html
    cleaning = html[html.index('<section id="cleaning">'):]
    cleaning = cleaning[:cleaning.index("</section>")]
    assert "vicuna80" in cleaning and "What are the most effective ways to deal with stress?" in cleaning
    assert "exact duplicate" in cleaning and "near duplicate" in cleaning


def test_a_finished_study_runs_again_with_nothing_to_do(quickstart_run):
    out = quickstart_run["out"]
    before = (out / "data" / "comparisons.jsonl").read_bytes()
    r = run_cli("run", str(ROOT / "configs" / "quickstart.yaml"), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("done earlier, skipped") == len(quickstart_run["results"]["plan"])
    assert (out / "data" / "comparisons.jsonl").read_bytes() == before


def test_the_study_is_published_as_the_hub_reads_it(quickstart_run, tmp_path):
    """stages.publish: each dataset the study made is a config datasets.load_dataset reads back
    as the stage's file says, and each model has a card with its own numbers from results.json."""
    import datasets
    from huggingface_hub import DatasetCard, ModelCard

    out, res = quickstart_run["out"], quickstart_run["results"]
    pub, r = out / "publish", res["results"]["publish"]
    assert [c["name"] for c in r["configs"]] == ["alpaca-en", "comparison"]
    cache = str(tmp_path / "cache")
    for c in r["configs"]:
        ds = datasets.load_dataset(str(pub), c["name"], split="train", cache_dir=cache)
        rows = read_jsonl(out / c["source"])
        assert ds.num_rows == c["rows"] == len(rows)
        if c["name"] == "alpaca-en":
            assert [(x["instruction"], x["output"], json.loads(x["meta"])) for x in ds] == \
                [(x["instruction"], x["output"], x["meta"]) for x in rows]
        else:
            assert [[y["score"] for y in x["responses_and_scores"]] for x in ds] == \
                [[float(y["score"]) for y in x["responses_and_scores"]] for x in rows]
    assert datasets.load_dataset(str(pub), split="train", cache_dir=cache).num_rows == r["configs"][0]["rows"]
    card = DatasetCard.load(pub / "README.md")
    assert card.data.license == "cc-by-nc-4.0" and card.data.size_categories == ["n<1K"]
    hashes = res["provenance"]["prompt_hashes"]
    assert f"`template:alpaca` {hashes['template:alpaca']}" in card.text
    n = r["configs"][0]["rows"]
    assert f"{n} of {n} records' calls found" in card.text and "every record was asked with exactly" in card.text
    assert {m["name"] for m in r["models"]} == {"student-en", "student-en-dpo", "reward"}
    judge = res["results"]["judge"]["summaries"]
    for name in ("student-en", "student-en-dpo"):
        mc = ModelCard.load(pub / "models" / name / "README.md")
        assert mc.data.eval_results[0].metric_value == round(judge[name]["ratio_percent"], 4)
        assert (pub / "models" / name / "model.safetensors").read_bytes() == \
            (out / "models" / name / "model.safetensors").read_bytes()
    dpo = json.loads((out / "models" / "student-en-dpo" / "gpt4llm_train.json").read_text())["metrics"]
    text = (pub / "models" / "student-en-dpo" / "README.md").read_text()
    assert f"| eval_preference_accuracy | {round(dpo['eval_preference_accuracy'], 4)} |" in text


def test_the_judge_against_people_joins_the_report(quickstart_run, tmp_path):
    """The user's next step: people judge the same pairs (student-en vs the teacher) on the human
    page, the pipeline gets stages.judge.human_db, and the run adds the judge-human agreement to
    the report (only the judge stage runs again; its calls come from the journal)."""
    import shutil

    import yaml
    from support import write_jsonl
    from support.human import annotate

    out = quickstart_run["out"]
    student = {a["question_id"]: a for a in read_jsonl(out / "answers" / "judge.student-en.jsonl")
               if a["meta"]["sample"] == 0}
    teacher = {a["question_id"]: a for a in read_jsonl(out / "answers" / "judge.teacher.jsonl")}
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": str(q), "instruction": a["meta"]["instruction"], "input": a["meta"]["input"],
         "a": {"model": "student-en", "text": a["text"]}, "b": {"model": "teacher", "text": teacher[q]["text"]}}
        for q, a in student.items()])
    db = tmp_path / "human.sqlite"
    annotate(pairs, db, 1, lambda k, pair: {"helpfulness": "b", "honesty": "tie", "harmlessness": "a"})
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    cfg["stages"]["judge"]["human_db"] = str(db)
    cfg_file = tmp_path / "with_people.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    # the instructions travel with the file (paths are relative to it), under the same name: same stages
    shutil.copy(ROOT / "configs" / cfg["data"]["instructions"], tmp_path)
    r = run_cli("run", str(cfg_file), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("done earlier, skipped") == len(quickstart_run["results"]["plan"]) - 2  # the judge stage ran again (and publish, after it)
    ag = json.loads((out / "results.json").read_text())["results"]["judge"]["agreement"]
    assert ag == json.loads((out / "eval" / "agreement.json").read_text())
    assert ag["pairs_matched"] == 6 and ag["per_criterion"]["helpfulness"]["votes"] == 6
    assert ag["position_consistency"] is not None and ag["pairs_in_both_orders"] == 6
    html = (out / "report.html").read_text()
    assert 'id="agreement"' in html and "The judge against people" in html
