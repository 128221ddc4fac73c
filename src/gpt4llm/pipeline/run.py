"""``gpt4llm run PIPELINE.yaml``: the study in one command.

Stages run in the paper's order (translate, generate, compare, sft, rm, answer, rank, judge,
rouge, stats, report), each through the same code as its own command: a stage's YAML section is
its command's settings minus what the pipeline owns, and the stage gets those settings whole,
with the pipeline's paths, models and backend added. Every model call goes through one journal
(``<output-dir>/journal.sqlite``), so no call is paid twice, across stages and across runs. A
stage that finished writes ``stages/<name>.json`` with a fingerprint of its settings, models and
upstream stages; a re-run skips it while the fingerprint matches and its outputs exist. A stage
cut short (kill -9, budget, a failure) resumes by its own means: the journal for model calls, the
last checkpoint for training, so a killed study continues where it stopped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from gpt4llm import io
from gpt4llm.errors import BudgetExceeded, PartialFailure, UserError
from gpt4llm.pipeline.config import load
from gpt4llm.pipeline.study import Stage, Study
from gpt4llm.stage import errors_path
from gpt4llm.pipeline import RunSettings




def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _jsonable(x: Any) -> Any:
    if is_dataclass(x) and not isinstance(x, type):
        return {k: _jsonable(v) for k, v in asdict(x).items() if k != "entries"}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if k != "entries"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def check_calls(what: str, stats, failed: int, errors_file) -> None:
    """A stage's calls: stop the study at a reached budget (exit 3) or at failed calls (exit 1)."""
    if stats is not None and stats.budget_reached:
        raise BudgetExceeded(f"{what}: budget of ${stats.max_usd:g} reached (${stats.cost_usd or 0:,.4f} spent)")
    if failed:
        raise PartialFailure(f"{what}: {failed} model calls failed (listed in {errors_file})")


def calls_dict(stats) -> dict | None:
    """The part of a CallStats a report shows: counts, tokens, cost, time."""
    if stats is None:
        return None
    return {k: getattr(stats, k) for k in ("requested", "cached", "called", "ok", "failed", "prompt_tokens",
                                            "completion_tokens", "cost_usd", "new_cost_usd", "seconds")}


def settings(section) -> dict:
    """A stage section as its command's settings: every key, passed through whole."""
    return section.model_dump()


def fingerprinted(section) -> dict:
    """What of a section changes a stage's output: the values set differently from the defaults (a
    setting added in a later version, with its default, does not invalidate finished stages)."""
    return section.model_dump(exclude_defaults=True)


