"""`udasa report` on synthetic eval folders: tables, paired differences, evaluator accuracies, plots."""
import json

import pytest
from typer.testing import CliRunner

from udasa.cli import app
from udasa.errors import InputError
from udasa.evaluation.metrics import summarize
from udasa.evaluation.report import load_run, write_report


def _make_run(folder, refusals, rewards, kl, evaluator_acc=0.61):
    folder.mkdir(parents=True)
    ids = [f"advbench-{i}" for i in range(len(refusals))]
    with open(folder / "generations-harmless.jsonl", "w") as f:
        for i, r in zip(ids, refusals):
            f.write(json.dumps({"id": i, "response": "x", "scores": {"refusal_rate": r}}) + "\n")
    with open(folder / "generations-sentiment.jsonl", "w") as f:
        for k, (rw, kk) in enumerate(zip(rewards, kl)):
            f.write(json.dumps({"id": f"imdb-{k}", "scores": {"reward": rw, "kl": kk}}) + "\n")
    metrics = {"model": folder.name, "model_fingerprint": "f" + folder.name, "tasks": {
        "harmless": {"n": len(refusals), "generations": "generations-harmless.jsonl",
                     "metrics": {"refusal_rate": {**summarize(refusals), "higher_is_better": True}}},
        "sentiment": {"n": len(rewards), "generations": "generations-sentiment.jsonl",
                      "metrics": {"reward": {**summarize(rewards), "higher_is_better": True},
                                  "kl": {**summarize(kl), "higher_is_better": False}}}},
        "evaluators": {"harmless_rm": {"heldout_accuracy": summarize([1.0] * 61 + [0.0] * 39), "n_test_pairs": 100,
                                       "cross_accuracy": {}}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_report_tables_differences_and_plots(tmp_path):
    base = _make_run(tmp_path / "base", [0, 0, 1, 0] * 5, [0.1] * 20, [0.0] * 20)
    # a pipeline run folder: metrics live in run/eval/
    better = _make_run(tmp_path / "udasa" / "eval", [1, 1, 1, 0] * 5, [0.5] * 20, [2.0] * 20)
    path = write_report([str(base), str(tmp_path / "udasa")], str(tmp_path / "report"))
    text = path.read_text()
    assert "| refusal_rate ↑ | 0.250 [" in text and "Δ udasa" in text
    # paired difference of refusal: +0.5 on every 4-item block, so mean +0.5 with a CI around it
    row = next(line for line in text.splitlines() if line.startswith("| refusal_rate"))
    assert "+0.500 [" in row
    assert "| kl ↓ |" in text and "+2.000 [+2.000, +2.000]" in text
    assert "harmless_rm" in text and "0.610 [" in text
    for png in ("harmless.png", "sentiment.png", "reward_vs_kl-sentiment.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000 and f"]({png})" in text


def test_report_unpaired_when_items_do_not_align(tmp_path):
    a = _make_run(tmp_path / "a", [0, 1], [0.1, 0.2], [0.0, 0.0])
    b = _make_run(tmp_path / "b", [1, 1], [0.3, 0.3], [0.0, 0.0])
    # rename b's item ids so nothing aligns
    g = b / "generations-harmless.jsonl"
    g.write_text(g.read_text().replace("advbench-", "other-"))
    text = write_report([str(a), str(b)], str(tmp_path / "r")).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| refusal_rate"))
    assert "+0.500 (unpaired)" in row


def test_report_cli_and_bad_folder(tmp_path):
    _make_run(tmp_path / "base", [0, 1], [0.1, 0.2], [0.0, 0.0])
    res = CliRunner().invoke(app, ["report", str(tmp_path / "base"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "report.md").exists()
    text = write_report([str(tmp_path / "base")], str(tmp_path / "rep2"), labels=["my-base"]).read_text()
    assert "**my-base**" in text
    with pytest.raises(InputError, match="labels"):
        write_report([str(tmp_path / "base")], str(tmp_path / "rep3"), labels=["a", "b"])
    with pytest.raises(InputError, match="metrics.json"):
        load_run(str(tmp_path / "missing"))


def test_run_report_compares_each_model_with_each_beta_sweep_at_equal_kl(tmp_path):
    from udasa.run_report import _frontier_section

    def run(label, reward, kl):
        r = load_run(str(_make_run(tmp_path / label, [0] * 4, [reward + 0.01 * (k % 3 - 1) for k in range(30)],
                                   [kl + 0.1 * (k % 3 - 1) for k in range(30)])))
        return {**r, "label": label}

    runs = [run("base", 0.1, 0.0), run("udasa", 0.4, 4.0), run("udasa-beta0.3", 0.3, 2.0),
            run("dpo", 0.5, 6.0), run("dpo-beta0.3", 0.35, 3.0), run("udasa-seed1", 0.45, 3.0),
            run("random-pair", 0.1, 1.0)]
    groups = {"base": "base", "udasa": "udasa", "udasa-beta0.3": "udasa", "dpo": "dpo", "dpo-beta0.3": "dpo",
              "udasa-seed1": "udasa-seed1", "random-pair": "random-pair"}
    lines = _frontier_section(runs, groups, tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert "| model | − udasa frontier | − dpo frontier |" in lines
    # udasa at KL 4 against dpo's 0.35 (KL 3) - 0.5 (KL 6) line: 0.4; a sweep is not read against itself
    assert rows["udasa"].startswith("| udasa | – | +0.000 [")
    assert rows["udasa-seed1"].startswith("| udasa-seed1 | +0.100 [")  # the udasa line gives 0.35 at KL 3
    assert rows["udasa-seed1"].endswith("| +0.100 [+0.100, +0.100] |")  # dpo-beta0.3's own point: 0.35
    # every sweep starts at the base (KL 0, reward 0.1): at KL 1 the udasa line gives 0.2, the dpo line 0.18
    assert rows["random-pair"].startswith("| random-pair | -0.100 [") and "| -0.083 [" in rows["random-pair"]
    assert "base" not in rows  # the base is each sweep's first point, not a model compared with them
