"""Validation against human preferences, bootstrap CIs, and the score/validate CLI (tiny model, bow embedder)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from udasa.errors import InputError
from udasa.stats import bootstrap_ci
from udasa.uncertainty import ScoreConfig, Scorer
from udasa.uncertainty.validate import (ValidateConfig, collect_items, evaluate_items, item_agreement, load_items,
                                        markdown_table, paired_differences, summarize)


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.binomial(1, 0.7, 50)
    large = rng.binomial(1, 0.7, 5000)
    est, lo, hi = bootstrap_ci(small)
    assert lo < est < hi and est == pytest.approx(small.mean())
    _, lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 4 and lo2 < 0.7 < hi2
    assert bootstrap_ci([1.0]) == (1.0, 1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)


def scored(u, sources, responses=None, lp=None):
    n = len(u)
    return {"u": u, "sources": sources, "responses": responses or ["x" * (i + 1) for i in range(n)],
            "logprob_mean": lp or [-1.0] * n,
            "components": {"semantic": u, "factual": [1 - x for x in u], "value": [0.5] * n}}


def test_item_agreement_hh_and_ties():
    rec = scored([0.5, 0.5, 0.1, 0.9], ["policy", "policy", "chosen", "rejected"],
                 responses=["a", "b", "short", "a much longer answer"], lp=[-1, -1, -2.0, -1.0])
    a = item_agreement(rec)
    assert a["combined u"] == 1.0 and a["semantic only"] == 1.0 and a["factual only"] == 0.0
    assert a["value only"] == 0.5  # tie
    assert a["shorter wins"] == 1.0 and a["longer wins"] == 0.0
    assert a["higher log-likelihood wins"] == 0.0 and a["random"] == 0.5


def test_item_agreement_truthfulqa_is_pairwise():
    rec = scored([0.9, 0.2, 0.1, 0.5], ["policy", "correct", "incorrect", "incorrect"])
    assert item_agreement(rec)["combined u"] == pytest.approx(0.5)


def test_summarize_and_table():
    per = [{"combined u": 1.0, "random": 0.5}, {"combined u": 0.0, "random": 0.5}] * 10
    s = summarize(per)
    assert s["combined u"]["agreement"] == 0.5 and s["combined u"]["ci_low"] < 0.5 < s["combined u"]["ci_high"]
    assert s["random"]["agreement"] == 0.5
    assert "| combined u | 50.0% |" in markdown_table(s, "t")


def test_paired_differences_against_the_baselines():
    per_item = [{"combined u": 1.0, "shorter wins": 0.0, "longer wins": 1.0, "higher log-likelihood wins": 0.5},
                {"combined u": 1.0, "shorter wins": 1.0, "longer wins": 0.0, "higher log-likelihood wins": 0.5}] * 20
    d = paired_differences(per_item)
    assert d["shorter wins"]["difference"] == pytest.approx(0.5) and d["longer wins"]["difference"] == pytest.approx(0.5)
    assert d["higher log-likelihood wins"] == {"difference": 0.5, "ci_low": 0.5, "ci_high": 0.5}  # always +0.5
    assert d["shorter wins"]["ci_low"] < 0.5 < d["shorter wins"]["ci_high"]  # varies item to item: a real interval
    assert paired_differences(per_item, "semantic only") == {}


def test_load_items_slices_and_truthfulqa():
    hh = load_items("hh-harmless", 100, 3)
    assert len(hh) == 3 and hh[0]["sources"] == ["chosen", "rejected"]
    assert {i["id"] for i in hh}.isdisjoint({i["id"] for i in load_items("hh-harmless", 0, 100)})
    tq = load_items("truthfulqa", 0, 2)
    assert tq[0]["sources"].count("correct") == 1 and len(tq[0]["candidates"]) >= 2
    with pytest.raises(InputError, match="data"):
        load_items("imdb", 0, 1)
    with pytest.raises(InputError, match="limit"):
        ValidateConfig(limit=0)


def test_collect_and_evaluate_with_tiny_policy(tiny_policy, tmp_path):
    from udasa.sampling import SampleConfig

    items = load_items("hh-helpful", 0, 3)
    cfg = SampleConfig(model=tiny_policy.name, n=2, max_new_tokens=4)
    out = tmp_path / "items.jsonl"
    collect_items(items[:2], out, policy=tiny_policy, cfg=cfg, progress=False)
    collect_items(items, out, policy=tiny_policy, cfg=cfg, progress=False)  # resumes: only the third is new
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == [i["id"] for i in items]
    for r, it in zip(recs, items):
        assert r["sources"] == ["policy", "policy", "chosen", "rejected"]
        assert r["responses"][2:] == it["candidates"]
        assert all(len(t) == n for t, n in zip(r["token_logprobs"], r["num_tokens"]))
        assert r["num_tokens"][2] > 0 and r["logprob_mean"][2] < 0
    with pytest.raises(InputError, match="other settings"):
        collect_items(items, out, policy=tiny_policy, cfg=SampleConfig(model=tiny_policy.name, n=3,
                                                                        max_new_tokens=4), progress=False)
    scorer = Scorer(ScoreConfig(spec="helpful", embedder="bow"))
    summary, per_item = evaluate_items(out, [i["id"] for i in items], scorer, scores_out=tmp_path / "s.jsonl")
    assert len(per_item) == 3 and set(summary) >= {"combined u", "semantic only", "factual only", "value only",
                                                   "shorter wins", "longer wins", "higher log-likelihood wins"}
    # the length baselines are exact complements
    for p in per_item:
        assert p["shorter wins"] + p["longer wins"] == pytest.approx(1.0)
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 3


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "udasa.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_score_bad_samples_file(tmp_path):
    bad = tmp_path / "samples.jsonl"
    bad.write_text(json.dumps({"id": "a", "prompt": "hi", "responses": ["x", "y"], "num_tokens": [1, 1]}) + "\n")
    r = run_cli("score", "--samples", str(bad), "--out", str(tmp_path / "o.jsonl"), "--embedder", "bow")
    assert r.returncode == 2 and "samples.jsonl:1" in r.stderr and "logprob_mean" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("score", "--samples", str(bad), "--out", str(tmp_path / "o.jsonl"), "--weights", "semantic=x")
    assert r.returncode == 2 and "weights" in r.stderr


def test_cli_score_writes_scores(tmp_path):
    good = tmp_path / "samples.jsonl"
    rec = {"id": "a", "prompt": "hi", "responses": ["hello there", "hello there", "go away"],
           "num_tokens": [2, 2, 2], "logprob_mean": [-0.5, -0.5, -2.0], "model": "m"}
    good.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "scores.jsonl"
    r = run_cli("score", "--samples", str(good), "--out", str(out), "--embedder", "bow", "--spec", "helpful",
                "--weights", "semantic=1,factual=0,value=0")
    assert r.returncode == 0, r.stderr
    s = json.loads(out.read_text())
    assert s["spec"] == "helpful" and s["u"] == s["normalized"]["semantic"] and s["u"][2] == max(s["u"])
    r = run_cli("score", "--samples", str(good), "--out", str(tmp_path / "o2.jsonl"), "--embedder", "bow",
                "--model", "other-model")
    assert r.returncode == 2 and "field 'model'" in r.stderr


def test_cli_validate_end_to_end(tiny_model_path, tmp_path):
    out = tmp_path / "val"
    args = ["validate", "--data", "hh-harmless", "--limit", "2", "--offset", "5", "--n-samples", "2",
            "--max-new-tokens", "4", "--model", tiny_model_path, "--embedder", "bow", "--out", str(out)]
    from typer.testing import CliRunner

    from udasa.cli import app

    r = CliRunner().invoke(app, args)  # in-process: no second torch start-up
    assert r.exit_code == 0, r.output
    res = json.loads((out / "validation.json").read_text())
    assert res["items"] == 2 and res["scoring"]["spec"] == "safety"
    assert 0 <= res["agreement"]["combined u"]["agreement"] <= 1
    assert "| combined u |" in (out / "validation.md").read_text() and "combined u" in r.output
    assert set(res["combined_u_minus"]) == {"shorter wins", "longer wins", "higher log-likelihood wins"}
    r = CliRunner().invoke(app, args + ["--score-only", "--weights", "semantic=1"])  # reuses the items
    assert r.exit_code == 0, r.output
    assert json.loads((out / "validation.json").read_text())["scoring"]["weights"]["factual"] == 0.0
    assert len((out / "items.jsonl").read_text().splitlines()) == 2


def test_cli_validate_fit_writes_the_fitted_block_into_the_named_spec(tiny_model_path, tmp_path):
    """`udasa validate --fit` from the command line: dev items only, the settings written into the spec file it
    was given (a copy here, so the shipped spec stays as it is), a resolved config that reads them back."""
    import hashlib
    import shutil
    from importlib import resources

    from typer.testing import CliRunner

    from udasa.cli import app
    from udasa.uncertainty.specs import load_spec

    shipped = resources.files("udasa").joinpath("specs", "safety.yaml")
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    spec = tmp_path / "safety.yaml"
    shutil.copy(str(shipped), spec)
    out = tmp_path / "dev"
    r = CliRunner().invoke(app, ["validate", "--fit", "--data", "hh-harmless", "--offset", "0", "--limit", "3",
                                 "--n-samples", "2", "--max-new-tokens", "4", "--model", tiny_model_path,
                                 "--embedder", "bow", "--spec", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    fit = json.loads((out / "validation.json").read_text())["fit"]
    assert fit["spec_file"] == str(spec) and fit["fit"]["slice"] == "0-2" and fit["fit"]["items"] == 3
    assert abs(sum(fit["weights"].values()) - 1) < 1e-6
    fitted = load_spec(spec).fitted
    assert fitted["weights"] == fit["weights"] and fitted["contrast_weight"] == fit["contrast_weight"]
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
    # the reporting slice is refused for a fit, naming the field
    r = CliRunner().invoke(app, ["validate", "--fit", "--data", "hh-harmless", "--offset", "150", "--limit", "3",
                                 "--model", tiny_model_path, "--embedder", "bow", "--spec", str(spec),
                                 "--out", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "field 'offset': a fit may not read the reporting slice" in str(r.exception)
