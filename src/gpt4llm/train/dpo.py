"""``gpt4llm train dpo``: train the student on the comparison data directly (Rafailov et al., 2023,
"Direct Preference Optimization"), pairwise or K-wise.

Load: comparisons (``compare``'s output or the released ``comparison_data_v2.json``): per prompt,
K responses with the judge's 1-10 scores. The prompt is formatted by the student's saved template
(a ``user_input`` already in the Alpaca template is used as it is, never wrapped twice); the target
is the response + EOS, as in SFT. Each of a prompt's K responses is encoded ONCE per step; all the
pairs the loss needs are formed from those K log-probabilities.

A response's log-probability is the SUM over its target tokens (as in DPO and TRL); its implicit
reward is r = beta * (log pi(y|x) - log pi_ref(y|x)). The reference log-probabilities are those of
the starting model, computed once before training in batches and cached in the output directory
(``ref_logps.json``), reused on resume and never recomputed; with LoRA they are the base's with the
adapters off, so no second model is held at any time. The reference, the policy's loss and the
held-out metrics all run under ONE context, the Trainer's own autocast (``accelerator.autocast``,
the one accelerate wraps the model's forward in): a reference computed in fp32 against a bf16
policy was 0.12 nats per response off on a 2-layer model, so the implicit reward was not 0 before
the first update. The cache is keyed by that precision too.

Losses (``--loss``):

- ``sigmoid``: DPO on one pair per prompt, its best against its worst response (ties: no pair).
  Mean over pairs of -log sigmoid(r_best - r_worst).
- ``pairs`` (default): DPO on every ordered pair (h, l) of a prompt's responses with s_h > s_l (ties
  give no pair): weighted mean over all pairs of the batch of -log sigmoid(r_h - r_l), with weight
  w = 1 + margin_weight * (s_h - s_l) (``--margin-weight`` 0: every pair counts the same).
- ``plackett-luce``: the listwise DPO loss (the DPO paper's section 4 / appendix A.3) over the
  ranking of the K responses by score. Ties follow Breslow's rule: responses with equal scores
  share one choice set and no order among them is asserted. Each response i that scores above
  at least one other contributes r_i - log sum_{j: s_j <= s_i} exp(r_j); the lowest-scored block
  contributes nothing. The loss is the mean over prompts of minus the sum of these terms. With
  K = 2 and no tie it is exactly the sigmoid DPO loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpt4llm.errors import UserError
from gpt4llm.io import write_json
from gpt4llm.settings import Opt
from gpt4llm.train import common
from gpt4llm.train.data import IGNORE_INDEX, plan_rows, split_batch

REF_FILE = "ref_logps.json"


class DPOSettings(common.TrainSettings):
    """gpt4llm train dpo: train the student directly on scored comparisons (DPO, pairwise or K-wise)."""

    data: Annotated[str, Opt("-d", pipeline=True)]
    """Comparisons: gpt4llm compare output, the released comparison_data_v2.json, or a named dataset (comparison-gpt4-v2)."""
    template: Literal["auto", "alpaca", "chat"] = "auto"
    """auto: the student's saved template (else chat if the model has one, else alpaca, as answer does); alpaca or chat."""
    loss: Literal["sigmoid", "pairs", "plackett-luce"] = "pairs"
    """sigmoid: best vs worst per prompt; pairs: all C(K,2) scored pairs; plackett-luce: the ranking of the K responses."""
    beta: float = Field(0.1, gt=0)
    """DPO's beta: how far the policy may move from the reference (DPO, TRL: 0.1)."""
    margin_weight: float = Field(0.0, ge=0)
    """pairs: weight each pair by 1 + this x (s_h - s_l), so pairs the judge separated more count more (0: all equal)."""
    min_gap: float = Field(0.0, ge=0)
    """sigmoid, pairs: leave out pairs whose scores differ by less than this (0: every pair with s_h > s_l)."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the comparisons."""
    learning_rate: Annotated[float, Field(gt=0), Opt("--lr")] = 1e-6
    """Peak learning rate (TRL's DPO default 1e-6; Zephyr used 5e-7 for a 7B model)."""
    batch_size: int = Field(32, ge=1)
    """Prompts (each with all its K responses) per optimizer step."""
    packing: bool = True
    """Padding-free micro-batches (no pad tokens, no cross-example attention); else padded batches."""
    eval_split: float = Field(0.1, ge=0, lt=1)
    """Share of prompts held out for the preference accuracy, reward margin and log-prob trends."""
    eval_steps: int | None = Field(None, ge=1)
    """Held-out metrics every N steps (default: at every checkpoint) and at the end."""
    merge: bool = False
    """With --lora: save the merged full weights instead of the adapter."""

    FINGERPRINT: ClassVar[tuple[str, ...]] = (
        "data", "model", "template", "loss", "beta", "margin_weight", "epochs", "learning_rate", "scheduler",
        "warmup_ratio", "weight_decay", "batch_size", "per_device_batch", "max_length", "packing", "eval_split", "lora",
        "lora_r", "seed", "limit")

    def fingerprint(self) -> str:
        # --min-gap came after the first DPO runs: at its default it is left out, so their fingerprints
        # (and --resume of a run cut short) stay as they were.
        if not self.min_gap:
            return super().fingerprint()
        import hashlib

        keys = (*self.FINGERPRINT, "min_gap")
        return hashlib.sha256(json.dumps({k: str(getattr(self, k)) for k in keys}).encode()).hexdigest()[:16]


