import pytest
from pydantic import ValidationError

from gpt4llm.schemas import AlpacaRecord, record_id


def test_record_id_is_stable_and_depends_on_instruction_and_input():
    # Pinned value: ids must not change between versions or machines (they join files).
    assert record_id("Give three tips for staying healthy.") == "c8d9223c258155a5"
    assert record_id("a", "") == record_id("a") != record_id("a", "b")
    assert record_id("ab", "") != record_id("a", "b")


def test_alpaca_record_defaults_and_extra_fields():
    r = AlpacaRecord.model_validate({"instruction": "x", "label": "y"})
    assert r.input == "" and r.output is None and r.model_extra == {"label": "y"}
    assert AlpacaRecord.model_validate({"instruction": "x", "input": None}).input == ""
    assert AlpacaRecord.model_validate({"instruction": "x", "id": "my-id"}).key == "my-id"


@pytest.mark.parametrize("bad", [{}, {"instruction": ""}, {"instruction": "  \n"}, {"instruction": 5},
                                 {"instruction": "x", "input": 3}, {"instruction": "x", "output": ["a"]}])
def test_alpaca_record_rejects_bad_records(bad):
    with pytest.raises(ValidationError):
        AlpacaRecord.model_validate(bad)
