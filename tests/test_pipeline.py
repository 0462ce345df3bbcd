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
    assert "not finished yet" not in report  # every baseline ran
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

    # --report-only runs nothing: a baseline added to the recipe since is left out, not trained
    from udasa.errors import InputError
    from udasa.pipeline import run as run_pipeline

    data = yaml.safe_load(recipe.read_text())
    data["baselines"] = data.get("baselines", []) + [{"name": "not-run-yet", "train": {"beta": 0.3}}]
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(data))
    (run / "report" / "report.md").unlink()
    before = sorted(p.name for p in (run / ".stages").iterdir())
    resolved = (run / "recipe.resolved.json").read_bytes()
    path = run_pipeline(grown, report_only=True, log=lambda _: None)
    assert path == run / "report" / "report.md" and "| best-of-n" in path.read_text()
    assert "(report rewritten with `--report-only`)" in path.read_text()
    assert "| not-run-yet" not in path.read_text() and not (run / "variants" / "not-run-yet").exists()
    assert "Baselines of the recipe not finished yet, so absent below: not-run-yet " in path.read_text()
    assert sorted(p.name for p in (run / ".stages").iterdir()) == before
    assert (run / "recipe.resolved.json").read_bytes() == resolved
    with pytest.raises(InputError, match="nothing to report yet"):
        run_pipeline(grown, report_only=True, out=tmp_path / "empty")