@dataclass
class DPOResult:
    output_dir: Path
    stats: dict
    template: str
    effective_batch: str
    steps: int = 0
    train_loss: float | None = None
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    log_history: list = field(default_factory=list)
    ref_computed: bool = False


# ---------------------------------------------------------------- the losses (pure tensor functions)


def pair_mask(scores, group_of, min_gap: float = 0.0):
    """[h, l] True where h and l answer the same prompt and s_h > s_l (by at least ``min_gap``)."""
    gap = scores[:, None] - scores[None, :]
    return (group_of[:, None] == group_of[None, :]) & (gap > 0) & (gap >= min_gap)


def best_worst_mask(scores, group_of, min_gap: float = 0.0):
    """[h, l] True for each prompt's (first) best and (first) worst response, when their scores differ
    (by at least ``min_gap``)."""
    import torch

    mask = torch.zeros(len(scores), len(scores), dtype=torch.bool, device=scores.device)
    for g in group_of.unique():
        idx = (group_of == g).nonzero().flatten()
        s = scores[idx]
        h, lo = idx[int(torch.argmax(s))], idx[int(torch.argmin(s))]
        if scores[h] > scores[lo] and scores[h] - scores[lo] >= min_gap:
            mask[h, lo] = True
    return mask


def dpo_loss(policy, ref, scores, group_of, beta: float, loss: str = "pairs", margin_weight: float = 0.0,
             min_gap: float = 0.0):
    """The loss of a batch of sequence log-probabilities (see the module docstring), and the pairs'
    (chosen, rejected) indices for metrics; ``min_gap``: sigmoid and pairs leave out closer pairs."""
    import torch
    import torch.nn.functional as F

    r = beta * (policy - ref)
    if loss == "plackett-luce":
        return plackett_luce_loss(r, scores, group_of), pair_mask(scores, group_of).nonzero().T
    mask = best_worst_mask(scores, group_of, min_gap) if loss == "sigmoid" else pair_mask(scores, group_of, min_gap)
    h, lo = mask.nonzero().T
    if h.numel() == 0:
        return policy.sum() * 0.0, (h, lo)
    terms = -F.logsigmoid(r[h] - r[lo])
    w = 1.0 + margin_weight * (scores[h] - scores[lo]) if margin_weight else torch.ones_like(terms)
    return (w * terms).sum() / w.sum(), (h, lo)


