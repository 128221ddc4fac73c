"""A trained checkpoint as a Hub model repo: its files (the final weights, tokenizer, template and
training record; not the intermediate ``checkpoint-*`` directories) and the facts its card shows:
the recipe saved in ``gpt4llm_train.json``, the held-out numbers, and the study's evaluation."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpt4llm.errors import UserError
from gpt4llm.publish.provenance import read_json

TRAIN_FILE = "gpt4llm_train.json"  # train.common.TRAIN_FILE (not imported: it pulls in the trainers' settings)
# The recipe shown on the card; paths, switches of the run itself and logging stay in gpt4llm_train.json.
RECIPE = ("template", "loss", "beta", "margin_weight", "epochs", "max_steps", "learning_rate", "scheduler", "warmup_ratio",
          "weight_decay", "batch_size", "per_device_batch", "max_length", "packing", "loss_norm", "overlong", "layers",
          "eval_split", "precision", "lora", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "qlora", "merge",
          "seed", "limit")
KINDS = {"dpo": ("dpo", "Preference-tuned (DPO) student"), "reward_model": ("reward", "Reward model"),
         None: ("sft", "Instruction-tuned student (SFT)")}


@dataclass
class Checkpoint:
    path: Path
    name: str
    kind: str
    what: str
    meta: dict
    config: dict
    adapter: bool

    @property
    def base(self) -> str:
        return self.config.get("model", "")

    @property
    def base_shown(self) -> str:
        """The base as the card shows it: a Hub id or the embedded model as it is, a local path by
        its last part (the rest is this machine's, e.g. a home directory)."""
        name = self.base.removeprefix("local:")
        return f"local:{Path(name).name}" if name.startswith(("/", ".", "~")) else self.base

    @property
    def data(self) -> str:
        return self.config.get("data", "")


def is_checkpoint(path: Path) -> bool:
    return path.is_dir() and ((path / TRAIN_FILE).is_file() or (path / "config.json").is_file()
                              or (path / "adapter_config.json").is_file())


def load(path: Path, name: str | None = None) -> Checkpoint:
    meta = read_json(path / TRAIN_FILE)
    if meta is None:
        raise UserError(f"{path}: no readable {TRAIN_FILE}; publish takes checkpoints that gpt4llm train wrote "
                        "(their recipe and held-out numbers are in that file)")
    if meta.get("status") != "done":
        raise UserError(f"{path}: training did not finish (status {meta.get('status')!r}); finish it with the same "
                        "train command and --resume, then publish")
    adapter = (path / "adapter_config.json").is_file()
    if not adapter and not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise UserError(f"{path}: no weights (*.safetensors) at the top of the directory; publish the directory "
                        "train wrote its final model to")
    kind, what = KINDS.get(meta.get("kind"), KINDS[None])
    return Checkpoint(path, name or path.name, kind, what, meta, meta.get("config") or {}, adapter)


def copy_files(ck: Checkpoint, dest: Path) -> list[str]:
    """The top-level files of the checkpoint into ``dest``: hard links where the filesystem allows
    (a 7B model is 13 GB; a link costs nothing), copies elsewhere."""
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for f in sorted(ck.path.iterdir()):
        if not f.is_file() or f.name == "README.md":
            continue
        try:
            os.link(f, dest / f.name)
        except OSError:
            shutil.copy2(f, dest / f.name)
        names.append(f.name)
    return names


def recipe(ck: Checkpoint) -> dict:
    lora = ck.config.get("lora") == "True" or ck.config.get("qlora") == "True"
    out = {k: ck.config[k] for k in RECIPE if ck.config.get(k) not in (None, "None", "")
           and (lora or not k.startswith(("lora_", "qlora", "merge")))}
    used = (ck.meta.get("data_stats") or {}).get("template")
    if out.get("template") == "auto" and used:
        out["template"] = f"{used} (auto)"
    if ck.meta.get("effective_batch"):
        out["batch_size"] = ck.meta["effective_batch"]
    return out


def training(ck: Checkpoint) -> dict:
    m = ck.meta
    out = {"optimizer steps": m.get("steps")}
    if m.get("train_loss") is not None:
        out["mean training loss"] = round(float(m["train_loss"]), 4)
    if m.get("seconds") is not None:
        out["training time (s)"] = m["seconds"]
    stats = m.get("data_stats") or {}
    for k in ("examples", "kept", "groups", "pairs", "prompts", "truncated", "skipped"):
        if isinstance(stats.get(k), (int, float)):
            out[f"data: {k}"] = stats[k]
    for k in ("groups", "pairs", "ties", "truncated"):
        if isinstance(m.get(k), (int, float)) and f"data: {k}" not in out:
            out[f"data: {k}"] = m[k]
    return {k: v for k, v in out.items() if v is not None}


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


def held_out(ck: Checkpoint) -> dict:
    """The held-out numbers the trainer saved: DPO's preference accuracy and margins, the reward
    model's accuracy; an eval_loss in the log for any trainer that keeps one."""
    metrics = {k: _round(v) for k, v in (ck.meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    evals = [e for e in ck.meta.get("log_history") or [] if isinstance(e, dict) and "eval_loss" in e]
    if evals:
        metrics.setdefault("eval_loss", _round(evals[-1]["eval_loss"]))
    if metrics:
        n = ck.meta.get("held_out") or (ck.meta.get("data_stats") or {}).get("held_out_prompts")
        return {"what": f"On {n} held-out prompts" if n else "On the held-out split", "metrics": metrics}
    split = ck.config.get("eval_split")
    why = ("no held-out split was kept (--eval-split 0; the paper trained on all its 52K records)"
           if split in (None, 0, 0.0, "0", "0.0") else "no held-out numbers were saved")
    return {"what": why, "metrics": {}}


def _shown(v):
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " to ".join("unbounded" if x is None else str(_round(x)) for x in v)
    return _round(v)


JUDGE_KEYS = ("questions", "scored", "model_score_sum", "reference_score_sum", "ratio_percent", "ratio_ci95", "wins",
              "ties", "losses", "flip_rate", "judge", "score_mode")
BOARD_KEYS = ("win_rate", "length_controlled_winrate", "lc_shared_slope_winrate", "bt_score", "ci95", "n_total")


def evaluation(model_id: str, results: dict | None, benchmarks: dict | None = None) -> dict:
    """This model's rows of a study's results.json: the judge's summary (the paper's ratio of score
    sums), the leaderboard and ROUGE; ``benchmarks``: the study's question sets (pipeline.json)."""
    r = (results or {}).get("results") or {}
    benchmarks = benchmarks or {}
    tables, index, notes = [], [], []
    judge_set = (benchmarks.get("judge") or {}).get("questions") or "the judge's questions"
    rouge_set = (benchmarks.get("rouge") or {}).get("questions") or "the ROUGE questions"
    judge = ((r.get("judge") or {}).get("summaries") or {}).get(model_id)
    if judge:
        tables.append({"title": f"LLM judge on {judge_set}: the paper's ratio of score sums against the reference "
                                f"({judge.get('reference', 'reference')})",
                       "columns": ["metric", "value"], "rows": [[k, _shown(judge[k])] for k in JUDGE_KEYS if k in judge]})
        if isinstance(judge.get("ratio_percent"), (int, float)):
            index.append({"dataset": judge_set, "metric": "score_ratio_percent", "value": _round(judge["ratio_percent"]),
                          "name": "judge's score sum / the reference's (%)"})
        if (judge.get("reliability") or {}).get("unreliable"):
            notes.append("The study marked its judge unreliable: " + "; ".join(judge["reliability"].get("reasons", [])))
    board = (r.get("judge") or {}).get("leaderboard") or {}
    row = next((x for x in board.get("rows", []) if x.get("model") == model_id), None)
    if row:
        tables.append({"title": f"Leaderboard on {judge_set} (pairwise against {board.get('baseline')})",
                       "columns": ["metric", "value"], "rows": [[k, _shown(row[k])] for k in BOARD_KEYS if k in row]})
    rouge = [x for x in (r.get("rouge") or {}).get("table") or [] if x.get("Model") == model_id]
    if rouge:
        cols = [c for c in rouge[0] if c != "Model"]
        tables.append({"title": f"ROUGE F on {rouge_set}, by ground-truth length", "columns": cols,
                       "rows": [[_shown(x.get(c)) for c in cols] for x in rouge]})
        overall = next((x for x in rouge if x.get("Length") == "ALL"), None)
        if overall and isinstance(overall.get("rougeL"), (int, float)):
            index.append({"dataset": rouge_set, "metric": "rougeL", "value": _round(overall["rougeL"]),
                          "name": "ROUGE-L F (all lengths)"})
    return {"tables": tables, "model_index": index, "notes": notes, "found": bool(r)}
