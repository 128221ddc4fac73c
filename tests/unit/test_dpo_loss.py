"""The DPO losses of ``train dpo`` against direct implementations of their formulas, on random
K-wise batches with ties: ``pairs`` = the naive loop over expanded pairs, ``plackett-luce`` = the
listwise formula with Breslow's ties, ``sigmoid`` = best vs worst; at K = 2 all three agree."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from gpt4llm.train.dpo import dpo_loss, sequence_logps

BETA = 0.1


def batch(seed: int, ks=(3, 4, 2, 5), tie_rate=0.3):
    g = torch.Generator().manual_seed(seed)
    scores, group_of = [], []
    for gi, k in enumerate(ks):
        for _ in range(k):
            s = float(torch.randint(1, 11, (1,), generator=g))
            if scores and group_of[-1] == gi and torch.rand(1, generator=g) < tie_rate:
                s = scores[-1]  # a tie with the previous response of the prompt
            scores.append(s)
            group_of.append(gi)
    n = len(scores)
    policy = torch.randn(n, generator=g, dtype=torch.float64) * 20 - 60
    ref = policy.detach() + torch.randn(n, generator=g, dtype=torch.float64) * 3
    return policy.requires_grad_(), ref, torch.tensor(scores, dtype=torch.float64), torch.tensor(group_of)


def naive_pairs(policy, ref, scores, group_of, margin_weight=0.0):
    terms, weights = [], []
    for g in sorted(set(group_of.tolist())):
        idx = [i for i in range(len(scores)) if group_of[i] == g]
        for a, b in itertools.combinations(idx, 2):
            if scores[a] == scores[b]:
                continue
            h, lo = (a, b) if scores[a] > scores[b] else (b, a)
            z = BETA * ((policy[h] - ref[h]) - (policy[lo] - ref[lo]))
            terms.append(-F.logsigmoid(z))
            weights.append(1 + margin_weight * float(scores[h] - scores[lo]))
    w = torch.tensor(weights, dtype=torch.float64)
    return (torch.stack(terms) * w).sum() / w.sum()


def direct_plackett_luce(policy, ref, scores, group_of):
    """-mean over prompts of sum over responses above the lowest score of r_i - log sum_{s_j <= s_i} exp(r_j)."""
    r = BETA * (policy - ref)
    per_prompt = []
    for g in sorted(set(group_of.tolist())):
        idx = [i for i in range(len(scores)) if group_of[i] == g]
        lowest = min(float(scores[i]) for i in idx)
        total, any_term = 0.0, False
        for i in idx:
            if float(scores[i]) == lowest:
                continue
            choice = [j for j in idx if float(scores[j]) <= float(scores[i])]
            total = total + r[i] - torch.log(sum(torch.exp(r[j]) for j in choice))
            any_term = True
        if any_term:
            per_prompt.append(-total)
    return torch.stack(per_prompt).mean()


def grads(fn, policy):
    policy.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), policy.grad.clone()


@pytest.mark.parametrize("seed", range(8))
def test_pairs_is_the_naive_loop_over_expanded_pairs(seed):
    policy, ref, scores, group_of = batch(seed)
    for mw in (0.0, 0.5):
        ours = grads(lambda: dpo_loss(policy, ref, scores, group_of, BETA, "pairs", mw)[0], policy)
        naive = grads(lambda: naive_pairs(policy, ref, scores, group_of, mw), policy)
        assert torch.allclose(ours[0], naive[0], atol=1e-12) and torch.allclose(ours[1], naive[1], atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_plackett_luce_is_its_formula_with_breslow_ties(seed):
    policy, ref, scores, group_of = batch(seed, tie_rate=0.5)
    ours = grads(lambda: dpo_loss(policy, ref, scores, group_of, BETA, "plackett-luce")[0], policy)
    direct = grads(lambda: direct_plackett_luce(policy, ref, scores, group_of), policy)
    assert torch.allclose(ours[0], direct[0], atol=1e-10) and torch.allclose(ours[1], direct[1], atol=1e-10)


def test_sigmoid_takes_each_prompts_best_against_its_worst():
    policy, ref, scores, group_of = batch(3)
    loss, (h, lo) = dpo_loss(policy, ref, scores, group_of, BETA, "sigmoid")
    expected = []
    for g in sorted(set(group_of.tolist())):
        idx = [i for i in range(len(scores)) if group_of[i] == g]
        best = max(idx, key=lambda i: (scores[i], -i))
        worst = min(idx, key=lambda i: (scores[i], i))
        if scores[best] > scores[worst]:
            expected.append(-F.logsigmoid(BETA * ((policy[best] - ref[best]) - (policy[worst] - ref[worst]))))
    assert len(h) == len(expected) and torch.allclose(loss, torch.stack(expected).mean())


def test_at_k_2_the_three_losses_are_one():
    policy, ref, scores, group_of = batch(5, ks=(2, 2, 2, 2, 2), tie_rate=0.0)
    keep = torch.tensor([scores[2 * i] != scores[2 * i + 1] for i in range(5)]).repeat_interleave(2)
    policy, ref, scores, group_of = policy.detach()[keep].requires_grad_(), ref[keep], scores[keep], group_of[keep]
    losses = [grads(lambda k=k: dpo_loss(policy, ref, scores, group_of, BETA, k)[0], policy) for k in
              ("sigmoid", "pairs", "plackett-luce")]
    for loss, g in losses[1:]:
        assert torch.allclose(loss, losses[0][0], atol=1e-12) and torch.allclose(g, losses[0][1], atol=1e-12)


def test_all_tied_prompts_add_nothing():
    policy = torch.tensor([-10.0, -12.0, -9.0], requires_grad=True)
    ref, scores, group_of = torch.tensor([-10.0, -10.0, -10.0]), torch.tensor([7.0, 7.0, 7.0]), torch.tensor([0, 0, 0])
    for kind in ("sigmoid", "pairs", "plackett-luce"):
        loss, _ = dpo_loss(policy, ref, scores, group_of, BETA, kind)
        assert float(loss.detach()) == 0.0


def test_sequence_logps_packed_rows_equal_padded_rows():
    torch.manual_seed(0)
    vocab = 11
    seqs = [[1, 2, 3, 4, 5], [6, 7, 8], [2, 2, 9, 1], [3, 4]]
    prompt = [2, 1, 2, 1]
    labels = [[-100] * p + s[p:] for s, p in zip(seqs, prompt)]
    table = torch.randn(vocab, vocab)

    def logits_of(ids):  # a "model" whose next-token logits depend on the current token only
        return table[ids]

    padded_ids = torch.tensor([s + [0] * (5 - len(s)) for s in seqs])
    padded_lab = torch.tensor([lab + [-100] * (5 - len(lab)) for lab in labels])
    a = sequence_logps(logits_of(padded_ids), padded_lab)
    packed_ids = torch.tensor([seqs[0] + seqs[1], seqs[2] + seqs[3] + [0, 0]])
    packed_lab = torch.tensor([labels[0] + labels[1], labels[2] + labels[3] + [-100, -100]])
    pos = torch.tensor([list(range(5)) + list(range(3)), list(range(4)) + list(range(2)) + [0, 1]])
    b = sequence_logps(logits_of(packed_ids), packed_lab, pos)
    assert torch.allclose(a, b, atol=1e-6)
    expected = [sum(torch.log_softmax(table[s[t]], -1)[s[t + 1]] for t in range(p - 1, len(s) - 1)) for s, p in
                zip(seqs, prompt)]
    assert torch.allclose(a, torch.stack(expected), atol=1e-5) and not math.isnan(float(a.sum()))
