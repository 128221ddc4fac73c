"""The pipeline file loader: every shipped config loads; every kind of mistake is one line naming
the file, the line and the YAML path, before any work starts."""

import pytest
from support import ROOT, run_cli

from gpt4llm.errors import UserError
from gpt4llm.pipeline.config import load

CONFIGS = ROOT / "configs"


@pytest.mark.parametrize("name", ["quickstart.yaml", "paper.yaml"])
def test_shipped_configs_load(name):
    pipe, _ = load(CONFIGS / name)
    assert pipe.name == name.removesuffix(".yaml")
    assert pipe.stages.compare and pipe.stages.rm and pipe.stages.judge and pipe.stages.rouge and pipe.stages.stats
    assert pipe.stages.clean  # the teacher's answers are cleaned before training


def test_paper_config_is_the_papers_setting():
    p, _ = load(CONFIGS / "paper.yaml")
    assert p.models.teacher == "openai:gpt-4" and p.models.judge == "openai:gpt-4"
    assert p.models.student_base.endswith("llama-7b") and p.models.reward_base.endswith("opt-1.3b")
    assert p.data.instructions == "hf:tatsu-lab/alpaca" and p.stages.generate.languages == ["en", "zh"]
    sft = p.stages.sft
    assert (sft.epochs, sft.learning_rate, sft.scheduler, sft.warmup_ratio, sft.weight_decay, sft.batch_size,
            sft.max_length, sft.save_steps) == (3, 2e-5, "cosine", 0.03, 0.0, 64, 512, 200)
    assert (CONFIGS / sft.deepspeed).is_file() and len(p.stages.compare.sources) == 3
    assert p.data.benchmarks.judge.questions == "vicuna80" and p.stages.answer.samples == 5


def write(tmp_path, text: str):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return f


BASE = """name: t
models:
  teacher: local:smollm2-135m-instruct
stages:
  generate: {max_tokens: 8}
"""


@pytest.mark.parametrize("text, expected", [
    (BASE + "  sft: {epocs: 3}\n", "p.yaml:6: stages.sft.epocs: unknown key"),
    (BASE.replace("local:smollm2-135m-instruct", "gpt-4"), "p.yaml:3: models.teacher: 'gpt-4': unknown model form"),
    (BASE + "  sft: {epochs: lots}\n", "p.yaml:6: stages.sft.epochs: Input should be a valid number"),
    (BASE + "data:\n  instructions: nowhere.json\n", "p.yaml:7: data.instructions: nowhere.json: file not found"),
    (BASE + "  rm: {}\n", "stages.rm needs stages.compare"),
    (BASE + "  compare:\n    sources: [{name: a}, {name: a, model: 'local:x'}]\n", "source names must differ"),
    (BASE + "  compare:\n    sources: [{name: a}, {name: b, model: 'oops'}]\n", "p.yaml:7: stages.compare.sources[1].model"),
    ("name: [unclosed\n", "p.yaml:2: not valid YAML"),
    ("- a\n- b\n", "p.yaml:1: a pipeline file is a mapping"),
])
def test_mistakes_name_file_line_and_yaml_path(tmp_path, text, expected):
    with pytest.raises(UserError) as e:
        load(write(tmp_path, text))
    assert expected in str(e.value)


def test_cli_rejects_a_bad_file_before_any_work(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", str(write(tmp_path, BASE + "  sft: {epocs: 3}\n")), "-o", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("stages.sft.epocs: unknown key") and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing started


def test_paper_dry_run_prints_the_plan_and_cost_and_runs_nothing(tmp_path):
    r = run_cli("run", str(CONFIGS / "paper.yaml"), "--dry-run", "-o", str(tmp_path / "paper"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for stage in ("generate.en", "translate.zh", "generate.zh", "compare: scoring", "answer judge: student-en x5",
                  "judge", "train  sft.en", "train  sft.zh", "train  rm"):
        assert stage in out
    assert "52,002" in out and "2,438 optimizer steps" in out  # 52,002 x 3 / 64
    assert "estimated cost: $" in out and "no model was called" in out
    assert not (tmp_path / "paper").exists()


PANEL = """name: t
models:
  teacher: local:smollm2-135m-instruct
  judge: [openai:gpt-4o, openai:claude-3-5-sonnet, local:smollm2-135m-instruct]
data:
  benchmarks: {judge: {questions: vicuna80}}
stages:
  answer: {}
  judge: {reference: teacher}
"""


def test_a_panel_of_judges_in_models_judge(tmp_path):
    pipe, _ = load(write(tmp_path, PANEL))
    assert pipe.judges == ["openai:gpt-4o", "openai:claude-3-5-sonnet", "local:smollm2-135m-instruct"]
    for text, expected in [
        (PANEL.replace("local:smollm2-135m-instruct]", "openai:gpt-4o]"), "a panel of judges names each judge once"),
        (PANEL.replace("openai:claude-3-5-sonnet", "claude"), "'claude': unknown model form"),
        (PANEL.replace("{reference: teacher}", "{reference: teacher, mode: single}"), "mode single takes one judge"),
    ]:
        with pytest.raises(UserError, match=expected):
            load(write(tmp_path, text))
    # the dry run prices every judge of the panel: one review row each
    r = run_cli("run", str(write(tmp_path, PANEL)), "--dry-run", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rows = [x for x in r.stdout.splitlines() if x.lstrip().startswith("judge ")]
    assert len(rows) == 3 and all(j in "\n".join(rows) for j in pipe.judges)
