"""The dataset card and the model cards: huggingface_hub's ``DatasetCard``/``ModelCard`` with the
Hub's YAML metadata (written by ``DatasetCardData``/``ModelCardData``, so the keys are the Hub's),
and a body rendered from ``templates/`` with what ``provenance`` found."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from gpt4llm.publish.provenance import BIBTEX, PAPER_URL

# The Hub's size buckets (DatasetCardData's size_categories), by total number of rows.
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))

# The embedded model is a GGUF of this Hub model (DESIGN.md, "The embedded default model").
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}

LICENSE_NOTES = {"cc-by-nc-4.0": "CC BY-NC 4.0, as the paper released its GPT-4 data (research and non-commercial use)."}
TERMS = {"dataset": "The records are a model's outputs: the teacher's terms of use apply to them too (OpenAI's, for "
                    "instance, restrict using outputs to develop competing models); check them before you use or "
                    "relicense this data.",
         "model": "The model learned from a teacher model's outputs: the teacher's terms of use may apply to it, and "
                  "the base model's license applies as well; check both before you use or relicense it."}

_SCRIPTS = (("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")), ("ja", re.compile(r"[\u3040-\u30ff]")),
            ("ko", re.compile(r"[\uac00-\ud7af]")))


def size_category(n: int) -> str:
    return next((name for bound, name in SIZES if n < bound), "n>1B")


def hub_id(model: str | None) -> str | None:
    """A model string as a Hub id the card's ``base_model`` may name, or None (a local path)."""
    if not model:
        return None
    name = model.removeprefix("local:")
    if name in HUB_IDS:
        return HUB_IDS[name]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/")):
        return name
    return None


def record_language(text: str) -> str:
    """A record's language by script: Han -> zh, kana -> ja, Hangul -> ko (a fifth of the
    letters or more), else en. Latin-script languages other than English need --language."""
    letters = sum(c.isalpha() for c in text) or 1
    for code, rx in _SCRIPTS:
        if len(rx.findall(text)) / letters >= 0.2:
            return code
    return "en"


def languages(rows: list[dict], kind: str) -> list[str]:
    """The languages of the records (meta.language first), each of at least 1% of them."""
    from collections import Counter

    counts: Counter = Counter()
    for r in rows:
        m = r.get("meta") if isinstance(r.get("meta"), dict) else {}
        lang = m.get("language")
        if not lang:
            text = " ".join(str(r.get(f) or "") for f in ("instruction", "input", "output", "user_input", "prompt",
                                                            "chosen", "completion"))
            lang = record_language(text[:4000])
        counts[lang] += 1
    return sorted(lang for lang, n in counts.items() if n >= max(1, len(rows) // 100))


def records(n: int) -> str:
    return f"{n:,} record" + ("" if n == 1 else "s")


def _render(template_name: str, card_cls, card_data, /, **kw: Any):
    template = resources.files("gpt4llm.publish").joinpath(f"templates/{template_name}").read_text(encoding="utf-8")
    return card_cls.from_template(card_data, template_str=template, records=records, **kw)


def license_note(license: str, what: str = "dataset") -> str:
    return LICENSE_NOTES.get(license, f"License: `{license}` (set with --license).") + " " + TERMS[what]


def dataset_card(*, configs: list[dict], license: str, language: list[str], title: str, summary: str, repo: str,
                 study: dict | None, models: list[dict], task_categories: list[str]) -> Any:
    from huggingface_hub import DatasetCard, DatasetCardData

    total = sum(c["rows"] for c in configs)
    single = len(configs) == 1
    yaml_configs = []
    for c in configs:
        entry: dict[str, Any] = {"config_name": c["name"], "data_files": [{"split": "train", "path": c["pattern"]}]}
        if c.get("default") and not single:
            entry["default"] = True
        yaml_configs.append(entry)
    info = [{"config_name": c["name"], "features": c["features"],
             "splits": [{"name": "train", "num_bytes": c["num_bytes"], "num_examples": c["rows"]}]} for c in configs]
    data = DatasetCardData(
        license=license, language=language, task_categories=task_categories, size_categories=[size_category(total)],
        pretty_name=title, tags=["gpt4llm", "synthetic", "instruction-tuning"], configs=yaml_configs,
        dataset_info=info if not single else {k: v for k, v in info[0].items() if k != "config_name"})
    for i, c in enumerate(configs):
        c["var"] = "ds" if single else f"ds_{i}"
    return _render("dataset_card.md", DatasetCard, data, title=title, summary=summary, repo=repo, configs=configs,
                   single=single, has_meta=any("meta" in c["columns"] for c in configs), study=study, models=models,
                   license_note=license_note(license), bibtex=BIBTEX, paper_url=PAPER_URL)


def model_card(*, name: str, what: str, kind: str, base: str | None, base_repo: str | None, data: str,
               dataset_repo: str | None, license: str, language: list[str], recipe: dict, training: dict,
               held_out: dict, evaluation: dict, adapter: bool, repo: str, template: str | None) -> Any:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    evals = [EvalResult(task_type="text-generation", dataset_type=e["dataset"], dataset_name=e["dataset"],
                        metric_type=e["metric"], metric_name=e["name"], metric_value=e["value"])
             for e in evaluation.get("model_index", [])]
    data_yaml = ModelCardData(
        base_model=base_repo or hub_id(base), datasets=[dataset_repo] if dataset_repo else None, license=license,
        language=language or None, library_name="peft" if adapter else "transformers",
        pipeline_tag="text-classification" if kind == "reward" else "text-generation",
        tags=["gpt4llm", "instruction-tuning", {"sft": "sft", "dpo": "dpo", "reward": "reward-model"}[kind]],
        model_name=name if evals else None, eval_results=evals or None)
    return _render("model_card.md", ModelCard, data_yaml, name=name, what=what, kind=kind, base=base, data=data,
                   recipe=recipe, training=training, held_out=held_out, evaluation=evaluation, adapter=adapter,
                   repo=repo, template=template, license_note=license_note(license, "model"), bibtex=BIBTEX,
                   paper_url=PAPER_URL)
