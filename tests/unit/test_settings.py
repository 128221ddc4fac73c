"""One declaration per setting (issue 13): every stage's settings class is the source of its
command's options, of its help and of its pipeline section. This walks every class."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gpt4llm.backends import BackendSettings
from gpt4llm.cli import app
from gpt4llm.pipeline import config
from gpt4llm.settings import cli_fields, flag, opt, section

def _collect():
    """command path -> the settings class it is made from, from the CLI's registry."""
    import gpt4llm.cli  # noqa: F401  (registers the commands)
    from gpt4llm.settings import ENTRIES, _load

    return {" ".join(path): _load(e.settings) for path, e in ENTRIES.items() if e.settings}


COMMAND_CLASSES = _collect()
# the pipeline's stage sections and the classes they come from
SECTIONS = {"generate": "GenerateSettings", "translate": "TranslateSettings", "compare": "CompareSettings",
            "sft": "SFTSettings", "rm": "RMSettings", "dpo": "DPOSettings", "answer": "AnswerSettings", "rank": "RankSettings",
            "judge": "JudgeSettings", "rouge": "RougeSettings", "stats": "StatsSettings", "publish": "PublishSettings",
            "iterate": "IterateSettings",
            "clean": "CleanSettings"}


def _help(path: str) -> str:
    r = CliRunner().invoke(app, [*path.split(), "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    return r.output


def test_every_command_is_made_from_a_settings_class():
    assert len(COMMAND_CLASSES) == 26


@pytest.mark.parametrize("path", sorted(COMMAND_CLASSES))
def test_every_field_has_help_and_every_flag_is_in_help(path):
    cls = COMMAND_CLASSES[path]
    text = _help(path)
    names = []
    for name, f, _ in cli_fields(cls):
        assert (f.description or "").strip(), f"{cls.__name__}.{name} has no docstring"
        if opt(f).argument:
            assert f"{{{name}}}" in text or name.upper() in text, (path, name)
            continue
        assert flag(name) in text, (path, flag(name))
        names.append(flag(name))
        for alias in opt(f).flags:
            if alias.startswith("--"):
                assert alias in text, (path, alias)
    assert len(names) == len(set(names))
    for name, f in cls.model_fields.items():  # pipeline-only fields are documented too
        assert (f.description or "").strip(), f"{cls.__name__}.{name} has no docstring"


@pytest.mark.parametrize("stage", sorted(SECTIONS))
def test_every_stage_field_is_a_yaml_key_unless_the_pipeline_owns_it(stage):
    section_cls = config.Stages.model_fields[stage].annotation
    section_cls = next(a for a in getattr(section_cls, "__args__", (section_cls,)) if a is not type(None))
    settings_cls = section_cls.settings_class
    assert settings_cls.__name__ == SECTIONS[stage]
    owned = {n for n, f in settings_cls.model_fields.items() if opt(f).pipeline}
    assert set(section_cls.model_fields) == set(settings_cls.model_fields) - owned
    for name in section_cls.model_fields:  # same type, default and docstring
        a, b = section_cls.model_fields[name], settings_cls.model_fields[name]
        assert (a.annotation, a.default, a.description) == (b.annotation, b.default, b.description)


def test_the_backend_section_is_the_backend_flags():
    assert config.Pipeline.model_fields["backend"].annotation is BackendSettings
    text = _help("generate")
    for name in BackendSettings.model_fields:
        assert flag(name) in text


def test_a_yaml_key_and_a_flag_share_one_validation(tmp_path):
    from gpt4llm.errors import UserError

    p = tmp_path / "p.yaml"
    p.write_text("stages:\n  sft:\n    learning_rate: -1\n")
    with pytest.raises(UserError, match=r"p.yaml:3: stages.sft.learning_rate: Input should be greater than 0"):
        config.load(p)
    r = CliRunner().invoke(app, ["train", "sft", "-d", "x", "-o", str(tmp_path / "m"), "--lr", "-1"])
    assert r.exit_code != 0
    p.write_text("stages:\n  sft:\n    data: other.jsonl\n")  # the pipeline owns the data path
    with pytest.raises(UserError, match=r"p.yaml:3: stages.sft.data: unknown key"):
        config.load(p)


def test_old_spellings_still_work():
    text = _help("train sft")
    assert "--learning-rate" in text and "--lr" in text
    assert "-q, --questions" in _help("eval judge")  # -q is --questions there, as before


def test_section_keeps_field_validators():
    s = section(config.CompareSettings)
    with pytest.raises(Exception, match="source names must differ"):
        s.model_validate({"sources": [{"name": "a"}, {"name": "a"}]})


def test_importing_the_cli_imports_neither_torch_nor_transformers():
    code = ("import sys, gpt4llm.cli; heavy = [m for m in ('torch', 'transformers', 'numpy', 'openai', 'fastapi', "
            "'matplotlib', 'datasets', 'rich.progress') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
