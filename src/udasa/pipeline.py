"""``udasa run``: sample -> score -> pairs -> train -> eval -> report, reusing finished artifacts.

Each stage function already resumes its own output (JSONL appended per batch, training per
stage and checkpoint, evaluation per task). On top, a stage that finished writes a marker
``.stages/<name>.json`` holding a hash of its config and its inputs' markers: a rerun skips it
without loading any model, and a stage whose settings changed under an existing artifact is an
error instead of a silent mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from udasa.errors import InputError
from udasa.faults import failpoint
from udasa.io import atomic_write_json, atomic_write_jsonl, file_sha256, held
from udasa.models import model_fingerprint
from udasa.recipe import Recipe, load_recipe, resolved
from udasa.resume import changed


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_key(cfg) -> dict:
    """A stage config's settings that differ from the config class's defaults (nested configs likewise).

    Stage markers hash this instead of every field, so that a udasa release adding a setting (whose
    default keeps the old behaviour) does not invalidate finished stages; changing any setting does.
    """
    return _differing(asdict(cfg), asdict(type(cfg)()))


def _differing(now: dict, default: dict) -> dict:
    out = {}
    for k, v in now.items():
        d = default.get(k, _differing)  # the function itself: a sentinel equal to no setting
        if isinstance(v, dict) and isinstance(d, dict):
            if sub := _differing(v, d):
                out[k] = sub
        elif v != d:
            out[k] = v
    return out


class NotFinished(Exception):
    """A stage a report-only run would have to run."""


class Stages:
    """Markers of finished stages in one output folder, and their timings.

    With ``report_only`` nothing runs: a stage not finished with the same key raises `NotFinished`."""

    def __init__(self, out: Path, log: Callable[[str], None] = print, report_only: bool = False):
        self.dir = out / ".stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.report_only = report_only

    def run(self, name: str, key: dict, artifact: Path, fn: Callable[[], object], cfg=None) -> str:
        """Run ``fn`` unless stage ``name`` already finished with the same ``key``; returns the stage hash.

        ``cfg`` (a stage config with ``device``/``dtype``) records where the stage's models ran."""
        key = json.loads(json.dumps(key, default=str))
        h = _hash(key)
        marker = self.dir / f"{name.replace('/', '__')}.json"
        if marker.exists():
            try:
                old = json.loads(marker.read_text())
                done = old["hash"] == h
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError("is not a stage marker udasa wrote; delete it to rerun the stage",
                                 path=str(marker)) from None
            if done:
                self.log(f"[{name}] done earlier ({old['seconds']:.0f} s), reusing {artifact}")
                return h
            diff = changed(old["key"], key) if isinstance(old.get("key"), dict) else []
            what = f" ({', '.join(diff)} changed)" if diff else ""
            if self.report_only:  # never advise deleting next to a run that may be going on
                raise InputError(f"stage '{name}' finished with other settings or inputs{what}: pass the recipe and "
                                 "--set/--device/--dtype overrides the run was started with", path=str(artifact))
            raise InputError(f"stage '{name}' finished earlier with other settings or inputs{what}; delete {artifact} "
                             f"and {marker}, or use another output folder", path=str(artifact))
        if self.report_only:
            raise NotFinished(name)
        self.log(f"[{name}] -> {artifact}")
        start = time.time()
        # a stage resumed after a kill also counts the time its stopped invocations spent (to their last write)
        attempt = marker.with_suffix(".attempt")
        earlier = _stopped_seconds(attempt, artifact, h)
        atomic_write_json(attempt, {"hash": h, "started": start, "earlier": earlier})
        fn()
        record = {"hash": h, "key": key, "seconds": round(time.time() - start + earlier, 1),
                  "artifact": str(artifact), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "order": time.time()}
        if earlier:
            record["seconds_before_resuming"] = round(earlier, 1)
        if cfg is not None:
            record["config"] = json.loads(json.dumps(asdict(cfg), default=str))
        if cfg is not None and hasattr(cfg, "device"):
            from udasa.device import Placement
            record["placement"] = Placement.of(cfg.device, getattr(cfg, "dtype", "auto")).describe()
        atomic_write_json(marker, record)
        attempt.unlink(missing_ok=True)
        failpoint("stage.end")
        return h

    def reader(self) -> "Stages":
        """The same folder, report-only: reuses what has finished (quietly), runs nothing."""
        return Stages(self.dir.parent, lambda _: None, report_only=True)

    def finished(self) -> dict[str, dict]:
        """The marker of each finished stage (seconds, placement, ...), in the order they finished."""
        marks = [(json.loads(p.read_text()), p.stem.replace("__", "/")) for p in self.dir.glob("*.json")]
        return {name: m for m, name in sorted(marks, key=lambda x: x[0].get("order", 0))}

    def seconds(self) -> dict[str, float]:
        """Seconds each finished stage took, in the order they finished."""
        return {name: m["seconds"] for name, m in self.finished().items()}


