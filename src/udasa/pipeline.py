"""``udasa run``: sample -> score -> pairs -> train -> eval -> report, reusing finished artifacts.

Each stage function already resumes its own output (JSONL appended per batch, training per
stage and checkpoint, evaluation per task). On top, a stage that finished writes a marker
``.stages/<name>.json`` holding a hash of its config and its inputs' markers: a rerun skips it
without loading any model, and a stage whose settings changed under an existing artifact is an
error instead of a silent mix.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from udasa.errors import InputError
from udasa.faults import failpoint
from udasa.io import atomic_write_json, atomic_write_jsonl
from udasa.recipe import Recipe, load_recipe, resolved


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Markers of finished stages in one output folder, and their timings."""

    def __init__(self, out: Path, log: Callable[[str], None] = print):
        self.dir = out / ".stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log

    def run(self, name: str, key: dict, artifact: Path, fn: Callable[[], object]) -> str:
        """Run ``fn`` unless stage ``name`` already finished with the same ``key``; returns the stage hash."""
        h = _hash(key)
        marker = self.dir / f"{name.replace('/', '__')}.json"
        if marker.exists():
            old = json.loads(marker.read_text())
            if old["hash"] == h:
                self.log(f"[{name}] done earlier ({old['seconds']:.0f} s), reusing {artifact}")
                return h
            raise InputError(f"stage '{name}' finished earlier with other settings or inputs; delete {artifact} and "
                             f"{marker}, or use another output folder", path=str(artifact))
        self.log(f"[{name}] -> {artifact}")
        start = time.time()
        fn()
        atomic_write_json(marker, {"hash": h, "seconds": round(time.time() - start, 1), "artifact": str(artifact),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "order": time.time()})
        failpoint("stage.end")
        return h

    def seconds(self) -> dict[str, float]:
        """Seconds each finished stage took, in the order they finished."""
        marks = [(json.loads(p.read_text()), p.stem.replace("__", "/")) for p in self.dir.glob("*.json")]
        return {name: m["seconds"] for m, name in sorted(marks, key=lambda x: x[0].get("order", 0))}


def collect_prompts(recipe: Recipe) -> list[dict]:
    """The training prompts: vendored sets or files, minus anything evaluation or the evaluators use."""
    from udasa.data import load_prompts
    from udasa.evaluation import policy_hh_ids
    from udasa.sampling import read_prompts

    rows, seen = [], set()
    for src in recipe.prompts:
        if src.data is not None:
            try:
                items = load_prompts(src.data)
            except ValueError as e:
                raise InputError(str(e), path=recipe.source, field="prompts.data") from None
            if src.data.startswith("hh-"):
                allowed = policy_hh_ids()
                items = [r for r in items if r["id"] in allowed]
        else:
            items = list(read_prompts(src.path))
        items = items[src.offset:]
        items = items[:src.limit] if src.limit else items
        for r in items:
            if r["id"] not in seen:
                seen.add(r["id"])
                rows.append({k: r[k] for k in ("id", "prompt", "messages", "format") if k in r})
    overlap = training_eval_overlap(rows)
    if overlap:  # e.g. an HH opening line that also opens a dialogue the evaluators were trained on
        warnings.warn(f"dropped {len(overlap)} training prompts that are also evaluation prompts "
                      f"(e.g. {sorted(overlap)[:3]})")
    return [r for r in rows if r["id"] not in overlap]


def eval_prompt_texts() -> dict[str, str]:
    """Every prompt any evaluation task or evaluator reward model reads: normalised text -> id."""
    from udasa.data import advbench, hh_rlhf, imdb, self_instruct, truthfulqa
    from udasa.evaluation import evaluator_ids

    texts = {}
    for r in advbench() + self_instruct("user"):
        texts[_norm(r["prompt"])] = r["id"]
    for r in truthfulqa():
        texts[_norm(r["question"])] = r["id"]
    for r in imdb("test"):
        texts[_norm(r["text"])] = r["id"]
    reserved = evaluator_ids()
    for sub in ("harmless", "helpful"):
        for r in hh_rlhf(sub):
            if r["id"] in reserved:
                texts[_norm(r["prompt"])] = r["id"]
    return texts


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def training_eval_overlap(rows: list[dict]) -> set[str]:
    """Ids of training prompts whose text is an evaluation prompt (or the opening of an IMDb test review)."""
    texts = eval_prompt_texts()
    bad = set()
    for r in rows:
        t = _norm(r["prompt"])
        if t in texts or r["id"] in texts.values():
            bad.add(r["id"])
    return bad


