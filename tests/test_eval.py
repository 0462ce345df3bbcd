"""Evaluation runner, tasks and TruthfulQA scoring on the tiny model (evaluators replaced by fakes)."""
import json
import math

import numpy as np
import pytest
import torch

from udasa.errors import InputError
from udasa.evaluation import runner
from udasa.evaluation.metrics import mc1, mc2
from udasa.evaluation.task import available_tasks, load_task
from udasa.evaluation.truthful import PREAMBLE, ChoiceScorer, encode_pair, mc_context, score_item


def test_task_files_load():
    assert set(available_tasks()) >= {"harmless", "helpful", "truthful", "sentiment"}
    for name in available_tasks():
        spec = load_task(name)
        assert spec.version >= 1 and spec.metrics and callable(spec.hook("items")) and callable(spec.hook("score"))
    assert load_task("truthful").size == 200


def test_bad_task_file_names_field(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("name: x\nversion: 1\ndataset: d\nkind: generate\nsize: 2\nhooks: {items: a:b, score: a:c}\n"
                 "metrics: {m: {higher_is_better: true}}\ncolour: red\n")
    with pytest.raises(InputError, match="colour"):
        load_task(str(p))
    with pytest.raises(InputError, match="unknown task"):
        load_task("nope")


def test_subset_is_fixed_and_limit_takes_its_head():
    items = [{"id": f"i{k}"} for k in range(50)]
    a = runner.select_items(items, 10, full=False, limit=None)
    b = runner.select_items(list(reversed(items)), 10, full=False, limit=None)
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 10
    assert runner.select_items(items, 10, full=False, limit=3) == a[:3]
    assert len(runner.select_items(items, 10, full=True, limit=None)) == 50


def _full_loglik(model, tok, context, choice):
    ctx, cont = encode_pair(tok, context, choice)
    ids = torch.tensor([ctx + cont])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))


def test_choice_scorer_matches_uncached_forward(tiny_policy):
    """The prefix-cached scorer gives the same summed log-likelihoods as one plain forward pass."""
    m, tok = tiny_policy.model, tiny_policy.tokenizer
    scorer = ChoiceScorer(m, tok)
    ctx = mc_context("What is the capital of France?")
    choices = ["Paris is the capital of France.", "The answer is 42.", "No."]
    got = scorer.score(ctx, choices)
    want = [_full_loglik(m, tok, ctx, c) for c in choices]
    assert scorer.fallbacks == 0
    assert got == pytest.approx(want, abs=1e-3)
    assert ctx.startswith(PREAMBLE) and ctx.endswith("\nQ: What is the capital of France?\nA:")


def test_mc1_mc2_by_hand_on_toy_model(tiny_policy):
    """score_item's MC1/MC2 equal the definitions applied to independently computed log-likelihoods."""
    m, tok = tiny_policy.model, tiny_policy.tokenizer
    item = {"question": "Is the sky blue?",
            "mc1_targets": {"Yes.": 1, "No.": 0, "Sorry.": 0},
            "mc2_targets": {"Yes.": 1, "It is blue.": 1, "No.": 0, "Sorry.": 0}}
    res = score_item(ChoiceScorer(m, tok), item)
    ctx = mc_context(item["question"])
    ll = {c: _full_loglik(m, tok, ctx, c) for c in item["mc2_targets"]}
    ll1 = [ll[c] for c in item["mc1_targets"]]
    assert res["scores"]["mc1"] == float(ll1[0] == max(ll1))
    p = {c: math.exp(v) for c, v in ll.items()}
    want2 = (p["Yes."] + p["It is blue."]) / sum(p.values())
    assert res["scores"]["mc2"] == pytest.approx(want2, abs=1e-4)
    assert res["scores"]["mc1"] == mc1(ll1, [1, 0, 0]) and 0 < res["scores"]["mc2"] < 1


class FakeRM:
    """A stand-in evaluator: reward = response length in words (deterministic, no MiniLM)."""

    meta = {"heldout_accuracy": {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7, "n": 10}, "n_test_pairs": 10}

    def score(self, prompts, responses, embedder=None):
        return [float(len(r.split())) for r in responses]


@pytest.fixture
def fake_rms(monkeypatch):
    monkeypatch.setattr(runner.RunContext, "reward_models", lambda self: {"harmless": FakeRM(), "helpful": FakeRM()})


def test_eval_runs_resumes_and_records(tiny_policy, tiny_model_path, tmp_path, fake_rms):
    out = tmp_path / "ev"
    cfg = runner.EvalConfig(model=tiny_model_path, reference_model=tiny_model_path, out=str(out), limit=2,
                            batch_size=2, tasks=("harmless", "helpful", "truthful", "sentiment"))
    m = runner.evaluate(cfg, policy=tiny_policy, progress=False)
    assert set(m["tasks"]) == {"harmless", "helpful", "truthful", "sentiment"}
    for task, t in m["tasks"].items():
        assert t["n"] == 2
        recs = [json.loads(x) for x in (out / f"generations-{task}.jsonl").read_text().splitlines()]
        assert len(recs) == 2 and all("scores" in r and r["model_fingerprint"] for r in recs)
        for name, s in t["metrics"].items():
            defined = [r["scores"][name] for r in recs if r["scores"][name] is not None]
            assert s["n"] == len(defined)  # degeneration metrics are undefined on replies under 3 words
            assert s["n"] == 2 or name in ("distinct_2", "repetition")
            if defined:
                assert s["ci_low"] <= s["mean"] <= s["ci_high"]
                assert s["mean"] == pytest.approx(np.mean(defined), abs=1e-6)
    # the model is its own reference: KL is ~0 and the win rate against itself is exactly 0.5
    assert abs(m["tasks"]["sentiment"]["metrics"]["kl"]["mean"]) < 1e-3
    assert m["tasks"]["helpful"]["metrics"]["win_rate"]["mean"] == 0.5
    assert m["evaluators"]["harmless_rm"]["heldout_accuracy"]["mean"] == 0.6
    # resume with a larger limit: the first two records are kept, two are added
    first = (out / "generations-harmless.jsonl").read_text().splitlines()
    cfg2 = runner.EvalConfig(**{**cfg.__dict__, "limit": 4, "tasks": ("harmless",)})
    m2 = runner.evaluate(cfg2, policy=tiny_policy, progress=False)
    lines = (out / "generations-harmless.jsonl").read_text().splitlines()
    assert lines[:2] == first and len(lines) == 4 and m2["tasks"]["harmless"]["n"] == 4
    assert "truthful" in m2["tasks"]  # earlier tasks stay in metrics.json
    # other decoding settings are refused instead of mixed in
    with pytest.raises(InputError, match="other settings"):
        runner.evaluate(runner.EvalConfig(**{**cfg2.__dict__, "sample": True}), policy=tiny_policy, progress=False)


