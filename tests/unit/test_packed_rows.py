"""Padding-free packing into rows: the row plan, the collator, and that a packed micro-batch gives
each example exactly the logits and loss it has alone (no attention across examples or into the
pad block), on a tiny random Llama with transformers' SDPA attention."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from gpt4llm.templates import IGNORE_INDEX
from gpt4llm.train.data import attention_ratio, padding_share, plan_rows
from gpt4llm.train.data import PackedRowsCollator, real_tokens
from gpt4llm.train.sft import example_mean_loss


def cost(rows, lengths, ratio):
    longest = max(sum(lengths[i] for i in row) for row in rows)
    return len(rows) * longest * (1 + ratio * longest)


@pytest.mark.parametrize("lengths", [[250, 240, 230, 260, 120, 300, 90, 500], [7], [10, 10, 10, 10], [3, 500, 4]])
@pytest.mark.parametrize("ratio", [0.0, 2.6e-4, 1e-3, 1.0])
def test_plan_places_every_example_once_and_beats_the_extremes(lengths, ratio):
    rows = plan_rows(lengths, ratio)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(row for row in rows) and all(row == sorted(row) for row in rows)
    one_row, one_each = [list(range(len(lengths)))], [[i] for i in range(len(lengths))]
    assert cost(rows, lengths, ratio) <= min(cost(one_row, lengths, ratio), cost(one_each, lengths, ratio)) + 1e-9


def test_plan_extremes():
    lengths = [250, 240, 230, 260, 120, 300, 90, 500]
    assert plan_rows(lengths, 0.0) == [list(range(8))]  # varlen kernels: one padding-free row
    assert plan_rows([10, 10, 10, 10], 1.0) == [[0], [1], [2], [3]]  # attention dominates: every example alone
    rows = plan_rows(lengths, 2.6e-4)  # SmolLM2-135M under SDPA: rows as long as the longest example
    assert [sum(lengths[i] for i in row) for row in rows] == [500, 510, 490, 490]


def test_plan_is_optimal_among_all_assignments_for_equal_lengths():
    # equal lengths: LPT balances exactly, so the best row count is found
    lengths, ratio = [100] * 6, 5e-3
    best = min(cost([[i for i in range(6) if a[i] == r] for r in set(a)], lengths, ratio)
               for a in itertools.product(range(6), repeat=6))
    assert cost(plan_rows(lengths, ratio), lengths, ratio) == pytest.approx(best)


def test_attention_ratio_of_smollm2_135m():
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                      intermediate_size=1536, vocab_size=49152)
    linear = 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536) + 49152 * 576  # 134.5M, as counted by hand
    assert attention_ratio(cfg) == pytest.approx(2 * 576 * 30 / linear)


def features(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, 60, (n,), generator=g).tolist()
        labels = [IGNORE_INDEX] * (n // 2) + ids[n // 2:]  # a prompt, then the target
        out.append({"input_ids": ids, "labels": labels})
    return out


def test_collator_rows_positions_and_pad_block():
    feats = features([9, 4, 7, 3, 6])
    batch = PackedRowsCollator(pad_id=0, ratio=0.05)(feats)
    rows = plan_rows([9, 4, 7, 3, 6], 0.05)
    assert batch["input_ids"].shape == (len(rows), max(sum(len(feats[i]["input_ids"]) for i in r) for r in rows))
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask: packed detection
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = len(feats[i]["input_ids"])
            assert batch["input_ids"][r, at:at + n].tolist() == feats[i]["input_ids"]
            assert batch["labels"][r, at:at + n].tolist() == feats[i]["labels"]
            assert batch["position_ids"][r, at:at + n].tolist() == list(range(n))
            at += n
        tail = batch["input_ids"].shape[1] - at
        assert batch["labels"][r, at:].tolist() == [IGNORE_INDEX] * tail
        assert batch["position_ids"][r, at:].tolist() == list(range(tail))
    assert real_tokens(batch) == 9 + 4 + 7 + 3 + 6
    assert real_tokens({"input_ids": batch["input_ids"], "attention_mask": torch.ones(2, 5)}) == 10


@pytest.mark.parametrize("grouped", [False, True])
def test_predicted_padding_share_matches_the_collator(grouped):
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = [31, 12, 25, 7, 40, 18, 22, 9, 15, 33, 27, 11, 50, 5, 19, 24]
    ratio, micro = 0.02, 4
    predicted = padding_share(lengths, micro, packing=True, grouped=grouped, ratio=ratio, seed=7)
    g = torch.Generator().manual_seed(7)  # the order the Trainer's sampler draws with this seed
    order = get_length_grouped_indices(lengths, micro, generator=g) if grouped else torch.randperm(16, generator=g).tolist()
    feats = features(lengths)
    collate = PackedRowsCollator(pad_id=0, ratio=ratio)
    processed = sum(collate([feats[j] for j in order[i:i + micro]])["input_ids"].numel() for i in range(0, 16, micro))
    assert predicted == pytest.approx(1 - sum(lengths) / processed)
    assert padding_share(lengths, micro, packing=True, grouped=grouped, ratio=0.0) == 0.0


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("ratio", [0.0, 0.05, 1.0])  # one row, a few rows, one example per row
def test_packed_rows_give_each_example_its_own_logits_and_loss(tiny_llama, ratio):
    lengths = [9, 4, 7, 3, 6]
    feats = features(lengths)
    batch = PackedRowsCollator(pad_id=0, ratio=ratio)(feats)
    rows = plan_rows(lengths, ratio)
    with torch.no_grad():
        # use_cache=False as in training (Trainer sets it): transformers detects packed rows only without a cache
        packed = tiny_llama(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = [tiny_llama(input_ids=torch.tensor([f["input_ids"]]), use_cache=False).logits[0] for f in feats]
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = lengths[i]
            torch.testing.assert_close(packed[r, at:at + n], alone[i], atol=1e-5, rtol=1e-4)
            at += n
    want = torch.stack([F.cross_entropy(lg[:-1], torch.tensor(f["labels"][1:]), ignore_index=IGNORE_INDEX)
                        for lg, f in zip(alone, feats)]).mean()
    got = example_mean_loss(packed, batch["labels"], batch["position_ids"])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