def plackett_luce_loss(r, scores, group_of):
    """Mean over prompts of -sum_i [r_i - logsumexp_{j: s_j <= s_i} r_j] over the responses that score
    above at least one other of their prompt (Breslow's rule for ties)."""
    import torch

    per_prompt = []
    for g in group_of.unique():
        idx = (group_of == g).nonzero().flatten()
        s, rg = scores[idx], r[idx]
        at_or_below = s[None, :] <= s[:, None]  # [i, j]: j in i's choice set
        above_some = (s[:, None] > s[None, :]).any(1)
        if not above_some.any():
            continue  # all tied: no order to learn
        lse = torch.logsumexp(rg[None, :].masked_fill(~at_or_below, float("-inf")), dim=1)
        per_prompt.append(-(rg - lse)[above_some].sum())
    if not per_prompt:
        return r.sum() * 0.0
    return torch.stack(per_prompt).mean()


def sequence_logps(logits, labels, position_ids=None):
    """Each sequence's summed log-probability of its target tokens (labels != -100), in row order
    (padded rows) or in segment order (packed rows: a sequence starts at each position id 0). Only
    target positions go through the softmax."""
    import torch
    import torch.nn.functional as F

    target = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    mask = target != IGNORE_INDEX
    picked = logits[mask].float()
    token_lp = picked.gather(-1, target[mask][:, None]).squeeze(-1) - torch.logsumexp(picked, dim=-1)
    if position_ids is None:
        seq = torch.arange(target.shape[0], device=target.device)[:, None].expand_as(target)
    else:
        starts = (position_ids == 0).cumsum(-1)
        seq = torch.cat([starts[:, 1:], starts[:, -1:]], dim=1)  # target t is the token at t + 1
        seq = seq + torch.arange(seq.shape[0], device=seq.device)[:, None] * (seq.max() + 1)
    _, inverse = torch.unique(seq[mask], return_inverse=True)  # sorted: row-major = segment order
    return torch.zeros(int(inverse.max()) + 1 if inverse.numel() else 0, device=logits.device,
                       dtype=token_lp.dtype).index_add_(0, inverse, token_lp)


# ---------------------------------------------------------------- data


