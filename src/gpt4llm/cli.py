"""The ``gpt4llm`` command. Thin: maps sub-commands to stage functions, prints summaries.

Errors: a ``UserError`` prints one line and exits 2 (3 for a reached budget); ``--debug``
anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gpt4llm import __version__
from gpt4llm.backends import DEFAULT_MODEL

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Instruction tuning with a teacher LLM, as in 'Instruction Tuning with GPT-4'.")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpt4llm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also accepted after the sub-command).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    pass


@app.command()
def generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.jsonl; .json/.parquet by suffix or --format).")],
    input: Annotated[str, typer.Option("--input", "-i", help="Alpaca records: .json/.jsonl/.parquet, hf:NAME[:split], or 'seeds' (the bundled 40).")] = "seeds",
    teacher: Annotated[str, typer.Option("--teacher", "-m", help="local:NAME|PATH or openai:MODEL.")] = DEFAULT_MODEL,
    limit: Annotated[Optional[int], typer.Option(help="Answer only the first N records.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Max completion tokens (paper: 512).")] = 512,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (paper: 1.0; 0 = greedy).")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling (paper: 1.0).")] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed, passed to the backend.")] = None,
    language: Annotated[Optional[str], typer.Option(help="Answer in this language (zh, or a name).")] = None,
    drop_truncated: Annotated[bool, typer.Option("--drop-truncated", help="Leave out answers cut at --max-tokens (the paper kept them).")] = False,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Keep the first of duplicate records instead of refusing the file.")] = False,
    format: Annotated[Optional[str], typer.Option("--format", help="jsonl (default), json (like alpaca_gpt4_data.json) or parquet.")] = None,
    journal: Annotated[Optional[Path], typer.Option(help="Journal file (default <output>.journal.sqlite).")] = None,
    shard: Annotated[Optional[str], typer.Option(help="i/n: this host's deterministic 1/n of the input (join with gpt4llm merge).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="local: prompts per batch (16-32 is fastest on a CPU; see README).")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = 16,
    rpm: Annotated[Optional[float], typer.Option(help="openai: max requests per minute (client-side token bucket).")] = None,
    tpm: Annotated[Optional[float], typer.Option(help="openai: max tokens per minute (prompt estimate + max_tokens).")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="openai: endpoint (default $OPENAI_BASE_URL or OpenAI).")] = None,
    api_version: Annotated[Optional[str], typer.Option(help="openai: Azure OpenAI API version; the model is the deployment name.")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="openai: seconds per request before it is retried.")] = 600.0,
    max_retries: Annotated[int, typer.Option(min=0, help="openai: retries of 429/5xx/timeouts/dropped connections.")] = 8,
    retry_backoff: Annotated[float, typer.Option(min=0.0, help="openai: first backoff in seconds (doubles, full jitter).")] = 1.0,
    max_usd: Annotated[Optional[float], typer.Option(help="Stop before the job's total cost would pass this (exit 3; re-run with more to continue).")] = None,
    price_in: Annotated[Optional[float], typer.Option(help="USD per 1M input tokens (overrides the price table).")] = None,
    price_out: Annotated[Optional[float], typer.Option(help="USD per 1M output tokens (overrides the price table).")] = None,
    prices: Annotated[Optional[Path], typer.Option(help="YAML price table: MODEL: [usd_in_per_1m, usd_out_per_1m].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print requests, estimated tokens, cost and time; call nothing.")] = False,
    batch_api: Annotated[bool, typer.Option("--batch-api", help="openai: use the Batch API (half price, results within 24 h; resumable).")] = False,
    batch_fallback: Annotated[bool, typer.Option("--batch-fallback", help="Send what the Batch API failed synchronously.")] = False,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Batch API: seconds between polls.")] = 30.0,
    quiet: Quiet = False,
) -> None:
    """Answer instructions with a teacher model (the paper's Algorithm 1)."""
    from gpt4llm import generate as stage
    from gpt4llm.backends import parse_model
    from gpt4llm.backends.base import GenParams
    from gpt4llm.backends.pricing import Prices
    from gpt4llm.calls import Plan

    spec = parse_model(teacher, "--teacher")
    cfg = stage.GenerateConfig(
        output=output, input=input, teacher=teacher, limit=limit, language=language, shard=shard,
        params=GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed),
        drop_truncated=drop_truncated, dedupe=dedupe, format=format, journal=journal, quiet=quiet,
        max_usd=max_usd, dry_run=dry_run,
        prices=Prices.for_model(spec.backend, spec.name, price_in, price_out, prices),
        backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url, timeout=timeout,
                             rpm=rpm, tpm=tpm, max_retries=max_retries, retry_backoff=retry_backoff,
                             api_version=api_version, batch_api=batch_api,
                             **({"fallback": batch_fallback, "poll_interval": poll_interval, "quiet": quiet}
                                if batch_api else {})))
    s = stage.run(cfg)
    if isinstance(s, Plan):
        typer.echo(plan_text(s, teacher))
        return
    c = s.calls
    lines = [
        f"wrote {s.written} records to {s.output}",
        f"  truncated at max_tokens: {s.truncated}" + (f" (dropped {s.dropped_truncated})" if s.dropped_truncated else " (kept, meta.finish_reason='length')"),
        f"  failed: {s.failed}" + (f" (listed in {s.errors_file}; re-run to retry)" if s.failed else ""),
        *call_lines(c),
    ]
    typer.echo("\n".join(lines))
    finish_calls("generate", c, s.failed, s.errors_file, not_run=s.not_run)


