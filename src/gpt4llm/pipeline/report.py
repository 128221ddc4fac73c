"""The study's report: ``report.html`` (one self-contained file, images embedded, every model text
escaped by Jinja2's autoescape) and ``results.json`` (the same numbers, for notebooks and CI)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import platform
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING

from gpt4llm import io, plots

if TYPE_CHECKING:
    from gpt4llm.pipeline.study import Study

PACKAGES = ("gpt4llm", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "openai", "rouge-score",
            "spacy", "matplotlib", "plotly")
SECTIONS = ("plan", "stages", "data", "cleaning", "statistics", "comparison", "training", "iterate", "judge", "rouge",
            "ranking", "provenance")


def _versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    out["python"] = platform.python_version()
    return out


def _prompt_hashes() -> dict[str, str]:
    """sha256 of every prompt the study sends, so two runs can be seen to use the same ones."""
    from gpt4llm.templates import TEMPLATES

    out = {}
    for f in sorted(resources.files("gpt4llm.prompts").iterdir(), key=lambda p: p.name):
        if f.name.endswith((".txt", ".jsonl")):
            out[f"prompts/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    for name, t in TEMPLATES.items():
        out[f"template:{name}"] = hashlib.sha256(repr(t).encode()).hexdigest()[:16]
    return out


def _calls(result: dict | None) -> list[dict]:
    """Every calls dict in a stage's result (nested per source or per model)."""
    if not isinstance(result, dict):
        return []
    if "requested" in result and "ok" in result:
        return [result]
    return [c for v in result.values() for c in _calls(v)]


def _stage_usage(results: dict) -> dict[str, dict]:
    out = {}
    for stage, r in results.items():
        calls = _calls(r)
        if calls:
            cost = [c.get("cost_usd") for c in calls]
            out[stage] = {"calls": sum(c["ok"] for c in calls), "made": sum(c["called"] for c in calls),
                          "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
                          "completion_tokens": sum(c["completion_tokens"] for c in calls),
                          "cost_usd": None if all(x is None for x in cost) else round(sum(x or 0 for x in cost), 6)}
    return out


def _img(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _png(files: list[str] | None, contains: str = "") -> str | None:
    return next((_img(f) for f in files or [] if f.endswith(".png") and contains in Path(f).name), None)


def provenance(study: "Study") -> dict:
    pipe = study.pipe
    s = pipe.stages
    decoding = {"generate": s.generate.model_dump(exclude={"languages", "max_usd"})}
    if s.compare:
        decoding["compare"] = {"judge": {"temperature": s.compare.temperature, "max_tokens": s.compare.max_tokens},
                               "sources": [x.model_dump() for x in s.compare.sources]}
    if s.answer:
        decoding["answer"] = {"temperature": s.answer.temperature, "top_p": s.answer.top_p,
                              "max_tokens": s.answer.max_tokens, "samples": s.answer.samples}
    if s.judge:
        from gpt4llm.eval.judge import decoding as judge_decoding

        t, n = judge_decoding(s.judge.mode, s.judge.temperature, s.judge.max_tokens)
        decoding["judge"] = {"mode": s.judge.mode, "temperature": t, "max_tokens": n, "orders": s.judge.orders}
    b = pipe.backend
    return {
        "models": pipe.models.model_dump(),
        "endpoint": {"base_url": b.base_url or "(the backend's default: OPENAI_BASE_URL or api.openai.com)",
                     "api_version": b.api_version, "batch_api": b.batch_api, "concurrency": b.concurrency,
                     "rpm": b.rpm, "tpm": b.tpm},
        "prompt_hashes": _prompt_hashes(), "decoding": decoding, "usage_per_stage": _stage_usage(study.results),
        "seed": pipe.seed, "versions": _versions(), "pipeline_file": str(study.file),
    }


def build(study: "Study", total_seconds: float) -> dict:
    from jinja2 import Environment, select_autoescape

    out = study.out
    r = study.results
    figs_dir = out / "figures"
    histories = {}
    for lang, x in (r.get("sft") or {}).items():
        histories[f"sft {lang}"] = x.get("log_history") or []
    if r.get("rm"):
        histories["reward model"] = r["rm"].get("log_history") or []
    curves = plots.training_curves(histories, figs_dir / "training_curves") if histories else []
    dpo_curves = plots.dpo_curves(r["dpo"].get("log_history") or [], figs_dir / "dpo_curves") if r.get("dpo") else []
    paper = plots.paper_numbers()
    paper_figs = plots.paper_figures(figs_dir / "paper") if study.pipe.stages.report.paper_numbers else {}
    usage = _stage_usage(r)
    plan = [{"stage": st.name, "what": st.what, "deps": st.deps,
             **study.timings.get(st.name, {})} for st in study.stages]
    results = {
        "name": study.pipe.name, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(out), "seconds": round(total_seconds, 1), "plan": plan,
        "results": {k: _strip(v) for k, v in r.items()}, "provenance": provenance(study),
        "paper": paper if study.pipe.stages.report.paper_numbers else None,
        "sections": list(SECTIONS),
    }
    io.write_json(out / "results.json", results)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["img"] = _img
    env.filters["png"] = _png
    env.filters["num"] = lambda x: "" if x is None else f"{round(float(x), 3):,g}"
    tmpl = env.from_string(resources.files("gpt4llm.pipeline").joinpath("templates/report.html.j2").read_text(encoding="utf-8"))
    html = tmpl.render(res=results, r=r, usage=usage, curves=_img(curves[0]) if curves else None,
                       dpo_curves=_img(dpo_curves[0]) if dpo_curves else None, sft_vs_dpo=_sft_vs_dpo(r),
                       paper_figs={k: _img(v[0]) for k, v in paper_figs.items()}, paper=paper,
                       pipe=study.pipe, sections=SECTIONS)
    io.write_text(out / "report.html", html)
    return results


def _sft_vs_dpo(r: dict) -> list[dict]:
    """SFT against SFT + DPO on the same benchmarks: the judge's ratio and ROUGE-L (all lengths)."""
    if not r.get("dpo"):
        return []
    rows = []
    for name in ("student-en", "student-en-dpo"):
        j = ((r.get("judge") or {}).get("summaries") or {}).get(name) or {}
        rouge = next((x["rougeL"] for x in (r.get("rouge") or {}).get("table") or []
                      if x["Model"] == name and x["Length"] == "ALL"), None)
        rows.append({"model": name, "judge": j, "rougeL": rouge})
    return rows


def _strip(v):
    """results.json keeps numbers (NaN as null); the long training logs stay in gpt4llm_train.json."""
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, list):
        return [_strip(x) for x in v]
    if isinstance(v, dict):
        return {k: (_strip(x) if k != "log_history" else f"{len(x)} entries (see gpt4llm_train.json)")
                for k, x in v.items()}
    return v