class DPOCollator:
    """A micro-batch of prompts: their K responses each once, padded or packed into rows without
    cross-example attention; ``order[k]`` is the response of the k-th sequence the model sees."""

    def __init__(self, pad_id: int, ratio: float | None):
        self.pad_id, self.ratio = pad_id, ratio  # ratio None: padded rows

    def __call__(self, groups: list[dict]):
        import torch

        seqs = [(ids, lab) for g in groups for ids, lab in zip(g["seqs"], g["labels"])]
        if self.ratio is None:
            rows, order = [[i] for i in range(len(seqs))], list(range(len(seqs)))
        else:
            rows = plan_rows([len(s[0]) for s in seqs], self.ratio)
            order = [i for row in rows for i in row]
        width = max(sum(len(seqs[i][0]) for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                k = len(seqs[i][0])
                ids[r, at:at + k], labels[r, at:at + k] = torch.tensor(seqs[i][0]), torch.tensor(seqs[i][1])
                positions[r, at:at + k], attn[r, at:at + k] = torch.arange(k), 1
                at += k
            positions[r, at:] = torch.arange(width - at)
        batch = {"input_ids": ids, "labels": labels, "order": torch.tensor(order),
                 "scores": torch.tensor([x for g in groups for x in g["scores"]], dtype=torch.float),
                 "group_of": torch.tensor([i for i, g in enumerate(groups) for _ in g["seqs"]]),
                 "ref": torch.tensor([x for g in groups for x in g["ref"]], dtype=torch.float)}
        batch.update({"attention_mask": attn} if self.ratio is None else {"position_ids": positions})
        return batch


def policy_logps(model, batch):
    """The K log-probabilities of a collated micro-batch, in response order."""
    import torch

    extra = {"attention_mask": batch["attention_mask"]} if "attention_mask" in batch else {"position_ids": batch["position_ids"]}
    logits = model(input_ids=batch["input_ids"], use_cache=False, **extra).logits
    seg = sequence_logps(logits, batch["labels"], batch.get("position_ids"))
    out = torch.empty_like(seg)
    out[batch["order"].to(seg.device)] = seg
    return out


def choose_template(model: str, requested: str):
    """The student's saved template, else the fallback ``answer`` uses (said in the result)."""
    from gpt4llm.eval.answer import choose_template as answer_choice
    from gpt4llm.templates import PromptTemplate

    name = model.removeprefix("local:")
    saved = PromptTemplate.load(name) if Path(name).is_dir() else None
    if requested == "auto" and saved is not None:
        return saved, "saved with the student"
    return answer_choice(model if model.startswith(("local:", "openai:")) else f"local:{model}", requested), \
        "as asked" if requested != "auto" else "no template saved with the student; falling back as answer does"


def encode_groups(comparisons, tok, template, max_length: int) -> tuple[list[dict], dict]:
    """Per prompt with 2+ responses of different scores: each response's ids and labels (prompt masked)."""
    groups, st = [], {"prompts": len(comparisons), "responses": 0, "truncated": 0, "dropped_no_target": 0,
                      "all_tied": 0, "fewer_than_2": 0, "tokens": 0, "target_tokens": 0}
    for c in comparisons:
        seqs, labels, scores = [], [], []
        unfinished = set((c.meta or {}).get("unfinished") or [])  # responses cut at a token limit: no EOS
        for i, r in enumerate(c.responses_and_scores):
            ex = template.encode_prompt(tok, c.user_input, r.response, finished=i not in unfinished)
            ids, lab = ex["input_ids"], ex["labels"]
            if len(ids) > max_length:
                st["truncated"] += 1
                ids, lab = ids[:max_length], lab[:max_length]
            if all(x == IGNORE_INDEX for x in lab[1:]):  # the prompt alone fills max_length
                st["dropped_no_target"] += 1
                continue
            seqs.append(ids)
            labels.append(lab)
            scores.append(float(r.score))
        if len(seqs) < 2:
            st["fewer_than_2"] += 1
            continue
        if len(set(scores)) < 2:
            st["all_tied"] += 1
            continue
        st["responses"] += len(seqs)
        st["tokens"] += sum(map(len, seqs))
        st["target_tokens"] += sum(sum(x != IGNORE_INDEX for x in lab) for lab in labels)
        groups.append({"seqs": seqs, "labels": labels, "scores": scores, "length": sum(map(len, seqs))})
    st["groups"] = len(groups)
    st["pairs"] = sum(sum(1 for i, a in enumerate(g["scores"]) for b in g["scores"][i + 1:] if a != b) for g in groups)
    st["best_worst_pairs"] = len(groups)
    if not groups:
        raise UserError(f"no prompt with at least 2 scored responses of different scores ({st['fewer_than_2']} with "
                        f"fewer than 2, {st['all_tied']} all tied): DPO has nothing to prefer")
    return groups, st


# ---------------------------------------------------------------- the reference and the held-out metrics


def _ref_key(cfg: DPOSettings, groups: list[dict], precision: str) -> str:
    blob = json.dumps({"model": cfg.model, "precision": precision, "sequences": [g["seqs"] for g in groups]}).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def reference_logps(model, groups: list[dict], collator: DPOCollator, batch: int,
                    autocast=contextlib.nullcontext) -> list[list[float]]:
    """The starting model's log-probabilities of every response (LoRA adapters off), in batches.
    ``autocast``: a callable giving the context the policy's forward runs under (in training, the
    Trainer's ``accelerator.autocast``), so that before any update the policy equals the reference."""
    import torch

    off = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad(), off, autocast():
        for i in range(0, len(groups), batch):
            chunk = [{**g, "ref": [0.0] * len(g["seqs"])} for g in groups[i:i + batch]]
            lp = policy_logps(model, {k: v.to(model.device) for k, v in collator(chunk).items()}).cpu().tolist()
            at = 0
            for g in chunk:
                out.append(lp[at:at + len(g["seqs"])])
                at += len(g["seqs"])
    model.train(was_training)
    return out


def cached_reference(cfg: DPOSettings, model, groups: list[dict], collator: DPOCollator, autocast,
                     precision: str) -> tuple[list[list[float]], bool]:
    """The reference log-probs of ``groups`` from ``ref_logps.json`` when it holds them (same model,
    sequences and precision), else computed now under ``autocast`` and written; and whether computed."""
    cache = cfg.output_dir / REF_FILE
    key = _ref_key(cfg, groups, precision)
    saved = json.loads(cache.read_text()) if cache.is_file() else None
    if saved and saved.get("key") == key:
        return saved["logps"], False
    refs = reference_logps(model, groups, collator, max(cfg.per_device_batch, 1), autocast=autocast)
    if common.is_main_process():
        write_json(cache, {"key": key, "model": cfg.model, "precision": precision, "logps": refs})
    return refs, True


def held_out_metrics(model, groups: list[dict], collator: DPOCollator, beta: float, batch: int = 4,
                     autocast=contextlib.nullcontext) -> dict:
    """Pairwise preference accuracy of the implicit reward (ties excluded), the mean reward margin,
    and the mean log-probabilities of the chosen and rejected responses (their falling together is
    the failure users meet most). ``autocast``: as for ``reference_logps``, the policy's context."""
    import torch

    was_training = model.training
    model.eval()
    correct = total = 0
    margins, chosen, rejected = [], [], []
    with torch.no_grad(), autocast():
        for i in range(0, len(groups), batch):
            b = {k: v.to(model.device) for k, v in collator(groups[i:i + batch]).items()}
            pol = policy_logps(model, b)
            r = beta * (pol - b["ref"])
            h, lo = pair_mask(b["scores"], b["group_of"]).nonzero().T
            correct += int((r[h] > r[lo]).sum())
            total += h.numel()
            margins += (r[h] - r[lo]).tolist()
            chosen += pol[h].tolist()
            rejected += pol[lo].tolist()
    model.train(was_training)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"eval_preference_accuracy": correct / total if total else float("nan"), "eval_pairs": total,
            "eval_reward_margin": mean(margins), "eval_logps_chosen": mean(chosen), "eval_logps_rejected": mean(rejected)}


# ---------------------------------------------------------------- the run


def run(cfg: DPOSettings) -> DPOResult:
    cfg.check()
    if cfg.min_gap and cfg.loss == "plackett-luce":
        raise UserError(f"--min-gap {cfg.min_gap:g}: leaves out pairs of --loss sigmoid or pairs; plackett-luce ranks "
                        "all K responses (use --loss pairs)")
    from gpt4llm.pairs import load_comparisons

    world = common.world_size()
    accumulation = split_batch(cfg.batch_size, cfg.per_device_batch, world)
    comparisons = load_comparisons(cfg.data)
    comparisons = comparisons[: cfg.limit] if cfg.limit else comparisons
    tok = common.load_tokenizer(cfg.model)
    template, why = choose_template(cfg.model, cfg.template)
    groups, st = encode_groups(comparisons, tok, template, cfg.max_length)
    held, train_groups = common.held_out_split(groups, cfg.eval_split, cfg.seed)
    st.update(held_out_prompts=len(held), template=template.name, template_source=why)
    split = f"{cfg.batch_size} prompts = {cfg.per_device_batch} per device x {accumulation} accumulation x {world} processes"
    result = DPOResult(cfg.output_dir, st, template.name, split)
    if cfg.dry_run:
        return result
    common.start_run(cfg)
    t0 = time.perf_counter()
    _train(cfg, tok, template, train_groups, held, accumulation, result)
    result.seconds = time.perf_counter() - t0
    if common.is_main_process():
        common.write_meta(cfg.output_dir, {
            "fingerprint": cfg.fingerprint(), "status": "done", "kind": "dpo", "config": common.config_dict(cfg),
            "data_stats": st, "effective_batch": split, "steps": result.steps, "train_loss": result.train_loss,
            "metrics": result.metrics, "seconds": round(result.seconds, 1), "log_history": result.log_history})
    return result


def _train(cfg: DPOSettings, tok, template, train_groups, held, accumulation: int, result: DPOResult) -> None:
    import datasets
    import torch
    from transformers import Trainer, TrainerCallback

    from gpt4llm.train.data import attention_ratio

    model = common.load_model(cfg, tok)
    for m in model.modules():  # as TRL does: dropout would make the policy's log-probs noisy
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    flash = str(getattr(model.config, "_attn_implementation", "")).startswith("flash")
    collator = DPOCollator(tok.pad_token_id, (0.0 if flash else attention_ratio(model.config)) if cfg.packing else None)
    beta, loss_kind, margin_weight, min_gap = cfg.beta, cfg.loss, cfg.margin_weight, cfg.min_gap
    logged: dict[str, list[float]] = {}

    class DPOTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            with self.accelerator.autocast():  # the reference's context (accelerate's forward wrapper is the same)
                pol = policy_logps(model, inputs)
            loss, (h, lo) = dpo_loss(pol, inputs["ref"], inputs["scores"], inputs["group_of"], beta, loss_kind,
                                     margin_weight, min_gap)
            with torch.no_grad():
                r = beta * (pol - inputs["ref"])
                for name, value in (("rewards/chosen", r[h]), ("rewards/rejected", r[lo]),
                                    ("rewards/margins", r[h] - r[lo]), ("rewards/accuracy", (r[h] > r[lo]).float()),
                                    ("logps/chosen", pol[h]), ("logps/rejected", pol[lo])):
                    if value.numel():
                        logged.setdefault(name, []).append(float(value.mean()))
            return (loss, pol) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs.update({k: round(sum(v) / len(v), 6) for k, v in logged.items()})
                logged.clear()
            return super().log(logs, *args, **kwargs)

    every = cfg.eval_steps or cfg.save_steps

    class HeldOut(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if held and state.global_step % every == 0:
                state.log_history.append({"step": state.global_step, **held_out_metrics(model, held, collator, beta,
                                                                                        autocast=autocast)})

    args = common.training_args(cfg, cfg.epochs, cfg.learning_rate, accumulation, train_sampling_strategy="group_by_length")
    trainer = DPOTrainer(model=model, args=args, data_collator=collator, callbacks=[HeldOut()])
    # The Trainer's accelerator exists from here on: its autocast (from --precision) is the context
    # of every log-prob of the run. The model is still the starting one (a resumed checkpoint is
    # loaded inside train()), so the reference is computed now, then the data gets it. (DeepSpeed
    # casts the weights instead of autocasting: there the reference is still the fp32 model's.)
    autocast = trainer.accelerator.autocast
    everything = train_groups + held
    refs, result.ref_computed = cached_reference(cfg, model, everything, collator, autocast,
                                                 str(trainer.accelerator.mixed_precision))
    for g, ref in zip(everything, refs):
        g["ref"] = ref
    trainer.train_dataset = datasets.Dataset.from_list(train_groups)
    common.quiet_trainer(trainer, cfg.quiet)
    trainer.loss_is_scaled_for_ga = False  # a per-micro-batch mean: the Trainer divides by accumulation
    out = common.train(trainer, cfg)
    result.steps, result.train_loss = out.global_step, out.training_loss
    if held:
        result.metrics = held_out_metrics(trainer.model, held, collator, beta, autocast=autocast)
        trainer.state.log_history.append({"step": out.global_step, **result.metrics})
    result.log_history = trainer.state.log_history
    common.save_model(cfg, trainer, tok, template, merge=cfg.merge)
