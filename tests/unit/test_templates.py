import json
import re

from support import SHARED

from gpt4llm.templates import ALPACA, PromptTemplate

WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
              "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
              "{instruction}\n\n### Input:\n{input}\n\n### Response:")
NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
            "the request.\n\n### Instruction:\n{instruction}\n\n### Response:")


def spec_templates() -> tuple[str, str]:
    """The two templates as PAPER.md section 1 prints them (JSON-style escaped strings)."""
    text = (SHARED / "spec" / "PAPER.md").read_text(encoding="utf-8")
    with_input = re.search(r"with input:\n\s+`(\"Below.*?\")`", text).group(1)
    no_input = re.search(r"without input.*?:\n\s+`(\"Below.*?\")`", text).group(1)
    return json.loads(with_input), json.loads(no_input)


def test_alpaca_templates_are_byte_exact_against_the_spec():
    spec_with, spec_without = spec_templates()
    assert ALPACA.prompt_input == spec_with == WITH_INPUT
    assert ALPACA.prompt_no_input == spec_without == NO_INPUT


def test_prompt_uses_no_input_form_for_missing_or_empty_input():
    assert ALPACA.prompt("Say hi.") == NO_INPUT.format(instruction="Say hi.")
    assert ALPACA.prompt("Say hi.", "") == NO_INPUT.format(instruction="Say hi.")
    assert ALPACA.prompt("Sum.", "1 2") == WITH_INPUT.format(instruction="Sum.", input="1 2")
    assert ALPACA.prompt("Sum.", "1 2").endswith("### Input:\n1 2\n\n### Response:")


def test_braces_in_the_instruction_are_kept_verbatim():
    p = ALPACA.prompt("Fill {name} in f'{x}'", "{input}")
    assert "Fill {name} in f'{x}'" in p and "### Input:\n{input}\n" in p


def test_messages_are_one_user_message_without_system_prompt():
    msgs = ALPACA.messages("Say hi.")
    assert msgs == [{"role": "user", "content": NO_INPUT.format(instruction="Say hi.")}]
    zh = ALPACA.messages("Say hi.", system="Always respond in Chinese.")
    assert zh[0] == {"role": "system", "content": "Always respond in Chinese."} and zh[1] == msgs[0]


def test_template_round_trips_through_a_model_directory(tmp_path):
    ALPACA.save(tmp_path)
    loaded = PromptTemplate.load(tmp_path)
    assert loaded == ALPACA and loaded.sha256 == ALPACA.sha256
    assert PromptTemplate.load(tmp_path / "nothing") is None
