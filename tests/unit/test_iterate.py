"""``train iterate``'s pieces (issue 20): the round's training data, early stopping, the rotation of
instructions, the KL estimators against the exact KL, the sampling seed of a round's weights, the
rule scorer, DPO's --min-gap, and the pipeline's iterate stage (checks and dry-run plan)."""

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from gpt4llm.errors import UserError
from gpt4llm.schemas import Question
from gpt4llm.train.iterate import round_prompts, stop_reason
from gpt4llm.train.iterate_rounds import dpo_pairs, sft_targets, weights_seed


def rows(*prompts):
    """(rows, rewards) from {question_id: [(text, reward), ...]}."""
    out, rewards = [], []
    for qid, answers in prompts:
        for k, (text, reward) in enumerate(answers):
            out.append({"question_id": qid, "instruction": f"q{qid}", "input": "", "sample": k, "text": text})
            rewards.append(reward)
    return out, rewards


def test_sft_targets_are_each_prompts_best_answer_beyond_its_mean():
    r, w = rows((1, [("a", 1.0), ("b", 3.0), ("c", 2.0)]),   # best b: 3 - mean 2 = 1
                (2, [("d", 5.0), ("e", 5.0)]),               # all tied: nothing to learn
                (3, [("f", None), ("g", 0.5), ("h", 0.0)]),  # f unscored; best g: 0.5 - 0.25
                (4, [("i", None), ("j", None)]))             # nothing scored: not a prompt of the round
    targets, st = sft_targets(r, w, None, 0.0)
    assert [(t["id"], t["output"], t["meta"]["reward"]) for t in targets] == [("1", "b", 3.0), ("3", "g", 0.5)]
    assert st == {"prompts": 3, "kept": 2, "below_min_score": 0, "within_margin": 1, "target_reward": 1.75}
    assert [t["id"] for t in sft_targets(r, w, 1.0, 0.0)[0]] == ["1"]       # g's 0.5 is below --min-score 1
    assert [t["id"] for t in sft_targets(r, w, None, 0.5)[0]] == ["1"]      # g beats its mean by 0.25 only


def test_dpo_pairs_best_vs_worst_or_all_pairs_apart_by_min_gap():
    r, w = rows((1, [("a", 9.0), ("b", 7.0), ("c", 6.5), ("d", 3.0)]), (2, [("e", 4.0), ("f", 3.5)]),
                (3, [("g", 2.0), ("h", 2.0)]))
    bw, st = dpo_pairs(r, w, "best-worst", 0.0)
    assert [[(x["response"], x["score"]) for x in p["responses_and_scores"]] for p in bw] == \
        [[("a", 9.0), ("d", 3.0)], [("e", 4.0), ("f", 3.5)]]
    assert bw[0]["user_input"].endswith("### Instruction:\nq1\n\n### Response:")
    assert (st["kept"], st["pairs"], st["within_gap"]) == (2, 2, 1)
    every, st = dpo_pairs(r, w, "all", 1.0)
    # prompt 1: 6 pairs less (7, 6.5); prompt 2: 4 - 3.5 < 1; prompt 3: tied
    assert [len(p["responses_and_scores"]) for p in every] == [4] and (st["pairs"], st["within_gap"]) == (5, 2)


def test_dpo_min_gap_leaves_out_close_pairs_in_the_loss():
    from gpt4llm.train.dpo import best_worst_mask, dpo_loss, pair_mask

    scores = torch.tensor([9.0, 7.0, 6.5, 3.0, 4.0, 3.5])
    group = torch.tensor([0, 0, 0, 0, 1, 1])
    pairs = {tuple(x) for x in pair_mask(scores, group, 1.0).nonzero().tolist()}
    assert pairs == {(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)}
    assert pair_mask(scores, group).sum() == 7  # without a gap: the 6 of group 0 and (4, 5)
    assert best_worst_mask(scores, group, 1.0).nonzero().tolist() == [[0, 3]]  # group 1's 0.5 is too close
    policy, ref = torch.tensor([-5.0, -6.0, -4.0, -7.0, -3.0, -2.0]), torch.tensor([-5.5, -5.0, -4.5, -6.0, -3.0, -3.0])
    loss, _ = dpo_loss(policy, ref, scores, group, 0.1, "pairs", min_gap=1.0)
    r = [0.1 * (p - q) for p, q in zip(policy.tolist(), ref.tolist())]
    by_hand = sum(-math.log(1 / (1 + math.exp(-(r[h] - r[lo])))) for h, lo in pairs) / len(pairs)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)


