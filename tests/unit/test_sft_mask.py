"""The SFT loss mask (PAPER.md section 4): labels are exactly output + EOS, on two tokenizer
families: SmolLM2's byte-level BPE (no BOS) and a SentencePiece-like BPE built here that adds
a BOS and merges tokens across the prompt/target boundary."""

import pytest
from tokenizers import Tokenizer, models, processors, trainers
from transformers import PreTrainedTokenizerFast

from gpt4llm.templates import ALPACA, CHAT, IGNORE_INDEX


@pytest.fixture(scope="module")
def smollm2():
    from gpt4llm.backends.local import load_model

    return load_model("smollm2-135m-instruct")[0]


@pytest.fixture(scope="module")
def merging_tokenizer():
    """No pre-tokenizer, trained on text where ':' is glued to the next word: BPE learns merges
    such as ':The' that cross the end of '### Response:'. Adds <s> like LLaMA's tokenizer."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    corpus = ["### Response:The answer is here.", "Response:The cat sat.", "note:The end", ":The :The :The"] * 50
    tok.train_from_iterator(corpus + [ALPACA.prompt("Say hi.")] * 5,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def target_ids(tok, out):
    return [t for t, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE_INDEX]


@pytest.mark.parametrize("instruction, input, output", [
    ("Give three tips for staying healthy.", "", "1. Eat well.\n2. Sleep.\n3. Move."),
    ("Translate to French.", "Good morning", " Bonjour"),
    ("Answer.", "", "The answer is 4."),
])
def test_labels_are_exactly_output_plus_eos_on_smollm2(smollm2, instruction, input, output):
    tok = smollm2
    out = ALPACA.encode(tok, instruction, input, output)
    prompt_ids = tok(ALPACA.prompt(instruction, input))["input_ids"]
    assert out["input_ids"][: len(prompt_ids)] == prompt_ids
    assert all(lab == IGNORE_INDEX for lab in out["labels"][: len(prompt_ids)])
    labelled = target_ids(tok, out)
    assert labelled[-1] == tok.eos_token_id and labelled.count(tok.eos_token_id) == 1
    assert tok.decode(labelled[:-1]) == output
    assert out["input_ids"].count(tok.bos_token_id) == 0  # SmolLM2's tokenizer adds no BOS
    assert len(out["input_ids"]) == len(out["labels"])


def test_a_merge_across_the_boundary_cannot_shift_the_mask(merging_tokenizer):
    tok = merging_tokenizer
    whole = tok(ALPACA.prompt("Say hi.") + "The answer is here.")["input_ids"]
    prompt = tok(ALPACA.prompt("Say hi."))["input_ids"]
    assert whole[: len(prompt)] != prompt  # this tokenizer really merges across the boundary
    out = ALPACA.encode(tok, "Say hi.", "", "The answer is here.")
    assert out["boundary_merge"]
    assert out["input_ids"][: len(prompt)] == prompt  # the prompt as the model sees it when answering
    labelled = target_ids(tok, out)
    assert labelled[-1] == tok.eos_token_id and tok.decode(labelled[:-1]).replace(" ", "") == "Theansweris" + "here."
    assert out["input_ids"][0] == tok.bos_token_id and out["input_ids"].count(tok.bos_token_id) == 1


def test_exactly_one_bos_even_if_the_text_starts_with_one(merging_tokenizer):
    tok = merging_tokenizer
    out = ALPACA.encode(tok, "x", "", "y")
    assert out["input_ids"][0] == tok.bos_token_id and out["input_ids"][1] != tok.bos_token_id


def test_chat_template_trains_only_the_assistant_turn(smollm2):
    tok = smollm2
    out = CHAT.encode(tok, "What is 2+2?", "", "4")
    text = tok.decode(target_ids(tok, out))
    assert text.startswith("4") and "<|im_end|>" in text and "user" not in text
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True)
    assert tok.decode(out["input_ids"][: out["prompt_len"]]) == prompt
