"""``udasa eval``: run the evaluation tasks on one model and write ``metrics.json`` + generations.

Resumable: each task appends its scored records to ``generations-<task>.jsonl`` batch by batch;
a rerun skips finished ids, and a task whose file is complete is only re-aggregated. Records
from another model, task version or decoding setting are refused, never mixed.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from udasa.device import check_device_name, check_dtype_name, resolve_device
from udasa.errors import InputError
from udasa.evaluation.metrics import summarize
from udasa.evaluation.task import TaskSpec, available_tasks, load_task
from udasa.faults import failpoint
from udasa.io import JsonlAppender, atomic_write_json, read_jsonl
from udasa.resume import SCHEMAS, check_same_producer
from udasa.models import DEFAULT_POLICY, model_fingerprint

SUBSET_SALT = "udasa-eval-subset-v1"


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Fields:
        model: embedded model name or a local Hugging Face model folder.
        out: output folder (metrics.json, generations-<task>.jsonl).
        tasks: task names (see ``evaluation/tasks/*.yaml``) or task YAML paths.
        limit: evaluate only the first N items of each task's subset (quick checks); None = the task size.
            A limit above a task's size is an error (raise the size with ``sizes``).
        sizes: per task, the number of items in its fixed subset, instead of the task file's ``size``
            (e.g. ``{sentiment: 512}``); at most the data set's size.
        full: use every item of each data set instead of the task's default subset.
        sample: seeded temperature-1 sampling instead of greedy decoding (generation tasks).
        seed: seed for sampling (each item derives its own seed from it and its id).
        batch_size: prompts per generation batch; generations are appended after each batch.
        reference_model: base model for the sentiment KL and, without ``baseline``, the helpfulness
            baseline responses; default the embedded base policy.
        baseline: an eval folder (or pipeline run folder) whose ``generations-helpful.jsonl`` holds the
            baseline responses for the win rate; None = generate them with ``reference_model`` (or reuse
            the model's own when it is the reference).
        bootstrap_resamples: resamples for the 95% bootstrap confidence intervals.
        rm_max_pairs: train the evaluator reward models on at most this many pairs per split (quick tests
            only; weaker evaluators with their own cache entry). None = all (the real evaluators).
        device: where the evaluated model, the reference model and the evaluators' embedder run ("auto",
            "cpu", "cuda", "cuda:N"); a recipe's top-level ``device`` fills it.
        dtype: the models' weights' dtype ("auto", "float32", "bfloat16", "float16"); from the recipe too.
        allow_task_code: let task files name hook functions outside the udasa package (off: a task
            YAML from elsewhere cannot make `udasa eval` import and run its code).
    """

    model: str = DEFAULT_POLICY
    out: str = "eval"
    tasks: tuple[str, ...] = ("harmless", "helpful", "truthful", "sentiment")
    limit: int | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    full: bool = False
    sample: bool = False
    seed: int = 0
    batch_size: int = 16
    reference_model: str = DEFAULT_POLICY
    baseline: str | None = None
    bootstrap_resamples: int = 2000
    rm_max_pairs: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    allow_task_code: bool = False

    def __post_init__(self):
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        if not isinstance(self.sizes, dict):
            raise InputError("must be a mapping of task name to a number of items", field="sizes")
        for task, n in self.sizes.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"must be an integer >= 1 (got {n!r})", field=f"sizes.{task}")
        if isinstance(self.tasks, str):  # "harmless,helpful" from a recipe or the CLI
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        self.tasks = tuple(self.tasks)
        for t in self.tasks:  # task files are read and their hooks checked now, before any model loads
            load_task(t).check_hooks(self.allow_task_code)
        if not self.tasks:
            raise InputError("must name at least one task", field="tasks")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"must be >= 1 (got {self.limit})", field="limit")
        if self.batch_size < 1:
            raise InputError(f"must be >= 1 (got {self.batch_size})", field="batch_size")
        if self.rm_max_pairs is not None and self.rm_max_pairs < 10:
            raise InputError(f"must be >= 10 (got {self.rm_max_pairs})", field="rm_max_pairs")
        if self.bootstrap_resamples < 100:
            raise InputError(f"must be >= 100 (got {self.bootstrap_resamples})", field="bootstrap_resamples")
        if self.baseline is not None and not Path(self.baseline).is_dir():
            raise InputError("is not a folder", path=str(self.baseline), field="baseline")