def test_dpo_fingerprint_is_unchanged_at_the_default_min_gap(tmp_path):
    from gpt4llm.train.dpo import DPOSettings

    cfg = DPOSettings(data="d.jsonl", output_dir=tmp_path)
    before = hashlib.sha256(json.dumps({k: str(getattr(cfg, k)) for k in cfg.FINGERPRINT}).encode()).hexdigest()[:16]
    assert cfg.fingerprint() == before  # runs made before --min-gap existed still resume
    assert DPOSettings(data="d.jsonl", output_dir=tmp_path, min_gap=1.0).fingerprint() != before


def test_early_stop_after_patience_rounds_without_a_new_best():
    assert stop_reason([1.0, 2.0], 1) is None
    assert "round 2" in stop_reason([1.0, 2.0, 1.5], 1) and "round 1's 2" in stop_reason([1.0, 2.0, 1.5], 1)
    assert stop_reason([1.0, 2.0, 1.5], 2) is None and stop_reason([1.0, 2.0, 1.5, 1.9], 2) is not None
    assert stop_reason([3.0, 2.0, 1.0], 0) is None  # 0: every round runs


def test_rounds_take_the_training_instructions_in_turn():
    qs = [Question(question_id=i, instruction=f"q{i}") for i in range(10)]
    assert round_prompts(qs, 1, None, 0) == qs and round_prompts(qs, 3, 20, 0) == qs
    seen = [q.question_id for r in (1, 2, 3, 4, 5) for q in round_prompts(qs, r, 4, 7)]
    assert sorted(seen[:8]) == sorted(set(seen[:8])) and set(seen[:12]) == set(range(10))  # each once, then again
    assert seen[:4] == [q.question_id for q in round_prompts(qs, 1, 4, 7)]  # the same draw every time


