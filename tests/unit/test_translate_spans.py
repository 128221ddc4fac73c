import pytest

from gpt4llm.translate import check, clean, protected_spans


def test_protected_spans():
    src = "Run `pip install x` then open https://a.org/x, use {name} and $HOME with 3.5 kg.\\n```py\\nprint(1)\\n```"
    assert protected_spans(src) == ["`pip install x`", "https://a.org/x", "{name}", "$HOME", "3.5", "```py\\nprint(1)\\n```"]


@pytest.mark.parametrize("answer, text", [("Translation: 你好", "你好"), ("<text>\n你好\n</text>", "你好"),
                                          ('"你好"', "你好"), ("翻译：你好", "你好"), ("  你好  ", "你好")])
def test_clean(answer, text):
    assert clean(answer) == text


def test_a_translation_must_keep_code_numbers_and_placeholders():
    src = "Write a function `add(a, b)` that returns 42 for {input}."
    assert check(src, "写一个函数 `add(a, b)`，对 {input} 返回 42。") is None
    assert "lost protected span '`add(a, b)`'" in check(src, "写一个函数 add，对 {input} 返回 42。")
    assert "'42'" in check(src, "写一个函数 `add(a, b)`，对 {input} 返回四十二。")
    assert check(src, "") == "empty translation"
