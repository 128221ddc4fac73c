"""What ``publish`` does, top to bottom: find what SOURCE holds, read and check all of it, write the
repo layout into a temporary directory, rename it onto --to, then upload if asked."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from gpt4llm.errors import UserError
from gpt4llm.publish import cards, data, models, provenance
from gpt4llm.publish.settings import PublishResult, PublishSettings


# ---------------------------------------------------------------- what SOURCE holds


def _clean_summary(path: Path) -> dict | None:
    """What ``gpt4llm clean`` says it did to make this file: ``<file>.summary.json`` beside it
    (records, kept, removed by reason, contamination per benchmark, near-duplicate settings)."""
    summary = provenance.read_json(path.with_name(path.name + ".summary.json"))
    if not (isinstance(summary, dict) and "by_reason" in summary and "kept" in summary):
        return None
    settings = summary.get("settings") or {}
    return {"file": path.name + ".summary.json", "records": summary.get("records"), "kept": summary["kept"],
            "removed": summary.get("removed"), "by_reason": {k: v for k, v in summary["by_reason"].items() if v},
            "contamination": {name: {k: b.get(k) for k in ("prompts", "records", "prompts_matched")}
                              for name, b in (summary.get("contamination") or {}).items()},
            "near": {k: settings.get(k) for k in ("near_threshold", "near_ngram", "num_perm") if k in settings}
            if settings.get("near") else None}


def _cleaned(raw: Path) -> Path | None:
    """The file ``gpt4llm clean`` made from ``raw`` beside it (its summary lists ``raw`` as an input)."""
    for f in sorted(raw.parent.glob("*.summary.json")):
        summary = provenance.read_json(f)
        if isinstance(summary, dict) and "by_reason" in summary and \
                any(Path(str(i)).name == raw.name for i in summary.get("inputs") or []):
            out = raw.parent / f.name.removesuffix(".summary.json")
            if out.is_file() and out != raw:
                return out
    return None


def _journal_for(cfg: PublishSettings, path: Path, study_dir: Path | None) -> Path | None:
    from gpt4llm.stage import journal_path

    for cand in (cfg.journal, journal_path(path), study_dir / "journal.sqlite" if study_dir else None):
        if cand is not None and Path(cand).is_file():
            return Path(cand)
    return None


def _config(cfg: PublishSettings, table: data.Table, name: str, shown: str, study_dir: Path | None,
            recorded: dict | None) -> dict:
    """A config's facts for the card (everything but its files)."""
    kind = table.kind.name
    c = {"name": name, "rows": len(table.rows), "what": table.kind.what, "source": shown, "kind": kind,
         "languages": cfg.language or cards.languages(table.rows, kind)}
    if kind == "alpaca":
        c["answers"] = provenance.answers(table.rows)
        journal = _journal_for(cfg, table.source, study_dir)
        c["calls"] = provenance.journal_calls(table.rows, journal) if journal else None
        translated = any(lang != "en" for lang in c["languages"]) and study_dir is not None
        c["prompts"] = provenance.template_hashes("alpaca", recorded, translated)
        c["clean"] = _clean_summary(table.source)
    elif kind == "comparison":
        c["comparisons"] = provenance.comparisons(table.rows)
        c["prompts"] = provenance.template_hashes("comparison", recorded)
    return c


def _study_datasets(study_dir: Path, pipeline: dict | None) -> list[tuple[str, Path]]:
    """(config name, file) of every dataset a study made: the teacher's answers per language, the
    comparisons. English first: it is the default config."""
    langs = ((pipeline or {}).get("pipeline") or {}).get("stages", {}).get("generate", {}).get("languages")
    if not langs:
        langs = sorted(p.name.split(".")[1] for p in (study_dir / "data").glob("teacher.*.jsonl"))
    langs = sorted(langs, key=lambda x: (x != "en", x))
    teacher = [study_dir / "data" / f"teacher.{lang}.jsonl" for lang in langs]
    # The cleaned answers, when the study cleaned them: what its students were trained on
    found = [(f"alpaca-{lang}", _cleaned(t) or t) for lang, t in zip(langs, teacher)]
    found.append(("comparison", study_dir / "data" / "comparisons.jsonl"))
    return [(n, p) for n, p in found if p.is_file()]


def _results_of(study_dir: Path) -> dict | None:
    return provenance.read_json(study_dir / "results.json")


# ---------------------------------------------------------------- writing