def run(recipe: Recipe | str | Path, *, overrides: list[str] | None = None, out: str | Path | None = None,
        log: Callable[[str], None] = print) -> Path:
    """Run a whole recipe; returns the report's path. Rerunning continues after a crash."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    if out is not None:
        recipe.out = str(out)
    root = recipe.out_dir
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "recipe.resolved.json", resolved(recipe))
    if recipe.threads:
        import torch
        torch.set_num_threads(recipe.threads)
    stages = Stages(root, log)
    started = time.time()

    prompts = root / "prompts.jsonl"
    h_prompts = stages.run("prompts", {"prompts": [asdict(p) for p in recipe.prompts]}, prompts,
                           lambda: atomic_write_jsonl(prompts, collect_prompts(recipe)))

    from udasa.sampling import sample
    scfg = recipe.stage_config("sample")
    samples = root / "samples.jsonl"
    h_sample = stages.run("sample", {"in": h_prompts, "cfg": asdict(scfg)}, samples,
                          lambda: sample(str(prompts), samples, scfg))

    from udasa.uncertainty import score
    ucfg = recipe.stage_config("score")
    scores = root / "scores.jsonl"
    h_score = stages.run("score", {"in": h_sample, "cfg": asdict(ucfg)}, scores, lambda: score(samples, scores, ucfg))

    evals = []
    if recipe.eval_base:
        # keyed on the model alone: the base evaluation does not depend on the samples
        evals.append(("base", _evaluate(recipe, stages, "eval-base", recipe.model, root / "eval-base", None,
                                        recipe.model)))
    main = _variant(recipe, stages, root, scores, h_score, "udasa", "dpo", {}, {},
                    baseline=root / "eval-base" if recipe.eval_base else None)
    evals.append(("udasa", main))
    for v in recipe.baselines:
        d = _variant(recipe, stages, root / "variants" / v.name, scores, h_score, v.name, v.method, v.pairs,
                     v.train, baseline=root / "eval-base" if recipe.eval_base else None)
        evals.append((v.name, d))

    from udasa.run_report import write_run_report
    report = write_run_report(recipe, root, evals, stages.seconds(), time.time() - started)
    log(f"report: {report}")
    return report


def _variant(recipe: Recipe, stages: Stages, folder: Path, scores: Path, h_score: str, name: str, method: str,
             pair_over: dict, train_over: dict, baseline: Path | None) -> Path:
    tcfg = recipe.stage_config("train", train_over)
    model_dir = folder / "model"
    prefix = "" if name == "udasa" else f"{name}/"
    if method == "dpo":
        from udasa.pairs import build_pairs
        pcfg = recipe.stage_config("pairs", pair_over)
        pairs = folder / "pairs.jsonl"
        h_pairs = stages.run(prefix + "pairs", {"in": h_score, "cfg": asdict(pcfg)}, pairs,
                             lambda: build_pairs(scores, pairs, pcfg))
        h_train = stages.run(prefix + "train", {"in": h_pairs, "cfg": asdict(tcfg)}, model_dir,
                             lambda: _train(recipe, pairs, model_dir, tcfg))
    else:
        from udasa.training.sft import train_best_of_n
        h_train = stages.run(prefix + "train", {"in": h_score, "cfg": asdict(tcfg), "method": method}, model_dir,
                             lambda: train_best_of_n(scores, model_dir, tcfg))
    return _evaluate(recipe, stages, f"{prefix}eval", str(model_dir / "final"), folder / "eval", baseline, h_train)


def _train(recipe: Recipe, pairs: Path, model_dir: Path, tcfg) -> None:
    if not recipe.train_launcher:
        from udasa.training import train
        train(pairs, model_dir, tcfg)
        return
    # one process per device: the launcher starts `udasa train` with the resolved config
    cfg_file = model_dir.parent / "train_config.json"
    atomic_write_json(cfg_file, asdict(tcfg))
    cmd = [*recipe.train_launcher, "-m", "udasa.cli", "train", "--pairs", str(pairs), "--out", str(model_dir),
           "--config", str(cfg_file)]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError(f"training under the launcher failed: {' '.join(cmd)}")


def _evaluate(recipe: Recipe, stages: Stages, name: str, model: str, out: Path, baseline: Path | None,
              h_in: str) -> Path:
    from udasa.evaluation import evaluate
    over = {"model": model, "out": str(out)}
    if baseline is not None and "helpful" in recipe.stage_config("eval").tasks:
        over["baseline"] = str(baseline)
    stages.run(name, {"in": h_in, "cfg": {**recipe.eval, **over}}, out,
               lambda: evaluate(recipe.stage_config("eval", over)))
    return out