def subset_order(item_id: str) -> str:
    """Items are taken in the order of a salted hash of their id: a fixed subset for every model."""
    return hashlib.sha256(f"{SUBSET_SALT}\x00{item_id}".encode()).hexdigest()


def select_items(items: list[dict], size: int, *, full: bool, limit: int | None, task: str = "task") -> list[dict]:
    """The task's fixed subset (``size`` items in salted-hash order, or all with ``full``), then ``limit``."""
    if size > len(items):
        raise InputError(f"{task} has {len(items)} items; a size of {size} is more than there are",
                         field=f"sizes.{task}")
    chosen = sorted(items, key=lambda r: subset_order(r["id"]))
    chosen = chosen if full else chosen[:size]
    if limit and limit > len(chosen):
        raise InputError(f"limit {limit} is more than the {len(chosen)} items of {task}'s subset; raise its size "
                         f"(sizes: {{{task}: {limit}}}, --size {task}={limit}) or use --full", field="limit")
    return chosen[:limit] if limit else chosen


class RunContext:
    """What score hooks need, loaded lazily and once: the policy, reference, evaluators, baseline."""

    def __init__(self, cfg: EvalConfig, policy=None):
        self.cfg = cfg
        self._policy, self._reference, self._rms, self._scorer = policy, None, None, None
        self.fingerprint = _fingerprint(cfg.model)
        self.reference_fingerprint = _fingerprint(cfg.reference_model)
        self._baseline: dict[str, dict] = {}  # task -> id -> baseline response
        self.task: TaskSpec | None = None  # the task being evaluated (hooks read it)

    @property
    def policy(self):
        if self._policy is None:
            from udasa.policy import Policy
            self._policy = Policy(self.cfg.model, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._policy

    @property
    def same_as_reference(self) -> bool:
        return self.fingerprint is not None and self.fingerprint == self.reference_fingerprint

    @property
    def reference(self):
        if self.same_as_reference:
            return self.policy
        if self._reference is None:
            from udasa.policy import Policy
            self._reference = Policy(self.cfg.reference_model, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._reference

    def reward_models(self) -> dict:
        if self._rms is None:
            from udasa.evaluation.reward_models import load_reward_models
            self._rms = load_reward_models(max_pairs=self.cfg.rm_max_pairs,
                                           device=str(resolve_device(self.cfg.device)))
        return self._rms

    def choice_scorer(self):
        if self._scorer is None:
            from udasa.evaluation.truthful import ChoiceScorer
            self._scorer = ChoiceScorer(self.policy.model, self.policy.tokenizer)
        return self._scorer

    def reference_logprobs(self, records: list[dict]) -> list[list[float]]:
        """Teacher-forced reference-model log-probs of each record's generated tokens."""
        return self.reference.logprobs([r["context_ids"] for r in records], [r["token_ids"] for r in records])

    def baseline_responses(self, records: list[dict]) -> list[dict]:
        """``{response, source}`` of the baseline model for each record's prompt of the current task (see
        EvalConfig.baseline)."""
        spec = self.task
        if self.cfg.baseline:
            if self._baseline.get(spec.name) is None:
                self._baseline[spec.name] = _read_baseline(Path(self.cfg.baseline), spec.name)
            baseline = self._baseline[spec.name]
            missing = [r["id"] for r in records if r["id"] not in baseline]
            if missing:
                raise InputError(f"has no baseline response for {missing[:3]} (run the baseline eval with the same "
                                 "sizes)", path=str(self.cfg.baseline), field="baseline")
            return [{"response": baseline[r["id"]], "source": str(self.cfg.baseline)} for r in records]
        if self.same_as_reference:
            return [{"response": r["response"], "source": "self (model is the reference)"} for r in records]
        gens = generate_batch(self.reference, records, spec, self.cfg)
        return [{"response": g["response"], "source": f"generated: {self.cfg.reference_model}"} for g in gens]


def _read_baseline(folder: Path, task: str) -> dict[str, str]:
    name = f"generations-{task}.jsonl"
    for cand in (folder / name, folder / "eval" / name):
        if cand.exists():
            return {r["id"]: r["response"] for _, r in read_jsonl(cand, partial_tail_ok=True)}
    raise InputError(f"holds no {name} (nor eval/{name})", path=str(folder), field="baseline")


def _fingerprint(name: str) -> str | None:
    try:
        return model_fingerprint(name)
    except InputError:
        return None


def decoding(spec: TaskSpec, cfg: EvalConfig) -> dict:
    if spec.kind == "loglik":
        return {"kind": "teacher-forced"}
    temp = spec.temperature if spec.temperature is not None else (1.0 if cfg.sample else 0.0)
    d = {"temperature": temp, "top_p": 1.0, "max_new_tokens": spec.max_new_tokens, "format": spec.format}
    if temp > 0:
        d["seed"] = cfg.seed
    return d


def generate_batch(policy, items: list[dict], spec: TaskSpec, cfg: EvalConfig) -> list[dict]:
    """One response per item, with its token ids and temperature-1 token log-probs."""
    from udasa.sampling.generate import sample_seed

    dec = decoding(spec, cfg)
    ctx = [policy.encode(it.get("messages") or [{"role": "user", "content": it["prompt"]}],
                         plain=spec.format == "plain", max_new_tokens=dec["max_new_tokens"], where=f"item {it['id']!r}")
           for it in items]
    gens = policy.generate(ctx, [[sample_seed(cfg.seed, it["id"], 0)] for it in items], n=1,
                           max_new_tokens=dec["max_new_tokens"], temperature=dec["temperature"], top_p=1.0)
    out = []
    for it, c, (g,) in zip(items, ctx, gens):
        text = policy.decode(g.token_ids)
        out.append({"id": it["id"], "prompt": it["prompt"], "response": text.strip() if spec.format == "chat" else text,
                    "finish_reason": g.finish_reason, "num_tokens": len(g.token_ids), "context_ids": c,
                    "token_ids": g.token_ids, "token_logprobs": g.token_logprobs})
    return out


def run_task(spec: TaskSpec, ctx: RunContext, out: Path, *, progress: bool = True) -> dict:
    """Evaluate one task (resuming its generations file) and return its metrics entry."""
    cfg = ctx.cfg
    items = select_items(spec.hook("items", cfg.allow_task_code)(), cfg.sizes.get(spec.name, spec.size),
                         full=cfg.full, limit=cfg.limit, task=spec.name)
    score = spec.hook("score", cfg.allow_task_code)
    ctx.task = spec
    meta = {"schema": SCHEMAS["generations"], "model": cfg.model, "model_fingerprint": ctx.fingerprint,
            "task_version": spec.version, "decoding": decoding(spec, cfg)}
    if {"reference_model", "baseline_generations"} & set(spec.needs):
        meta["reference_fingerprint"] = ctx.reference_fingerprint
    path = out / f"generations-{spec.name}.jsonl"
    t0 = time.time()
    with JsonlAppender(path) as writer:
        check_same_producer(writer.first, meta, path=path, what=f"{spec.name} generations")
        pending = [it for it in items if it["id"] not in writer.done]
        bar = tqdm(total=len(items), initial=len(items) - len(pending), desc=spec.name, disable=not progress)
        step = cfg.batch_size if spec.kind == "generate" else 8
        for i in range(0, len(pending), step):
            batch = pending[i:i + step]
            recs = generate_batch(ctx.policy, batch, spec, cfg) if spec.kind == "generate" else batch
            scored = score(recs, ctx)
            rows = []
            for r, s in zip(recs, scored):
                keep = {k: v for k, v in r.items() if k not in ("context_ids", "token_ids", "token_logprobs")}
                rows.append({**keep, **s, **meta})
            writer.write(rows)
            bar.update(len(batch))
            failpoint("eval.batch")
        bar.close()
    wanted = {it["id"] for it in items}
    recs = [r for _, r in read_jsonl(path) if r["id"] in wanted]
    result = {"version": spec.version, "dataset": spec.dataset, "n": len(recs), "decoding": meta["decoding"],
              "headline": list(spec.headline),
              "generations": path.name, "seconds_this_run": round(time.time() - t0, 1), "metrics": {}}
    for m in spec.metrics:
        vals = [r["scores"].get(m.name) for r in recs]
        result["metrics"][m.name] = {**summarize(vals, n_resamples=cfg.bootstrap_resamples),
                                     "higher_is_better": m.higher_is_better}
    if "baseline_generations" in spec.needs and recs:
        result["baseline_source"] = recs[0].get("baseline_source")
    return result


def evaluate(cfg: EvalConfig, *, policy=None, progress: bool = True) -> dict:
    """Run every task of ``cfg`` and write ``cfg.out/metrics.json``; returns its content."""
    specs = [load_task(t) for t in cfg.tasks]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(cfg, policy=policy)
    t0 = time.time()
    metrics = {"model": cfg.model, "model_fingerprint": ctx.fingerprint, "reference_model": cfg.reference_model,
               "reference_fingerprint": ctx.reference_fingerprint, "config": asdict(cfg), "tasks": {},
               "evaluators": {}, "timings": {}}
    old = _previous(out / "metrics.json", ctx.fingerprint)
    metrics["tasks"].update(old.get("tasks", {}))  # tasks evaluated earlier into this folder stay listed
    metrics["timings"].update({k: v for k, v in old.get("timings", {}).items() if k != "total"})
    for spec in specs:
        ts = time.time()
        metrics["tasks"][spec.name] = run_task(spec, ctx, out, progress=progress)
        metrics["timings"][spec.name] = round(time.time() - ts, 1)
        atomic_write_json(out / "metrics.json", metrics)  # partial results survive a later crash
    if ctx._rms is not None or any("reward_models" in s.needs for s in specs):
        metrics["evaluators"] = {f"{k}_rm": _rm_summary(v.meta) for k, v in ctx.reward_models().items()}
    if ctx._scorer is not None and ctx._scorer.fallbacks:
        for s in (s for s in specs if s.kind == "loglik"):
            warnings.warn(f"{s.name}: {ctx._scorer.fallbacks} items needed the uncached path (tokenization differed)")
            metrics["tasks"][s.name]["uncached_items"] = ctx._scorer.fallbacks
    metrics["timings"]["total"] = round(time.time() - t0, 1)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _previous(path: Path, fingerprint: str | None) -> dict:
    if not path.exists():
        return {}
    import json
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg}); delete it to start over", path=str(path)) from None
    if old.get("model_fingerprint") != fingerprint:
        raise InputError(f"holds metrics of another model ({old.get('model')}); use another --out", path=str(path))
    return old


def _rm_summary(meta: dict) -> dict:
    keys = ("heldout_accuracy", "cross_accuracy", "train_accuracy", "n_train_pairs", "n_test_pairs", "features",
            "embedder", "embedder_fingerprint", "data_fingerprint", "C", "max_pairs")
    return {k: meta.get(k) for k in keys}


__all__ = ["EvalConfig", "evaluate", "available_tasks", "run_task", "select_items"]