def call_lines(c) -> list[str]:
    """The summary lines every model stage prints about its calls."""
    cost = "" if not c.cost_usd else f", cost ${c.cost_usd:,.4f} (this run ${c.new_cost_usd:,.4f})"
    return [f"  model calls: {c.called} made, {c.cached} from the journal",
            f"  tokens: {c.prompt_tokens:,} prompt + {c.completion_tokens:,} completion{cost}",
            f"  time: {c.seconds:.1f} s"]


def plan_text(p, model: str) -> str:
    """A dry run's plan, printed by every model stage."""
    cost = p.est_cost_usd
    cost_line = (f"${cost[0]:,.2f} input + up to ${cost[1] - cost[0]:,.2f} output = at most ${cost[1]:,.2f} "
                 f"({p.prices.source}: ${p.prices.usd_in:g}/${p.prices.usd_out:g} per 1M tokens)"
                 if cost else "unknown: no price for this model (give --price-in/--price-out)")
    time_line = f"about {p.est_minutes:,.1f} min at {p.limits}" if p.est_minutes is not None \
        else f"not estimated ({p.limits})"
    return "\n".join([
        f"dry run for {model}: no model call made",
        f"  requests: {p.requests:,} ({p.cached:,} already in the journal, {p.pending:,} to send)",
        f"  estimated tokens: {p.est_prompt_tokens:,} prompt + up to {p.max_completion_tokens:,} completion",
        f"  estimated cost: {cost_line}",
        f"  estimated time: {time_line}",
    ])


train_app = typer.Typer(no_args_is_help=True, help="Train the student (sft) or the reward model.")
app.add_typer(train_app, name="train")


@train_app.command("sft")
def train_sft(
    data: Annotated[str, typer.Option("--data", "-d", help="Alpaca records with output (.json/.jsonl/.parquet/hf:).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Checkpoint directory.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Base model: local:NAME|PATH or a hub id.")] = DEFAULT_MODEL,
    template: Annotated[str, typer.Option(help="alpaca (paper) or chat (the tokenizer's chat template).")] = "alpaca",
    epochs: Annotated[float, typer.Option(min=0.0, help="Epochs (paper: 3).")] = 3.0,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (paper: 2e-5).")] = 2e-5,
    scheduler: Annotated[str, typer.Option(help="LR schedule (paper: cosine).")] = "cosine",
    warmup_ratio: Annotated[float, typer.Option(min=0.0, max=1.0, help="Warm-up share of steps (paper: 0.03).")] = 0.03,
    weight_decay: Annotated[float, typer.Option(min=0.0, help="Weight decay (paper: 0).")] = 0.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Effective batch = per-device x accumulation x processes (paper: 64).")] = 64,
    per_device_batch: Annotated[int, typer.Option(min=1, help="Examples per micro-batch per device.")] = 4,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens per example (paper: 512).")] = 512,
    overlong: Annotated[str, typer.Option(help="truncate or skip longer examples (counted either way).")] = "truncate",
    packing: Annotated[bool, typer.Option("--packing/--no-packing", help="Padding-free micro-batches without cross-example attention.")] = True,
    loss_norm: Annotated[str, typer.Option(help="example (paper: mean of per-example means) or token.")] = "example",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Less memory, ~30% slower.")] = False,
    precision: Annotated[str, typer.Option(help="auto, bf16, fp16 or fp32.")] = "auto",
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (PEFT).")] = False,
    lora_r: Annotated[int, typer.Option(min=1)] = 16,
    lora_alpha: Annotated[int, typer.Option(min=1)] = 32,
    lora_dropout: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.05,
    lora_targets: Annotated[str, typer.Option(help="Modules with adapters (comma list) or all-linear.")] = "all-linear",
    qlora: Annotated[bool, typer.Option("--qlora", help="4-bit base + LoRA (CUDA).")] = False,
    merge: Annotated[bool, typer.Option("--merge", help="With --lora: save merged full weights.")] = False,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps (paper: 200).")] = 200,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output-dir from its last checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different run in --output-dir.")] = False,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop after N optimizer steps (still saves).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N records.")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    logging_steps: Annotated[int, typer.Option(min=1)] = 10,
    report_to: Annotated[str, typer.Option(help="none, tensorboard or wandb.")] = "none",
    deepspeed: Annotated[Optional[str], typer.Option(help="DeepSpeed JSON, e.g. configs/deepspeed/zero3_offload.json.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Prepare data, print token statistics, train nothing.")] = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune a student on the teacher's answers with the Alpaca recipe."""
    from gpt4llm.train import sft

    cfg = sft.SFTConfig(data=data, output_dir=output_dir, model=model, template=template, epochs=epochs,
                        learning_rate=learning_rate, scheduler=scheduler, warmup_ratio=warmup_ratio,
                        weight_decay=weight_decay, batch_size=batch_size, per_device_batch=per_device_batch,
                        max_length=max_length, overlong=overlong, packing=packing, loss_norm=loss_norm,
                        gradient_checkpointing=gradient_checkpointing, precision=precision, lora=lora, lora_r=lora_r,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets, qlora=qlora,
                        merge=merge, save_steps=save_steps, resume=resume, overwrite=overwrite, max_steps=max_steps,
                        limit=limit, seed=seed, logging_steps=logging_steps, report_to=report_to, dry_run=dry_run, deepspeed=deepspeed,
                        quiet=quiet)
    r = sft.run(cfg)
    st = r.stats
    typer.echo(f"first training example:\n{r.first_example}\n")
    typer.echo(f"data: {st.examples} examples of {st.records} records, {st.tokens:,} tokens ({st.target_tokens:,} trained), "
               f"truncated {st.truncated}, skipped {st.skipped_overlong + st.skipped_no_target}, "
               f"padding share {st.padding_share:.1%}, boundary merges handled {st.boundary_merges}")
    typer.echo(f"effective batch {r.effective_batch}")
    if cfg.dry_run:
        return
    typer.echo(f"trained {r.steps} steps in {r.seconds:.1f} s, mean loss {r.train_loss:.4f}; saved to {r.output_dir}")


