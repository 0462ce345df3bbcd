"""The embedded SmolLM2 and MiniLM through `udasa eval` on two items of every task (~1-2 min)."""
import json

import pytest
from typer.testing import CliRunner

from udasa.cli import app


@pytest.mark.integration
def test_eval_embedded_model_tiny_slice(tmp_path):
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["eval", "--model", "smollm2-135m-instruct", "--out", str(out), "--limit", "2",
                                   "--rm-max-pairs", "20", "--threads", "1"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["tasks"]) == {"harmless", "helpful", "truthful", "sentiment"}
    for task, t in m["tasks"].items():
        assert t["n"] == 2, task
        recs = [json.loads(x) for x in (out / f"generations-{task}.jsonl").read_text().splitlines()]
        assert len(recs) == 2 and all(set(r["scores"]) == set(t["metrics"]) for r in recs)
    for r in (json.loads(x) for x in (out / "generations-harmless.jsonl").read_text().splitlines()):
        assert r["response"].strip() and r["decoding"]["temperature"] == 0.0
    truth = m["tasks"]["truthful"]
    assert 0 <= truth["metrics"]["mc2"]["mean"] <= 1 and "uncached_items" not in truth
    # the base model is its own reference: its KL estimate is numerically zero
    assert abs(m["tasks"]["sentiment"]["metrics"]["kl"]["mean"]) < 0.05
    for name in ("harmless_rm", "helpful_rm"):
        acc = m["evaluators"][name]
        assert acc["max_pairs"] == 20 and 0 <= acc["heldout_accuracy"]["mean"] <= 1
    assert "evaluator harmless_rm: held-out pairwise accuracy" in res.output
    rep = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert rep.exit_code == 0, rep.output
    assert "## truthful" in (tmp_path / "report" / "report.md").read_text()
