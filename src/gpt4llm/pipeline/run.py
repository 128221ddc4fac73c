"""``gpt4llm run PIPELINE.yaml``: the study in one command.

Stages run in the paper's order (generate, translate, compare, sft, rm, answer, rank, judge, rouge,
stats, report), each through the same code as its own command. Every model call goes through one
journal (``<output-dir>/journal.sqlite``), so no call is paid twice, across stages and across runs.
A stage that finished writes ``stages/<name>.json`` with a fingerprint of its settings, models and
upstream stages; a re-run skips it while the fingerprint matches and its outputs exist. A stage cut
short (kill -9, budget, a failure) is resumed by its own mechanism: the journal for model calls,
the last checkpoint for training (``resume``), so a killed study continues where it stopped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from gpt4llm import io
from gpt4llm.errors import BudgetExceeded, PartialFailure, UserError
from gpt4llm.pipeline.config import Bench, Pipeline, load, resolve_path

console = Console(stderr=True, highlight=False)
ORDER = ["generate", "translate", "compare", "sft", "rm", "answer", "rank", "judge", "rouge", "stats", "report"]


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


@dataclass
class Stage:
    name: str
    what: str
    inputs: dict
    outputs: list[Path]
    fn: Callable[[], dict]
    deps: list[str] = field(default_factory=list)


class Study:
    def __init__(self, pipe: Pipeline, file: Path, output_dir: Path | None = None, quiet: bool = False):
        self.pipe, self.file, self.quiet = pipe, Path(file), quiet
        base = output_dir or (resolve_path(pipe.output_dir, self.file) if pipe.output_dir else Path("runs") / pipe.name)
        self.out = Path(os.path.normpath(base))
        self.journal = self.out / "journal.sqlite"
        self.results: dict[str, dict] = {}
        self.fingerprints: dict[str, str] = {}
        self.timings: dict[str, dict] = {}

    # ------------------------------------------------------------------ paths and small helpers

    def p(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def path(self, value: str) -> str:
        """A data value of the pipeline file: a named set stays as it is, a path becomes absolute."""
        from gpt4llm.eval.benchmarks import BENCHMARKS

        if value in ("seeds", *BENCHMARKS) or value.startswith("hf:"):
            return value
        return str(resolve_path(value, self.file).resolve())

    def options(self, model: str, bulk: bool = False) -> dict:
        """Backend options for a model; ``bulk`` stages (generate, translate, compare) of an openai:
        model use the Batch API when backend.batch_api is set."""
        opts = self.pipe.backend.options()
        if bulk and self.pipe.backend.batch_api and model.startswith("openai:"):
            opts.update(batch_api=True, fallback=self.pipe.backend.batch_fallback, quiet=self.quiet)
        return opts

    def prices(self, model: str):
        from gpt4llm.backends import parse_model
        from gpt4llm.backends.pricing import Prices

        spec = parse_model(model)
        b = self.pipe.backend
        return Prices.for_model(spec.backend, spec.name, b.price_in, b.price_out, None)

    @staticmethod
    def params(temperature: float, max_tokens: int, top_p: float = 1.0, seed: int | None = None):
        from gpt4llm.backends.base import GenParams

        return GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)

    def questions(self, bench: Bench) -> str:
        from gpt4llm.generate import seeds_path

        return str(seeds_path()) if bench.questions == "seeds" else self.path(bench.questions)

    # ------------------------------------------------------------------ the stages

    def plan(self) -> list[Stage]:
        pipe, s, m = self.pipe, self.pipe.stages, self.pipe.models
        stages: list[Stage] = []
        langs = pipe.languages
        data = self.p("data")

        def teacher_file(lang: str) -> Path:
            return data / f"teacher.{lang}.jsonl"

        for lang in langs:
            if lang != "en":
                stages.append(Stage(f"translate.{lang}", f"translate the instructions into {lang} with {pipe.translator}",
                                    {"model": pipe.translator, "instructions": pipe.data.instructions,
                                     "limit": pipe.data.limit, "to": lang},
                                    [data / f"instructions.{lang}.jsonl"], self._translate(lang)))
            stages.append(Stage(f"generate.{lang}", f"the teacher {m.teacher} answers the instructions ({lang})",
                                {"model": m.teacher, "settings": s.generate.model_dump(exclude={"languages"}),
                                 "instructions": pipe.data.instructions, "limit": pipe.data.limit, "lang": lang,
                                 "backend": pipe.backend.model_dump()},
                                [teacher_file(lang)], self._generate(lang),
                                [f"translate.{lang}"] if lang != "en" else []))
        if s.compare:
            stages.append(Stage("compare", f"{m.judge} scores {len(s.compare.sources)} sources' responses 1-10",
                                {"judge": m.judge, "settings": s.compare.model_dump()},
                                [data / "comparisons.jsonl"], self._compare, ["generate.en"]))
        if s.sft:
            for lang in langs:
                stages.append(Stage(f"sft.{lang}", f"fine-tune {m.student_base} on the teacher's {lang} answers",
                                    {"base": m.student_base, "settings": s.sft.model_dump(), "seed": pipe.seed},
                                    [self.p("models", f"student-{lang}", "gpt4llm_train.json")], self._sft(lang),
                                    [f"generate.{lang}"]))
        if s.rm:
            stages.append(Stage("rm", f"train a reward model on {m.reward_base} from the comparisons",
                                {"base": m.reward_base, "settings": s.rm.model_dump(), "seed": pipe.seed},
                                [self.p("models", "reward", "gpt4llm_train.json")], self._rm, ["compare"]))
        if s.answer:
            stages.append(Stage("answer", "the students, the base and the reference answer the benchmarks",
                                {"settings": s.answer.model_dump(), "benchmarks": pipe.data.benchmarks.model_dump(),
                                 "teacher": m.teacher, "reference": s.judge.reference if s.judge else None},
                                [self.p("answers", "answers.json")], self._answer, [f"sft.{x}" for x in langs]))
        if s.rank:
            stages.append(Stage("rank", "the reward model ranks the student's samples (best-of-N, groups 1..N)",
                                {"settings": s.rank.model_dump()}, [self.p("answers", "ranked.json")], self._rank,
                                ["rm", "answer"]))
        if s.judge:
            stages.append(Stage("judge", f"{m.judge} reviews each model's answers against the reference (Vicuna's reviewer)",
                                {"judge": m.judge, "settings": s.judge.model_dump()},
                                [self.p("eval", "reviews.jsonl.summary.json")], self._judge,
                                ["answer"] + (["rank"] if s.rank else [])))
        if s.rouge:
            stages.append(Stage("rouge", "ROUGE of the answers against the ground truth, by its length",
                                {}, [self.p("eval", "rouge.json")], self._rouge, ["answer"]))
        if s.stats:
            stages.append(Stage("stats", "verb-noun pairs, output lengths and score distributions",
                                {"settings": s.stats.model_dump()}, [self.p("stats", "stats.json")], self._stats,
                                ["generate.en"] + (["compare"] if s.compare else [])))
        return stages

    def _generate(self, lang: str):
        def go() -> dict:
            from gpt4llm import generate

            g = self.pipe.stages.generate
            src = (str(self.p("data", f"instructions.{lang}.jsonl")) if lang != "en"
                   else self.path(self.pipe.data.instructions))
            opts = self.options(self.pipe.models.teacher, bulk=True)
            r = generate.run(generate.GenerateConfig(
                output=self.p("data", f"teacher.{lang}.jsonl"), input=src, teacher=self.pipe.models.teacher,
                limit=self.pipe.data.limit, params=self.params(g.temperature, g.max_tokens, g.top_p),
                language=None if lang == "en" else lang, journal=self.journal, backend_options=opts,
                max_usd=g.max_usd, prices=self.prices(self.pipe.models.teacher), quiet=self.quiet))
            check_calls("the teacher's answers", r.calls, r.failed, r.errors_file)
            return {"written": r.written, "truncated": r.truncated, "calls": calls_dict(r.calls)}
        return go

    def _translate(self, lang: str):
        def go() -> dict:
            from gpt4llm import translate

            r = translate.run(translate.TranslateConfig(
                output=self.p("data", f"instructions.{lang}.jsonl"), input=self.path(self.pipe.data.instructions),
                to=lang, translator=self.pipe.translator, limit=self.pipe.data.limit, journal=self.journal,
                backend_options=self.options(self.pipe.translator, bulk=True), quiet=self.quiet))
            check_calls("translation", r.calls, r.failed, f"{r.output}.errors.jsonl")
            return {"written": r.written, "calls": calls_dict(r.calls)}
        return go

    def _compare(self) -> dict:
        from gpt4llm import compare, generate

        c = self.pipe.stages.compare
        teacher = self.p("data", "teacher.en.jsonl")
        files, calls = [], {}
        for src in c.sources:
            if src.model is None:
                files.append(str(teacher))
                continue
            out = self.p("data", f"source.{src.name}.jsonl")
            r = generate.run(generate.GenerateConfig(
                output=out, input=self.path(self.pipe.data.instructions), teacher=src.model,
                limit=self.pipe.data.limit, params=self.params(src.temperature, src.max_tokens, src.top_p),
                journal=self.journal, backend_options=self.options(src.model, bulk=True), prices=self.prices(src.model),
                quiet=self.quiet))
            check_calls(f"source {src.name}", r.calls, r.failed, r.errors_file)
            calls[src.name] = calls_dict(r.calls)
            files.append(str(out))
        r = compare.run(compare.CompareConfig(
            instructions=str(teacher), responses=files, output=self.p("data", "comparisons.jsonl"),
            judge=self.pipe.models.judge, source_names=[x.name for x in c.sources], max_reasks=c.max_reasks,
            params=self.params(c.temperature, c.max_tokens), journal=self.journal,
            backend_options=self.options(self.pipe.models.judge, bulk=True), max_usd=c.max_usd,
            prices=self.prices(self.pipe.models.judge), quiet=self.quiet, allow_missing=True,
            score_mode=c.score_mode))
        check_calls("scoring", r.calls, r.call_failures, f"{r.output}.errors.jsonl")
        calls["judge"] = calls_dict(r.calls)
        return {"written": r.written, "report": r.report, "figures": [str(f) for f in r.figure],
                "call_failures": r.call_failures, "calls": calls}

    def _training_dir(self, d: Path, fingerprint: str) -> dict:
        """resume (the same run, cut short) or overwrite (a run of other settings) for a training dir."""
        meta = d / "gpt4llm_train.json"
        if not meta.is_file():
            return {"resume": True}
        same = json.loads(meta.read_text()).get("fingerprint") == fingerprint
        return {"resume": True} if same else {"overwrite": True}

    def _sft(self, lang: str):
        def go() -> dict:
            from gpt4llm.train import sft

            t = self.pipe.stages.sft
            cfg = sft.SFTConfig(
                data=str(self.p("data", f"teacher.{lang}.jsonl")), output_dir=self.p("models", f"student-{lang}"),
                model=self.pipe.models.student_base, template=t.template, epochs=t.epochs,
                learning_rate=t.learning_rate, scheduler=t.scheduler, warmup_ratio=t.warmup_ratio,
                weight_decay=t.weight_decay, batch_size=t.batch_size, per_device_batch=t.per_device_batch,
                max_length=t.max_length, overlong=t.overlong, packing=t.packing,
                gradient_checkpointing=t.gradient_checkpointing, precision=t.precision, lora=t.lora,
                lora_r=t.lora_r, merge=t.merge or t.lora, save_steps=t.save_steps, max_steps=t.max_steps,
                limit=t.limit, deepspeed=self.path(t.deepspeed) if t.deepspeed else None, seed=self.pipe.seed,
                logging_steps=t.logging_steps, quiet=self.quiet)
            for k, v in self._training_dir(cfg.output_dir, cfg.fingerprint()).items():
                setattr(cfg, k, v)
            r = sft.run(cfg)
            return {"model": str(cfg.output_dir), "data_stats": r.stats.as_dict(), "effective_batch": r.effective_batch,
                    "steps": r.steps, "train_loss": r.train_loss, "train_seconds": round(r.seconds, 1),
                    "first_example": r.first_example, "log_history": r.log_history}
        return go

    def _rm(self) -> dict:
        from gpt4llm.train import reward

        t = self.pipe.stages.rm
        base = self.pipe.models.reward_base
        if t.layers:
            base = f"local:{self._truncated_base(base, t.layers)}"
        cfg = reward.RMConfig(
            data=str(self.p("data", "comparisons.jsonl")), output_dir=self.p("models", "reward"), model=base,
            epochs=t.epochs, learning_rate=t.learning_rate, batch_size=t.batch_size,
            per_device_batch=t.per_device_batch, max_length=t.max_length, eval_split=t.eval_split, lora=t.lora,
            precision=t.precision, save_steps=t.save_steps, max_steps=t.max_steps,
            deepspeed=self.path(t.deepspeed) if t.deepspeed else None, seed=self.pipe.seed,
            logging_steps=t.logging_steps, quiet=self.quiet)
        for k, v in self._training_dir(cfg.output_dir, cfg.fingerprint()).items():
            setattr(cfg, k, v)
        r = reward.run(cfg)
        meta = json.loads((cfg.output_dir / "gpt4llm_train.json").read_text())
        return {"model": str(cfg.output_dir), "base": base, "groups": r.groups, "pairs": r.pairs, "ties": r.ties,
                "truncated": r.truncated, "metrics": r.metrics, "steps": r.steps, "train_seconds": round(r.seconds, 1),
                "effective_batch": r.effective_batch, "log_history": meta.get("log_history", [])}

    def _truncated_base(self, model: str, layers: int) -> Path:
        """The first ``layers`` decoder layers of ``model`` (a tiny reward model for smoke runs)."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from gpt4llm.train.sft import model_source

        out = self.p("models", f"reward-base-{layers}-layers")
        if (out / "config.json").is_file():
            return out
        src, kwargs = model_source(model)
        config = AutoConfig.from_pretrained(src, **kwargs)
        if getattr(config, "num_hidden_layers", None) is None:
            raise UserError(f"stages.rm.layers: {model} has no num_hidden_layers to cut")
        config.num_hidden_layers = min(layers, config.num_hidden_layers)
        for key in ("layer_types",):  # per-layer lists must match the new depth
            if isinstance(getattr(config, key, None), list):
                setattr(config, key, getattr(config, key)[: config.num_hidden_layers])
        m = AutoModelForCausalLM.from_pretrained(src, config=config, dtype=torch.float32, **kwargs)
        tmp = out.with_name(out.name + ".tmp")
        m.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src, **kwargs).save_pretrained(tmp)
        tmp.rename(out)
        return out

    def _answerers(self) -> list[tuple[str, str, int]]:
        """(model_id, model, samples) of every model that answers the benchmarks."""
        a, langs = self.pipe.stages.answer, self.pipe.languages
        out = [(f"student-{lang}", f"local:{self.p('models', f'student-{lang}').resolve()}", a.samples) for lang in langs]
        if a.base_model:
            out.append(("base", self.pipe.models.student_base, 1))
        return out

    def _answer(self) -> dict:
        from gpt4llm.eval import answer

        a, b = self.pipe.stages.answer, self.pipe.data.benchmarks
        sets = {k: v for k, v in (("judge", b.judge), ("rouge", b.rouge)) if v}
        files: dict[str, dict[str, str]] = {}
        calls: dict[str, dict] = {}
        done: dict[tuple, str] = {}
        for kind, bench in sets.items():
            files[kind] = {}
            who = self._answerers()
            j = self.pipe.stages.judge
            if kind == "rouge" or (j and j.reference == "teacher"):  # the reference row (the paper: GPT-4)
                who.append(("teacher", self.pipe.models.teacher, 1))
            for model_id, model, samples in who:
                samples = samples if kind == "judge" else 1
                key = (bench.questions, bench.limit, model_id, samples)
                out = self.p("answers", f"{kind}.{model_id}.jsonl")
                if key in done:
                    files[kind][model_id] = done[key]
                    continue
                r = answer.run(answer.AnswerConfig(
                    questions=self.questions(bench), output=out, model=model, model_id=model_id, samples=samples,
                    params=self.params(a.temperature, a.max_tokens, a.top_p, seed=None), limit=bench.limit,
                    journal=self.journal, backend_options=self.options(model), quiet=self.quiet))
                check_calls(f"{model_id}'s answers", r.calls, r.failed, f"{out}.errors.jsonl")
                calls[f"{kind}.{model_id}"] = {**calls_dict(r.calls), "template": r.template, "written": r.written}
                files[kind][model_id] = done[key] = str(out)
        io.write_json(self.p("answers", "answers.json"), files)
        return {"files": files, "calls": calls}

    def _rank(self) -> dict:
        from gpt4llm.eval import rank

        n = self.pipe.stages.answer.samples
        student = f"student-{'en' if 'en' in self.pipe.languages else self.pipe.languages[0]}"
        src = self.results["answer"]["files"]["judge"][student]
        groups = {}
        for k in range(1, n + 1):
            out = self.p("answers", f"judge.{student}-R{k}.jsonl")
            info = rank.run(rank.RankConfig(reward_model=self.p("models", "reward"), input=src, output=out,
                                            group=k, model_id_suffix=f"R{k}",
                                            batch_size=self.pipe.stages.rank.batch_size,
                                            max_length=self.pipe.stages.rank.max_length))
            groups[f"R{k}"] = {"file": str(out), **info}
        io.write_json(self.p("answers", "ranked.json"), groups)
        return {"groups": groups}

    def _judge(self) -> dict:
        from gpt4llm.eval import judge

        j = self.pipe.stages.judge
        files = self.results["answer"]["files"]["judge"]
        ref = files["teacher"] if j.reference == "teacher" else self.path(j.reference)
        answers = [f for mid, f in files.items() if mid != "teacher"]
        if self.pipe.stages.rank:
            answers += [g["file"] for g in self.results["rank"]["groups"].values()]
        r = judge.run(judge.JudgeConfig(
            questions=self.questions(self.pipe.data.benchmarks.judge), answers=answers, reference=ref,
            output=self.p("eval", "reviews.jsonl"), judge=self.pipe.models.judge, orders=j.orders,
            max_reasks=j.max_reasks, params=self.params(j.temperature, j.max_tokens), journal=self.journal,
            backend_options=self.options(self.pipe.models.judge), max_usd=j.max_usd, quiet=self.quiet,
            allow_missing=True, score_mode=j.score_mode, prices=self.prices(self.pipe.models.judge)))
        check_calls("reviews", r.calls, r.call_failures, f"{r.output}.errors.jsonl")
        return {"summaries": r.summaries, "figures": [str(f) for f in r.figure], "calls": calls_dict(r.calls)}

    def _rouge(self) -> dict:
        from gpt4llm.eval import rouge
        from gpt4llm.eval.questions import load_questions

        bench = self.pipe.data.benchmarks.rouge
        files = self.results["answer"]["files"]["rouge"]
        qs = load_questions(self.questions(bench))[: bench.limit] if bench.limit else load_questions(self.questions(bench))
        if all(q.reference for q in qs):
            refs, field, truth = self.p("eval", "rouge_truth.jsonl"), "reference", "the benchmark's ground truth"
            io.write_records(refs, [{"question_id": q.question_id, "reference": q.reference} for q in qs], "jsonl")
            preds = list(files.values())
            ref_model = "teacher" if "teacher" in files else None
        elif "teacher" in files:
            refs, field, truth = Path(files["teacher"]), "text", "the teacher's answers (the set has no ground truth)"
            preds = [f for mid, f in files.items() if mid != "teacher"]
            ref_model = None
        else:
            raise UserError(f"data.benchmarks.rouge: {bench.questions} has no ground truth; use judge.reference: teacher")
        r = rouge.run(rouge.RougeConfig(predictions=preds, references=str(refs), output=self.p("eval", "rouge.json"),
                                        reference_model=ref_model, reference_field=field, allow_missing=True))
        return {"table": r["table"], "models": r["models"], "reference_model": r["reference_model"],
                "ground_truth": truth, "figures": [str(f) for f in r["figure"]]}

    def _stats(self) -> dict:
        from gpt4llm import stats

        st = self.pipe.stages.stats
        scores = None
        if self.pipe.stages.compare:
            per_source: dict[str, list] = {}
            for row in io.read_rows(str(self.p("data", "comparisons.jsonl"))):
                for x in row.data["responses_and_scores"]:
                    per_source.setdefault(x["source"], []).append(x["score"])
            if per_source:
                scores = self.p("stats", "scores.json")
                io.write_json(scores, per_source)
        r = stats.run(stats.StatsConfig(
            data=str(self.p("data", "teacher.en.jsonl")), output_dir=self.p("stats"),
            compare=self.path(st.compare) if st.compare else None, scores=str(scores) if scores else None,
            field=st.field, spacy_model=st.spacy_model, n_process=st.n_process,
            names=("teacher", "compare")))
        return {"numbers": r.numbers, "figures": [str(f) for f in r.files if f.suffix in (".png", ".html")]}

    # ------------------------------------------------------------------ running

    def fingerprint(self, st: Stage) -> str:
        blob = json.dumps({"inputs": st.inputs, "deps": [self.fingerprints.get(d) for d in st.deps]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        io.write_json(self.p("pipeline.json"), {"file": str(self.file), "pipeline": self.pipe.model_dump()})
        stages = self.plan()
        started = time.perf_counter()
        for i, st in enumerate(stages, 1):
            fp = self.fingerprint(st)
            self.fingerprints[st.name] = fp
            marker = self.p("stages", f"{st.name}.json")
            prior = json.loads(marker.read_text()) if marker.is_file() else None
            if prior and prior.get("fingerprint") == fp and all(o.exists() for o in st.outputs):
                self.results[_key(st.name)] = _merge(self.results.get(_key(st.name)), st.name, prior["result"])
                self.timings[st.name] = {**prior["timing"], "skipped": True}
                console.print(f"[dim][{i}/{len(stages)}] {st.name}: done earlier, skipped[/dim]")
                continue
            console.print(f"[bold][{i}/{len(stages)}] {st.name}[/bold]: {st.what}")
            t0, when = time.perf_counter(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            try:
                result = st.fn()
            except BudgetExceeded as e:
                raise BudgetExceeded(f"stage {st.name}: {e}; raise the cap in the pipeline file and run the same "
                                     "command again: paid calls are journaled") from None
            except PartialFailure as e:
                raise PartialFailure(f"stage {st.name}: {e}; run the same command again to retry them "
                                     f"(finished stages and calls are not repeated): gpt4llm run {self.file} "
                                     f"--output-dir {self.out}") from None
            except UserError as e:
                raise UserError(f"stage {st.name}: {e}; fix it and run the same command again "
                                "(finished stages and calls are not repeated)") from None
            timing = {"started": when, "seconds": round(time.perf_counter() - t0, 1), "skipped": False}
            result = _jsonable(result)
            io.write_json(marker, {"fingerprint": fp, "result": result, "timing": timing})
            self.results[_key(st.name)] = _merge(self.results.get(_key(st.name)), st.name, result)
            self.timings[st.name] = timing
            console.print(f"      {st.name} finished in {timing['seconds']:.0f} s")
        from gpt4llm.pipeline import report

        t0 = time.perf_counter()
        self.timings["report"] = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                  "seconds": 0.0, "skipped": False}
        results = report.build(self, stages, total_seconds=time.perf_counter() - started)
        self.timings["report"]["seconds"] = round(time.perf_counter() - t0, 1)
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


def run(file: str | Path, output_dir: Path | None = None, dry_run: bool = False, quiet: bool = False):
    pipe, _ = load(file)
    study = Study(pipe, Path(file), output_dir, quiet)
    if dry_run:
        from gpt4llm.pipeline.plan import dry_run as plan

        return plan(study)
    return study.run()