def _check_out(cfg: PublishSettings) -> None:
    to, src = cfg.to.resolve(), cfg.source.resolve()
    if to == src or to in src.parents:
        raise UserError(f"--to {cfg.to}: would replace the source {cfg.source}; choose another directory")
    if to.exists() and (not to.is_dir() or any(to.iterdir())) and not cfg.overwrite:
        raise UserError(f"--to {cfg.to}: already exists and is not empty; choose a new directory or pass "
                        "--overwrite to replace it")
    if cfg.push_to_hub:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(cfg.push_to_hub)
            if "/" not in cfg.push_to_hub:
                raise ValueError("expected user/name or org/name")
        except ValueError as e:
            raise UserError(f"--push-to-hub {cfg.push_to_hub}: not a Hub repo id ({str(e).splitlines()[0]})") from None


def _write_configs(cfg: PublishSettings, tmp: Path, tables: list[tuple[dict, data.Table]]) -> None:
    single = len(tables) == 1
    for i, (c, table) in enumerate(tables):
        files, arrow = data.write_shards(table, tmp, c["name"], single, cfg.max_shard_mb * 1e6)
        c.update(files=files, pattern=f"{files[0].split('/')[0]}/train-*", columns=[n for n, _ in table.columns],
                 features=data.features_yaml(arrow), num_bytes=arrow.nbytes, default=i == 0)


def _model_card(cfg: PublishSettings, ck: models.Checkpoint, results: dict | None, data_text: str,
                language: list[str], base_repo: str | None, dataset_repo: str | None, repo: str,
                pipeline: dict | None = None):
    benchmarks = (((pipeline or {}).get("pipeline") or {}).get("data") or {}).get("benchmarks")
    template = (provenance.read_json(ck.path / "gpt4llm_template.json") or {}).get("name")
    return cards.model_card(
        name=ck.name, what=ck.what, kind=ck.kind, base=ck.base_shown, base_repo=base_repo or cards.hub_id(ck.base), data=data_text,
        dataset_repo=dataset_repo, license=cfg.license, language=language, recipe=models.recipe(ck),
        training=models.training(ck), held_out=models.held_out(ck), evaluation=models.evaluation(ck.name, results, benchmarks),
        adapter=ck.adapter, repo=repo, template=template)


def _replace(tmp: Path, to: Path) -> None:
    """Rename the finished directory onto --to; an old --to (--overwrite) goes only after."""
    old = None
    if to.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{to.name}.old-", dir=to.parent))
        os.replace(to, old / "x")
    os.replace(tmp, to)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the three sources


