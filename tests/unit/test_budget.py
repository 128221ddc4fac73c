"""``Budget``: the cap is never passed in any interleaving, and the job stops only when nothing is
in flight and the next request's worst case does not fit (issue 12)."""

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt4llm.backends.pricing import Budget
from gpt4llm.errors import UserError


async def _job(budget: Budget, requests: list[tuple[float, float, float]], concurrency: int, seed: int):
    """Workers take requests (worst case, real cost <= worst, latency) in order, as OpenAIBackend does."""
    rng = random.Random(seed)
    queue = list(requests)
    log = {"sent": 0, "refused": [], "peak": 0.0, "stop": None}

    async def worker():
        while queue:
            worst, actual, latency = queue.pop(0)
            if not await budget.acquire(worst):
                if log["stop"] is None:  # the request that stopped the job: it did not fit with nothing in flight
                    log["stop"] = (worst, budget.spent, budget.in_flight)
                log["refused"].append(worst)
                continue
            log["peak"] = max(log["peak"], budget.spent + budget.reserved)
            log["sent"] += 1
            await asyncio.sleep(latency * rng.random())
            await budget.release(worst, actual)
            log["peak"] = max(log["peak"], budget.spent + budget.reserved)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return log


request = st.tuples(st.floats(0.001, 0.05), st.floats(0.0, 1.0), st.floats(0.0, 0.004)).map(
    lambda t: (t[0], t[0] * t[1], t[2]))  # (worst, actual = a share of worst, latency)


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(request, min_size=1, max_size=60), cap=st.floats(0.01, 1.0),
       concurrency=st.integers(1, 8), seed=st.integers(0, 10_000), spent=st.floats(0.0, 0.2))
def test_the_cap_is_never_passed_and_the_stop_is_forced(requests, cap, concurrency, seed, spent):
    budget = Budget(cap, spent=min(spent, cap))
    log = asyncio.run(_job(budget, requests, concurrency, seed))
    assert budget.spent <= cap + 1e-12 and log["peak"] <= cap + 1e-12
    assert budget.in_flight == 0 and budget.reserved == pytest.approx(0.0, abs=1e-12)
    assert log["sent"] + len(log["refused"]) == len(requests)
    if log["refused"]:
        worst, spent_then, in_flight = log["stop"]
        assert in_flight == 0 and spent_then + worst > cap  # stopped only when it could not fit
        assert budget.reached
    else:
        assert not budget.reached


def test_the_case_of_the_issue_uses_most_of_the_cap():
    # 4 in flight, each reserving its worst case $0.013 and really costing $0.0025: the old rule
    # stopped at the first refused reservation, after about 18 calls ($0.045 of $0.10).
    budget = Budget(0.10)
    log = asyncio.run(_job(budget, [(0.013, 0.0025, 0.002)] * 100, concurrency=4, seed=1))
    assert budget.spent <= 0.10 and budget.spent >= 0.75 * 0.10 and log["sent"] == int(budget.spent / 0.0025 + 0.5)


def test_a_budget_must_be_a_positive_number():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(UserError, match="must be a positive number of dollars"):
            Budget(bad)
