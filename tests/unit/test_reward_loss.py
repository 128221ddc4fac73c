import itertools

import torch
import torch.nn.functional as F

from gpt4llm.train.reward import GroupCollator, kwise_loss


def naive(rewards, groups_scores, margin=0.0):
    """The pairwise loss as peers compute it: one term per pair, each pair on its own."""
    terms, i = [], 0
    for scores in groups_scores:
        idx = list(range(i, i + len(scores)))
        for a, b in itertools.combinations(range(len(scores)), 2):
            if scores[a] == scores[b]:
                continue
            h, lo = (a, b) if scores[a] > scores[b] else (b, a)
            terms.append(-F.logsigmoid(rewards[idx[h]] - rewards[idx[lo]] - margin * (scores[h] - scores[lo])))
        i += len(scores)
    return torch.stack(terms).mean()


def test_kwise_loss_equals_the_mean_pairwise_loss():
    torch.manual_seed(0)
    groups = [[9.0, 4.0, 7.0], [8.0, 8.0, 2.0], [5.0, 6.0], [3.0, 9.0, 9.0, 1.0]]
    r = torch.randn(sum(map(len, groups)), requires_grad=True)
    scores = torch.tensor([s for g in groups for s in g])
    group_of = torch.tensor([i for i, g in enumerate(groups) for _ in g])
    for margin in (0.0, 0.3):
        a, b = kwise_loss(r, scores, group_of, margin), naive(r, groups, margin)
        torch.testing.assert_close(a, b)
        ga, = torch.autograd.grad(a, r)
        gb, = torch.autograd.grad(b, r)
        torch.testing.assert_close(ga, gb)


def test_each_response_is_encoded_once_per_step():
    batch = GroupCollator(pad_id=0)([{"seqs": [[1, 2], [3], [4, 5, 6]], "scores": [9, 4, 7]},
                                     {"seqs": [[7], [8, 9]], "scores": [1, 2]}])
    assert batch["input_ids"].shape == (5, 3)  # 5 responses, not 3 + 1 pairs x 2
    assert batch["group_of"].tolist() == [0, 0, 0, 1, 1] and batch["attention_mask"].sum().item() == 9