def run(cfg: PublishSettings, results: dict | None = None) -> PublishResult:
    """``results``: a study's results.json content when the pipeline publishes itself before the
    report is written (else results.json is read from the study directory)."""
    src = cfg.source
    if not src.exists():
        raise UserError(f"{src}: not found; give a data file, a checkpoint directory or a study directory")
    _check_out(cfg)
    if src.is_file():
        kind = "dataset"
    elif models.is_checkpoint(src):
        kind = "model"
    elif (src / "pipeline.json").is_file() or (src / "stages").is_dir():
        kind = "study"
    else:
        raise UserError(f"{src}: a directory that is neither a checkpoint (gpt4llm_train.json, config.json) nor a "
                        "study (pipeline.json, from gpt4llm run); give a data file, a checkpoint or a study directory")
    made = [p for p in [cfg.to.parent, *cfg.to.parent.parents] if not p.exists()]  # removed again on failure
    cfg.to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.to.name}.tmp-", dir=cfg.to.parent))
    try:
        res = {"dataset": _dataset, "model": _model, "study": _study}[kind](cfg, tmp, results)
        _replace(tmp, cfg.to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    if cfg.push_to_hub:
        _push(cfg, res)
    return res


def _dataset(cfg: PublishSettings, tmp: Path, results: dict | None) -> PublishResult:
    src = cfg.source
    table = data.load(src)
    study_dir = src.parent.parent if (src.parent.name == "data" and (src.parent.parent / "pipeline.json").is_file()) else None
    res_json = results or (_results_of(study_dir) if study_dir else None)
    recorded = ((res_json or {}).get("provenance") or {}).get("prompt_hashes")
    c = _config(cfg, table, "default", src.name, study_dir, recorded)
    _write_configs(cfg, tmp, [(c, table)])
    title = cfg.name or src.stem
    summary = f"{cards.records(len(table.rows))} of {table.kind.what}."
    card = cards.dataset_card(configs=[c], license=cfg.license, language=c["languages"], title=title, summary=summary,
                              repo=cfg.push_to_hub or str(cfg.to), study=None, models=[],
                              task_categories=list(table.kind.task_categories))
    card.save(tmp / "README.md")
    return PublishResult(cfg.to, "dataset", configs=[{k: c[k] for k in ("name", "rows", "files", "source")}])


def _model(cfg: PublishSettings, tmp: Path, results: dict | None) -> PublishResult:
    ck = models.load(cfg.source)
    study_dir = ck.path.parent.parent if ck.path.parent.name == "models" else None
    results = results or (_results_of(study_dir) if study_dir else None)
    pipeline = provenance.read_json(study_dir / "pipeline.json") if study_dir else None
    files = models.copy_files(ck, tmp)
    data_text = f"`{Path(ck.data).name}`" if ck.data else "its training data"
    card = _model_card(cfg, ck, results, data_text, cfg.language or [], None, None, cfg.push_to_hub or str(cfg.to),
                       pipeline)
    card.save(tmp / "README.md")
    return PublishResult(cfg.to, "model", models=[{"name": ck.name, "path": str(cfg.to), "files": files}])


def _study(cfg: PublishSettings, tmp: Path, results: dict | None) -> PublishResult:
    src = cfg.source
    pipeline = provenance.read_json(src / "pipeline.json")
    results = results or _results_of(src)
    found = _study_datasets(src, pipeline)
    if not found:
        raise UserError(f"{src}: the study has no finished dataset yet (data/teacher.<lang>.jsonl); run it first")
    recorded = ((results or {}).get("provenance") or {}).get("prompt_hashes")
    tables = []
    for name, path in found:
        table = data.load(path)
        tables.append((_config(cfg, table, name, str(path.relative_to(src)), src, recorded), table))
    _write_configs(cfg, tmp, tables)
    configs = [c for c, _ in tables]
    by_lang = {c["name"].split("-", 1)[1]: c for c in configs if c["name"].startswith("alpaca-")}
    repo = cfg.push_to_hub
    done, skipped = [], []
    for d in sorted(p for p in (src / "models").glob("*") if p.is_dir()):
        meta = provenance.read_json(d / models.TRAIN_FILE)
        if meta is None:
            continue  # not a trained model (the reward model's cut-down base)
        if meta.get("status") != "done":
            skipped.append(f"models/{d.name}: training did not finish")
            continue
        done.append(models.load(d))
    model_rows = []
    for ck in done:
        lang = ck.name.removeprefix("student-").split("-")[0] if ck.name.startswith("student-") else "en"
        if ck.kind == "sft" and lang in by_lang:
            c = by_lang[lang]
            data_text = f"the `{c['name']}` config of this study's dataset ({cards.records(c['rows'])})"
        elif ck.kind in ("dpo", "reward") and any(c["name"] == "comparison" for c in configs):
            data_text = "the `comparison` config of this study's dataset (scored responses)"
        else:
            data_text = f"`{Path(ck.data).name}`"
        base_repo = None
        if repo and ck.base.startswith("local:") and Path(ck.base[6:]).parent.resolve() == (src / "models").resolve():
            base_repo = f"{repo}-{Path(ck.base[6:]).name}"  # DPO continues the study's own SFT student
        model_repo = f"{repo}-{ck.name}" if repo else str(cfg.to / "models" / ck.name)
        dest = tmp / "models" / ck.name
        files = models.copy_files(ck, dest)
        _model_card(cfg, ck, results, data_text, [lang], base_repo, repo, model_repo, pipeline).save(dest / "README.md")
        model_rows.append({"name": ck.name, "what": ck.what, "repo": f"{repo}-{ck.name}" if repo else None,
                           "path": str(cfg.to / "models" / ck.name), "files": files})
    study = provenance.study(results, pipeline)
    title = cfg.name or study["name"] or src.name
    langs = sorted({lang for c in configs for lang in c["languages"]})
    summary = (f"The data of the gpt4llm study `{study['name'] or src.name}`: " +
               "; ".join(f"`{c['name']}` {cards.records(c['rows'])} of {c['what']}" for c in configs) + ".")
    tasks = sorted({t for _, t_ in tables for t in t_.kind.task_categories})
    cards.dataset_card(configs=configs, license=cfg.license, language=langs, title=title, summary=summary,
                       repo=repo or str(cfg.to), study=study, models=model_rows, task_categories=tasks
                       ).save(tmp / "README.md")
    return PublishResult(cfg.to, "study", configs=[{k: c[k] for k in ("name", "rows", "files", "source")} for c in configs],
                         models=[{k: m[k] for k in ("name", "path", "files")} for m in model_rows], skipped=skipped)


def _push(cfg: PublishSettings, res: PublishResult) -> None:
    from gpt4llm.publish import hub

    repo_type = "model" if res.kind == "model" else "dataset"
    api, _ = hub.login(cfg.to, cfg.push_to_hub, repo_type, cfg.private)
    ignore = ["models/**"] if res.kind == "study" else None
    res.pushed.append(hub.push(api, cfg.to, cfg.push_to_hub, repo_type, cfg.private, ignore))
    for m in res.models if res.kind == "study" else []:
        res.pushed.append(hub.push(api, Path(m["path"]), f"{cfg.push_to_hub}-{m['name']}", "model", cfg.private))