class Runner:
    """Runs the stages of a ``Study`` in order; each stage function fills in its result."""

    def __init__(self, study: Study, quiet: bool = False):
        self.study, self.quiet = study, quiet
        self.fns: dict[str, Callable[[], dict]] = {}

    # ------------------------------------------------------------------ the common keyword arguments

    def backend(self):
        """The pipeline's backend settings; engine logs in <output-dir>/engines."""
        return self.study.pipe.backend.model_copy(update={"engine_log_dir": self.study.out / "engines"})

    def calls(self, **kw) -> dict:
        """What the pipeline owns of every model stage: the study's journal, backend and quiet."""
        return {"journal": self.study.journal, "backend": self.backend(), "quiet": self.quiet, **kw}

    # ------------------------------------------------------------------ the plan

    def plan(self) -> list[Stage]:
        study = self.study
        pipe, s, m, p = study.pipe, study.pipe.stages, study.pipe.models, study.p
        stages: list[Stage] = []

        def add(stage: Stage, fn: Callable[[], dict]) -> None:
            stages.append(stage)
            self.fns[stage.name] = fn

        for lang in pipe.languages:
            if lang != "en":
                add(Stage(f"translate.{lang}", f"translate the instructions into {lang} with {pipe.translator}",
                          {"model": pipe.translator, "settings": fingerprinted(s.translate),
                           "instructions": pipe.data.instructions, "limit": pipe.data.limit, "to": lang},
                          [p("data", f"instructions.{lang}.jsonl")]), lambda lang=lang: self.translate(lang))
            add(Stage(f"generate.{lang}", f"the teacher {m.teacher} answers the instructions ({lang})",
                      {"model": m.teacher, "settings": fingerprinted(s.generate.model_copy(update={"languages": ["en"]})),
                       "instructions": pipe.data.instructions, "limit": pipe.data.limit, "lang": lang,
                       "backend": pipe.backend.model_dump(exclude_defaults=True)},
                      [p("data", f"teacher.{lang}.jsonl")], [f"translate.{lang}"] if lang != "en" else []),
                lambda lang=lang: self.generate(lang))
        if s.clean:
            names = ", ".join([b.questions + (f" (first {b.limit})" if b.limit else "") for b in self.evaluated()]
                              + list(s.clean.against)) or "no benchmark"
            for lang in pipe.languages:
                add(Stage(f"clean.{lang}", f"remove duplicates, bad answers and prompts of {names} ({lang})",
                          {"settings": fingerprinted(s.clean), "seed": pipe.seed,
                           "evaluated": [b.model_dump() for b in self.evaluated()]},
                          [p("data", f"clean.{lang}.jsonl")], [f"generate.{lang}"]), lambda lang=lang: self.clean(lang))
        if s.compare:
            add(Stage("compare", f"{' + '.join(pipe.judges)} scores {len(s.compare.sources)} sources' responses 1-10",
                      {"judge": m.judge, "settings": fingerprinted(s.compare)}, [p("data", "comparisons.jsonl")],
                      [self.answered("en")]), self.compare)
        if s.sft:
            for lang in pipe.languages:
                add(Stage(f"sft.{lang}", f"fine-tune {m.student_base} on the teacher's {lang} answers",
                          {"base": m.student_base, "settings": fingerprinted(s.sft), "seed": pipe.seed},
                          [p("models", f"student-{lang}", "gpt4llm_train.json")], [self.answered(lang)]),
                    lambda lang=lang: self.sft(lang))
        if s.rm:
            add(Stage("rm", f"train a reward model on {m.reward_base} from the comparisons",
                      {"base": m.reward_base, "settings": fingerprinted(s.rm), "seed": pipe.seed},
                      [p("models", "reward", "gpt4llm_train.json")], ["compare"]), self.rm)
        if s.dpo:
            others = [x for x in pipe.languages if x != "en"]
            add(Stage("dpo", "train student-en-dpo from the English SFT student on the comparisons"
                      + (f" (no DPO student for {', '.join(others)}: the comparisons are English)" if others else ""),
                      {"settings": fingerprinted(s.dpo), "seed": pipe.seed},
                      [p("models", "student-en-dpo", "gpt4llm_train.json")], ["sft.en", "compare"]), self.dpo)
        if s.iterate:
            it, bench = s.iterate, pipe.data.benchmarks.judge
            add(Stage("iterate", f"improve the English SFT student with its own samples ({it.method}, {it.rounds} "
                      f"rounds of {it.samples} per prompt), scored by {'the reward model' if s.rm else it.judge}",
                      {"settings": fingerprinted(it), "seed": pipe.seed, "instructions": pipe.data.instructions,
                       "winrate": [m.judge, bench.model_dump() if bench else None]},
                      [p("models", "student-en-iterate", "iterate.json")], ["sft.en"] + (["rm"] if s.rm else [])),
                self.iterate)
        if s.answer:
            add(Stage("answer", "the students, the base and the reference answer the benchmarks",
                      {"settings": fingerprinted(s.answer), "benchmarks": pipe.data.benchmarks.model_dump(),
                       "teacher": m.teacher, "reference": s.judge.reference if s.judge else None},
                      [p("answers", "answers.json")], [f"sft.{x}" for x in pipe.languages] + (["dpo"] if s.dpo else [])),
                self.answer)
        if s.rank:
            add(Stage("rank", "the reward model ranks the student's samples (best-of-N, groups 1..N)",
                      {"settings": fingerprinted(s.rank)}, [p("answers", "ranked.json")], ["rm", "answer"]), self.rank)
        if s.judge:
            add(Stage("judge", f"{' + '.join(pipe.judges)} review{'s' if len(pipe.judges) == 1 else ''} each model's "
                      "answers against the reference (Vicuna's reviewer)" + (" as a panel" if len(pipe.judges) > 1 else ""),
                      {"judge": m.judge, "settings": fingerprinted(s.judge)}, [p("eval", "reviews.jsonl.summary.json")],
                      ["answer"] + (["rank"] if s.rank else [])), self.judge)
        if s.rouge:
            add(Stage("rouge", "ROUGE of the answers against the ground truth, by its length", {},
                      [p("eval", "rouge.json")], ["answer"]), self.rouge)
        if s.stats:
            add(Stage("stats", "verb-noun pairs, output lengths and score distributions",
                      {"settings": fingerprinted(s.stats)}, [p("stats", "stats.json")],
                      ["generate.en"] + (["compare"] if s.compare else [])), self.stats)
        if s.publish:  # last: it publishes what every stage before it made
            add(Stage("publish", "the datasets as Parquet with a dataset card, each model with its model card"
                      + (f", pushed to {s.publish.push_to_hub}" if s.publish.push_to_hub else ""),
                      {"settings": fingerprinted(s.publish)}, [p("publish", "README.md")], [x.name for x in stages]),
                self.publish)
        study.stages = stages
        return stages

    # ------------------------------------------------------------------ the stages

    def translate(self, lang: str) -> dict:
        from gpt4llm import translate

        st = self.study
        r = translate.run(translate.TranslateSettings(
            **settings(st.pipe.stages.translate), output=st.p("data", f"instructions.{lang}.jsonl"),
            input=st.path(st.pipe.data.instructions), to=lang, translator=st.pipe.translator, limit=st.pipe.data.limit,
            **self.calls()))
        check_calls("translation", r.calls, r.failed, errors_path(r.output))
        return {"written": r.written, "calls": calls_dict(r.calls)}

    def generate(self, lang: str) -> dict:
        from gpt4llm import generate

        st = self.study
        src = str(st.p("data", f"instructions.{lang}.jsonl")) if lang != "en" else st.path(st.pipe.data.instructions)
        r = generate.run(generate.GenerateSettings(
            **settings(st.pipe.stages.generate), output=st.p("data", f"teacher.{lang}.jsonl"), input=src,
            teacher=st.pipe.models.teacher, limit=st.pipe.data.limit, language=None if lang == "en" else lang,
            **self.calls()))
        check_calls("the teacher's answers", r.calls, r.failed, r.errors_file)
        return {"written": r.written, "truncated": r.truncated, "calls": calls_dict(r.calls)}

    def answered(self, lang: str) -> str:
        """The stage whose records the student trains on: clean.<lang> when the pipeline cleans."""
        return f"clean.{lang}" if self.study.pipe.stages.clean else f"generate.{lang}"

    def training_data(self, lang: str):
        return self.study.p("data", f"clean.{lang}.jsonl" if self.study.pipe.stages.clean else f"teacher.{lang}.jsonl")

    def evaluated(self) -> list:
        """The question sets this pipeline evaluates on (data.benchmarks), each once."""
        b = self.study.pipe.data.benchmarks
        return list({(x.questions, x.limit): x for x in (b.judge, b.rouge) if x}.values())

    def clean(self, lang: str) -> dict:
        from gpt4llm.clean import CleanSettings, run as clean
        from gpt4llm.eval.benchmarks import BENCHMARKS
        from gpt4llm.eval.questions import load_questions

        st = self.study
        c = st.pipe.stages.clean
        against = []
        for bench in self.evaluated():  # exactly the questions evaluated: the first `limit` when there is one
            if bench.limit is None and bench.questions != "seeds":
                against.append(st.path(bench.questions))
                continue
            qs = load_questions(st.questions(bench))[:bench.limit]
            name = bench.questions if bench.questions in ("seeds", *BENCHMARKS) else Path(bench.questions).stem
            path = st.p("clean", f"{name}" + (f".first-{bench.limit}" if bench.limit else "") + ".jsonl")
            io.write_records(path, [{"question_id": q.question_id, **({"turns": q.turns} if q.turns else
                                     {"text": q.instruction + ("\n" + q.input if q.input else "")})} for q in qs], "jsonl")
            against.append(str(path))
        against = list(dict.fromkeys(against + [st.path(a) for a in c.against]))
        return clean(CleanSettings(
            **{**settings(c), "against": against, "decontaminate": c.decontaminate and bool(against)},
            input=[str(st.p("data", f"teacher.{lang}.jsonl"))], output=st.p("data", f"clean.{lang}.jsonl"),
            seed=st.pipe.seed, language=lang, quiet=self.quiet))

    def compare(self) -> dict:
        from gpt4llm import compare, compare_panel, generate

        st = self.study
        c = st.pipe.stages.compare
        teacher = self.training_data("en")  # the comparisons are training data too: cleaned the same way
        files, calls = [], {}
        for src in c.sources:
            if src.model is None:
                files.append(str(teacher))
                continue
            out = st.p("data", f"source.{src.name}.jsonl")
            r = generate.run(generate.GenerateSettings(
                output=out, input=str(teacher) if st.pipe.stages.clean else st.path(st.pipe.data.instructions),
                teacher=src.model, limit=st.pipe.data.limit,
                temperature=src.temperature, top_p=src.top_p, max_tokens=src.max_tokens, **self.calls()))
            check_calls(f"source {src.name}", r.calls, r.failed, r.errors_file)
            calls[src.name] = calls_dict(r.calls)
            files.append(str(out))
        from gpt4llm.eval.families import family, name_of

        models = {x.name: x.model or st.pipe.models.teacher for x in c.sources}  # what each source is, for self-preference
        fams = [*(c.family or []), *(f"{n}={family(m) or name_of(m)}" for n, m in models.items())]
        r = compare_panel.run(compare.CompareSettings(
            **{**settings(c), "family": fams}, instructions=str(teacher), responses=files,
            output=st.p("data", "comparisons.jsonl"), judge=st.pipe.models.judge,
            source_names=",".join(x.name for x in c.sources), allow_missing=True, **self.calls()))
        check_calls("scoring", r.calls, r.call_failures, errors_path(r.output))
        calls["judge"] = calls_dict(r.calls)
        return {"written": r.written, "report": r.report, "figures": [str(f) for f in r.figure],
                "call_failures": r.call_failures, "calls": calls, "panel": r.panel}

    def _training_dir(self, cfg) -> dict:
        """resume (the same run, cut short) or overwrite (a run of other settings) for a training dir."""
        meta = cfg.output_dir / "gpt4llm_train.json"
        if not meta.is_file():
            return {"resume": True}
        same = json.loads(meta.read_text()).get("fingerprint") == cfg.fingerprint()
        return {"resume": True} if same else {"overwrite": True}

    def sft(self, lang: str) -> dict:
        from gpt4llm.train import sft

        st = self.study
        t = st.pipe.stages.sft
        cfg = sft.SFTSettings(
            **{**settings(t), "merge": t.merge or t.lora,  # answer and serve load merged weights
               "deepspeed": st.path(t.deepspeed) if t.deepspeed else None},
            data=str(self.training_data(lang)), output_dir=st.p("models", f"student-{lang}"),
            model=st.pipe.models.student_base, seed=st.pipe.seed, quiet=self.quiet)
        cfg = cfg.model_copy(update=self._training_dir(cfg))
        r = sft.run(cfg)
        return {"model": str(cfg.output_dir), "data_stats": r.stats.as_dict(), "effective_batch": r.effective_batch,
                "steps": r.steps, "train_loss": r.train_loss, "train_seconds": round(r.seconds, 1),
                "first_example": r.first_example, "log_history": r.log_history}

    def rm(self) -> dict:
        from gpt4llm.train import reward

        st = self.study
        t = st.pipe.stages.rm
        cfg = reward.RMSettings(
            **{**settings(t), "deepspeed": st.path(t.deepspeed) if t.deepspeed else None},
            data=str(st.p("data", "comparisons.jsonl")), output_dir=st.p("models", "reward"),
            model=st.pipe.models.reward_base, seed=st.pipe.seed, quiet=self.quiet)
        cfg = cfg.model_copy(update=self._training_dir(cfg))
        r = reward.run(cfg)
        meta = json.loads((cfg.output_dir / "gpt4llm_train.json").read_text())
        base = cfg.model if not t.layers else f"local:{cfg.output_dir.with_name(f'reward-base-{t.layers}-layers')}"
        return {"model": str(cfg.output_dir), "base": base, "groups": r.groups, "pairs": r.pairs, "ties": r.ties,
                "truncated": r.truncated, "metrics": r.metrics, "steps": r.steps, "train_seconds": round(r.seconds, 1),
                "effective_batch": r.effective_batch, "log_history": meta.get("log_history", [])}

    def dpo(self) -> dict:
        from gpt4llm.train import dpo

        st = self.study
        t = st.pipe.stages.dpo
        cfg = dpo.DPOSettings(
            **{**settings(t), "merge": t.merge or t.lora, "deepspeed": st.path(t.deepspeed) if t.deepspeed else None},
            data=str(st.p("data", "comparisons.jsonl")), output_dir=st.p("models", "student-en-dpo"),
            model=f"local:{st.p('models', 'student-en').resolve()}", seed=st.pipe.seed, quiet=self.quiet)
        cfg = cfg.model_copy(update=self._training_dir(cfg))
        r = dpo.run(cfg)
        return {"model": str(cfg.output_dir), "data_stats": r.stats, "steps": r.steps, "train_loss": r.train_loss,
                "train_seconds": round(r.seconds, 1), "metrics": r.metrics, "effective_batch": r.effective_batch,
                "template": r.template, "log_history": r.log_history}

    def iterate(self) -> dict:
        from gpt4llm.stage import seeds_path
        from gpt4llm.train import iterate

        st = self.study
        t, s = st.pipe.stages.iterate, st.pipe.stages
        bench = st.pipe.data.benchmarks.judge  # the win rates against the SFT student, by eval judge
        mode = t.winrate_score_mode if "winrate_score_mode" in t.model_fields_set or not s.judge else s.judge.score_mode
        instructions = st.pipe.data.instructions
        r = iterate.run(iterate.IterateSettings(
            **{**settings(t), "deepspeed": st.path(t.deepspeed) if t.deepspeed else None, "winrate_score_mode": mode},
            instructions=str(seeds_path()) if instructions == "seeds" else st.path(instructions),
            output_dir=st.p("models", "student-en-iterate"), model=f"local:{st.p('models', 'student-en').resolve()}",
            reward_model=st.p("models", "reward") if s.rm else None, seed=st.pipe.seed, overwrite=True,
            winrate_questions=st.questions(bench) if bench else None, winrate_limit=bench.limit if bench else None,
            winrate_judge=st.pipe.models.judge, journal=st.journal, backend=self.backend(), quiet=self.quiet))
        return {"model": r.final_model, "best_round": r.best_round, "stopped_early": r.stopped, "method": r.method,
                "scorer": r.plan.get("scorer"), "plan": r.plan, "rounds": r.rounds, "winrates": r.winrates,
                "figures": [str(f) for f in r.figure], "seconds": round(r.seconds, 1)}

    def answer(self) -> dict:
        from gpt4llm.eval import answer

        st = self.study
        a, b = st.pipe.stages.answer, st.pipe.data.benchmarks
        sets = {k: v for k, v in (("judge", b.judge), ("rouge", b.rouge)) if v}
        files: dict[str, dict[str, str]] = {}
        calls: dict[str, dict] = {}
        done: dict[tuple, str] = {}
        for kind, bench in sets.items():
            files[kind] = {}
            who = st.answerers()
            j = st.pipe.stages.judge
            if kind == "rouge" or (j and j.reference in (None, "teacher")):  # the reference row (the paper: GPT-4)
                who.append(("teacher", st.pipe.models.teacher, 1))
            for model_id, model, samples in who:
                samples = samples if kind == "judge" else 1
                key = (bench.questions, bench.limit, model_id, samples)
                out = st.p("answers", f"{kind}.{model_id}.jsonl")
                if key in done:
                    files[kind][model_id] = done[key]
                    continue
                r = answer.run(answer.AnswerSettings(
                    **{**settings(a), "samples": samples}, questions=st.questions(bench), output=out, model=model,
                    model_id=model_id, limit=bench.limit, **self.calls()))
                check_calls(f"{model_id}'s answers", r.calls, r.failed, errors_path(out))
                calls[f"{kind}.{model_id}"] = {**calls_dict(r.calls), "template": r.template, "written": r.written}
                files[kind][model_id] = done[key] = str(out)
        io.write_json(st.p("answers", "answers.json"), files)
        return {"files": files, "calls": calls}

    def rank(self) -> dict:
        from gpt4llm.eval import rank

        st = self.study
        n = st.pipe.stages.answer.samples
        student = f"student-{'en' if 'en' in st.pipe.languages else st.pipe.languages[0]}"
        src = st.results["answer"]["files"]["judge"][student]
        groups = {}
        for k in range(1, n + 1):
            out = st.p("answers", f"judge.{student}-R{k}.jsonl")
            info = rank.run(rank.RankSettings(**settings(st.pipe.stages.rank), reward_model=st.p("models", "reward"),
                                              input=src, output=out, group=k, model_id_suffix=f"R{k}"))
            groups[f"R{k}"] = {"file": str(out), **info}
        io.write_json(st.p("answers", "ranked.json"), groups)
        return {"groups": groups}

    def judge(self) -> dict:
        from gpt4llm.eval import judge, panel

        st = self.study
        j = st.pipe.stages.judge
        files = st.results["answer"]["files"]["judge"]
        ref = files["teacher"] if j.reference in (None, "teacher") else st.path(j.reference)
        answers = [f for mid, f in files.items() if mid != "teacher"]
        if st.pipe.stages.rank:
            answers += [g["file"] for g in st.results["rank"]["groups"].values()]
        questions = st.questions(st.pipe.data.benchmarks.judge)
        family = [*(j.family or []), *self.families()]  # the user's first: they are checked in order
        r = panel.run(judge.JudgeSettings(
            **{**settings(j), "reference": ref, "human_db": None, "family": family}, questions=questions,
            answers=answers, output=st.p("eval", "reviews.jsonl"), judge=st.pipe.models.judge, allow_missing=True,
            **self.calls()))
        check_calls("reviews", r.calls, r.call_failures, errors_path(r.output))
        out = {"summaries": r.summaries, "figures": [str(f) for f in r.figure], "calls": calls_dict(r.calls),
               "mode": j.mode, "panel": r.panel, "self_preference": r.self_preference,
               "judge_fingerprint": next(iter(r.summaries.values()), {}).get("judge_fingerprint")}
        if j.leaderboard:
            from gpt4llm.eval import leaderboard

            board = leaderboard.run(leaderboard.LeaderboardSettings(
                reviews=[str(r.output)], answers=[ref, *answers], output_dir=st.p("eval", "leaderboard"),
                seed=st.pipe.seed, null_model_threshold=j.null_model_threshold, family=family))
            out["leaderboard"] = {"rows": board.rows, "baseline": board.baseline, "notes": board.notes,
                                  "figures": [str(f) for f in board.files], "style": board.style,
                                  "reliability": board.reliability, "judge": board.judge}
        if j.human_db:
            from gpt4llm.eval import agreement

            a = agreement.run(agreement.AgreementSettings(  # a panel: its verdict, then each judge on its own
                reviews=[str(r.output), *(r.panel or {}).get("files", {}).values()], questions=questions,
                answers=[ref, *answers], human_db=st.path(str(j.human_db)), output=st.p("eval", "agreement.json")))
            out["agreement"] = a.report
        return out

    def families(self) -> list[str]:
        """PATTERN=FAMILY of the study's own models for the self-preference check: the students and the base
        are of the student base's family, the teacher (the reference) of the teacher's; a model outside the
        table is a family of its own name, so a judge that is the same checkpoint is still caught."""
        from gpt4llm.eval.families import family, name_of

        m = self.study.pipe.models
        out = []
        for pattern, model in (("student-*", m.student_base), ("base", m.student_base), ("teacher", m.teacher)):
            fam = family(model) or name_of(model)
            out += [f"{pattern}={fam}", f"{name_of(model)}={fam}"]
        return out

    def rouge(self) -> dict:
        from gpt4llm.eval import rouge
        from gpt4llm.eval.questions import load_questions

        st = self.study
        bench = st.pipe.data.benchmarks.rouge
        files = st.results["answer"]["files"]["rouge"]
        qs = load_questions(st.questions(bench))
        qs = qs[: bench.limit] if bench.limit else qs
        if all(q.reference for q in qs):
            refs, field, truth = st.p("eval", "rouge_truth.jsonl"), "reference", "the benchmark's ground truth"
            io.write_records(refs, [{"question_id": q.question_id, "reference": q.reference} for q in qs], "jsonl")
            preds = list(files.values())
            ref_model = "teacher" if "teacher" in files else None
        elif "teacher" in files:
            refs, field, truth = Path(files["teacher"]), "text", "the teacher's answers (the set has no ground truth)"
            preds = [f for mid, f in files.items() if mid != "teacher"]
            ref_model = None
        else:
            raise UserError(f"data.benchmarks.rouge: {bench.questions} has no ground truth; use judge.reference: teacher")
        r = rouge.run(rouge.RougeSettings(**settings(st.pipe.stages.rouge), predictions=preds, references=str(refs),
                                          output=st.p("eval", "rouge.json"), reference_model=ref_model,
                                          reference_field=field, allow_missing=True))
        return {"table": r["table"], "models": r["models"], "reference_model": r["reference_model"],
                "ground_truth": truth, "figures": [str(f) for f in r["figure"]]}

    def stats(self) -> dict:
        from gpt4llm import stats

        st = self.study
        s = st.pipe.stages.stats
        scores = None
        if st.pipe.stages.compare:
            per_source: dict[str, list] = {}
            for row in io.read_rows(str(st.p("data", "comparisons.jsonl"))):
                for x in row.data["responses_and_scores"]:
                    per_source.setdefault(x["source"], []).append(x["score"])
            if per_source:
                scores = st.p("stats", "scores.json")
                io.write_json(scores, per_source)
        r = stats.run(stats.StatsSettings(
            **{**settings(s), "compare": st.path(s.compare) if s.compare else None},
            data=str(st.p("data", "teacher.en.jsonl")), output_dir=st.p("stats"),
            scores=str(scores) if scores else None, names="teacher,compare"))
        return {"numbers": r.numbers, "figures": [str(f) for f in r.files if f.suffix in (".png", ".html")]}

    def publish(self) -> dict:
        from gpt4llm.pipeline.report import provenance
        from gpt4llm.publish.build import run as publish
        from gpt4llm.publish.settings import PublishSettings

        st = self.study
        # results.json is written after the last stage: the stages' results so far, as it will hold them
        results = {"name": st.pipe.name, "results": st.results, "provenance": provenance(st)}
        r = publish(PublishSettings(**settings(st.pipe.stages.publish), source=st.out, to=st.p("publish"),
                                    overwrite=True), results)
        return {"dir": str(r.out), "configs": r.configs, "models": [{"name": m["name"], "files": len(m["files"])}
                                                                   for m in r.models],
                "skipped": r.skipped, "pushed": r.pushed}

    # ------------------------------------------------------------------ running

    def fingerprint(self, st: Stage) -> str:
        blob = json.dumps({"inputs": st.inputs, "deps": [self.study.fingerprints.get(d) for d in st.deps]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def run(self) -> dict:
        study, console = self.study, _console()
        study.out.mkdir(parents=True, exist_ok=True)
        io.write_json(study.p("pipeline.json"), {"file": str(study.file), "pipeline": study.pipe.model_dump(mode="json")})
        stages = self.plan()
        started = time.perf_counter()
        for i, st in enumerate(stages, 1):
            fp = self.fingerprint(st)
            study.fingerprints[st.name] = fp
            marker = study.p("stages", f"{st.name}.json")
            prior = json.loads(marker.read_text()) if marker.is_file() else None
            if prior and prior.get("fingerprint") == fp and all(o.exists() for o in st.outputs):
                study.results[_key(st.name)] = _merge(study.results.get(_key(st.name)), st.name, prior["result"])
                study.timings[st.name] = {**prior["timing"], "skipped": True}
                console.print(f"[dim][{i}/{len(stages)}] {st.name}: done earlier, skipped[/dim]")
                continue
            console.print(f"[bold][{i}/{len(stages)}] {st.name}[/bold]: {st.what}")
            t0, when = time.perf_counter(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            try:
                result = self.fns[st.name]()
            except BudgetExceeded as e:
                raise BudgetExceeded(f"stage {st.name}: {e}; raise the cap in the pipeline file and run the same "
                                     "command again: paid calls are journaled") from None
            except PartialFailure as e:
                raise PartialFailure(f"stage {st.name}: {e}; run the same command again to retry them "
                                     f"(finished stages and calls are not repeated): gpt4llm run {study.file} "
                                     f"--output-dir {study.out}") from None
            except UserError as e:
                raise type(e)(f"stage {st.name}: {e}; fix it and run the same command again "
                              "(finished stages and calls are not repeated)") from None
            timing = {"started": when, "seconds": round(time.perf_counter() - t0, 1), "skipped": False}
            result = _jsonable(result)
            io.write_json(marker, {"fingerprint": fp, "result": result, "timing": timing})
            study.results[_key(st.name)] = _merge(study.results.get(_key(st.name)), st.name, result)
            study.timings[st.name] = timing
            console.print(f"      {st.name} finished in {timing['seconds']:.0f} s")
        from gpt4llm.pipeline import report

        t0 = time.perf_counter()
        study.timings["report"] = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                   "seconds": 0.0, "skipped": False}
        results = report.build(study, total_seconds=time.perf_counter() - started)
        study.timings["report"]["seconds"] = round(time.perf_counter() - t0, 1)
        return results


def _key(name: str) -> str:
    return name.split(".")[0]


def _merge(prev: dict | None, name: str, result: dict) -> dict:
    """Per-language stages (generate.en, sft.zh) are kept under their language."""
    if "." not in name:
        return result
    out = dict(prev or {})
    out[name.split(".", 1)[1]] = result
    return out


def run(cfg: RunSettings):
    pipe, _ = load(cfg.pipeline)
    study = Study.of(pipe, cfg.pipeline, cfg.output_dir)
    if cfg.dry_run:
        from gpt4llm.pipeline.plan import dry_run as plan

        return plan(study)
    return Runner(study, cfg.quiet).run()
