"""`udasa run` end to end on the tiny model: the report, reuse of finished stages, and crash safety."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(tmp_path, model, **extra):
    data = yaml.safe_load((ROOT / "recipes" / "tiny.yaml").read_text())
    data.update(model=model, out=str(tmp_path / "run"), **extra)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def udasa_run(recipe, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("UDASA_KILL_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "udasa.cli", "run", str(recipe)], capture_output=True, text=True,
                          env=env, timeout=900)


def artifacts(run: Path) -> dict:
    """Everything a run produces that must not depend on crashes: records by id, weights, metrics."""
    def records(name):
        rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
        if name.startswith("eval/"):  # the evaluated model's path differs between the two run folders
            rows = [{k: v for k, v in r.items() if k != "model"} for r in rows]
        return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))

    weights = hashlib.sha256((run / "model" / "final" / "model.safetensors").read_bytes()).hexdigest()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    tasks = {t: {m: v["mean"] for m, v in d["metrics"].items()} for t, d in metrics["tasks"].items()}
    gens = {t: records(f"eval/generations-{t}.jsonl") for t in metrics["tasks"]}
    return {"samples": records("samples.jsonl"), "scores": records("scores.jsonl"), "pairs": records("pairs.jsonl"),
            "weights": weights, "tasks": tasks, "generations": gens}


def test_tiny_sentiment_pipeline_continues_plain_text(tmp_path, tiny_model_path):
    # the sentiment recipe's path: IMDb train openings continued as plain text, positive-sentiment spec
    recipe = tiny_recipe(tmp_path, tiny_model_path, prompts=[{"data": "imdb-train", "limit": 6}],
                         score={"spec": "positive-sentiment", "embedder": "bow"},
                         eval={"tasks": ["sentiment"], "limit": 2, "bootstrap_resamples": 100},
                         baselines=[{"name": "best-of-n", "method": "sft-best-of-n"}])
    r = udasa_run(recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    for name in ("samples.jsonl", "scores.jsonl", "pairs.jsonl"):
        rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
        assert rows and all(row.get("format") == "plain" for row in rows), name
    assert json.loads((run / "scores.jsonl").read_text().splitlines()[0])["spec"] == "positive-sentiment"
    assert "| sentiment" in (run / "report" / "report.md").read_text()


def test_tiny_pipeline_end_to_end_and_rerun_reuses_everything(tmp_path, tiny_model_path):
    recipe = tiny_recipe(tmp_path, tiny_model_path)
    r = udasa_run(recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    report = (run / "report" / "report.md").read_text()
    for label in ("base", "udasa", "dpo-nocurr", "best-of-n"):
        assert f"| {label}" in report or f" {label} |" in report
    assert "## Headline metrics" in report and "## Evaluation tables" in report
    assert (run / "report" / "delta_u_by_stage.png").stat().st_size > 1000
    assert (run / "report" / "axis_correlation.png").stat().st_size > 1000
    stages = [json.loads(p.read_text())["artifact"] for p in (run / ".stages").glob("*.json")]
    assert len(stages) >= 11  # prompts, sample, score, eval-base, pairs, train, eval, 3 + 2 for the baselines
    assert (run / "variants" / "dpo-nocurr" / "model" / "final" / "model.safetensors").exists()
    sft = [json.loads(line) for line in (run / "variants" / "best-of-n" / "model" / "sft_data.jsonl").open()]
    scores = {r["id"]: r for r in map(json.loads, (run / "scores.jsonl").open())}
    for row in sft:  # best-of-n imitates each prompt's lowest-u non-empty response
        rec = scores[row["id"]]
        assert rec["u"][row["index"]] == min(u for u, r in zip(rec["u"], rec["responses"]) if r.strip())
    again = udasa_run(recipe)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done earlier") == len(stages)


def test_killed_at_any_point_then_rerun_gives_the_same_artifacts(tmp_path, tiny_model_path):
    """SIGKILL mid-sampling, mid-scoring, between stages, mid-training and mid-evaluation, then rerun."""
    extra = {"baselines": [], "score": {"spec": "safety", "embedder": "bow", "batch_prompts": 4}, "eval": {"tasks": ["harmless", "truthful"], "limit": 3, "bootstrap_resamples": 100,
                                       "batch_size": 1}}
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    r = udasa_run(tiny_recipe(ref_dir, tiny_model_path, **extra))
    assert r.returncode == 0, r.stderr[-3000:]
    reference = artifacts(ref_dir / "run")

    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    recipe = tiny_recipe(crash_dir, tiny_model_path, **extra)
    kills = ["sample.batch:2", "score.batch:1", "stage.end:3", "train.stage:1", "eval.batch:2"]
    for point in kills:
        r = udasa_run(recipe, {"UDASA_KILL_AT": point})
        assert r.returncode == -9, f"{point}: the failpoint was not reached ({r.returncode}) {r.stderr[-2000:]}"
    r = udasa_run(recipe)
    assert r.returncode == 0, r.stderr[-3000:]
    assert artifacts(crash_dir / "run") == reference
