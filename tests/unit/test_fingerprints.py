"""What decides that a finished stage or a training run is still valid: the pipeline's stage
fingerprints and the trainers' last complete checkpoint."""

import json

from gpt4llm.pipeline.config import Pipeline
from gpt4llm.pipeline.run import Runner
from gpt4llm.pipeline.study import Study
from gpt4llm.train.common import last_checkpoint


def fingerprints(raw: dict, tmp_path) -> dict[str, str]:
    study = Study.of(Pipeline.model_validate(raw), tmp_path / "p.yaml", tmp_path / "out")
    runner = Runner(study)
    out = {}
    for st in runner.plan():
        out[st.name] = study.fingerprints[st.name] = runner.fingerprint(st)
    return out


BASE = {"stages": {"generate": {"max_tokens": 64}, "sft": {"epochs": 1},
                   "compare": {"sources": [{"name": "teacher"}, {"name": "b", "model": "local:smollm2-135m-instruct"}]},
                   "rm": {"epochs": 1}}}


def test_a_stage_fingerprint_follows_its_settings_and_its_upstream_stages(tmp_path):
    a = fingerprints(BASE, tmp_path)
    assert a == fingerprints(json.loads(json.dumps(BASE)), tmp_path)  # deterministic
    changed = json.loads(json.dumps(BASE))
    changed["stages"]["sft"]["epochs"] = 2
    b = fingerprints(changed, tmp_path)
    assert b["sft.en"] != a["sft.en"] and b["generate.en"] == a["generate.en"] and b["rm"] == a["rm"]
    upstream = json.loads(json.dumps(BASE))
    upstream["stages"]["generate"]["max_tokens"] = 65  # generate changes: everything after it changes too
    c = fingerprints(upstream, tmp_path)
    assert all(c[k] != a[k] for k in ("generate.en", "compare", "sft.en", "rm"))


def test_a_setting_written_at_its_default_does_not_invalidate_a_stage(tmp_path):
    explicit = json.loads(json.dumps(BASE))
    explicit["stages"]["sft"]["learning_rate"] = 2e-5  # the default, now written out
    explicit["stages"]["generate"]["top_p"] = 1.0
    assert fingerprints(explicit, tmp_path) == fingerprints(BASE, tmp_path)


def test_the_last_complete_checkpoint_is_chosen(tmp_path):
    assert last_checkpoint(tmp_path) is None
    for step, complete in ((2, True), (10, True), (12, False), (3, True)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"global_st')  # killed while writing
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
