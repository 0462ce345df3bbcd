import subprocess
import sys
from pathlib import Path

import pytest

from udasa.errors import InputError
from udasa.recipe import load_recipe, resolved

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


BASE = """name: t
prompts:
  - {data: self-instruct-seed, limit: 3}
sample:
  n: 2
train:
  beta: 0.2
"""


def test_recipe_maps_sections_onto_stage_configs(tmp_path):
    r = load_recipe(write(tmp_path, BASE), ["train.learning_rate=1e-4", "pairs.curriculum.curriculum=reverse"])
    assert r.stage_config("sample").n == 2
    assert r.stage_config("sample").model == "smollm2-135m-instruct"  # top-level model propagates
    t = r.stage_config("train")
    assert t.beta == 0.2 and t.learning_rate == 1e-4
    assert r.stage_config("pairs").curriculum.curriculum == "reverse"
    assert resolved(r)["train"]["beta"] == 0.2


@pytest.mark.parametrize("text, match", [
    (BASE.replace("  n: 2", "  nn: 2"), r"r.yaml:5: field 'sample.nn': unknown key; did you mean 'n'"),
    (BASE.replace("  n: 2", "  n: two"), r"r.yaml:5: field 'sample.n': expected int, got str"),
    (BASE.replace("  n: 2", "  n: 0"), r"r.yaml:5: field 'sample.n': must be in \[1, 1024\]"),
    (BASE.replace("  beta: 0.2", "  beta: -1"), r"r.yaml:7: field 'train.beta': must be > 0"),
    (BASE + "colour: red\n", r"r.yaml:8: field 'colour': unknown key"),
    (BASE.replace("{data: self-instruct-seed, limit: 3}", "{limit: 3}"), r"field 'prompts\[0\].data'"),
    (BASE.replace("limit: 3", "limit: true"), r"field 'prompts\[0\].limit': expected int, got bool"),
    ("name: [unclosed\n", r"r.yaml:2: invalid YAML"),
    ("- a\n- b\n", r"must be a YAML mapping"),
    (BASE + "pairs: {curriculum: {curriculum: sideways}}\n", r"field 'pairs.curriculum.curriculum': must be one of"),
    (BASE + "score:\n  estimators:\n    - {name: semantic}\n    - {name: value, settings: {temprature: 1}}\n",
     r"r.yaml:11: field 'score.estimators\[1\]': estimator 'value' has no setting \['temprature'\]"),
])
def test_bad_recipes_name_file_line_and_key(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        load_recipe(write(tmp_path, text))


def test_a_recipe_lists_its_estimators(tmp_path):
    r = load_recipe(write(tmp_path, BASE + "score:\n  estimators: [{name: semantic, weight: 1}, {name: value, weight: 3}]\n"))
    cfg = r.stage_config("score")
    assert [(e["name"], e["weight"]) for e in cfg.estimator_list()] == [("semantic", 0.25), ("value", 0.75)]


def test_recipes_cannot_execute_code(tmp_path):
    p = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\nprompts: []\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_recipe(p)


SHIPPED = ["demo.yaml", "cpu-small.yaml", "cpu-full.yaml", "cpu-sentiment.yaml", "sentiment.yaml", "sentiment-rounds.yaml",
           "harmless.yaml",
           "gpu-7b-deepspeed.yaml", "gpu-7b-fsdp.yaml", "tiny.yaml"]


def test_every_recipe_file_is_checked_here():
    assert sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_validate(name):
    if not (ROOT / "recipes" / name).exists():
        pytest.fail(f"recipes/{name} is missing")
    r = load_recipe(ROOT / "recipes" / name)
    resolved(r)


def test_recipe_docs_are_complete_and_current():
    sys.path.insert(0, str(ROOT / "scripts"))
    import recipe_docs

    assert recipe_docs.undocumented() == []
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "recipe_docs.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_training_prompts_never_include_evaluation_prompts():
    from udasa.data.splits import training_eval_overlap
    from udasa.pipeline import collect_prompts

    r = load_recipe(ROOT / "recipes" / "cpu-full.yaml")
    rows = collect_prompts(r)
    assert len(rows) > 100
    assert training_eval_overlap(rows) == set()
    # and the check itself catches a leak
    from udasa.data import advbench
    assert training_eval_overlap(rows + [{"id": "x", "prompt": advbench()[0]["prompt"]}]) == {"x"}


def test_check_estimates_cost_and_validates_dpo_kwargs(tmp_path, capsys, monkeypatch):
    from udasa.cost import REFERENCE, estimate

    r = load_recipe(ROOT / "recipes" / "sentiment.yaml")
    est = estimate(r, 1000, REFERENCE)
    assert est.sample_tokens == 1000 * 4 * 48
    # two selection candidates and the DPO baselines train on one pair per prompt, best-of-n SFT counts half
    dpo = 2 + sum(v.method == "dpo" for v in r.baselines)
    assert est.pair_steps == int(1000 * (dpo + 0.5))
    assert est.hours > 1 and "estimated compute" in est.lines()[1]
    # scoring re-reads every sample: about as long as sampling took, and part of the total
    from udasa.cost import SCORE_OVER_SAMPLE
    sampling_h = est.sample_tokens / REFERENCE["sample_tokens_per_s"] / 3600
    assert est.score_hours == pytest.approx(SCORE_OVER_SAMPLE * sampling_h) and "of which scoring" in est.lines()[1]
    rest_h = (est.sample_tokens + est.eval_tokens) / REFERENCE["sample_tokens_per_s"] / 3600 \
        + est.pair_tokens * REFERENCE["train_s_per_pair_token"] / 3600
    assert est.hours == pytest.approx(rest_h + est.score_hours)
    from udasa.cli import main

    path = tmp_path / "r.yaml"
    path.write_text("name: r\nprompts: [{data: self-instruct-seed, limit: 2}]\ntrain: {dpo_kwargs: {no_such: 1}}\n")
    monkeypatch.setattr(sys, "argv", ["udasa", "check", str(path), "--quiet"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "not DPOConfig fields: ['no_such']" in capsys.readouterr().err