def test_kept_inputs_restored_on_a_new_machine_are_not_drawn_again(tmp_path, tiny_model_path):
    # runs/ does not survive a change of machine: the samples, scores and base evaluation kept in docs/runs
    # (scripts/results_section.py --keep-inputs) are put back with --restore, and the run resumes after them
    sys.path.insert(0, str(ROOT / "scripts"))
    import results_section

    recipe = tiny_recipe(tmp_path, tiny_model_path, baselines=[], eval={"tasks": ["harmless"], "limit": 2,
                                                                       "bootstrap_resamples": 100})
    assert udasa_run(recipe).returncode == 0
    run, kept = tmp_path / "run", tmp_path / "docs-runs" / "tiny"
    inputs = {name: (run / name).read_bytes() for name in results_section.INPUTS}
    results_section.archive(run, kept)
    copies = results_section.keep_inputs(run, kept)
    assert {c.name for c in copies} >= {"samples.jsonl.gz", "scores.jsonl.gz", "sample.json", "score.json",
                                        "eval-base__harmless.json"}
    assert not any(c.name.startswith(("train", "pairs")) for c in copies)  # what training made is not kept
    first = {c: c.read_bytes() for c in copies}
    assert {c: c.read_bytes() for c in results_section.keep_inputs(run, kept)} == first  # no timestamp in the gzip
    # a round's stages write samples.jsonl and scores.jsonl too, under round-2/: not the run's inputs
    for stage in ("round-2__sample", "round-2__score"):
        (run / ".stages" / f"{stage}.json").write_text(json.dumps({"hash": "x", "artifact": str(run / "round-2" /
                                                                   "samples.jsonl"), "seconds": 1}))
    (kept / "stale.jsonl.gz").write_bytes(b"kept by an earlier call")  # replaced as a whole, not mixed in
    assert sorted(results_section.keep_inputs(run, kept)) == sorted(copies)
    assert not (kept / "stale.jsonl.gz").exists()

    import shutil
    shutil.rmtree(run)  # the new machine
    written = results_section.restore(kept, run)
    assert {p.name for p in written} >= {"samples.jsonl", "scores.jsonl", "generations-harmless.jsonl"}
    assert {name: (run / name).read_bytes() for name in inputs} == inputs
    assert results_section.restore(kept, run) == []  # identical files are left as they are
    r = udasa_run(recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for stage in ("prompts", "sample", "score", "eval-base/harmless"):
        assert f"[{stage}] done earlier" in r.stdout, stage
    assert "[train] -> " in r.stdout  # training, which was not kept, runs again

    (run / "scores.jsonl").write_text("{}\n")  # never overwrite a run's own work
    with pytest.raises(SystemExit, match="differ from the kept copies"):
        results_section.restore(kept, run)
    with pytest.raises(SystemExit, match="no inputs kept"):
        results_section.restore(tmp_path / "nothing", run)


def test_parts_of_a_recipe_run_side_by_side_with_only(tmp_path, tiny_model_path):
    from udasa.errors import InputError
    from udasa.pipeline import run as run_pipeline

    recipe = tiny_recipe(tmp_path, tiny_model_path, eval={"tasks": ["harmless"], "limit": 2, "bootstrap_resamples": 100})
    run = tmp_path / "run"
    with pytest.raises(InputError, match="main or a baseline .*got nope"):
        run_pipeline(recipe, only=["best-of-n", "nope"])
    with pytest.raises(InputError, match="do not combine"):
        run_pipeline(recipe, only=["main"], report_only=True)

    # a baseline first, as a second process would while the main model trains: no report without the main model
    said = []
    assert run_pipeline(recipe, only=["best-of-n"], log=said.append) is None
    assert any("main model has not finished" in line for line in said)
    marks = {p.name for p in (run / ".stages").glob("*.json")}
    assert "best-of-n__train.json" in marks and "best-of-n__eval__harmless.json" in marks
    assert "train.json" not in marks and not any(m.startswith("dpo-nocurr") for m in marks)

    # the main part reuses the shared stages, leaves the other baselines alone, and reports the finished one
    said = []
    report = run_pipeline(recipe, only=["main"], log=said.append).read_text()
    assert not any(line.startswith(("[sample] ->", "[score] ->", "[best-of-n/")) for line in said), said
    assert (run / "model" / "final" / "model.safetensors").exists() and not (run / "variants" / "dpo-nocurr").exists()
    assert "| best-of-n" in report
    assert "Baselines of the recipe not finished yet, so absent below: dpo-nocurr" in report


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


def shrunk(name: str, tmp_path, model: str, **extra) -> Path:
    """A shipped recipe cut down to the tiny model: same structure (selection, baselines, trajectory), tiny sizes."""
    data = yaml.safe_load((ROOT / "recipes" / name).read_text())
    data["prompts"] = [{**p, "limit": 4} for p in data["prompts"]]
    data.update(model=model, out=str(tmp_path / "run"), threads=1)
    data["sample"].update(n=3, max_new_tokens=6, batch_size=12)
    data["score"]["embedder"] = "bow"
    data["train"].update(max_steps=1, per_device_train_batch_size=2, save_steps=1, max_length=512)
    sizes = {t: 3 for t in data["eval"]["tasks"]}
    data["eval"].update(sizes=sizes, bootstrap_resamples=100, rm_max_pairs=40, batch_size=4)
    if data.get("select"):
        data["select"]["candidates"] = data["select"]["candidates"][:2]
        data["eval"]["sizes"][data["select"]["task"]] = 3
        data["select"]["max"] = {}
    data["baselines"] = [{k: v for k, v in b.items() if k != "eval"} for b in data["baselines"]
                         if b["name"] in ("dpo-no-curriculum", "random-pair")]
    data.update(extra)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_tiny_sentiment_recipe_selects_on_dev_and_reports_every_diagnostic(tmp_path, tiny_model_path):
    r = udasa_run(shrunk("sentiment.yaml", tmp_path, tiny_model_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    sel = json.loads((run / "selection.json").read_text())
    assert sel["task"] == "sentiment-dev" and len(sel["candidates"]) == 2 and sel["chosen"] in ("select-1", "select-2")
    chosen = next(c for c in sel["candidates"] if c["candidate"] == sel["chosen"])
    best = max(c["dev"]["reward"]["mean"] for c in sel["candidates"])
    assert chosen["dev"]["reward"]["mean"] == best  # the dev metric decided
    # candidates were evaluated on the dev task only; the main model is the chosen candidate, on the test task
    assert set(json.loads((run / "select" / "select-1" / "eval" / "metrics.json").read_text())["tasks"]) == \
        {"sentiment-dev"}
    main = json.loads((run / "eval" / "metrics.json").read_text())
    assert main["model"] == str(run / "select" / sel["chosen"] / "model" / "final") and "sentiment" in main["tasks"]
    # the baselines train with the chosen settings
    train_cfg = json.loads((run / "variants" / "random-pair" / "model" / "run.json").read_text())["config"]
    assert train_cfg["learning_rate"] == chosen["train"]["learning_rate"]
    pairs = [json.loads(x) for x in (run / "variants" / "random-pair" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["selection"] == "random" and p["stage"] == "all" for p in pairs)
    report = (run / "report" / "report.md").read_text()
    for section in ("## Hyperparameters chosen on the dev task", "## UDASA against each model", "## Reward against KL",
                    "## Trajectory over the curriculum", "## Pair diagnostics", "## Training",
                    "## Generations side by side", "udasa − random-pair", "| stage | seconds | device | dtype |"):
        assert section in report, section
    assert (run / "report" / "frontier-sentiment.png").stat().st_size > 1000
    assert (run / "report" / "training_curves.png").stat().st_size > 1000
    diag = json.loads((run / "diagnostics.json").read_text())
    assert 0 <= diag["pairs"]["udasa"]["sentiment"]["chosen_more_positive"]["mean"] <= 1
    assert "random-pair" in diag["pairs"] and set(diag["training"]["udasa"]) == {"conservative", "moderate",
                                                                                   "exploratory"}
    assert sorted(p.name for p in (run / "eval-stages").iterdir()) == ["stage-1-conservative", "stage-2-moderate"]
    for name in ("distinct_2", "repetition", "nll_base"):
        assert name in main["tasks"]["sentiment"]["metrics"]
    markers = [json.loads(p.read_text()) for p in (run / ".stages").glob("*.json")]
    assert all(m["placement"] == {"device": "cpu", "dtype": "float32"} for m in markers if "placement" in m)
    # a report-only rewrite goes through the selection without writing it again, and keeps every section
    from udasa.pipeline import run as run_pipeline

    selection = (run / "selection.json").stat().st_mtime_ns
    rewritten = run_pipeline(shrunk("sentiment.yaml", tmp_path, tiny_model_path), report_only=True,
                             log=lambda _: None).read_text()
    assert (run / "selection.json").stat().st_mtime_ns == selection
    assert all(s in rewritten for s in ("## Hyperparameters chosen on the dev task", "udasa − random-pair",
                                        "## Trajectory over the curriculum"))
    assert sum("placement" in m for m in markers) >= 8


def test_tiny_harmless_recipe_judges_each_source_by_its_own_spec(tmp_path, tiny_model_path):
    r = udasa_run(shrunk("harmless.yaml", tmp_path, tiny_model_path, device="cpu"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "run"
    scores = [json.loads(x) for x in (run / "scores.jsonl").read_text().splitlines()]
    specs = {s["id"].split("-")[0] + "-" + s["id"].split("-")[1]: s["spec"] for s in scores}
    assert specs["hh-harmless"] == "safety" and specs["hh-helpful"] == "helpful"
    assert specs["self-instruct"] == "helpful"
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["pairs"]["udasa"]["refusal"]["pairs"] >= 1
    metrics = json.loads((run / "eval-base" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"harmless", "helpful"}
    assert "over_refusal_rate" in (run / "report" / "report.md").read_text()


def test_two_rounds_resume_after_a_kill_in_round_two_and_adaptive_resplitting(tmp_path, tiny_model_path):
    extra = {"rounds": 2, "prompts_per_round": 4, "baselines": [
        {"name": "adaptive", "pairs": {"curriculum": {"curriculum": "adaptive"}}}],
        "eval": {"tasks": ["sentiment"], "limit": 2, "bootstrap_resamples": 100},
        "prompts": [{"data": "imdb-train", "limit": 8}], "score": {"spec": "positive-sentiment", "embedder": "bow"}}
    recipe = tiny_recipe(tmp_path, tiny_model_path, **extra)
    # each round samples one batch (4 prompts x 3 samples = the tiny recipe's batch size): kill in round 2's
    r = udasa_run(recipe, {"UDASA_KILL_AT": "sample.batch:2"})
    assert r.returncode == -9, r.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "model" / "final").exists() and not (run / ".stages" / "round-2__sample.json").exists()
    r = udasa_run(recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("prompts", "sample", "score", "pairs", "train", "eval__sentiment"):
        assert (run / ".stages" / f"round-2__{name}.json").exists(), name
    round1 = [json.loads(x)["id"] for x in (run / "prompts.round-1.jsonl").read_text().splitlines()]
    round2 = [json.loads(x)["id"] for x in (run / "round-2" / "prompts.jsonl").read_text().splitlines()]
    assert len(round1) == len(round2) == 4 and not set(round1) & set(round2)  # disjoint slices
    samples2 = [json.loads(x) for x in (run / "round-2" / "samples.jsonl").read_text().splitlines()]
    assert all(s["model"] == str(run / "model" / "final") for s in samples2)  # round 2 samples round 1's model
    run2 = json.loads((run / "round-2" / "model" / "run.json").read_text())
    assert run2["initial_model"] == str(run / "model" / "final")
    assert run2["config"]["reference_model"] == tiny_model_path  # the reference stays the initial model
    stage = json.loads((run / "round-2" / "model" / "stage-1-conservative" / "udasa_stage.json").read_text())
    assert stage["reference"] == tiny_model_path
    report = (run / "report" / "report.md").read_text()
    assert "## Rounds" in report and "udasa-round-2" in report and (run / "report" / "rounds.png").exists()
    # the adaptive curriculum re-scored the remaining pairs after stages 1 and 2 and kept the stage sizes
    model = run / "variants" / "adaptive" / "model"
    log = [json.loads(x) for x in (model / "adaptive.jsonl").read_text().splitlines()]
    assert [e["after"] for e in log] == ["stage-1-conservative", "stage-2-moderate"]
    trained = [json.loads(x) for x in (model / "pairs.trained.jsonl").read_text().splitlines()]
    static = [json.loads(x) for x in (run / "variants" / "adaptive" / "pairs.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in trained) == sorted(p["id"] for p in static)
    from collections import Counter
    assert Counter(p["stage"] for p in trained) == Counter(p["stage"] for p in static)
    assert all("delta_u_initial" in p for p in trained)
    # the report shows how much the order changed and the stages as trained
    assert "Spearman ρ (old, new Δu)" in report and "| adaptive | stage-1-conservative |" in report


def test_as_trained_relabels_stages_and_delta_u_from_the_adaptive_record(tmp_path):
    from udasa.adaptive import as_trained

    pairs = [{"id": "a", "stage": "moderate", "stage_index": 1, "delta_u": 0.5, "chosen": "x"},
             {"id": "b", "stage": "exploratory", "stage_index": 2, "delta_u": 0.2, "chosen": "y"}]
    assert as_trained(pairs, tmp_path / "missing.jsonl") == pairs  # a static run: as they are
    trained = tmp_path / "pairs.trained.jsonl"
    trained.write_text(json.dumps({"id": "a", "stage": "exploratory", "stage_index": 2, "delta_u_initial": 0.5,
                                   "delta_u": 0.1}) + "\n" +
                       json.dumps({"id": "b", "stage": "moderate", "stage_index": 1, "delta_u_initial": 0.2,
                                   "delta_u": 0.6}) + "\n")
    out = as_trained(pairs, trained)
    assert [(p["stage"], p["stage_index"], p["delta_u"], p["chosen"]) for p in out] == [
        ("exploratory", 2, 0.1, "x"), ("moderate", 1, 0.6, "y")]


def test_a_stage_resumed_after_a_kill_counts_the_time_before_it(tmp_path):
    import os

    from udasa.pipeline import Stages
    from udasa.run_report import _stage_table

    stages = Stages(tmp_path, log=lambda _: None)
    artifact = tmp_path / "samples.jsonl"

    def killed():
        artifact.write_text("half\n")
        raise KeyboardInterrupt  # stands for a SIGKILL: nothing after fn() runs

    with pytest.raises(KeyboardInterrupt):
        stages.run("sample", {"n": 1}, artifact, killed)
    attempt = tmp_path / ".stages" / "sample.attempt"
    started = json.loads(attempt.read_text())["started"]
    os.utime(artifact, (started + 100, started + 100))  # the killed invocation wrote last 100 s after it began
    stages.run("sample", {"n": 1}, artifact, lambda: artifact.write_text("half\nrest\n"))
    marker = json.loads((tmp_path / ".stages" / "sample.json").read_text())
    assert marker["seconds_before_resuming"] == pytest.approx(100, abs=0.2)
    assert marker["seconds"] >= 100 and not attempt.exists()
    assert "| sample | 100 (resumed: 100 of them before) |" in "\n".join(_stage_table(stages.finished()))
    stages.run("train", {"n": 1}, tmp_path / "model", lambda: (tmp_path / "model").mkdir())  # never stopped
    assert "seconds_before_resuming" not in json.loads((tmp_path / ".stages" / "train.json").read_text())
    with pytest.raises(KeyboardInterrupt):  # stopped with other settings: that time is not this stage's
        stages.run("score", {"spec": "a"}, tmp_path / "scores.jsonl", killed)
    stages.run("score", {"spec": "b"}, tmp_path / "scores.jsonl", lambda: None)
    assert "seconds_before_resuming" not in json.loads((tmp_path / ".stages" / "score.json").read_text())
