"""Where published data came from: the records' own ``meta``, the journal, the study.

- Every answer ``generate`` writes carries its teacher, backend, decoding parameters, usage,
  cost, finish reason and time: counted here per teacher and per parameter set.
- The journal holds each call under a hash of (backend, model, messages, parameters, sample).
  Rebuilding that key from a record with the installed Alpaca template and finding it in the
  journal proves the record was asked with exactly this template (its hash is shown), and
  gives the calls made for it, retries included. The journal is opened read-only.
- A study (``gpt4llm run``) records what neither has: the endpoint, the prompt hashes at run
  time, per-stage usage and package versions (``results.json``'s provenance).

Nothing here reads or writes a key: base URLs lose any user:password, query and fragment.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BIBTEX = """@article{peng2023instruction,
  title={Instruction Tuning with GPT-4},
  author={Peng, Baolin and Li, Chunyuan and He, Pengcheng and Galley, Michel and Gao, Jianfeng},
  journal={arXiv preprint arXiv:2304.03277},
  year={2023}
}"""
PAPER_URL = "https://arxiv.org/abs/2304.03277"

# The prompts each kind of data was made with (names as in results.json's prompt_hashes).
PROMPTS = {"alpaca": ("prompts/alpaca_input.txt", "prompts/alpaca_no_input.txt", "template:alpaca"),
           "comparison": ("prompts/rating.txt",), "translated": ("prompts/translate.txt",)}


def prompt_hash(name: str) -> str:
    """sha256[:16] of a prompt file's bytes or of a template object's repr: the same numbers as the
    study's results.json (``pipeline.report``), computed for the installed gpt4llm."""
    from gpt4llm.templates import TEMPLATES

    if name.startswith("template:"):
        return hashlib.sha256(repr(TEMPLATES[name.split(":", 1)[1]]).encode()).hexdigest()[:16]
    data = resources.files("gpt4llm.prompts").joinpath(name.removeprefix("prompts/")).read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def safe_url(url: str) -> str:
    """scheme://host[:port]/path: no user:password, no query (some gateways take ?api-key=)."""
    try:
        p = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    if not p.scheme:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    host = p.hostname or ""
    netloc = f"{host}:{p.port}" if p.port else host
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def _meta(row: dict) -> dict | None:
    m = row.get("meta")
    return m if isinstance(m, dict) else None


def answers(rows: list[dict]) -> dict:
    """What the records' meta says about how the answers were made (``generate``'s meta)."""
    metas = [m for r in rows if (m := _meta(r)) and "model" in m and "backend" in m]
    if not metas:
        return {"records": len(rows), "with_meta": 0}
    # a local model costs nothing (pricing.Prices.for_model); its records carry no cost_usd
    costs = [m.get("cost_usd") if m.get("cost_usd") is not None or not str(m["backend"]).startswith("local")
             else 0.0 for m in metas]
    created = sorted(m["created"] for m in metas if m.get("created"))
    usage = [m.get("usage") or {} for m in metas]
    return {
        "records": len(rows), "with_meta": len(metas),
        "teachers": dict(Counter(f"{m['backend']}:{m['model']}" for m in metas).most_common()),
        "decoding": [{"params": json.loads(p), "records": n} for p, n in
                     Counter(json.dumps(m.get("params") or {}, sort_keys=True) for m in metas).most_common()],
        "languages": dict(Counter(m.get("language") or "en" for m in metas).most_common()),
        "prompt_tokens": sum(int(u.get("prompt_tokens") or 0) for u in usage),
        "completion_tokens": sum(int(u.get("completion_tokens") or 0) for u in usage),
        "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
        "cost_usd_known": round(sum(c for c in costs if c is not None), 6),
        "cost_unknown_records": sum(c is None for c in costs),
        "finish_reasons": dict(Counter(m.get("finish_reason") or "unknown" for m in metas).most_common()),
        "created": [created[0], created[-1]] if created else None,
    }


