"""The guards of ``train iterate`` against reward hacking, each round: the KL estimate to the round-0
model on the held-out answers, the figure of reward, length and KL by round, and the judge's win rate
of each round's student against the starting (SFT) student through ``eval judge``.

KL: the held-out answers are samples of the current student at the sampling temperature T (top_p 1
is what makes them exact samples), so for every answer token y_t with prefix x, y_<t,
r_t = p_0(y_t | ...) / p_cur(y_t | ...), both with logits / T as the sampler used them (as TRL's
online trainers do). Two estimators are reported, summed over an answer's tokens (its EOS included
when the student stopped) and averaged over answers, in nats per answer:

- ``kl`` (k3, Schulman, "Approximating KL Divergence", 2020; TRL's GRPO): sum_t (r_t - 1) - log r_t,
  unbiased for the sequence KL(p_cur || p_0), never negative, lower variance than k1;
- ``kl_k1``: sum_t -log r_t, the plain log-ratio (TRL's Online DPO / RLOO penalty), unbiased too but
  negative on single answers.

``kl_per_token`` is the k3 total over all answer tokens divided by their number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gpt4llm.templates import IGNORE_INDEX


def token_logps(model, sequences: list[tuple[list[int], list[int]]], temperature: float, pad_id: int,
                batch: int = 8) -> list[list[float]]:
    """Per sequence, the log-probabilities (logits / temperature) of its target tokens (labels != -100)."""
    import torch

    out: list[list[float]] = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(sequences), batch):
            chunk = sequences[i:i + batch]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            labels = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (x, lab) in enumerate(chunk):  # right padding: positions 0.. as in training
                ids[r, :len(x)], labels[r, :len(x)], attn[r, :len(x)] = torch.tensor(x), torch.tensor(lab), 1
            logits = model(input_ids=ids.to(model.device), attention_mask=attn.to(model.device)).logits.float()
            target = labels[:, 1:].to(model.device)
            lp = torch.log_softmax(logits[:, :-1] / temperature, dim=-1)
            mask = target != IGNORE_INDEX
            picked = lp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
            for r in range(len(chunk)):
                out.append(picked[r][mask[r]].cpu().tolist())
    return out


def encode_answers(tok, template, rows: list[dict], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Each held-out answer as the student's template encodes it in training (prompt masked); the
    EOS is a sampled token only when the student stopped, so an answer cut at max_tokens drops it."""
    out = []
    for r in rows:
        ex = template.encode(tok, r["instruction"], r["input"], r["text"])
        ids, labels = ex["input_ids"], ex["labels"]
        if r.get("finish_reason") == "length" and labels and labels[-1] == tok.eos_token_id:
            ids, labels = ids[:-1], labels[:-1]
        out.append((ids[:max_length], labels[:max_length]))
    return out


def kl_to_start(current: str, start: str, template, rows: list[dict], temperature: float, max_length: int,
                batch: int = 8) -> dict[str, Any]:
    """k3 and k1 estimates of KL(current || start) on ``rows`` (answers sampled from ``current``), and the
    answers' mean length in tokens (EOS not counted)."""
    from gpt4llm.backends.local import load_model

    tok, cur = load_model(current)
    seqs = encode_answers(tok, template, rows, max_length)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    lp_cur = token_logps(cur, seqs, temperature, pad, batch)
    _, ref = load_model(start)
    lp_ref = token_logps(ref, seqs, temperature, pad, batch)
    k1, k3, tokens = [], [], 0
    for a, b in zip(lp_cur, lp_ref):
        log_r = [y - x for x, y in zip(a, b)]  # log p_0 - log p_cur, per token
        k1.append(-sum(log_r))
        k3.append(sum(math.expm1(v) - v for v in log_r))
        tokens += len(a)
    n = max(len(rows), 1)
    lengths = [sum(1 for t, lab in zip(ids, labels) if lab != IGNORE_INDEX and t != tok.eos_token_id)
               for ids, labels in seqs]
    return {"kl": sum(k3) / n, "kl_k1": sum(k1) / n, "kl_per_token": sum(k3) / tokens if tokens else 0.0,
            "length": sum(lengths) / n}


def chart(rounds: list[dict], stem: Path) -> list[Path]:
    """Held-out reward, answer length and KL to round 0 by round (one panel each), the judge's win
    rate against round 0 on the reward panel's second axis when it was measured."""
    from gpt4llm.plots import _plt, save

    plt = _plt()
    xs = [m["round"] for m in rounds]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    reward = [m["reward"] for m in rounds]
    se = [m.get("reward_se") or 0.0 for m in rounds]
    axes[0].errorbar(xs, reward, yerr=se, marker="o", capsize=3, label="held-out reward")
    axes[0].set_title("held-out reward (± s.e.)")
    wins = [(m["round"], m["win_rate"]) for m in rounds if m.get("win_rate") is not None]
    if wins:
        ax2 = axes[0].twinx()
        ax2.plot([w[0] for w in wins], [w[1] for w in wins], "s--", color="#c44e52", label="win rate vs round 0 (%)")
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("judge win rate vs round 0 (%)", color="#c44e52")
    axes[1].plot(xs, [m["length"] for m in rounds], marker="o", color="#55a868")
    axes[1].set_title("answer length (tokens)")
    axes[2].plot(xs, [m.get("kl", 0.0) for m in rounds], marker="o", color="#8172b2")
    axes[2].set_title("KL to round 0 (k3, nats/answer)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(xs)
    fig.tight_layout()
    return save(fig, stem)


def winrates(models: dict[int, str], *, questions: str, limit: int | None, judge: str, score_mode: str, out: Path,
             journal: Path, backend, params: dict, quiet: bool) -> dict[str, Any]:
    """Each round's student (1 answer per question) against round 0's through ``eval judge``, both
    orders, journaled: ``{round: {win_rate (%), wins, ties, losses, ratio_percent}}``."""
    from gpt4llm.eval import answer, judge as judging, panel

    files = {}
    for r, model in models.items():
        path = out / f"answers.round-{r}.jsonl"
        answer.run(answer.AnswerSettings(questions=questions, output=path, model=f"local:{model}",
                                         model_id=f"round-{r}", limit=limit, journal=journal, backend=backend,
                                         quiet=quiet, **params))
        files[r] = str(path)
    others = [files[r] for r in models if r != 0]
    if not others:
        return {}
    s = panel.run(judging.JudgeSettings(output=out / "reviews.jsonl", questions=questions, answers=others,
                                          reference=files[0], judge=[judge], score_mode=score_mode,
                                          journal=journal, backend=backend, quiet=quiet, allow_missing=True))
    rates = {}
    for r in models:
        m = s.summaries.get(f"round-{r}")
        if m:
            n = m["wins"] + m["ties"] + m["losses"]
            rates[str(r)] = {"win_rate": round(100 * (m["wins"] + m["ties"] / 2) / n, 2) if n else None,
                             "wins": m["wins"], "ties": m["ties"], "losses": m["losses"],
                             "ratio_percent": m["ratio_percent"], "judge": judge}
    return rates
