"""``calls``: the call planner (dry run), the journal split (cached / pending / asked twice), and
the merge of two rounds' stats."""

from gpt4llm.backends import create_backend
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Prices
from gpt4llm.calls import CallStats, assign_keys, plan_calls


def reqs(n, max_tokens=100, sample=0):
    return [Request(params=GenParams(max_tokens=max_tokens), messages=[{"role": "user", "content": "x" * 40 + str(i)}],
                    sample=sample) for i in range(n)]


def test_the_planner_counts_only_what_is_not_journaled_and_prices_it(tmp_path):
    backend = create_backend("openai:gpt-4", api_key="dry")
    rs = reqs(10)
    assign_keys(backend, rs)
    with Journal(tmp_path / "j.sqlite") as j:
        for r in rs[:4]:  # four already answered
            j.record(r.key, "openai", "gpt-4", r.payload(), text="ok")
        j.record(rs[4].key, "openai", "gpt-4", rs[4].payload(), error="HTTP 500")  # a failure is sent again
        plan = plan_calls(backend, j, rs + rs[:2], prices=Prices(30.0, 60.0, "test"), rpm=60, tpm=6000)
    assert (plan.requests, plan.cached, plan.pending) == (10, 4, 6)
    assert plan.max_completion_tokens == 600
    prompt_each = plan.est_prompt_tokens // 6
    assert 10 < prompt_each < 30  # ~4 characters a token, plus chat framing
    low, high = plan.est_cost_usd
    assert low == (plan.est_prompt_tokens * 30) / 1e6 and high == low + 600 * 60 / 1e6
    assert plan.est_minutes == max(6 / 60, (plan.est_prompt_tokens + 600) / 6000)


def test_the_planner_without_a_price_or_limits(tmp_path):
    backend = create_backend("openai:some-model", api_key="dry")
    with Journal(tmp_path / "j.sqlite") as j:
        plan = plan_calls(backend, j, reqs(3))
    assert plan.est_cost_usd is None and plan.est_minutes is None and plan.limits == "no --rpm/--tpm given"


def test_stats_of_two_rounds_add_up():
    a = CallStats(requested=3, cached=1, called=2, ok=3, prompt_tokens=10, completion_tokens=5, cost_usd=0.5,
                  new_cost_usd=0.25, seconds=1.0)
    b = CallStats(requested=1, called=1, ok=0, failed=1, cost_usd=0.0, new_cost_usd=0.0, budget_reached=True, max_usd=2.0)
    m = a.merge(b)
    assert (m.requested, m.cached, m.called, m.ok, m.failed, m.prompt_tokens) == (4, 1, 3, 3, 1, 10)
    assert m.cost_usd == 0.5 and m.budget_reached and m.max_usd == 2.0 and m.seconds == 1.0
    assert a.merge(None) is a
    assert a.merge(CallStats(cost_usd=None, new_cost_usd=None)).cost_usd is None  # an unknown price stays unknown


def test_the_journal_keeps_the_model_id_and_fingerprint_the_endpoint_returned(tmp_path, openai_server):
    """An OpenAI-compatible response names the model that answered (a dated snapshot for "gpt-4o") and
    its serving configuration: both are journaled with the call, and a call whose response names
    neither is journaled with neither (unknown, never guessed)."""
    from gpt4llm.calls import run_calls

    openai_server.served_as = {"gpt-4o": "gpt-4o-2024-08-06"}
    openai_server.system_fingerprint = "fp_f33667828e"
    backend = create_backend("openai:gpt-4o", "--model", base_url=openai_server.url, api_key=openai_server.api_key)
    with Journal(tmp_path / "j.sqlite") as journal:
        stats = run_calls(backend, journal, [Request(GenParams(), messages=[{"role": "user", "content": "hi"}])], quiet=True)
        (e,) = stats.entries.values()
        assert (e.model_returned, e.system_fingerprint) == ("gpt-4o-2024-08-06", "fp_f33667828e")
        openai_server.system_fingerprint = None  # e.g. vLLM: the served name only
        stats = run_calls(backend, journal, [Request(GenParams(), messages=[{"role": "user", "content": "ho"}])], quiet=True)
        (e,) = stats.entries.values()
        assert (e.model_returned, e.system_fingerprint) == ("gpt-4o-2024-08-06", None)