def comparisons(rows: list[dict]) -> dict:
    """Judges, sources and mean score per source of comparison records."""
    judges = Counter(m.get("judge") for r in rows if (m := _meta(r)) and m.get("judge"))
    per: dict[str, list[float]] = {}
    for r in rows:
        for x in r["responses_and_scores"]:
            per.setdefault(x.get("source") or "(unnamed)", []).append(float(x["score"]))
    return {"records": len(rows), "judges": dict(judges.most_common()),
            "sources": {s: {"responses": len(v), "mean_score": round(sum(v) / len(v), 3)} for s, v in per.items()}}


def _key(meta: dict, row: dict) -> str | None:
    """The journal key ``generate`` gave this record's call."""
    from gpt4llm.backends.journal import call_key
    from gpt4llm.generate import language_system_prompt
    from gpt4llm.templates import ALPACA

    try:
        messages = ALPACA.messages(row["instruction"], row.get("input") or "", language_system_prompt(meta.get("language")))
        return call_key(meta["backend"], meta["model"], {"messages": messages, "params": meta["params"], "sample": 0})
    except (KeyError, TypeError):
        return None


def journal_calls(rows: list[dict], journal: Path) -> dict | None:
    """The records' calls in the journal: how many are there, the calls made (retries included),
    tokens and cost; ``None`` when the file cannot be read as a journal."""
    keys = [k for r in rows if (m := _meta(r)) and (k := _key(m, r))]
    if not keys or not journal.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        found = []
        try:
            for i in range(0, len(keys), 900):  # SQLite's default limit is 999 bound variables
                chunk = keys[i: i + 900]
                found += db.execute(f"SELECT attempts, prompt_tokens, completion_tokens, cost_usd FROM calls WHERE "
                                    f"status = 'ok' AND key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    costs = [c for *_, c in found]
    return {"journal": journal.name, "records": len(keys), "found": len(found),
            "calls": sum(a for a, *_ in found), "prompt_tokens": sum(p for _, p, _, _ in found),
            "completion_tokens": sum(c for _, _, c, _ in found),
            "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6)}


def template_hashes(kind: str, recorded: dict | None = None, translated: bool = False) -> dict[str, dict]:
    """{prompt: {"sha256_16": ..., "source": "recorded at run time" | "installed gpt4llm"}}."""
    names = list(PROMPTS.get(kind, ())) + (list(PROMPTS["translated"]) if translated else [])
    out = {}
    for n in names:
        if recorded and n in recorded:
            out[n] = {"sha256_16": recorded[n], "source": "recorded at run time in results.json"}
        else:
            out[n] = {"sha256_16": prompt_hash(n), "source": "the installed gpt4llm"}
    return out


def study(results: dict | None, pipeline: dict | None) -> dict:
    """Endpoint, models, decoding, usage per stage and versions of a study (nothing secret)."""
    prov = (results or {}).get("provenance") or {}
    pipe = (pipeline or {}).get("pipeline") or {}
    backend = pipe.get("backend") or {}
    urls = backend.get("base_url") or []
    urls = [urls] if isinstance(urls, str) else urls
    models = prov.get("models") or pipe.get("models") or {}
    local = all(str(m).startswith("local:") for m in models.values() if m)
    engine = backend.get("engine") if backend.get("engine") not in (None, "transformers") else None
    default = ("none: every model ran in this process (local:)" if local and models and not engine
               else "the openai backend's default (OPENAI_BASE_URL, else api.openai.com) for openai: models; local: "
                    "models on this machine" + (f" ({engine} servers gpt4llm started)" if engine else ""))
    return {
        "name": (results or {}).get("name") or pipe.get("name"),
        "models": models,
        "endpoints": [safe_url(u) for u in urls] or [default],
        "batch_api": backend.get("batch_api"),
        "decoding": prov.get("decoding") or {},
        "usage_per_stage": prov.get("usage_per_stage") or {},
        "prompt_hashes": prov.get("prompt_hashes") or {},
        "seed": prov.get("seed", pipe.get("seed")),
        "versions": {k: v for k, v in (prov.get("versions") or {}).items() if v},
        "created": (results or {}).get("created"),
    }


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
