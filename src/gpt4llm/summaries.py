"""What the commands print: summaries of calls, dry-run plans, comparison reports and judge tables,
and how a command ends when calls failed or the budget ran out."""

from __future__ import annotations

from gpt4llm.errors import BudgetExceeded, PartialFailure


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


def finish_calls(stage: str, calls, failed: int, errors_file, not_run: int | None = None,
                 what: str = "model calls", output=None) -> None:
    """Exit 3 when the budget stopped the job, 1 when calls failed (after the summary is printed);
    the errors file is given, or the one beside ``output``."""
    if errors_file is None and output is not None:
        from gpt4llm.stage import errors_path

        errors_file = errors_path(output)
    if calls is not None and calls.budget_reached:
        left = f"; {not_run} records not sent" if not_run else ""
        raise BudgetExceeded(f"{stage}: budget reached: ${calls.cost_usd or 0:,.4f} of --max-usd {calls.max_usd:g} "
                             f"spent{left}; re-run with a higher --max-usd to continue (paid calls are journaled)")
    if failed:
        raise PartialFailure(f"{stage}: {failed} {what} failed (listed in {errors_file}); run the same command "
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


def generate_text(s) -> str:
    return "\n".join([f"wrote {s.written} records to {s.output}",
                      f"  truncated at max_tokens: {s.truncated}" + (f" (dropped {s.dropped_truncated})" if s.dropped_truncated
                                                                     else " (kept, meta.finish_reason='length')"),
                      f"  failed: {s.failed}" + (f" (listed in {s.errors_file}; re-run to retry)" if s.failed else ""),
                      *call_lines(s.calls)])


def sft_text(r, dry_run: bool) -> str:
    st = r.stats
    lines = [f"first training example:\n{r.first_example}\n",
             f"data: {st.examples} examples of {st.records} records, {st.tokens:,} tokens ({st.target_tokens:,} trained), "
             f"truncated {st.truncated}, skipped {st.skipped_overlong + st.skipped_no_target}, "
             f"padding share {st.padding_share:.1%}, boundary merges handled {st.boundary_merges}",
             f"effective batch {r.effective_batch}"]
    if getattr(r, "held_out", 0):
        lines.append(f"held out: {r.held_out} examples (--eval-split), not trained on")
    if not dry_run:
        lines.append(f"trained {r.steps} steps in {r.seconds:.1f} s, mean loss {r.train_loss:.4f}; saved to {r.output_dir}")
        if r.eval_loss is not None:
            lines.append(f"held-out loss {r.eval_loss:.4f} on {r.held_out} examples")
    return "\n".join(lines)


def rm_text(r, dry_run: bool) -> str:
    lines = [f"data: {r.groups} prompts, {r.pairs} pairs (ties {r.ties} give none), truncated {r.truncated}; "
             f"effective batch {r.effective_batch}"]
    if m := r.metrics:
        lines.append(f"held out: pairwise accuracy {m['pairwise_accuracy']:.3f} on {m['pairs']} pairs "
                     f"({m['ties_excluded']} ties excluded), Spearman {m['spearman']:.3f}, mean reward gap "
                     f"{m['reward_gap_mean']:.3f}")
    if not dry_run:
        lines.append(f"trained {r.steps} steps in {r.seconds:.1f} s; saved to {r.output_dir}")
    return "\n".join(lines)


def rouge_text(r: dict, output) -> str:
    lines = [f"{'model':<24} {'length':>7} {'N':>6} {'rouge1':>7} {'rouge2':>7} {'rougeL':>7}"]
    for row in r["table"]:
        vals = " ".join(f"{row[m]:7.4f}" if row[m] is not None else "      -" for m in ("rouge1", "rouge2", "rougeL"))
        lines.append(f"{row['Model'][:24]:<24} {row['Length']:>7} {row['NumInstance']:>6} {vals}")
    lines.append(f"wrote {output} and " + ", ".join(map(str, r["figure"])))
    return "\n".join(lines)


def stats_text(r) -> str:
    lines = []
    for name, v in r.numbers.items():
        if name == "scores":
            lines.append(report_text(v))
        else:
            top = ", ".join(f"{a} {b} ({c})" for a, b, c in v["top_pairs"][:5])
            lines.append(f"{name}: {v['records']} records, {v['with_pair']} with a verb-noun pair, {v['unique_pairs']} "
                         f"unique; top: {top}")
    lines.append("wrote " + ", ".join(str(p) for p in r.files))
    return "\n".join(lines)


def human_results_text(r, output_dir) -> str:
    lines = []
    for title, c in r.per_criterion.items():
        k = r.agreement[title]["fleiss_kappa"]
        lines.append(f"{title:<13} win {c['win_percent']:5.1f}%  lose {c['lose_percent']:5.1f}%  tie {c['tie_percent']:5.1f}%  "
                     f"(n={c['n']}; Fleiss' kappa {'n/a' if k is None else f'{k:.3f}'})")
    lines.append(f"{r.judgments} judgments by {r.annotators} annotators; wrote {output_dir}/human_eval.json and "
                 + ", ".join(map(str, r.figure)))
    return "\n".join(lines)


def single_text(model_id: str, s: dict) -> str:
    """One model's single-answer grades: the mean (FastChat's "Average") with its interval, per turn
    and per category."""
    def mean(v):
        return "n/a" if v.get("mean") is None else f"{v['mean']:.2f}" + (
            f" [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]" if v.get("ci95") else "")

    score = "n/a" if s["score"] is None else f"{s['score']:.2f}" + (f" (95% CI {s['ci95'][0]:.2f}-{s['ci95'][1]:.2f})"
                                                                    if s.get("ci95") else "")
    lines = [f"{model_id}: {score} over {s['scored']} of {s['judged']} grades ({s['questions']} questions); "
             f"parse failures {s['parse_failures']}; call failures {s['call_failures']}",
             "  turns: " + "; ".join(f"{t}: {mean(v)}" for t, v in s["turns"].items()),
             "  categories: " + "; ".join(f"{c} {mean(v)}" for c, v in s["categories"].items())]
    if (s.get("reliability") or {}).get("unreliable"):
        lines.append(f"  UNRELIABLE JUDGE: {'; '.join(s['reliability']['reasons'])}")
    return "\n".join(lines)


def judge_run_text(s) -> str:
    single = any(v.get("mode") == "single" for v in s.summaries.values())
    lines = []
    panel = getattr(s, "panel", None)  # single-answer grades have no panel
    panel = panel if panel and not panel.get("incomplete") else None
    if panel:
        for judge, per in panel["per_judge"].items():
            lines.append(f"judge {judge} ({panel['files'][judge]}): {panel['fingerprints'].get(judge) or ''}")
            lines += ["  " + x for model_id, summary in per.items() for x in judge_text(model_id, summary).splitlines()]
        lines.append(panel_agreement_text(panel["agreement"]))
        lines.append(f"panel verdict ({panel['verdict']} of {len(panel['judges'])} judges):")
    lines += [(single_text if single else judge_text)(model_id, summary) for model_id, summary in s.summaries.items()]
    if not panel and s.summaries:
        fp = next(iter(s.summaries.values())).get("judge_fingerprint")
        if fp:
            lines.append(f"  judge fingerprint: {fp}")
    for f in getattr(s, "self_preference", None) or []:
        rates = ", ".join(f"{j} {'n/a' if r is None else f'{r:.1f}%'}" for j, r in f["win_rate_by_judge"].items())
        lines.append(f"  SELF-PREFERENCE RISK: judge {f['judge']} and {f['role']} {f['model']} ({f['reason']}); "
                     f"{f['model']}'s win rate by judge: {rates}")
    lines.append(f"wrote {'grades' if single else 'reviews'} to {s.output}, summary to {s.output}.summary.json, chart "
                 + ", ".join(map(str, s.figure)))
    if s.calls is not None:
        lines += call_lines(s.calls)
    if s.asked is not None and s.asked.reasks:
        cost = "" if not s.asked.reask_cost_usd else f", ${s.asked.reask_cost_usd:,.4f}"
        lines.append(f"  follow-ups: {s.asked.reasks} (read {s.asked.rescued} verdicts{cost})")
    return "\n".join(lines)


def panel_agreement_text(a: dict) -> str:
    """The judges' agreement with each other: one line per pair, then Fleiss' kappa."""
    def k(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["agreement between judges (win/tie/loss per question and order):"]
    for p in a["pairs"]:
        agree = "n/a" if p["agreement"] is None else f"{100 * p['agreement']:.1f}%"
        lines.append(f"  {p['judges'][0]} vs {p['judges'][1]}: {agree} agree, Cohen's kappa {k(p['kappa'])} "
                     f"over {p['items']} items")
    lines.append(f"  all judges: Fleiss' kappa {k(a['fleiss_kappa'])} over {a['items_all_judges']} items")
    return "\n".join(lines)


def translate_text(s) -> str:
    return "\n".join([f"wrote {s.written} translated records to {s.output}",
                      f"  failed: {s.failed}" + (" (listed in the .errors.jsonl file)" if s.failed else ""),
                      *call_lines(s.calls)])


def answer_text(s) -> str:
    return "\n".join([f"wrote {s.written} answers to {s.output} (template: {s.template})",
                      f"  failed: {s.failed}" + (" (listed in the .errors.jsonl file; re-run to retry)" if s.failed else ""),
                      *call_lines(s.calls)])


def compare_text(s) -> str:
    lines = []
    panel = s.panel if s.panel and not s.panel.get("incomplete") else None
    if panel:
        for judge, rep in panel["per_judge"].items():
            lines += [f"judge {judge} ({panel['files'][judge]}): {rep.get('judge_fingerprint') or ''}",
                      *("  " + x for x in report_text(rep).splitlines())]
        lines.append("agreement between judges (scores of the same responses; order of two responses of a prompt):")
        for p in panel["agreement"]["pairs"]:
            def f(v, spec=".3f"):
                return "n/a" if v is None else format(v, spec)
            lines.append(f"  {p['judges'][0]} vs {p['judges'][1]}: Spearman {f(p['spearman'])}, mean |difference| "
                         f"{f(p['mean_abs_diff'], '.2f')} over {p['responses']} responses; same order "
                         f"{f(None if p['order_agreement'] is None else 100 * p['order_agreement'], '.1f')}%, Cohen's kappa "
                         f"{f(p['order_kappa'])} over {p['response_pairs']} pairs")
        lines.append(f"panel (mean of {len(panel['judges'])} judges' scores):")
    lines.append(report_text(s.report))
    if not panel and s.report.get("judge_fingerprint"):
        lines.append(f"judge fingerprint: {s.report['judge_fingerprint']}")
    for f in s.report.get("self_preference") or []:
        means = ", ".join(f"{j} {'n/a' if m is None else f'{m:.2f}'}" for j, m in f["mean_score_by_judge"].items())
        lines.append(f"SELF-PREFERENCE RISK: judge {f['judge']} and source {f['model']} ({f['reason']}); its mean score "
                     f"by judge: {means}")
    lines.append(f"wrote {s.written} comparisons to {s.output}; report {s.output}.report.json; figure "
                 + ", ".join(str(p) for p in s.figure))
    return "\n".join(lines + (call_lines(s.calls) if s.calls is not None else []))


def dpo_text(r, dry_run: bool) -> str:
    st = r.stats
    lines = [f"data: {st['groups']} prompts, {st['responses']} responses, {st['pairs']} scored pairs "
             f"({st['best_worst_pairs']} best-vs-worst); {st['tokens']:,} tokens ({st['target_tokens']:,} trained); "
             f"left out: {st['all_tied']} all tied, {st['fewer_than_2']} with fewer than 2 responses; truncated "
             f"{st['truncated']}; held out {st['held_out_prompts']} prompts",
             f"template: {r.template} ({st['template_source']}); effective batch {r.effective_batch}"]
    if not dry_run:
        m = r.metrics
        if m:
            lines.append(f"held out: preference accuracy {m['eval_preference_accuracy']:.3f} on {m['eval_pairs']} pairs, "
                         f"reward margin {m['eval_reward_margin']:.4f}, log-probs chosen {m['eval_logps_chosen']:.2f} / "
                         f"rejected {m['eval_logps_rejected']:.2f}")
        ref = "computed" if r.ref_computed else "read from the cache"
        lines.append(f"trained {r.steps} steps in {r.seconds:.1f} s, mean loss {r.train_loss:.4f} (reference log-probs "
                     f"{ref}); saved to {r.output_dir}")
    return "\n".join(lines)


def export_text(st, output) -> str:
    if st.desirable or st.undesirable:
        n = st.desirable + st.undesirable
        w = st.kto_weights()
        return (f"wrote {n} KTO rows from {st.prompts} prompts to {output}: desirable {st.desirable} "
                f"({st.desirable / n:.1%}), undesirable {st.undesirable} ({st.undesirable / n:.1%}); left out "
                f"{st.equal_to_the_others} equal to the mean of their prompt's others; balance them in KTOConfig with "
                f"desirable_weight={w['desirable_weight']:g}, undesirable_weight={w['undesirable_weight']:g}")
    return (f"wrote {st.pairs} pairs from {st.prompts} prompts to {output}; ties {st.ties}, identical texts "
            f"{st.identical}, prompts without a pair {st.prompts_without_pairs}")
