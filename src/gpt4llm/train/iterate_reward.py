"""What scores the student's samples in ``train iterate``: one of

- a reward model (``--reward-model``, a ``train rm`` checkpoint): it reads the Alpaca prompt + the
  answer, as ``rank`` does and as it was trained (``rank.score_texts``); the scores are computed,
  cheap, and written beside the samples;
- a judge model (``--judge local:...|openai:...``): each answer rated 1-10 on its own with the
  paper's rating prompt, exactly as ``compare`` rates it (``compare.rate``: text with follow-ups,
  or a local judge's expected score with ``--score-mode logprobs``), every call journaled;
- a rule (``--judge rule:regex=PATTERN``): the number of non-overlapping matches of PATTERN in the
  answer (Python ``re``; inline flags such as ``(?s)`` or ``(?i)`` work). A verifiable reward as
  GRPO users write them: ``rule:regex=(?s)^<answer>.*</answer>$`` is 1 for a well-formed answer and
  0 otherwise; a pattern matched several times rewards each match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt4llm.errors import PartialFailure, UserError

RULES = "rule:regex=PATTERN"


@dataclass
class Scored:
    rewards: list[float | None]
    """One per answer; None: the judge gave no readable score (the answer takes no part)."""
    unreadable: int = 0


class Scorer:
    """Scores (instruction, input, answer) rows; ``name`` says which scorer (it keys the cached scores)."""

    def __init__(self, reward_model: Path | None, judge: str | None, *, score_mode: str, backend, journal: Path,
                 batch_size: int, max_length: int, quiet: bool):
        if reward_model is None and judge is None:
            raise UserError("train iterate needs a scorer: --reward-model DIR (a train rm checkpoint) or --judge "
                            f"MODEL|{RULES}")
        if reward_model is not None and judge is not None:
            raise UserError(f"--reward-model {reward_model} and --judge {judge}: give one scorer, not both")
        self.backend, self.journal, self.batch_size, self.max_length = backend, journal, batch_size, max_length
        self.score_mode, self.quiet = score_mode, quiet
        self.rm: Any = None
        if reward_model is not None:
            if not (Path(reward_model) / "config.json").is_file():
                raise UserError(f"--reward-model {reward_model}: not a checkpoint directory (no config.json); train one "
                                "with gpt4llm train rm")
            self.kind, self.name, self.path = "rm", f"rm:{Path(reward_model).resolve()}", Path(reward_model)
        elif judge.startswith("rule:"):
            form, _, pattern = judge.removeprefix("rule:").partition("=")
            if form != "regex" or not pattern:
                raise UserError(f"--judge {judge}: unknown rule; the rule form is {RULES}")
            try:
                self.pattern = re.compile(pattern)
            except re.error as e:
                raise UserError(f"--judge {judge}: not a valid regular expression ({e})") from None
            self.kind, self.name = "rule", judge
        else:
            from gpt4llm.backends import parse_model

            parse_model(judge, "--judge")
            if score_mode == "logprobs" and not judge.startswith("local:"):
                raise UserError(f"--score-mode logprobs reads a local judge's probabilities; {judge} is not local: "
                                "use --score-mode text")
            self.kind, self.name, self.judge = "judge", f"judge:{judge}:{score_mode}", judge

    def load(self) -> None:
        """Load the reward model now (a bad checkpoint fails before any sampling)."""
        if self.kind == "rm" and self.rm is None:
            from gpt4llm.eval.rank import load_reward_model

            self.rm = load_reward_model(self.path)

    def score(self, rows: list[dict], label: str) -> Scored:
        """Rewards of ``rows`` (``question_id``, ``instruction``, ``input``, ``sample``, ``text``)."""
        if not rows:
            return Scored([])
        if self.kind == "rule":
            return Scored([float(len(self.pattern.findall(r["text"]))) for r in rows])
        if self.kind == "rm":
            from gpt4llm.eval.rank import score_texts

            self.load()
            tok, model, template = self.rm
            texts = [template.prompt(r["instruction"], r["input"]) + r["text"] for r in rows]
            return Scored(score_texts(tok, model, texts, self.batch_size, self.max_length))
        return self._judge(rows, label)

    def _judge(self, rows: list[dict], label: str) -> Scored:
        from gpt4llm.compare import CompareSettings, rate
        from gpt4llm.schemas import Question
        from gpt4llm.stage import open_backend

        cfg = CompareSettings(judge=self.judge, score_mode=self.score_mode, journal=self.journal, backend=self.backend,
                              quiet=self.quiet)
        items = [(Question(question_id=f"{r['question_id']}", instruction=r["instruction"], input=r["input"]),
                  str(r["sample"]), r["text"]) for r in rows]
        backend = open_backend(self.judge, "--judge", self.backend, quiet=self.quiet, output=self.journal)
        results, _ = rate(cfg, items, backend)
        backend.close()
        out, failed, unreadable = [], 0, 0
        for q, name, _ in items:
            res = results.get((q.question_id, name), {"status": "not_run"})
            if res["status"] == "ok":
                out.append(float(res["score"]))
                continue
            out.append(None)
            if res["status"] == "parse_failed":
                unreadable += 1
            else:
                failed += 1
        if failed:
            raise PartialFailure(f"{label}: {failed} of {len(rows)} judge calls failed (the others are journaled); "
                                 "run the same command again to retry them")
        return Scored(out, unreadable)