def test_k3_and_k1_estimate_the_exact_kl_of_the_tempered_distributions():
    """Answers of one token sampled from the current model: the mean of either estimator over them
    converges to KL(p_cur || p_0) = sum_y p_cur(y) log(p_cur(y) / p_0(y)), both at temperature T."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from gpt4llm.train.iterate_eval import token_logps

    def model(seed):
        torch.manual_seed(seed)
        m = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() > 1:
                    p.normal_(0, 0.3)
        return m

    cur, start, t = model(1), model(2), 0.7
    prompt = [3, 5, 7]
    with torch.no_grad():
        p = torch.softmax(cur(torch.tensor([prompt])).logits[0, -1] / t, -1)
        q = torch.softmax(start(torch.tensor([prompt])).logits[0, -1] / t, -1)
    exact = float((p * (p / q).log()).sum())
    torch.manual_seed(0)
    ys = torch.multinomial(p, 4000, replacement=True).tolist()
    seqs = [(prompt + [y], [-100] * 3 + [y]) for y in ys]
    a, b = token_logps(cur, seqs, t, 0, batch=500), token_logps(start, seqs, t, 0, batch=500)
    log_r = torch.tensor([y[0] - x[0] for x, y in zip(a, b)], dtype=torch.float64)
    k3, k1 = (log_r.exp() - 1 - log_r), -log_r
    for est in (k3, k1):
        se = float(est.std()) / len(ys) ** 0.5
        assert abs(float(est.mean()) - exact) < 4 * se, (float(est.mean()), exact, se)
    assert exact > 0.05 and float(k3.min()) >= 0 and float(k1.min()) < 0  # k3 is never negative; k1 can be


def test_the_sampling_seed_follows_the_weights_only(tmp_path):
    from safetensors.torch import save_file

    def checkpoint(name, value, note):
        d = tmp_path / name
        d.mkdir()
        save_file({"w": torch.full((4,), value)}, d / "model.safetensors")
        (d / "config.json").write_text("{}")
        (d / "gpt4llm_train.json").write_text(json.dumps({"seconds": note}))
        return str(d)

    a, b, c = checkpoint("a", 1.0, 1.5), checkpoint("b", 1.0, 9.0), checkpoint("c", 2.0, 1.5)
    assert weights_seed(a) == weights_seed(b) != weights_seed(c)  # same weights, other timings: same samples


def test_the_rule_scorer_counts_matches_and_refuses_bad_rules(tmp_path):
    from gpt4llm.train.iterate_reward import Scorer

    kw = dict(score_mode="text", backend=None, journal=tmp_path / "j", batch_size=4, max_length=64, quiet=True)
    s = Scorer(None, "rule:regex=(?s)^<a>.*</a>$", **kw)
    got = s.score([{"text": "<a>x\ny</a>"}, {"text": "<a>x"}, {"text": "no"}], "t").rewards
    assert got == [1.0, 0.0, 0.0]
    assert Scorer(None, r"rule:regex=\bcat\b", **kw).score([{"text": "cat, a cat; catalog"}], "t").rewards == [2.0]
    for judge, why in (("rule:length", "unknown rule"), ("rule:regex=", "unknown rule"), ("rule:regex=[", "not a valid"),
                       ("nobackend:x", "unknown model form")):
        with pytest.raises(UserError, match=why):
            Scorer(None, judge, **kw)
    with pytest.raises(UserError, match="not both"):
        Scorer(tmp_path, "rule:regex=a", **kw)
    with pytest.raises(UserError, match="logprobs reads a local judge"):
        Scorer(None, "openai:gpt-4o", **{**kw, "score_mode": "logprobs"})


# ---------------------------------------------------------------- the pipeline's iterate stage

def test_the_iterate_config_loads_and_its_dry_run_counts_every_answer(tmp_path):
    from support import ROOT, run_cli

    from gpt4llm.pipeline.config import load

    pipe, _ = load(ROOT / "configs" / "iterate.yaml")
    it = pipe.stages.iterate
    assert pipe.stages.rm and pipe.stages.sft and it.method == "dpo" and it.judge is None
    r = run_cli("run", str(ROOT / "configs" / "iterate.yaml"), "--dry-run", "-o", str(tmp_path / "study"))
    assert r.returncode == 0, r.stderr
    requests = {line[:34].strip(): int(line[68:77].replace(",", "")) for line in r.stdout.splitlines()[1:]
                if line.startswith("iterate")}
    # 40 seed instructions, 8 held out: 2 rounds x 16 prompts x 4 samples + 3 evaluations x 8 x 2 answers;
    # the win rates: 3 students x 6 questions answered, 2 rounds x 6 questions x 2 orders judged
    assert requests == {"iterate: student x4": 2 * 16 * 4 + 3 * 8 * 2, "iterate: win rates, 3 students": 18,
                        "iterate: judge vs round 0": 24}
    assert "train  iterate: student-en -> student-en-iterate, dpo" in r.stdout and not (tmp_path / "study" / "models").exists()


@pytest.mark.parametrize("stages, expected", [
    ("  iterate: {}\n", "stages.iterate needs a scorer"),
    ("  iterate: {judge: 'rule:regex=x'}\n  sft: null\n", "stages.iterate needs stages.sft"),
    ("  compare: {sources: [{name: a}, {name: b, model: 'local:x'}]}\n  rm: {}\n  iterate: {judge: 'rule:regex=x'}\n",
     "leave judge out, or rm"),
    ("  iterate: {samples: 1, judge: 'rule:regex=x'}\n", "stages.iterate.samples: Input should be greater than or equal to 2"),
])
def test_pipeline_iterate_mistakes_are_one_line(tmp_path, stages, expected):
    from gpt4llm.pipeline.config import load

    f = tmp_path / "p.yaml"
    f.write_text("name: t\nstages:\n" + stages)
    with pytest.raises(UserError, match=expected):
        load(f)


def test_an_answer_cut_at_max_tokens_is_trained_as_written_without_eos(tiny_checkpoint):
    """A sampled answer cut at the token limit never ended: its training sequence is the prompt and
    exactly its tokens (no EOS), in SFT targets and in DPO pairs alike; a finished one keeps its EOS."""
    from transformers import AutoTokenizer

    from gpt4llm.schemas import AlpacaRecord, Comparison
    from gpt4llm.templates import ALPACA
    from gpt4llm.train.data import encode_all
    from gpt4llm.train.dpo import encode_groups

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    r, w = rows((1, [("cut short here", 3.0), ("done.", 1.0)]))
    r[0]["finish_reason"], r[1]["finish_reason"] = "length", "stop"
    targets, _ = sft_targets(r, w, None, 0.0)
    pairs, _ = dpo_pairs(r, w, "best-worst", 0.0)
    assert targets[0]["meta"]["unfinished"] is True and pairs[0]["meta"]["unfinished"] == [0]
    prompt = tok(ALPACA.prompt("q1"))["input_ids"]
    cut, done = prompt + tok("cut short here", add_special_tokens=False)["input_ids"], \
        prompt + tok("done.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    examples, _ = encode_all([AlpacaRecord.model_validate(targets[0])], tok, ALPACA, 512, "truncate")
    assert examples[0]["input_ids"] == cut
    groups, _ = encode_groups([Comparison.model_validate(pairs[0])], tok, ALPACA, 512)
    assert groups[0]["seqs"] == [cut, done]