def _stopped_seconds(attempt: Path, artifact: Path, h: str) -> float:
    """Seconds spent by the invocations of a stage (with key hash ``h``) that were stopped before it finished:
    each counts from its start to the last write under the stage's artifact (what a killed process leaves)."""
    try:
        began = json.loads(attempt.read_text())
        started, earlier = float(began["started"]), float(began["earlier"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    if began.get("hash") != h:  # stopped with other settings or inputs: not time spent on this stage
        return 0.0
    paths = [artifact, *artifact.rglob("*")] if artifact.is_dir() else [artifact]
    last = max((q.stat().st_mtime for q in paths if q.exists()), default=started)
    return earlier + max(0.0, last - started)


def _spec_key(recipe: Recipe, ucfg) -> dict:
    """The fitted settings each spec of the run brings (their change must invalidate the scores)."""
    specs = dict.fromkeys([ucfg.spec] + [p.spec for p in recipe.prompts if p.spec])
    settings = {s: ucfg.spec_settings(s) for s in specs}
    if list(settings) == [ucfg.spec]:
        return {"spec": settings[ucfg.spec]} if settings[ucfg.spec] else {}
    return {"specs": settings}


def collect_prompts(recipe: Recipe) -> list[dict]:
    """The training prompts: vendored sets (restricted by `udasa.data.splits`) or files, minus anything
    evaluation or the evaluators read."""
    from udasa.data.splits import training_eval_overlap, training_prompts
    from udasa.sampling import read_prompts

    rows, seen = [], set()
    for i, src in enumerate(recipe.prompts):
        if src.data is not None:
            try:
                items = training_prompts(src.data)
            except (ValueError, InputError) as e:
                msg = str(e).split(": ", 1)[-1] if isinstance(e, InputError) else str(e)
                raise InputError(msg, path=recipe.source, field=f"prompts[{i}].data") from None
        else:
            items = list(read_prompts(src.path))
        items = items[src.offset:]
        items = items[:src.limit] if src.limit else items
        for r in items:
            if r["id"] not in seen:
                seen.add(r["id"])
                rows.append({k: r[k] for k in ("id", "prompt", "messages", "format", "spec") if k in r})
                if src.spec:
                    rows[-1]["spec"] = src.spec
    overlap = training_eval_overlap(rows)
    if overlap:  # e.g. an HH opening line that also opens a dialogue the evaluators were trained on
        warnings.warn(f"dropped {len(overlap)} training prompts that are also evaluation prompts "
                      f"(e.g. {sorted(overlap)[:3]})")
    return [r for r in rows if r["id"] not in overlap]


@dataclass
class Trained:
    """One trained model of a run and where its pieces are, for the evaluation and the report."""

    name: str  # "udasa", a baseline's name, or "select-k"
    group: str  # the family a frontier line connects (a beta sweep of one method)
    method: str
    model_dir: Path
    pairs: Path | None
    eval_dir: Path | None = None
    h_train: str = ""


def run(recipe: Recipe | str | Path, *, overrides: list[str] | None = None, out: str | Path | None = None,
        log: Callable[[str], None] = print, report_only: bool = False, only: list[str] | None = None) -> Path | None:
    """Run a whole recipe; returns the report's path (None when ``only`` leaves the main model to a process that
    has not finished it). Rerunning continues after a crash.

    ``report_only``: run nothing, and rewrite the report from the stages that have finished (safe while
    another process is running the recipe); the main model must have been trained and evaluated.

    ``only``: run the shared stages and then just these parts: ``"main"`` (the main model, its evaluations
    and rounds) and/or baselines by name. Processes given disjoint parts share one output folder and run side
    by side, one per device or core: one started while another runs the shared stages waits for them, and
    the report includes whatever has finished when each one ends."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    if only is not None and report_only:
        raise InputError("--only and --report-only do not combine: a report-only run runs no part",
                         path=recipe.source, field="only")
    if only is not None:
        known = ["main", *(v.name for v in recipe.baselines)]
        unknown = [x for x in only if x not in known]
        if unknown or not only:
            raise InputError(f"--only names parts of the recipe: main or a baseline ({', '.join(known[1:]) or 'none'}); "
                             f"got {', '.join(unknown) or 'nothing'}", path=recipe.source, field="only")
    if out is not None:
        recipe.out = str(out)
    root = recipe.out_dir
    if report_only:
        try:
            return _report_only(recipe, root, log)
        except NotFinished as e:
            raise InputError(f"stage '{e}', which the main model's report needs, has not finished: nothing to "
                             "report yet (run the recipe first)", path=str(root)) from None
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "recipe.resolved.json", resolved(recipe))
    if recipe.threads:
        import torch
        torch.set_num_threads(recipe.threads)
    return _run(recipe, root, Stages(root, log), log, only)


def _report_only(recipe: Recipe, root: Path, log: Callable[[str], None]) -> Path:
    if not (root / ".stages").is_dir():
        raise InputError("no finished stages here: nothing to report yet", path=str(root))
    return _run(recipe, root, Stages(root, lambda _: None, report_only=True), log)


@dataclass
class _Shared:
    """What every part of a recipe builds on: its prompts, samples and scores, and the base's evaluation."""
    all_prompts: tuple[Path, str]  # every prompt of the recipe (round 1 may use a slice) and its stage hash
    scores: Path
    h_score: str
    base_eval: Path | None


def _shared_stages(recipe: Recipe, root: Path, stages: Stages) -> _Shared:
    prompts = root / "prompts.jsonl"
    # prompt files and the model folder enter the keys by content: edited in place, they are not reused
    files = {p.path: file_sha256(p.path) for p in recipe.prompts if p.path is not None}
    sources = [{k: v for k, v in asdict(p).items() if not (k == "spec" and v is None)} for p in recipe.prompts]
    h_prompts = stages.run("prompts", {"prompts": sources, **({"files": files} if files else {})}, prompts,
                           lambda: atomic_write_jsonl(prompts, collect_prompts(recipe)))

    all_prompts = (prompts, h_prompts)
    if recipe.rounds > 1:
        prompts, h_prompts = _round_prompts(recipe, stages, root / "prompts.round-1.jsonl", "", prompts, h_prompts, 1)
    model_fp = model_fingerprint(recipe.model)
    _, scores, h_score = _sample_and_score(recipe, stages, "", root, prompts, h_prompts, recipe.model, model_fp)
    base_eval = None
    if recipe.eval_base:
        # keyed on the model alone: the base evaluation does not depend on the samples
        base_eval = _evaluate(recipe, stages, "eval-base", recipe.model, root / "eval-base", None,
                              f"{recipe.model}@{model_fp}")
    return _Shared(all_prompts, scores, h_score, base_eval)


def _run(recipe: Recipe, root: Path, stages: Stages, log: Callable[[str], None],
         only: list[str] | None = None) -> Path | None:
    started = time.time()
    # a second process (``only``) started meanwhile waits here for the shared stages instead of failing on them
    with contextlib.nullcontext() if stages.report_only else held(stages.dir / "shared"):
        shared = _shared_stages(recipe, root, stages)
    if only is not None and "main" not in only:
        return _run_baselines_only(recipe, root, stages, log, only, shared)
    all_prompts, scores, h_score, base_eval = shared.all_prompts, shared.scores, shared.h_score, shared.base_eval
    evals: list[tuple[str, Path]] = [("base", base_eval)] if base_eval is not None else []
    pairs, h_pairs = _pairs(recipe, stages, "", root, scores, h_score, {})

    chosen: dict = {}
    if recipe.select is not None:
        main, chosen = _select(recipe, stages, root, pairs, h_pairs)
    else:
        main = Trained("udasa", "udasa", "dpo", root / "model", pairs)
        main.h_train = _train_stage(recipe, stages, "", main, pairs, h_pairs, recipe.stage_config("train"),
                                    _adapter(recipe, {}, pairs, scores, main.model_dir))
    main.eval_dir = _evaluate(recipe, stages, "eval", str(main.model_dir / "final"), root / "eval", base_eval,
                              main.h_train)
    evals.append(("udasa", main.eval_dir))
    trained = [main]
    if recipe.eval_stages:
        with _unless_report_only(stages):
            _evaluate_stages(recipe, stages, main, root / "eval-stages", base_eval)

    from udasa.run_report import write_run_report

    for r in range(2, recipe.rounds + 1):  # iterative rounds: each samples from the model the last one made
        try:
            t = _round(recipe, stages, root, r, trained[-1], all_prompts, chosen, base_eval)
        except NotFinished:
            break
        evals.append((t.name, t.eval_dir))
        trained.append(t)
        if not stages.report_only:
            write_run_report(recipe, root, evals, trained, stages.finished(), time.time() - started)

    for v in recipe.baselines:
        # another process's baseline (``only``) is only read, and left out while not finished, as in a report-only run
        mine = stages if only is None or v.name in only else stages.reader()
        with _unless_report_only(mine):
            _baseline(recipe, mine, root, v, chosen, scores, h_score, base_eval, evals, trained)
        if not stages.report_only:
            write_run_report(recipe, root, evals, trained, stages.finished(), time.time() - started)  # so far

    report = write_run_report(recipe, root, evals, trained, stages.finished(),
                              None if stages.report_only else time.time() - started)
    log(f"report: {report}")
    return report


def _run_baselines_only(recipe: Recipe, root: Path, stages: Stages, log: Callable[[str], None],
                        names: list[str], shared: _Shared) -> Path | None:
    """Some baselines while another process trains the main model: after the shared stages (run here if no
    one has yet), the named baselines, then the report if the main model has finished (else its process or a
    later ``--report-only`` writes it)."""
    scores, h_score = shared.scores, shared.h_score
    chosen: dict = {}
    if recipe.select is not None:  # the baselines train at the selected settings: the selection must be done
        try:
            pairs, h_pairs = _pairs(recipe, stages.reader(), "", root, scores, h_score, {})
            _, chosen = _select(recipe, stages.reader(), root, pairs, h_pairs)
        except NotFinished as e:
            raise InputError(f"the baselines train at the settings `select` chooses, and stage '{e}' has not "
                             "finished: run the main part (--only main) first", path=str(root)) from None
    for v in recipe.baselines:
        if v.name in names:
            _baseline(recipe, stages, root, v, chosen, scores, h_score, shared.base_eval, [], [])
    try:
        return _report_only(recipe, root, log)
    except NotFinished:
        log("the main model has not finished: its process writes the report (or `udasa run --report-only` later)")
        return None


@contextlib.contextmanager
def _unless_report_only(stages: Stages):
    """In a report-only run, skip what is not finished; otherwise run it."""
    try:
        yield
    except NotFinished:
        if not stages.report_only:
            raise


def _baseline(recipe: Recipe, stages: Stages, root: Path, v, chosen: dict, scores: Path, h_score: str,
              base_eval: Path | None, evals: list, trained: list) -> None:
    """Train and evaluate one baseline of the recipe (a variant of the main model) on the same samples."""
    folder = root / "variants" / v.name
    t = Trained(v.name, v.group or v.name, v.method, folder / "model", None)
    tcfg = recipe.stage_config("train", {**chosen, **v.train})
    if v.method == "dpo":
        t.pairs, h = _pairs(recipe, stages, f"{v.name}/", folder, scores, h_score, v.pairs)
        t.h_train = _train_stage(recipe, stages, f"{v.name}/", t, t.pairs, h, tcfg,
                                 _adapter(recipe, v.pairs, t.pairs, scores, t.model_dir))
    else:
        from udasa.training.sft import train_best_of_n
        t.h_train = stages.run(f"{v.name}/train", {"in": h_score, "cfg": config_key(tcfg), "method": v.method,
                                                   "model": model_fingerprint(tcfg.model)},
                               t.model_dir, lambda: train_best_of_n(scores, t.model_dir, tcfg), cfg=tcfg)
    t.eval_dir = _evaluate(recipe, stages, f"{v.name}/eval", str(t.model_dir / "final"), folder / "eval",
                           base_eval, t.h_train, v.eval)
    evals.append((v.name, t.eval_dir))
    trained.append(t)


def _sample_and_score(recipe: Recipe, stages: Stages, prefix: str, folder: Path, prompts: Path, h_prompts: str,
                      model: str, model_key: str) -> tuple[Path, Path, str]:
    """The sample and score stages of one round (``model`` samples; ``model_key`` stands for its weights)."""
    from udasa.sampling import sample
    from udasa.uncertainty import score

    scfg = recipe.stage_config("sample", {"model": model})
    samples = folder / "samples.jsonl"
    h_sample = stages.run(prefix + "sample", {"in": h_prompts, "cfg": config_key(scfg), "model": model_key}, samples,
                          lambda: sample(str(prompts), samples, scfg), cfg=scfg)
    ucfg = recipe.stage_config("score", {"model": model})
    scores = folder / "scores.jsonl"
    h_score = stages.run(prefix + "score", {"in": h_sample, "cfg": config_key(ucfg), **_spec_key(recipe, ucfg)},
                         scores, lambda: score(samples, scores, ucfg), cfg=ucfg)
    return samples, scores, h_score


def _round_prompts(recipe: Recipe, stages: Stages, path: Path, prefix: str, prompts: Path, h_prompts: str,
                   r: int) -> tuple[Path, str]:
    """Round r's prompts: the same ones each round (``reuse_prompts``) or the r-th slice of them."""
    from udasa.io import read_jsonl

    def write():
        rows = [rec for _, rec in read_jsonl(prompts)]
        k = recipe.prompts_per_round or (len(rows) if recipe.reuse_prompts else len(rows) // recipe.rounds)
        start = 0 if recipe.reuse_prompts else (r - 1) * k
        if k < 1 or start + k > len(rows):
            raise InputError(f"{recipe.rounds} rounds of {k} prompts need {recipe.rounds * k} prompts without "
                             f"reuse_prompts; the recipe collects {len(rows)}", path=recipe.source,
                             field="prompts_per_round")
        atomic_write_jsonl(path, rows[start:start + k])

    key = {"in": h_prompts, "round": r, "per_round": recipe.prompts_per_round, "reuse": recipe.reuse_prompts,
           "rounds": recipe.rounds}
    return path, stages.run(f"{prefix}prompts" if prefix else "prompts-round-1", key, path, write)


def _round(recipe: Recipe, stages: Stages, root: Path, r: int, previous: Trained, all_prompts: tuple[Path, str],
           chosen: dict, base_eval: Path | None) -> Trained:
    """Round r >= 2: sample from the previous round's model, score, pair, and train on from it."""
    folder, prefix = root / f"round-{r}", f"round-{r}/"
    start = str(previous.model_dir / "final")
    prompts, h_prompts = _round_prompts(recipe, stages, folder / "prompts.jsonl", prefix, *all_prompts, r)
    _, scores, h_score = _sample_and_score(recipe, stages, prefix, folder, prompts, h_prompts, start,
                                           previous.h_train)
    t = Trained(f"udasa-round-{r}", "rounds", "dpo", folder / "model", None)
    t.pairs, h_pairs = _pairs(recipe, stages, prefix, folder, scores, h_score, {})
    reference = recipe.model if recipe.round_reference == "initial" else None
    tcfg = recipe.stage_config("train", {**chosen, "model": start, "reference_model": reference})
    t.h_train = _train_stage(recipe, stages, prefix, t, t.pairs, h_pairs, tcfg,
                             _adapter(recipe, {}, t.pairs, scores, t.model_dir, model=start))
    t.eval_dir = _evaluate(recipe, stages, prefix + "eval", str(t.model_dir / "final"), folder / "eval", base_eval,
                           t.h_train)
    return t


def _pairs(recipe: Recipe, stages: Stages, prefix: str, folder: Path, scores: Path, h_score: str,
           pair_over: dict) -> tuple[Path, str]:
    from udasa.pairs import build_pairs

    pcfg = recipe.stage_config("pairs", pair_over)
    pairs = folder / "pairs.jsonl"
    h = stages.run(prefix + "pairs", {"in": h_score, "cfg": config_key(pcfg)}, pairs, lambda: build_pairs(scores, pairs, pcfg))
    return pairs, h


def _train_stage(recipe: Recipe, stages: Stages, prefix: str, t: Trained, pairs: Path, h_pairs: str, tcfg,
                 adapt=None) -> str:
    return stages.run(prefix + "train", {"in": h_pairs, "cfg": config_key(tcfg), "model": model_fingerprint(tcfg.model)},
                      t.model_dir, lambda: _train(recipe, pairs, t.model_dir, tcfg, adapt), cfg=tcfg)


def _adapter(recipe: Recipe, pair_over: dict, pairs: Path, scores: Path, model_dir: Path, model: str | None = None):
    """The re-scoring callback of an adaptive curriculum (None for a static one)."""
    if recipe.stage_config("pairs", pair_over).curriculum.curriculum != "adaptive":
        return None
    if recipe.train_launcher:
        raise InputError("the adaptive curriculum re-scores between stages in this process; it cannot run under "
                         "train_launcher", path=recipe.source, field="pairs.curriculum")
    from udasa.adaptive import AdaptiveRescorer

    return AdaptiveRescorer(pairs, scores, recipe.stage_config("score", {"model": model or recipe.model}), model_dir)


def _select(recipe: Recipe, stages: Stages, root: Path, pairs: Path, h_pairs: str) -> tuple[Trained, dict]:
    """Train UDASA once per candidate of ``recipe.select``, evaluate each on the dev task only, and keep the
    best (subject to the ``max`` ceilings). Returns the chosen model and its train overrides."""
    from udasa.evaluation.task import load_task

    sel = recipe.select
    higher = {m.name: m.higher_is_better for m in load_task(sel.task).metrics}[sel.metric]
    rows = []
    for k, cand in enumerate(sel.candidates, start=1):
        name = f"select-{k}"
        t = Trained(name, "select", "dpo", root / "select" / name / "model", pairs)
        t.h_train = _train_stage(recipe, stages, f"{name}/", t, pairs, h_pairs, recipe.stage_config("train", cand))
        t.eval_dir = _evaluate(recipe, stages, f"{name}/eval", str(t.model_dir / "final"),
                               root / "select" / name / "eval", None, t.h_train, {"tasks": [sel.task]})
        dev = json.loads((t.eval_dir / "metrics.json").read_text())["tasks"][sel.task]["metrics"]
        ok = all(dev[m]["mean"] is not None and dev[m]["mean"] <= cap for m, cap in sel.max.items())
        rows.append({"candidate": name, "train": cand, "dev": {m: dev[m] for m in dev}, "eligible": ok,
                     "trained": t})
    eligible = [r for r in rows if r["eligible"] and r["dev"][sel.metric]["mean"] is not None]
    if not eligible:
        raise InputError(f"no candidate meets the ceilings {sel.max} on {sel.task}; relax select.max or add "
                         "candidates", path=recipe.source, field="select")
    sign = 1 if higher else -1
    best = max(eligible, key=lambda r: (sign * r["dev"][sel.metric]["mean"], -rows.index(r)))
    if not stages.report_only:  # a report-only run writes nothing but the report
        atomic_write_json(root / "selection.json", {
            "task": sel.task, "metric": sel.metric, "higher_is_better": higher, "max": sel.max,
            "chosen": best["candidate"], "chosen_train": best["train"],
            "candidates": [{k: v for k, v in r.items() if k != "trained"} for r in rows]})
    stages.log(f"[select] {best['candidate']} {best['train']}: dev {sel.metric} {best['dev'][sel.metric]['mean']}")
    main = best["trained"]
    main.name, main.group = "udasa", "udasa"
    return main, dict(best["train"])


def _evaluate_stages(recipe: Recipe, stages: Stages, t: Trained, out: Path, baseline: Path | None) -> None:
    """Evaluate the model after each curriculum stage but the last (which is ``final``): the trajectory."""
    from udasa.training.trainer import MARKER

    for folder in sorted(p for p in t.model_dir.glob("stage-*") if (p / MARKER).exists())[:-1]:
        _evaluate(recipe, stages, f"eval-stages/{folder.name}", str(folder), out / folder.name, baseline,
                  t.h_train)


def _train(recipe: Recipe, pairs: Path, model_dir: Path, tcfg, adapt=None) -> None:
    if not recipe.train_launcher:
        from udasa.training import train
        train(pairs, model_dir, tcfg, adapt=adapt)
        return
    # one process per device: the launcher starts `udasa train` with the resolved config
    cfg_file = model_dir.parent / "train_config.json"
    atomic_write_json(cfg_file, asdict(tcfg))
    cmd = [*recipe.train_launcher, "-m", "udasa.cli", "train", "--pairs", str(pairs), "--out", str(model_dir),
           "--config", str(cfg_file)]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError(f"training under the launcher failed: {' '.join(cmd)}")


def _evaluate(recipe: Recipe, stages: Stages, name: str, model: str, out: Path, baseline: Path | None,
              h_in: str, eval_over: dict | None = None) -> Path:
    """Evaluate ``model`` into ``out``, one stage per task (adding a task later reuses the others)."""
    from udasa.evaluation import evaluate
    from udasa.evaluation.task import load_task

    over = {**(eval_over or {}), "model": model, "out": str(out)}
    cfg = recipe.stage_config("eval", over)
    for task in cfg.tasks:
        task_over = {**over, "tasks": [task]}
        if baseline is not None and "baseline_generations" in load_task(task).needs:
            task_over["baseline"] = str(baseline)
        tcfg = recipe.stage_config("eval", task_over)
        key = {k: v for k, v in config_key(tcfg).items() if k not in ("out", "sizes")}
        key["size"] = tcfg.sizes.get(task)
        stages.run(f"{name}/{task}", {"in": h_in, "cfg": key}, out, lambda c=tcfg: evaluate(c), cfg=tcfg)
    return out
