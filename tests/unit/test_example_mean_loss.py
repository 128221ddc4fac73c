"""The SFT loss: the mean over examples of each example's mean target-token loss, the same for a
padded batch and for the same examples packed into one row (position ids restart at 0)."""

import torch
import torch.nn.functional as F

from gpt4llm.templates import IGNORE_INDEX
from gpt4llm.train.sft import example_mean_loss


def per_example(logits_list, labels_list):
    losses = []
    for lg, lb in zip(logits_list, labels_list):
        losses.append(F.cross_entropy(lg[:-1], lb[1:], ignore_index=IGNORE_INDEX))
    return torch.stack(losses).mean()


def test_padded_and_packed_give_the_per_example_mean():
    torch.manual_seed(0)
    lengths, vocab = [5, 9, 3], 11
    logits = [torch.randn(n, vocab) for n in lengths]
    labels = []
    for n in lengths:
        lb = torch.randint(0, vocab, (n,))
        lb[: n // 2] = IGNORE_INDEX  # the prompt
        labels.append(lb)
    want = per_example(logits, labels)
    # padded: one row per example
    T = max(lengths)
    pl = torch.zeros(len(lengths), T, vocab)
    pb = torch.full((len(lengths), T), IGNORE_INDEX)
    for i, (lg, lb) in enumerate(zip(logits, labels)):
        pl[i, : len(lg)], pb[i, : len(lb)] = lg, lb
    assert torch.allclose(example_mean_loss(pl, pb, None), want, atol=1e-6)
    # packed: one row, the first label of each example masked (DataCollatorWithFlattening's separator)
    packed_labels = [torch.cat([torch.tensor([IGNORE_INDEX]), lb[1:]]) for lb in labels]
    row_l = torch.cat(logits)[None]
    row_b = torch.cat(packed_labels)[None]
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    assert torch.allclose(example_mean_loss(row_l, row_b, pos), want, atol=1e-6)
