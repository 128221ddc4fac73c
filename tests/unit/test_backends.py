import pytest

from gpt4llm.backends import DEFAULT_MODEL, create_backend, parse_model
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.errors import UserError


def test_model_forms():
    assert str(parse_model(DEFAULT_MODEL)) == "local:smollm2-135m-instruct"
    assert parse_model("openai:gpt-4o").name == "gpt-4o"
    assert parse_model("local:org/name").backend == "local"


@pytest.mark.parametrize("bad", ["gpt-4", "anthropic:claude", "openai:", "", "local"])
def test_unknown_model_forms_list_the_valid_ones(bad):
    with pytest.raises(UserError, match="unknown model form; valid forms: local:smollm2-135m-instruct"):
        parse_model(bad, "--teacher")


def test_local_backend_refuses_a_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        create_backend(f"local:{tmp_path}/nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        create_backend(f"local:{tmp_path}/empty")


def test_openai_backend_needs_a_key_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="needs an API key: set OPENAI_API_KEY"):
        create_backend("openai:gpt-4")


def test_request_payload_is_what_is_hashed():
    r = Request(params=GenParams(max_tokens=5), messages=[{"role": "user", "content": "x"}], sample=2)
    assert r.payload() == {"messages": [{"role": "user", "content": "x"}],
                           "params": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 5}, "sample": 2}
    assert Request(params=GenParams(seed=3), prompt="p").payload()["params"]["seed"] == 3