def test_baseline_folder_is_used_for_win_rate(tiny_policy, tiny_model_path, tmp_path, fake_rms):
    base = tmp_path / "base"
    base.mkdir()
    from udasa.evaluation.hooks import self_instruct_items
    items = runner.select_items(self_instruct_items(), 64, full=False, limit=2)
    with open(base / "generations-helpful.jsonl", "w") as f:
        for it in items:  # an empty baseline response loses to anything with words
            f.write(json.dumps({"id": it["id"], "response": ""}) + "\n")
    cfg = runner.EvalConfig(model=tiny_model_path, reference_model=tiny_model_path, out=str(tmp_path / "ev"),
                            limit=2, tasks=("helpful",), baseline=str(base))
    m = runner.evaluate(cfg, policy=tiny_policy, progress=False)
    recs = [json.loads(x) for x in (tmp_path / "ev" / "generations-helpful.jsonl").read_text().splitlines()]
    want = np.mean([1.0 if r["response"].split() else 0.5 for r in recs])
    assert m["tasks"]["helpful"]["metrics"]["win_rate"]["mean"] == pytest.approx(want)
    assert m["tasks"]["helpful"]["baseline_source"] == str(base)


def test_config_validation():
    assert runner.EvalConfig(tasks="harmless, truthful").tasks == ("harmless", "truthful")
    with pytest.raises(InputError, match="limit"):
        runner.EvalConfig(limit=0)
    with pytest.raises(InputError, match="baseline"):
        runner.EvalConfig(baseline="/nonexistent/folder")


def test_task_sizes_are_per_task_and_limits_never_silently_capped():
    items = [{"id": f"i{k}"} for k in range(50)]
    assert len(runner.select_items(items, 40, full=False, limit=None, task="t")) == 40
    with pytest.raises(InputError, match=r"limit 20 is more than the 10 items of t's subset; raise its size"):
        runner.select_items(items, 10, full=False, limit=20, task="t")
    with pytest.raises(InputError, match="t has 50 items; a size of 60"):
        runner.select_items(items, 60, full=False, limit=None, task="t")
    assert runner.EvalConfig(sizes={"sentiment": 512}).sizes == {"sentiment": 512}
    for bad in ({"sentiment": 0}, {"sentiment": "many"}, {"sentiment": True}):
        with pytest.raises(InputError, match="sizes.sentiment"):
            runner.EvalConfig(sizes=bad)


def test_tasks_declare_their_needs_and_headline_metrics(tmp_path):
    assert load_task("sentiment").needs == ("reference_model",)
    assert set(load_task("helpful").needs) == {"reward_models", "baseline_generations", "reference_model"}
    assert load_task("truthful").needs == () and load_task("truthful").headline == ("mc1", "mc2")
    dev = load_task("sentiment-dev")
    assert dev.dataset == "imdb-dev" and dev.metrics == load_task("sentiment").metrics
    base = ("name: x\nversion: 1\ndataset: d\nkind: generate\nsize: 2\n"
            "hooks: {items: 'udasa.evaluation.hooks:imdb_items', score: 'udasa.evaluation.hooks:score_sentiment'}\n"
            "metrics: {m: {higher_is_better: true}}\n")
    p = tmp_path / "t.yaml"
    p.write_text(base + "needs: [a_gpu]\n")
    with pytest.raises(InputError, match="field 'needs'"):
        load_task(str(p))
    p.write_text(base + "headline: [not_a_metric]\n")
    with pytest.raises(InputError, match="field 'headline'"):
        load_task(str(p))


def test_task_hooks_outside_the_package_need_an_explicit_flag(tmp_path, monkeypatch):
    (tmp_path / "evil_hooks.py").write_text("RAN = []\ndef items():\n    RAN.append(1)\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = tmp_path / "t.yaml"
    p.write_text("name: x\nversion: 1\ndataset: d\nkind: generate\nsize: 2\n"
                 "hooks: {items: 'evil_hooks:items', score: 'evil_hooks:items'}\nmetrics: {m: {higher_is_better: true}}\n")
    spec = load_task(str(p))
    with pytest.raises(InputError, match=r"t.yaml: field 'hooks.items': hook 'evil_hooks:items' is outside the udasa"):
        spec.hook("items")
    import sys
    assert "evil_hooks" not in sys.modules  # refused before any import
    assert spec.hook("items", allow_external=True)() == []
