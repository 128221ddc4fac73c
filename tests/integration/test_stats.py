"""``gpt4llm stats`` on the paper's real data: score numbers and figures, verb-noun pairs."""

import json

from support import DATA, run_cli

from gpt4llm.stats import root_verb_and_dobj


def test_stats_reproduce_the_papers_score_numbers_and_draw_every_figure(tmp_path):
    r = run_cli("stats", "--data", str(DATA / "gpt4llm-paper" / "user_oriented_instructions.jsonl"),
                "--scores", str(DATA / "gpt4llm-paper" / "cmp_data_scores.json"), "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "stats.json").read_text())
    means = {k: round(v["mean"], 2) for k, v in s["scores"]["sources"].items()}
    assert means == {"gpt4": 8.94, "text-davinci-003": 8.72, "icm-1.3b": 4.23}
    d = s["data"]
    assert d["records"] == 252 and 100 < d["with_pair"] <= 252 and d["unique_pairs"] <= d["with_pair"]
    assert all(isinstance(v, str) and isinstance(n, str) and c >= 1 for v, n, c in d["top_pairs"])
    for name in ("top25_verb_noun.png", "verb_noun_sunburst.html", "verb_noun_sunburst.png", "score_distribution.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "<script" in (tmp_path / "verb_noun_sunburst.html").read_text()[:100000]  # self-contained plotly page


def test_the_papers_rule_on_parsed_sentences():
    import spacy

    from gpt4llm.stats import load_spacy

    nlp = load_spacy("auto")
    first = lambda t: root_verb_and_dobj(list(nlp(t).sents)[0].root)  # noqa: E731
    assert first("Write a short poem about the sea. Then explain it.") == ("write", "poem")
    assert first("Give three tips for staying healthy.") == ("give", "tip")
    assert first("What is the capital of France?")[1] is None
    assert spacy.__version__


def test_a_missing_spacy_pipeline_says_how_to_install_one(tmp_path):
    r = run_cli("stats", "--data", str(DATA / "gpt4llm-paper" / "user_oriented_instructions.jsonl"), "-o", str(tmp_path),
                "--spacy-model", "xx_no_such_pipeline")
    assert r.returncode == 2 and "not installed" in r.stderr and "pip install" in r.stderr


def test_the_released_scores_alone(tmp_path):
    r = run_cli("stats", "--scores", str(DATA / "gpt4llm-paper" / "cmp_data_scores.json"), "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "stats.json").read_text())
    assert set(s) == {"scores"} and round(s["scores"]["sources"]["gpt4"]["most_common_share"], 3) == 0.895
    assert (tmp_path / "score_distribution.png").stat().st_size > 1000
    assert "gpt4" in r.stdout and "89.5%" in r.stdout
