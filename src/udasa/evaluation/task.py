"""Evaluation tasks as data: versioned YAML files in ``evaluation/tasks/`` with small Python hooks.

A task names its data set, its kind (``generate``: the model answers, then each answer is scored;
``loglik``: teacher-forced log-likelihoods of given answers), its default size, decoding budget,
what it ``needs`` from the run (`NEEDS`), two hooks (``items`` and ``score``, as ``module:function``),
its metrics and the ``headline`` metrics a run report shows. Bump ``version`` when anything that
changes the numbers changes; stored generations from another version are not reused.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from udasa.errors import InputError
from udasa.io import load_yaml, read_text_file

TASK_DIR = Path(__file__).parent / "tasks"
# what a task can ask of the run: the reference model (KL, baseline answers), the base model's answers
# to the same prompts (win rate; an eval folder given as `baseline`), the evaluator reward models
NEEDS = ("reference_model", "baseline_generations", "reward_models")


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    doc: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: int
    dataset: str
    kind: str
    size: int
    hooks: dict
    metrics: tuple[Metric, ...]
    format: str = "chat"
    needs: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    max_new_tokens: int = 64
    temperature: float | None = None  # fixed by the task (sentiment samples); None = follow --sample
    path: str = ""

    def check_hooks(self, allow_external: bool = False) -> None:
        """Refuse hooks outside the ``udasa`` package unless ``allow_external`` (``--allow-task-code``): a task
        file from elsewhere must not make udasa import and run its code silently. Imports nothing."""
        for which, ref in self.hooks.items():
            mod = ref.partition(":")[0]
            if not (mod == "udasa" or mod.startswith("udasa.")) and not allow_external:
                raise InputError(f"hook '{ref}' is outside the udasa package; pass --allow-task-code (eval config "
                                 "allow_task_code: true) to run code named by a task file", path=self.path,
                                 field=f"hooks.{which}")

    def hook(self, which: str, allow_external: bool = False):
        """The hook function (see `check_hooks`)."""
        self.check_hooks(allow_external)
        ref = self.hooks[which]
        mod, _, fn = ref.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise InputError(f"hook '{ref}' cannot be loaded: {e}", path=self.path, field=f"hooks.{which}") from None


def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_task(name_or_path: str) -> TaskSpec:
    """A task by name (``harmless``) or by YAML path; unknown keys and bad values name the file and field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TASK_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise InputError(f"unknown task '{name_or_path}'; choose from {', '.join(available_tasks())}",
                             field="tasks")
    raw = load_yaml(read_text_file(path), str(path))
    p = str(path)
    if not isinstance(raw, dict):
        raise InputError("a task file must be a YAML mapping", path=p)
    known = {"name", "version", "dataset", "kind", "size", "hooks", "metrics", "format", "max_new_tokens",
             "temperature", "needs", "headline"}
    for k in raw:
        if k not in known:
            raise InputError(f"unknown key (known: {', '.join(sorted(known))})", path=p, field=k)
    for k, t in [("name", str), ("version", int), ("dataset", str), ("kind", str), ("size", int),
                 ("hooks", dict), ("metrics", dict)]:
        if not isinstance(raw.get(k), t):
            raise InputError(f"required, of type {t.__name__}", path=p, field=k)
    if raw["kind"] not in ("generate", "loglik"):
        raise InputError("must be 'generate' or 'loglik'", path=p, field="kind")
    if raw.get("format", "chat") not in ("chat", "plain"):
        raise InputError("must be 'chat' or 'plain'", path=p, field="format")
    if set(raw["hooks"]) != {"items", "score"}:
        raise InputError("needs exactly 'items' and 'score'", path=p, field="hooks")
    metrics = []
    for name, m in raw["metrics"].items():
        if not isinstance(m, dict) or not isinstance(m.get("higher_is_better"), bool):
            raise InputError("needs higher_is_better: true|false", path=p, field=f"metrics.{name}")
        metrics.append(Metric(name, m["higher_is_better"], str(m.get("doc", ""))))
    needs, headline = raw.get("needs") or [], raw.get("headline") or []
    if not isinstance(needs, list) or any(n not in NEEDS for n in needs):
        raise InputError(f"must be a list drawn from {', '.join(NEEDS)}", path=p, field="needs")
    if not isinstance(headline, list) or any(h not in raw["metrics"] for h in headline):
        raise InputError("must be a list of the task's metric names", path=p, field="headline")
    return TaskSpec(name=raw["name"], version=raw["version"], dataset=raw["dataset"], kind=raw["kind"],
                    size=raw["size"], hooks=raw["hooks"], metrics=tuple(metrics), format=raw.get("format", "chat"),
                    needs=tuple(needs), headline=tuple(headline),
                    max_new_tokens=int(raw.get("max_new_tokens", 64)), temperature=raw.get("temperature"),
                    path=p)