@app.command()
def answer(
    benchmark: Annotated[str, typer.Option("--benchmark", "--questions", "-b", help="Question set: FastChat question.jsonl, Alpaca file or user-oriented JSONL.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FastChat answer JSONL.")],
    model: Annotated[str, typer.Option("--model", "-m", help="local:NAME|PATH (a gpt4llm checkpoint uses its saved template) or openai:MODEL.")] = DEFAULT_MODEL,
    model_id: Annotated[Optional[str], typer.Option(help="model_id written in the answers (default: the model's name).")] = None,
    template: Annotated[str, typer.Option(help="auto (the saved template, else chat if the model has one, else alpaca), alpaca or chat.")] = "auto",
    samples: Annotated[int, typer.Option(min=1, help="Answers per question (for best-of-N).")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (FastChat's default 0.7).")] = 0.7,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    max_tokens: Annotated[int, typer.Option(min=1)] = 512,
    seed: Annotated[Optional[int], typer.Option()] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N questions.")] = None,
    journal: Annotated[Optional[Path], typer.Option(help="Journal file (default <output>.journal.sqlite).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="local: prompts per batch.")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = 16,
    base_url: Annotated[Optional[str], typer.Option(help="openai: endpoint (e.g. a vLLM server of the student).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; call nothing.")] = False,
    quiet: Quiet = False,
) -> None:
    """Answer a question set with a model, N samples per question if asked (FastChat answer format)."""
    from gpt4llm.backends.base import GenParams
    from gpt4llm.calls import Plan
    from gpt4llm.eval import answer as stage

    cfg = stage.AnswerConfig(questions=benchmark, output=output, model=model, model_id=model_id, template=template,
                             samples=samples, limit=limit, journal=journal, dry_run=dry_run, quiet=quiet,
                             params=GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed),
                             backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url))
    s = stage.run(cfg)
    if isinstance(s, Plan):
        typer.echo(plan_text(s, model))
        return
    typer.echo("\n".join([f"wrote {s.written} answers to {s.output} (template: {s.template})",
                          f"  failed: {s.failed}" + (" (listed in the .errors.jsonl file; re-run to retry)" if s.failed else ""),
                          *call_lines(s.calls)]))
    finish_calls("answer", s.calls, s.failed, f"{s.output}.errors.jsonl")


compare_app = typer.Typer(help="Score K models' responses with a judge (the paper's comparison data).")
app.add_typer(compare_app, name="compare")


@compare_app.callback(invoke_without_command=True)
def compare(
    ctx: typer.Context,
    instructions: Annotated[Optional[str], typer.Option("--instructions", "-i", help="The prompts: Alpaca records or FastChat questions.")] = None,
    responses: Annotated[Optional[list[str]], typer.Option("--responses", "-r", help="A response file per source (give 2 or more times).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Comparison file (v2 format).")] = None,
    judge: Annotated[str, typer.Option(help="The judge model.")] = DEFAULT_MODEL,
    source_names: Annotated[Optional[str], typer.Option(help="Comma-separated names of the sources, in --responses order.")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Score what is there when a source lacks prompts.")] = False,
    max_reasks: Annotated[int, typer.Option(min=0, help="Re-ask the judge when its first line has no valid score.")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Judge temperature (not published; Vicuna's reviewer: 0.2).")] = 0.2,
    max_tokens: Annotated[int, typer.Option(min=1, help="Judge max tokens.")] = 1024,
    journal: Annotated[Optional[Path], typer.Option(help="Journal file (default <output>.journal.sqlite).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="local: prompts per batch.")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = 16,
    base_url: Annotated[Optional[str], typer.Option(help="openai: endpoint.")] = None,
    max_usd: Annotated[Optional[float], typer.Option(help="Budget cap for the judge (exit 3 when reached).")] = None,
    score_mode: Annotated[str, typer.Option(help="text: parse the judge's reply (the paper); logprobs: a local judge's expected score over score tokens.")] = "text",
    quiet: Quiet = False,
) -> None:
    """Score each response on its own, 1-10, with the paper's rating prompt; write v2 + a quality report."""
    if ctx.invoked_subcommand is not None:
        return
    from gpt4llm import compare as stage
    from gpt4llm.backends.base import GenParams

    if not instructions or not responses or not output:
        raise typer.BadParameter("compare needs --instructions, --responses (2 or more) and --output")
    cfg = stage.CompareConfig(instructions=instructions, responses=responses, output=output, judge=judge,
                              source_names=source_names.split(",") if source_names else None,
                              allow_missing=allow_missing, max_reasks=max_reasks, journal=journal, quiet=quiet,
                              params=GenParams(temperature=temperature, top_p=1.0, max_tokens=max_tokens),
                              max_usd=max_usd, score_mode=score_mode,
                              backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url))
    s = stage.run(cfg)
    typer.echo(report_text(s.report))
    typer.echo(f"wrote {s.written} comparisons to {s.output}; report {s.output}.report.json; figure "
               + ", ".join(str(p) for p in s.figure))
    if s.calls is not None:
        typer.echo("\n".join(call_lines(s.calls)))
    finish_calls("compare", s.calls, s.call_failures, f"{s.output}.errors.jsonl")


def finish_calls(stage: str, calls, failed: int, errors_file, not_run: int | None = None) -> None:
    """Exit 3 when the budget stopped the job, 1 when calls failed (after the summary is printed)."""
    from gpt4llm.errors import BudgetExceeded, PartialFailure

    if calls is not None and calls.budget_reached:
        left = f"; {not_run} records not sent" if not_run else ""
        raise BudgetExceeded(f"{stage}: budget reached: ${calls.cost_usd or 0:,.4f} of --max-usd {calls.max_usd:g} "
                             f"spent{left}; re-run with a higher --max-usd to continue (paid calls are journaled)")
    if failed:
        raise PartialFailure(f"{stage}: {failed} model calls failed (listed in {errors_file}); run the same command "
                             "again to retry them (calls that succeeded are not repeated)")


def report_text(report: dict) -> str:
    lines = ["source                     n     mean  median  most common (share)"]
    for name, r in report["sources"].items():
        lines.append(f"{name[:24]:<24} {r['n']:>6} {r['mean']:>8.2f} {r['median']:>7g}  {r['most_common_score']:g} "
                     f"({r['most_common_share']:.1%})")
    for key in ("identical_responses_removed", "ties", "parse_failures", "call_failures", "reasks", "reasks_rescued",
                "prompts_skipped_fewer_than_2_scored"):
        if key in report:
            lines.append(f"{key.replace('_', ' ')}: {report[key]}")
    return "\n".join(lines)


@compare_app.command("export")
def compare_export(
    input: Annotated[str, typer.Option("--input", "-i", help="Comparison v2 file (ours or the released comparison_data_v2.json).")],
    to: Annotated[str, typer.Option("--to", help="trl (prompt, chosen, rejected, margin) or gpt4llm-v1.")],
    output: Annotated[Path, typer.Option("--output", "-o")],
) -> None:
    """All C(K,2) preference pairs with s_l < s_h; ties and identical texts give no pair (counted)."""
    from gpt4llm import pairs

    st = pairs.export(input, to, output)
    typer.echo(f"wrote {st.pairs} pairs from {st.prompts} prompts to {output}; ties {st.ties}, identical texts "
               f"{st.identical}, prompts without a pair {st.prompts_without_pairs}")


@compare_app.command("report")
def compare_report(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")],
    input: Annotated[Optional[str], typer.Option("--input", "-i", help="Comparison v2 file.")] = None,
    scores: Annotated[Optional[Path], typer.Option(help="A JSON dict of score lists per source (the paper's cmp_data_scores.json).")] = None,
) -> None:
    """The quality report and score-KDE figure of a comparison file or a dict of score lists."""
    import json

    from gpt4llm import compare as stage
    from gpt4llm import pairs, plots
    from gpt4llm.errors import UserError
    from gpt4llm.io import write_json

    if bool(input) == bool(scores):
        raise UserError("compare report: give exactly one of --input or --scores")
    if scores:
        try:
            per_source = json.loads(scores.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{scores}: not a readable JSON file ({e})") from e
        if not isinstance(per_source, dict) or not all(isinstance(v, list) for v in per_source.values()):
            raise UserError(f"{scores}: expected a JSON object of score lists per source")
    else:
        per_source = {}
        for c in pairs.load_comparisons(input):
            for x in c.responses_and_scores:
                per_source.setdefault(x.source, []).append(x.score)
    report = stage.score_report(per_source)
    write_json(output_dir / "score_report.json", report)
    figs = plots.score_kde(per_source, output_dir / "score_distribution")
    typer.echo(report_text(report))
    typer.echo("wrote " + ", ".join(str(p) for p in [output_dir / "score_report.json", *figs]))


@train_app.command("rm")
def train_rm(
    data: Annotated[str, typer.Option("--data", "-d", help="Comparisons: gpt4llm compare output or comparison_data_v2.json.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")],
    model: Annotated[str, typer.Option("--model", "-m", help="Backbone causal LM (the paper: OPT-1.3B).")] = DEFAULT_MODEL,
    epochs: Annotated[float, typer.Option(min=0.0)] = 1.0,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0, help="Not published; 1e-5 default.")] = 1e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts (with all K responses) per optimizer step.")] = 8,
    per_device_batch: Annotated[int, typer.Option(min=1)] = 4,
    max_length: Annotated[int, typer.Option(min=8)] = 512,
    margin: Annotated[float, typer.Option(min=0.0, help="Score-gap margin scale (0 = the paper's loss).")] = 0.0,
    pointwise: Annotated[bool, typer.Option("--pointwise", help="Regress the 1-10 score instead of pairs.")] = False,
    eval_split: Annotated[float, typer.Option(min=0.0, max=0.99, help="Held-out share of prompts.")] = 0.1,
    lora: Annotated[bool, typer.Option("--lora")] = False,
    lora_r: Annotated[int, typer.Option(min=1)] = 16,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing")] = False,
    precision: Annotated[str, typer.Option()] = "auto",
    save_steps: Annotated[int, typer.Option(min=1)] = 200,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    max_steps: Annotated[Optional[int], typer.Option(min=1)] = None,
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
    seed: Annotated[int, typer.Option()] = 42,
    logging_steps: Annotated[int, typer.Option(min=1)] = 10,
    quiet: Quiet = False,
) -> None:
    """Train a reward model K-wise on scored comparisons (each response encoded once per step)."""
    from gpt4llm.train import reward

    cfg = reward.RMConfig(data=data, output_dir=output_dir, model=model, epochs=epochs, learning_rate=learning_rate,
                          batch_size=batch_size, per_device_batch=per_device_batch, max_length=max_length, margin=margin,
                          pointwise=pointwise, eval_split=eval_split, lora=lora, lora_r=lora_r,
                          gradient_checkpointing=gradient_checkpointing, precision=precision, save_steps=save_steps,
                          resume=resume, overwrite=overwrite, max_steps=max_steps, limit=limit, seed=seed,
                          logging_steps=logging_steps, quiet=quiet)
    r = reward.run(cfg)
    typer.echo(f"data: {r.groups} prompts, {r.pairs} pairs (ties {r.ties} give none), truncated {r.truncated}; "
               f"effective batch {r.effective_batch}")
    m = r.metrics
    if m:
        typer.echo(f"held out: pairwise accuracy {m['pairwise_accuracy']:.3f} on {m['pairs']} pairs "
                   f"({m['ties_excluded']} ties excluded), Spearman {m['spearman']:.3f}, mean reward gap {m['reward_gap_mean']:.3f}")
    typer.echo(f"trained {r.steps} steps in {r.seconds:.1f} s; saved to {r.output_dir}")


@app.command()
def rank(
    reward_model: Annotated[Path, typer.Option("--reward-model", "-r", help="A checkpoint from gpt4llm train rm.")],
    input: Annotated[str, typer.Option("--input", "-i", help="Answers with N samples per question (answer --samples N).")],
    output: Annotated[Path, typer.Option("--output", "-o")],
    questions: Annotated[Optional[str], typer.Option(help="The question set, if the answers lack their instruction.")] = None,
    select: Annotated[Optional[str], typer.Option(help="best: the top-ranked answer per question (the paper's R1).")] = None,
    group: Annotated[Optional[int], typer.Option(min=1, help="k: the rank-k answer per question.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
) -> None:
    """Score sampled answers with a reward model: reward and rank per answer, best-of-N, ranking groups."""
    from gpt4llm.eval import rank as stage

    s = stage.run(stage.RankConfig(reward_model=reward_model, input=input, output=output, questions=questions,
                                   select=select, group=group, batch_size=batch_size))
    typer.echo(f"ranked {s['answers']} answers to {s['questions']} questions ({s['samples_per_question']} per question); "
               f"wrote {s['written']} to {output}")


eval_app = typer.Typer(no_args_is_help=True, help="Evaluate as the paper did: LLM judge, ROUGE by length, human HHH.")
app.add_typer(eval_app, name="eval")


@eval_app.command("judge")
def eval_judge(
    output: Annotated[Path, typer.Option("--output", "-o", help="Reviews (FastChat format); summary to <output>.summary.json.")],
    questions: Annotated[Optional[str], typer.Option("--questions", "-q", help="FastChat question.jsonl (categories choose the prompt).")] = None,
    answers: Annotated[Optional[list[str]], typer.Option("--answers", "-a", help="Answers of an evaluated model (repeat for several).")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", "-r", help="Answers of the reference model (Assistant 2).")] = None,
    judge: Annotated[str, typer.Option(help="The judge model (the paper: GPT-4).")] = DEFAULT_MODEL,
    orders: Annotated[str, typer.Option(help="both (default; averaged, with flip rate) or paper (model first only).")] = "both",
    max_reasks: Annotated[int, typer.Option(min=0)] = 2,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Vicuna's reviewer: 0.2.")] = 0.2,
    max_tokens: Annotated[int, typer.Option(min=1, help="Vicuna's reviewer: 1024.")] = 1024,
    allow_missing: Annotated[bool, typer.Option("--allow-missing")] = False,
    import_reviews: Annotated[Optional[str], typer.Option(help="Summarize an existing FastChat review file instead.")] = None,
    journal: Annotated[Optional[Path], typer.Option()] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
    base_url: Annotated[Optional[str], typer.Option()] = None,
    max_usd: Annotated[Optional[float], typer.Option()] = None,
    score_mode: Annotated[str, typer.Option(help="text: parse the review (the paper); logprobs: a local judge's expected scores.")] = "text",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Judge answers against a reference with Vicuna's reviewer; the paper's score sums and ratio."""
    from gpt4llm.backends.base import GenParams
    from gpt4llm.eval import judge as stage
    from gpt4llm.io import write_json

    if import_reviews:
        s = stage.import_reviews(import_reviews, questions)
        write_json(Path(f"{output}.summary.json"), {"models": {Path(import_reviews).stem: s}})
        typer.echo(judge_text(Path(import_reviews).stem, s))
        return
    if not (questions and answers and reference):
        raise typer.BadParameter("eval judge needs --questions, --answers and --reference (or --import-reviews)")
    cfg = stage.JudgeConfig(questions=questions, answers=answers, reference=reference, output=output, judge=judge,
                            orders=orders, max_reasks=max_reasks, allow_missing=allow_missing, journal=journal,
                            params=GenParams(temperature=temperature, top_p=1.0, max_tokens=max_tokens), quiet=quiet,
                            max_usd=max_usd, score_mode=score_mode,
                            backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url))
    s = stage.run(cfg)
    for model_id, summary in s.summaries.items():
        typer.echo(judge_text(model_id, summary))
    typer.echo(f"wrote reviews to {s.output}, summary to {s.output}.summary.json, chart " + ", ".join(map(str, s.figure)))
    if s.calls is not None:
        typer.echo("\n".join(call_lines(s.calls)))
    if s.asked is not None and s.asked.reasks:
        cost = "" if not s.asked.reask_cost_usd else f", ${s.asked.reask_cost_usd:,.4f}"
        typer.echo(f"  follow-ups: {s.asked.reasks} (read {s.asked.rescued} verdicts{cost})")
    finish_calls("eval judge", s.calls, s.call_failures, f"{s.output}.errors.jsonl")


def judge_text(model_id: str, s: dict) -> str:
    ci = s.get("ratio_ci95")
    ratio = "n/a" if s["ratio_percent"] is None else f"{s['ratio_percent']:.1f}%"
    lines = [f"{model_id} vs {s.get('reference', 'reference')}: {s['model_score_sum']:g} : {s['reference_score_sum']:g} = {ratio}"
             + (f" (95% CI {ci[0]:.1f}-{ci[1]:.1f})" if ci else ""),
             f"  wins/ties/losses {s['wins']}/{s['ties']}/{s['losses']} over {s['scored']} questions; "
             f"parse failures {s['parse_failures']}; call failures {s.get('call_failures', 0)}"
             + (f"; flip rate {s['flip_rate']:.1%}" if s.get("flip_rate") is not None else "")
             + (f"; out of 1-10 (kept) {s['out_of_range']}" if s.get("out_of_range") else "")]
    rel = s.get("reliability") or {}
    if rel.get("unreliable"):
        lines.append(f"  UNRELIABLE JUDGE: {'; '.join(rel['reasons'])}")
    return "\n".join(lines)


@eval_app.command("rouge")
def eval_rouge(
    predictions: Annotated[list[str], typer.Option("--predictions", "-p", help="A model's answers (FastChat or Alpaca); repeat per model.")],
    references: Annotated[str, typer.Option("--references", "-r", help="Ground truth: Alpaca with label/output, or Unnatural Instructions core format.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result table (JSON, the paper's format); chart beside it.")],
    reference_model: Annotated[Optional[str], typer.Option(help="Model the chart's differences are measured against.")] = None,
    reference_field: Annotated[Optional[str], typer.Option(help="Field holding the ground truth (default: label, reference, output).")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing")] = False,
) -> None:
    """ROUGE-1/2/L F of answers against the ground truth, by ground-truth length (0-2, 3-5, 6-10, >10, all)."""
    from gpt4llm.eval import rouge as stage

    r = stage.run(stage.RougeConfig(predictions=predictions, references=references, output=output,
                                    reference_model=reference_model, reference_field=reference_field,
                                    allow_missing=allow_missing))
    typer.echo(f"{'model':<24} {'length':>7} {'N':>6} {'rouge1':>7} {'rouge2':>7} {'rougeL':>7}")
    for row in r["table"]:
        vals = " ".join(f"{row[m]:7.4f}" if row[m] is not None else "      -" for m in ("rouge1", "rouge2", "rougeL"))
        typer.echo(f"{row['Model'][:24]:<24} {row['Length']:>7} {row['NumInstance']:>6} {vals}")
    typer.echo(f"wrote {output} and " + ", ".join(map(str, r["figure"])))


bench_app = typer.Typer(no_args_is_help=True, help="Named benchmarks: vicuna80, user-oriented-252, unnatural-instructions.")
app.add_typer(bench_app, name="benchmarks")


@bench_app.command("list")
def benchmarks_list() -> None:
    """The named benchmarks and whether each is in the cache."""
    from gpt4llm.eval import benchmarks as b

    for x in b.BENCHMARKS.values():
        here = (b.cache_dir() / x.filename).is_file()
        typer.echo(f"{x.name:<24} {'cached' if here else 'not cached':<11} {x.description}")


@bench_app.command("download")
def benchmarks_download(
    name: Annotated[str, typer.Argument(help="vicuna80, user-oriented-252 or unnatural-instructions.")],
    path: Annotated[Optional[str], typer.Option(help="Take the file from here instead of the network (checked the same way).")] = None,
) -> None:
    """Download a benchmark into the cache (checksum-checked), or install it from --path."""
    from gpt4llm.eval import benchmarks as b

    typer.echo(f"{name}: {b.download(name, path)}")


human_app = typer.Typer(no_args_is_help=True, help="The paper's human evaluation (HHH) on a local web page.")
eval_app.add_typer(human_app, name="human")


@human_app.command("serve")
def human_serve(
    pairs: Annotated[str, typer.Option("--pairs", "-p", help="JSONL rows {id, instruction, input, a: {model, text}, b: {model, text}}.")],
    db: Annotated[Path, typer.Option(help="SQLite file of the judgments (resumable).")] = Path("human_eval.sqlite"),
    annotators: Annotated[int, typer.Option(min=1, help="Access tokens to create; their links are printed.")] = 1,
    host: Annotated[str, typer.Option(help="Bind address (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
) -> None:
    """Serve the annotation page: two anonymized responses, A / B / tie for Helpfulness, Honesty, Harmlessness."""
    import uvicorn

    from gpt4llm.eval import human

    links = human.prepare(db, human.load_pairs(pairs), annotators)
    for name, token in links:
        typer.echo(f"{name}: http://{host}:{port}/login?token={token}")
    uvicorn.run(human.create_app(db), host=host, port=port, log_level="warning")


@human_app.command("results")
def human_results(
    db: Annotated[Path, typer.Option(help="The judgments database.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")] = Path("human_eval"),
) -> None:
    """Win / lose / tie per criterion, Fleiss' kappa, and the paper's three pie charts."""
    from gpt4llm.eval import human

    r = human.results(db, output_dir)
    for title, c in r.per_criterion.items():
        k = r.agreement[title]["fleiss_kappa"]
        typer.echo(f"{title:<13} win {c['win_percent']:5.1f}%  lose {c['lose_percent']:5.1f}%  tie {c['tie_percent']:5.1f}%  "
                   f"(n={c['n']}; Fleiss' kappa {'n/a' if k is None else f'{k:.3f}'})")
    typer.echo(f"{r.judgments} judgments by {r.annotators} annotators; wrote {output_dir}/human_eval.json and "
               + ", ".join(map(str, r.figure)))


@app.command()
def stats(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")],
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Alpaca records (e.g. the teacher's answers); optional with --scores.")] = None,
    compare: Annotated[Optional[str], typer.Option(help="A second dataset shown beside the first (the paper: GPT-3's answers).")] = None,
    scores: Annotated[Optional[str], typer.Option(help="JSON dict of comparison score lists per source (cmp_data_scores.json).")] = None,
    field: Annotated[str, typer.Option(help="instruction or output: the text parsed for verb-noun pairs.")] = "instruction",
    spacy_model: Annotated[str, typer.Option(help="Any installed spaCy pipeline (auto: en_core_web_md, else a small one).")] = "auto",
    n_process: Annotated[int, typer.Option(min=1, help="spaCy worker processes.")] = 1,
    names: Annotated[str, typer.Option(help="Comma-separated names of the two datasets.")] = "data,compare",
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
) -> None:
    """The paper's data statistics: verb-noun pairs, sunburst, output lengths, score distributions."""
    from gpt4llm import stats as stage

    n = tuple(names.split(",", 1)) if "," in names else (names, "compare")
    r = stage.run(stage.StatsConfig(data=data, output_dir=output_dir, compare=compare, scores=scores, field=field,
                                    spacy_model=spacy_model, n_process=n_process, names=n, limit=limit))
    for name, v in r.numbers.items():
        if name == "scores":
            typer.echo(report_text(v))
        else:
            top = ", ".join(f"{a} {b} ({c})" for a, b, c in v["top_pairs"][:5])
            typer.echo(f"{name}: {v['records']} records, {v['with_pair']} with a verb-noun pair, {v['unique_pairs']} unique; top: {top}")
    typer.echo("wrote " + ", ".join(str(p) for p in r.files))


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="local:NAME|PATH (a gpt4llm checkpoint uses its saved template).")] = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Bind address (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    api_key: Annotated[Optional[str], typer.Option(help="Require 'Authorization: Bearer KEY' on every /v1 request.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Max requests per batched generate.")] = 16,
    max_wait_ms: Annotated[float, typer.Option(min=0.0, help="How long to wait for more requests to batch.")] = 10.0,
    served_name: Annotated[Optional[str], typer.Option(help="The model name clients use (default: the model's name).")] = None,
) -> None:
    """An OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models) batching concurrent callers."""
    import uvicorn

    from gpt4llm import serve as stage
    from gpt4llm.backends import parse_model
    from gpt4llm.backends.local import load_model

    spec = parse_model(model, "--model")
    if spec.backend != "local":
        from gpt4llm.errors import UserError

        raise UserError(f"--model {model}: serve runs local models; use local:NAME|PATH")
    load_model(spec.name)  # fail before binding, with one line, if the model cannot load
    app = stage.create_app(model, api_key=api_key, batch_size=batch_size, max_wait_ms=max_wait_ms, served_name=served_name)
    typer.echo(f"serving {served_name or Path(spec.name).name} on http://{host}:{port}/v1", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@app.command()
def translate(
    output: Annotated[Path, typer.Option("--output", "-o")],
    to: Annotated[str, typer.Option("--to", help="Target language: a code (zh) or a name.")] = "zh",
    input: Annotated[str, typer.Option("--input", "-i", help="Alpaca records (instruction and input are translated).")] = "seeds",
    translator: Annotated[str, typer.Option("--translator", "-m", help="The model that translates.")] = DEFAULT_MODEL,
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
    shard: Annotated[Optional[str], typer.Option(help="i/n: this host's 1/n of the input.")] = None,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    journal: Annotated[Optional[Path], typer.Option()] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
    base_url: Annotated[Optional[str], typer.Option()] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    quiet: Quiet = False,
) -> None:
    """Translate instructions and inputs (the paper's Chinese data), keeping code, numbers and placeholders."""
    from gpt4llm import translate as stage
    from gpt4llm.calls import Plan

    s = stage.run(stage.TranslateConfig(output=output, input=input, to=to, translator=translator, limit=limit, shard=shard,
                                        temperature=temperature, journal=journal, dry_run=dry_run, quiet=quiet,
                                        backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url)))
    if isinstance(s, Plan):
        typer.echo(plan_text(s, translator))
        return
    typer.echo("\n".join([f"wrote {s.written} translated records to {s.output}",
                          f"  failed: {s.failed}" + (" (listed in the .errors.jsonl file)" if s.failed else ""),
                          *call_lines(s.calls)]))
    finish_calls("translate", s.calls, s.failed, f"{s.output}.errors.jsonl")


@app.command()
def merge(
    shards: Annotated[list[str], typer.Argument(help="The shard outputs to join.")],
    output: Annotated[Path, typer.Option("--output", "-o")],
    input: Annotated[Optional[str], typer.Option("--input", "-i", help="The original input, to restore its order.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="jsonl (default), json or parquet.")] = None,
) -> None:
    """Join the outputs of --shard i/n runs (ids must agree; input order with --input)."""
    from gpt4llm import merge as stage

    r = stage.run(shards, output, input, format)
    typer.echo(f"merged {r['shards']} shards: {r['records']} records to {output}" + (f", {r['errors']} errors" if r["errors"] else ""))


@app.command("self-instruct")
def self_instruct(
    output: Annotated[Path, typer.Option("--output", "-o")],
    num: Annotated[int, typer.Option(min=1, help="New instructions to keep.")] = 100,
    seeds: Annotated[str, typer.Option(help="Seed tasks (Alpaca records); 'seeds' = the bundled 40.")] = "seeds",
    teacher: Annotated[str, typer.Option("--teacher", "-m")] = DEFAULT_MODEL,
    tasks_per_prompt: Annotated[int, typer.Option(min=1)] = 20,
    max_rounds: Annotated[int, typer.Option(min=1, help="Stop after this many prompts even if --num is not reached.")] = 50,
    max_tokens: Annotated[int, typer.Option(min=1)] = 1024,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling of examples per round (with the shard: deterministic).")] = 0,
    shard: Annotated[Optional[str], typer.Option(help="i/n: this host's stream of rounds.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes for the ROUGE-L check of large pools.")] = 1,
    journal: Annotated[Optional[Path], typer.Option()] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
    base_url: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """New instructions from seed tasks, with Alpaca's filters and the ROUGE-L < 0.7 rule."""
    from gpt4llm import self_instruct as stage
    from gpt4llm.backends.base import GenParams

    r = stage.run(stage.SelfInstructConfig(
        output=output, seeds=seeds, num=num, teacher=teacher, tasks_per_prompt=tasks_per_prompt, max_rounds=max_rounds,
        seed=seed, shard=shard, workers=workers, journal=journal,
        params=GenParams(temperature=temperature, top_p=1.0, max_tokens=max_tokens),
        backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url)))
    typer.echo(f"kept {r['kept']} of {r['target']} new instructions in {r['rounds']} rounds ({r['calls']} model calls); wrote {output}")
    for why, n in sorted(r["rejected"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  rejected: {why}: {n}")
    if r["call_failures"]:
        from gpt4llm.errors import PartialFailure

        raise PartialFailure(f"self-instruct: {r['call_failures']} of {r['rounds']} rounds' model calls failed; run the "
                             "same command again to retry them (rounds that succeeded are not repeated)")


@app.command("run")
def run_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file (see configs/quickstart.yaml, configs/paper.yaml).")],
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Where the study goes (default: the file's output_dir, else runs/NAME).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, request counts and the cost estimate; run nothing.")] = False,
    quiet: Quiet = False,
) -> None:
    """The whole study from one file: generate, compare, train sft/rm, answer, rank, judge, rouge, stats, report."""
    from gpt4llm.pipeline import run as pipeline_run

    result = pipeline_run.run(pipeline, output_dir, dry_run=dry_run, quiet=quiet)
    if dry_run:
        from gpt4llm.pipeline.plan import plan_table

        typer.echo(plan_table(result))
        return
    out = Path(result["output_dir"])
    j = (result["results"].get("judge") or {}).get("summaries") or {}
    for name, s in j.items():
        typer.echo(judge_text(name, s))
    typer.echo(f"report: {out / 'report.html'}\nresults: {out / 'results.json'}")


plots_app = typer.Typer(no_args_is_help=True, help="Figures.")
app.add_typer(plots_app, name="plots")


@plots_app.command("paper")
def plots_paper(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")] = Path("paper_figures"),
) -> None:
    """Redraw the paper's figures from its published numbers (judge, ranking groups, Chinese, ROUGE, HHH)."""
    from gpt4llm import plots

    figs = plots.paper_figures(output_dir)
    for name, paths in figs.items():
        typer.echo(f"{name}: " + ", ".join(map(str, paths)))
    typer.echo(f"source: {plots.paper_numbers()['source']}")


def main() -> None:
    debug = "--debug" in sys.argv[1:] or os.environ.get("GPT4LLM_DEBUG") == "1"
    if debug:
        sys.argv = [a for a in sys.argv if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # library chatter (hub retries, load reports) would bury our one-line errors
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("huggingface_hub", "datasets", "transformers", "httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from gpt4llm.errors import PartialFailure, UserError, missing_dependency

    try:
        app()
    except (UserError, PartialFailure) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:
        if debug:
            raise
        print(f"error: {missing_dependency(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue (finished calls are journaled)", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
