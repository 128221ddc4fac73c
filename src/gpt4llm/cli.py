"""The ``gpt4llm`` command: wiring and output only. Each command's options come from its stage's
settings class (``gpt4llm.settings.command``); what it prints comes from ``gpt4llm.summaries``.

Errors: bad input prints one line and exits 2 (3 for a reached budget, 1 for failed calls);
``--debug`` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from gpt4llm import __version__
from gpt4llm.settings import group, lazy_group_class, register
from gpt4llm.summaries import (answer_text, compare_text, dpo_text, export_text, finish_calls, generate_text,
                                human_results_text, judge_run_text, judge_text, plan_text, report_text, rm_text,
                                rouge_text, sft_text, stats_text, translate_text)

# Commands are made on first use (gpt4llm.settings.register): `gpt4llm --help` imports no stage.
# Plain help pages (rich_markup_mode None): click's layout, and no rich to import before they print.
app = typer.Typer(cls=lazy_group_class(), add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Instruction tuning with a teacher LLM, as in 'Instruction Tuning with GPT-4'.")


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


@register("generate", "gpt4llm.generate:GenerateSettings")
def generate(cfg: GenerateSettings) -> None:
    """Answer instructions with a teacher model (the paper's Algorithm 1)."""
    from gpt4llm import generate as stage
    from gpt4llm.calls import Plan

    s = stage.run(cfg)
    if isinstance(s, Plan):
        return typer.echo(plan_text(s, cfg.teacher))
    typer.echo(generate_text(s))
    finish_calls("generate", s.calls, s.failed, s.errors_file, not_run=s.not_run)


@register("translate", "gpt4llm.translate:TranslateSettings")
def translate(cfg: TranslateSettings) -> None:
    """Translate instructions and inputs (the paper's Chinese data), keeping code, numbers and placeholders."""
    from gpt4llm import translate as stage
    from gpt4llm.calls import Plan

    s = stage.run(cfg)
    if isinstance(s, Plan):
        return typer.echo(plan_text(s, cfg.translator))
    typer.echo(translate_text(s))
    finish_calls("translate", s.calls, s.failed, None, output=s.output, what="records (failed calls or lost spans)")


@register("self-instruct", "gpt4llm.self_instruct:SelfInstructSettings")
def self_instruct(cfg: SelfInstructSettings) -> None:
    """New instructions from seed tasks, with Alpaca's filters and the ROUGE-L < 0.7 rule."""
    from gpt4llm import self_instruct as stage

    r = stage.run(cfg)
    typer.echo(f"kept {r['kept']} of {r['target']} new instructions in {r['rounds']} rounds ({r['calls']} model calls); "
               f"wrote {cfg.output}")
    for why, n in sorted(r["rejected"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  rejected: {why}: {n}")
    if r["call_failures"]:
        finish_calls("self-instruct", None, r["call_failures"], "the journal", what=f"of {r['rounds']} rounds' calls")


@register("merge", "gpt4llm.merge:MergeSettings")
def merge(cfg: MergeSettings) -> None:
    """Join the outputs of --shard i/n runs (ids must agree; input order with --input)."""
    from gpt4llm import merge as stage

    r = stage.run(cfg)
    typer.echo(f"merged {r['shards']} shards: {r['records']} records to {cfg.output}"
               + (f", {r['errors']} errors" if r["errors"] else ""))


@register("clean", "gpt4llm.clean:CleanSettings")
def clean(cfg: CleanSettings) -> None:
    """Drop duplicates, benchmark prompts and bad answers (empty, cut, refusals, wrong language, copies); each removal listed."""
    from gpt4llm import clean as stage

    typer.echo(stage.summary_text(stage.run(cfg)))


group("train", "Train the student (sft, dpo, iterate) or the reward model (rm).")


@register("train sft", "gpt4llm.train.sft:SFTSettings")
def train_sft(cfg: SFTSettings) -> None:
    """Fine-tune a student on the teacher's answers with the Alpaca recipe."""
    from gpt4llm.train import sft

    typer.echo(sft_text(sft.run(cfg), cfg.dry_run))


@register("train rm", "gpt4llm.train.reward:RMSettings")
def train_rm(cfg: RMSettings) -> None:
    """Train a reward model K-wise on scored comparisons (each response encoded once per step)."""
    from gpt4llm.train import reward

    typer.echo(rm_text(reward.run(cfg), cfg.dry_run))


@register("train dpo", "gpt4llm.train.dpo:DPOSettings")
def train_dpo(cfg: DPOSettings) -> None:
    """Train the student on scored comparisons directly: DPO on best vs worst, on all pairs, or Plackett-Luce."""
    from gpt4llm.train import dpo

    typer.echo(dpo_text(dpo.run(cfg), cfg.dry_run))


@register("train iterate", "gpt4llm.train.iterate:IterateSettings")
def train_iterate(cfg: IterateSettings) -> None:
    """Improve the student with its own samples scored by a reward model: best-of-N distillation or iterative DPO."""
    from gpt4llm.train import iterate

    typer.echo(iterate.summary_text(iterate.run(cfg)))


@register("answer", "gpt4llm.eval.answer:AnswerSettings")
def answer(cfg: AnswerSettings) -> None:
    """Answer a question set with a model, N samples per question if asked (FastChat answer format)."""
    from gpt4llm.calls import Plan
    from gpt4llm.eval import answer as stage

    s = stage.run(cfg)
    if isinstance(s, Plan):
        return typer.echo(plan_text(s, cfg.model))
    typer.echo(answer_text(s))
    finish_calls("answer", s.calls, s.failed, None, output=s.output)


@register("compare", "gpt4llm.compare:CompareSettings", callback=True)
def compare(ctx: typer.Context, cfg: CompareSettings) -> None:
    """Score each response on its own, 1-10, with the paper's rating prompt; write v2 + a quality report."""
    from gpt4llm import compare_panel as stage

    s = stage.run(cfg)
    typer.echo(compare_text(s))
    finish_calls("compare", s.calls, s.call_failures, None, output=s.output)


@register("compare export", "gpt4llm.pairs:ExportSettings")
def compare_export(cfg: ExportSettings) -> None:
    """All C(K,2) preference pairs with s_l < s_h; ties and identical texts give no pair (counted)."""
    from gpt4llm import pairs

    typer.echo(export_text(pairs.export(cfg.input, cfg.to, cfg.output), cfg.output))


@register("compare report", "gpt4llm.compare:ReportSettings")
def compare_report(cfg: ReportSettings) -> None:
    """The quality report and score-KDE figure of a comparison file or a dict of score lists."""
    from gpt4llm import compare as stage

    report, files = stage.report(cfg)
    typer.echo(report_text(report))
    typer.echo("wrote " + ", ".join(map(str, files)))


@register("rank", "gpt4llm.eval.rank:RankSettings")
def rank(cfg: RankSettings) -> None:
    """Score sampled answers with a reward model: reward and rank per answer, best-of-N, ranking groups."""
    from gpt4llm.eval import rank as stage

    s = stage.run(cfg)
    typer.echo(f"ranked {s['answers']} answers to {s['questions']} questions ({s['samples_per_question']} per question); "
               f"wrote {s['written']} to {cfg.output}")


group("eval", "Evaluate as the paper did: LLM judge, ROUGE by length, human HHH.")


@register("eval judge", "gpt4llm.eval.judge:JudgeSettings")
def eval_judge(cfg: JudgeSettings) -> None:
    """Judge answers against a reference with Vicuna's reviewer; the paper's score sums and ratio."""
    from pathlib import Path

    from gpt4llm.eval import judge as one, panel as stage
    from gpt4llm.io import write_json

    if cfg.import_reviews:
        s = one.import_reviews(cfg.import_reviews, cfg.questions)
        write_json(Path(f"{cfg.output}.summary.json"), {"models": {Path(cfg.import_reviews).stem: s}})
        return typer.echo(judge_text(Path(cfg.import_reviews).stem, s))
    s = stage.run(cfg)
    typer.echo(judge_run_text(s))
    finish_calls("eval judge", s.calls, s.call_failures, None, output=s.output)


@register("eval leaderboard", "gpt4llm.eval.leaderboard:LeaderboardSettings")
def eval_leaderboard(cfg: LeaderboardSettings) -> None:
    """One table of many models from pairwise judgments: raw and length-controlled win rates, Bradley-Terry with CIs."""
    from gpt4llm.eval import leaderboard

    typer.echo(leaderboard.table_text(leaderboard.run(cfg)))


@register("eval agreement", "gpt4llm.eval.agreement:AgreementSettings")
def eval_agreement(cfg: AgreementSettings) -> None:
    """The LLM judge against the eval human page: agreement, Cohen's kappa, confusion, position consistency."""
    from gpt4llm.eval import agreement

    typer.echo(agreement.agreement_text(agreement.run(cfg)))


@register("eval rouge", "gpt4llm.eval.rouge:RougeSettings")
def eval_rouge(cfg: RougeSettings) -> None:
    """ROUGE-1/2/L F of answers against the ground truth, by ground-truth length (0-2, 3-5, 6-10, >10, all)."""
    from gpt4llm.eval import rouge as stage

    typer.echo(rouge_text(stage.run(cfg), cfg.output))


group("benchmarks", "Named benchmarks and the paper's released datasets (list, download).")


@register("benchmarks list")
def benchmarks_list() -> None:
    """The named benchmarks and datasets, and whether each is in the cache."""
    from gpt4llm.eval import benchmarks as b

    for x in b.BENCHMARKS.values():
        here = (b.cache_dir() / x.filename).is_file()
        typer.echo(f"{x.name:<24} {x.kind:<10} {'cached' if here else 'not cached':<11} {x.description}")


@register("benchmarks download", "gpt4llm.eval.benchmarks:DownloadSettings")
def benchmarks_download(cfg: DownloadSettings) -> None:
    """Download a benchmark into the cache (checksum-checked), or install it from --path."""
    from gpt4llm.eval import benchmarks as b

    typer.echo(f"{cfg.name}: {b.download(cfg.name, cfg.path, verify=not cfg.no_verify)}"
               + (" (unverified: not the canonical file)" if cfg.no_verify else ""))


group("eval human", "The paper's human evaluation (HHH) on a local web page.")


@register("eval human serve", "gpt4llm.eval.human:ServeSettings")
def human_serve(cfg: HumanServeSettings) -> None:
    """Serve the annotation page: two anonymized responses, A / B / tie for Helpfulness, Honesty, Harmlessness."""
    from gpt4llm.eval import human

    human.serve(cfg, lambda name, link: typer.echo(f"{name}: {link}"))


@register("eval human results", "gpt4llm.eval.human:ResultsSettings")
def human_results(cfg: ResultsSettings) -> None:
    """Win / lose / tie per criterion, Fleiss' kappa, and the paper's three pie charts."""
    from gpt4llm.eval import human

    typer.echo(human_results_text(human.results(cfg.db, cfg.output_dir), cfg.output_dir))


@register("publish", "gpt4llm.publish.settings:PublishSettings")
def publish(cfg: PublishSettings) -> None:
    """Parquet + dataset card (datasets.load_dataset reads it) or a model card beside the weights; --push-to-hub uploads."""
    from gpt4llm.publish import build

    r = build.run(cfg)
    for c in r.configs:
        typer.echo(f"dataset config {c['name']}: {c['rows']} rows in {len(c['files'])} Parquet file(s)")
    for m in r.models:
        typer.echo(f"model {m['name']}: {len(m['files'])} files and its card in {m['path']}")
    for s in r.skipped:
        typer.echo(f"skipped {s}")
    typer.echo(f"wrote {r.out} (card: {r.out / 'README.md'})" + "".join(f"\npushed: {u}" for u in r.pushed))


@register("stats", "gpt4llm.stats:StatsSettings")
def stats(cfg: StatsSettings) -> None:
    """The paper's data statistics: verb-noun pairs, sunburst, output lengths, score distributions."""
    from gpt4llm import stats as stage

    typer.echo(stats_text(stage.run(cfg)))


@register("serve", "gpt4llm.serve:ServeSettings")
def serve(cfg: ServeSettings) -> None:
    """An OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models) batching concurrent callers."""
    from gpt4llm import serve as stage

    stage.run(cfg, lambda name: typer.echo(f"serving {name} on http://{cfg.host}:{cfg.port}/v1", err=True))


@register("run", "gpt4llm.pipeline:RunSettings")
def run_pipeline(cfg: RunSettings) -> None:
    """The whole study from one file: generate, compare, train sft/rm, answer, rank, judge, rouge, stats, report."""
    from pathlib import Path

    from gpt4llm.pipeline import run as pipeline_run

    result = pipeline_run.run(cfg)
    if cfg.dry_run:
        from gpt4llm.pipeline.plan import plan_table

        return typer.echo(plan_table(result))
    out = Path(result["output_dir"])
    for name, s in ((result["results"].get("judge") or {}).get("summaries") or {}).items():
        typer.echo(judge_text(name, s))
    typer.echo(f"report: {out / 'report.html'}\nresults: {out / 'results.json'}")


group("plots", "Figures.")


@register("plots paper", "gpt4llm.plots:PaperFiguresSettings")
def plots_paper(cfg: PaperFiguresSettings) -> None:
    """Redraw the paper's figures from its published numbers (judge, ranking groups, Chinese, ROUGE, HHH)."""
    from gpt4llm import plots

    for name, paths in plots.paper_figures(cfg.output_dir).items():
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
    from gpt4llm.errors import run_main

    sys.exit(run_main(lambda: app(standalone_mode=False), debug))
