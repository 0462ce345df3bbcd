"""Recipes: one YAML file, one section per stage, mapped onto the stages' config dataclasses.

Defaults < recipe < command-line overrides (``--set train.beta=0.2``). Unknown keys and wrong
types are errors naming the file, line and key (with a "did you mean"). Recipes are parsed with
``yaml.safe_load`` semantics: they cannot execute code.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from udasa.device import check_device_name, check_dtype_name
from udasa.errors import InputError, finite_number
from udasa.io import load_yaml, read_text_file, yaml_loader
from udasa.models import DEFAULT_POLICY

STAGE_SECTIONS = ("sample", "score", "pairs", "train", "eval")


@dataclass
class PromptSource:
    """One source of training prompts (unlabelled: answers are never read).

    Fields:
        data: a vendored prompt set (`udasa data` lists them); HH-RLHF sets are restricted to the part
            reserved for policy training (disjoint from the evaluator reward models' data).
        path: a JSONL prompts file instead of ``data``.
        limit: take at most this many prompts (after ``offset``).
        offset: skip this many prompts first.
        spec: the value spec that judges the responses to these prompts, instead of the ``score`` section's
            (e.g. ``safety`` for harmful requests, ``helpful`` for benign ones in the same run).
    """

    data: str | None = None
    path: str | None = None
    limit: int | None = None
    offset: int = 0
    spec: str | None = None

    def __post_init__(self):
        if (self.data is None) == (self.path is None):
            raise InputError("give exactly one of 'data' or 'path'", field="data")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"must be >= 1 (got {self.limit})", field="limit")
        if self.offset < 0:
            raise InputError(f"must be >= 0 (got {self.offset}); a negative offset would count from the end",
                             field="offset")
        if self.spec is not None:
            from udasa.uncertainty.specs import load_spec

            load_spec(self.spec)


@dataclass
class Variant:
    """A baseline or ablation trained on the same prompts, samples and scores as the main run.

    Fields:
        name: folder name under ``<out>/variants/`` and label in the report.
        method: "dpo" (staged DPO on pairs built with ``pairs`` overrides) or "sft-best-of-n"
            (supervised fine-tuning on each prompt's lowest-u response).
        pairs: overrides of the recipe's ``pairs`` section (e.g. ``{score_key: semantic}`` or
            ``{curriculum: {curriculum: none}}``, ``{selection: random}`` for random pairs).
        train: overrides of the recipe's ``train`` section (on top of the settings ``select`` chose).
        eval: overrides of the recipe's ``eval`` section (e.g. fewer ``tasks`` for a sweep point).
        group: the family a frontier plot connects (e.g. every beta of plain DPO: ``group: dpo-no-curriculum``);
            None = the variant's own name. The main model's group is ``udasa``.
    """

    name: str
    method: str = "dpo"
    pairs: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    group: str | None = None

    def __post_init__(self):
        if self.method not in ("dpo", "sft-best-of-n"):
            raise InputError(f"must be 'dpo' or 'sft-best-of-n' (got {self.method!r})", field="method")
        if not _PLAIN_NAME.fullmatch(self.name or "") or self.name in ("udasa", "base") or \
                self.name.startswith("select-"):
            raise InputError(f"must be a plain folder name of letters, digits, '.', '_' or '-', not 'udasa', "
                             f"'base' or 'select-*' (got {self.name!r})", field="name")


@dataclass
class Selection:
    """Hyperparameters chosen on a dev task before the main model trains (never on a test task).

    Fields:
        task: the dev task every candidate is evaluated on, e.g. ``sentiment-dev`` (IMDb train openings held
            out from training).
        metric: the dev metric to optimise; its direction (higher or lower is better) comes from the task file.
        candidates: ``train`` overrides, one per candidate (e.g. ``{learning_rate: 1.0e-5}``). Each trains UDASA
            on the run's pairs (``select/select-<k>/``); the best one *is* the main model, and its overrides
            apply to every baseline too (a baseline's own ``train`` overrides come on top).
        max: ceilings on other dev metrics, e.g. ``{kl: 20}``: a candidate above one is not chosen.
    """

    task: str
    metric: str
    candidates: list[dict]
    max: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not self.candidates:
            raise InputError("needs at least one candidate", field="candidates")
        from udasa.evaluation.task import load_task

        spec = load_task(self.task)
        names = [m.name for m in spec.metrics]
        for key in [self.metric, *self.max]:
            if key not in names:
                raise InputError(f"'{key}' is not a metric of task {self.task} ({', '.join(names)})", field="metric")
        for key, cap in self.max.items():
            if not finite_number(cap):
                raise InputError(f"must be a finite number (got {cap!r})", field=f"max.{key}")


@dataclass
class Recipe:
    """A whole experiment: ``udasa run recipe.yaml``.

    Fields:
        name: experiment name (default output folder ``runs/<name>``).
        model: the policy to align; copied into sample/train/eval unless those set their own.
        out: output folder; None = ``runs/<name>``.
        threads: torch CPU threads; None = torch's default.
        device: where every neural model of the run goes (sampling, log-probs, scoring embedder and judge,
            training, evaluation): "auto" (the first CUDA device if any, else the CPU), "cpu", "cuda",
            "cuda:N". Copied into each stage unless the stage sets its own.
        dtype: "auto" (bfloat16 on a capable GPU, else float32), "float32", "bfloat16", "float16": the weights'
            dtype for inference and the autocast dtype for training (float32 master weights).
        train_launcher: run the training stage as a subprocess under this launcher, e.g.
            ``[accelerate, launch, --config_file, configs/accelerate/zero3.yaml]`` (one process per GPU);
            None = train in this process.
        prompts: training prompt sources (see `PromptSource`).
        sample / score / pairs / train / eval: the stages' configs (`SampleConfig`, `ScoreConfig`,
            `PairConfig`, `TrainConfig`, `EvalConfig`); every field is documented in docs/recipes.md.
        eval_base: also evaluate the untrained model (the report's first column).
        eval_stages: also evaluate the main model after each curriculum stage (the report's trajectory).
        select: hyperparameters chosen on a dev task before the main model trains (see `Selection`).
        rounds: iterative alignment: round r samples from the model round r-1 produced, then scores, pairs,
            stages and trains again (round 1 is the usual run; rounds 2.. live in ``round-<r>/``).
        prompts_per_round: prompts each round uses; None = all of them (``reuse_prompts``) or an equal share.
        reuse_prompts: every round samples the same prompts again (from its newer policy); otherwise round r
            takes the r-th slice of the prompts, so no prompt is used twice.
        round_reference: the DPO reference of rounds 2..: "initial" (the recipe's model, the default, as in
            iterative DPO) or "previous" (the model the round starts from).
        baselines: variants trained on the same samples (see `Variant`).
    """

    name: str
    model: str = DEFAULT_POLICY
    out: str | None = None
    threads: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    train_launcher: list[str] | None = None
    prompts: list[PromptSource] = field(default_factory=list)
    sample: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)
    pairs: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    eval_base: bool = True
    eval_stages: bool = False
    select: Selection | None = None
    rounds: int = 1
    prompts_per_round: int | None = None
    reuse_prompts: bool = False
    round_reference: str = "initial"
    baselines: list[Variant] = field(default_factory=list)
    source: str = "<recipe>"  # the file it came from (set by load_recipe)

    def __post_init__(self):
        if not self.prompts:
            raise InputError("a recipe needs at least one prompt source", field="prompts")
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        if not _PLAIN_NAME.fullmatch(self.name or ""):
            raise InputError(f"must be a plain name of letters, digits, '.', '_' or '-' (got {self.name!r}); "
                             "it names the output folder runs/<name>", field="name")
        if not 1 <= self.rounds <= 50:
            raise InputError(f"must be in [1, 50] (got {self.rounds})", field="rounds")
        if self.prompts_per_round is not None and self.prompts_per_round < 1:
            raise InputError(f"must be >= 1 (got {self.prompts_per_round})", field="prompts_per_round")
        if self.round_reference not in ("initial", "previous"):
            raise InputError(f"must be 'initial' or 'previous' (got {self.round_reference!r})", field="round_reference")
        names = [v.name for v in self.baselines]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"baseline names must be unique; repeated: {dup}", field="baselines")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")

    # The stage configs, built on demand (TrainConfig/EvalConfig import heavy modules).
    def stage_config(self, section: str, overrides: dict | None = None):
        cls = section_class(section)
        data = _merge(getattr(self, section), overrides or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for key in ("model", "device", "dtype"):
            if key in names:
                data.setdefault(key, getattr(self, key))
        if section == "eval":
            data.setdefault("reference_model", self.model)
        return build(cls, data, source=self.source, prefix=section, lines=_LINES.get(self.source, {}))


def section_class(section: str):
    if section == "sample":
        from udasa.sampling import SampleConfig as cls
    elif section == "score":
        from udasa.uncertainty.config import ScoreConfig as cls
    elif section == "pairs":
        from udasa.pairs import PairConfig as cls
    elif section == "train":
        from udasa.training.config import TrainConfig as cls
    elif section == "eval":
        from udasa.evaluation.runner import EvalConfig as cls
    else:
        raise KeyError(section)
    return cls


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_PLAIN_NAME = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}")

_LINES: dict[str, dict[str, int]] = {}  # recipe file -> {"train.beta": line}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _key_lines(node, prefix: str = "", out: dict | None = None) -> dict[str, int]:
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
            _key_lines(v, key + ".", out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[f"{prefix.rstrip('.')}[{i}]"] = v.start_mark.line + 1
            _key_lines(v, f"{prefix.rstrip('.')}[{i}].", out)
    return out


def field_docs(cls) -> dict[str, str]:
    """``{field: help}`` from the ``Fields:`` section of a dataclass docstring (``a, b: text`` documents both)."""
    doc = inspect.getdoc(cls) or ""
    if "Fields:" not in doc:
        return {}
    body = doc.split("Fields:", 1)[1].splitlines()
    out: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in body:
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        m = re.match(r"\s*([a-z_][a-z0-9_]*(?:\s*[,/]\s*[a-z_][a-z0-9_]*)*):\s*(.*)", line)
        if m and (indent is None or ind <= indent):
            indent = ind
            names = [n.strip() for n in re.split(r"[,/]", m.group(1))]
            for n in names:
                out[n] = m.group(2).strip()
        elif names and indent is not None and ind > indent:
            for n in names:
                out[n] += " " + line.strip()
        else:
            break
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` are ``key.path=value`` strings (value is YAML)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("recipe file does not exist", path=str(path))
    text = read_text_file(path)
    data = load_yaml(text, str(path))
    node = yaml.compose(text, Loader=yaml_loader())  # the same document again, for the key -> line table
    if not isinstance(data, dict):
        raise InputError("a recipe must be a YAML mapping", path=str(path))
    _LINES[str(path)] = _key_lines(node)
    for ov in overrides or []:
        key, sep, value = ov.partition("=")
        if not sep:
            raise InputError(f"override {ov!r} must look like key.path=value", field="--set")
        cur = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise InputError(f"{key}: '{p}' is not a section", field="--set")
        if not parts[-1] or not all(parts):
            raise InputError(f"override {ov!r}: the key is empty", field="--set")
        cur[parts[-1]] = load_yaml(value, f"--set {key.strip()}")
    data.setdefault("name", path.stem)
    recipe = build(Recipe, {**data, "source": str(path)}, source=str(path), prefix="", lines=_LINES[str(path)])
    for section in STAGE_SECTIONS:  # validate every stage section now, before any work starts
        recipe.stage_config(section)
    for i, v in enumerate(recipe.baselines):
        recipe.stage_config("pairs", v.pairs)
        recipe.stage_config("train", v.train)
        recipe.stage_config("eval", v.eval)
    for cand in (recipe.select.candidates if recipe.select else []):
        recipe.stage_config("train", cand)
    return recipe


def build(cls, data: dict, *, source: str, prefix: str, lines: dict[str, int]):
    """Instantiate dataclass ``cls`` from ``data``, checking keys and types; errors name file, line, key."""
    def where(key: str) -> dict:
        return {"path": source, "line": lines.get(key), "field": key}

    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", **where(prefix.rstrip(".")))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise InputError(f"unknown key{hint}", **where(full))
        kwargs[key] = _convert(hints[key], value, full, where, source, lines)
    try:
        return cls(**kwargs)
    except InputError as e:
        f = e.field
        full = f"{prefix}.{f}" if prefix and f else (f or prefix)
        msg = str(e).split(": ", 1)[1] if e.field and ": " in str(e) else str(e)
        raise InputError(msg, **where(full)) from None
    except TypeError as e:  # a missing required field
        raise InputError(str(e).replace("__init__() ", ""), **where(prefix)) from None


def _convert(tp, value, key, where, source, lines):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, key, where, source, lines)
            except InputError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else InputError(
            f"expected {_tname(tp)}, got {type(value).__name__} {json.dumps(value)[:60]}", **where(key))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source=source, prefix=key, lines=lines)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {type(value).__name__}", **where(key))
        item = args[0] if args else typing.Any
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"expected {len(args)} values, got {len(value)}", **where(key))
            return tuple(_convert(a, v, f"{key}[{i}]", where, source, lines) for i, (a, v) in enumerate(zip(args, value)))
        conv = [_convert(item, v, f"{key}[{i}]", where, source, lines) for i, v in enumerate(value)]
        return tuple(conv) if origin is tuple else conv
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {type(value).__name__}", **where(key))
        if args and args[1] is not typing.Any:
            return {k: _convert(args[1], v, f"{key}.{k}", where, source, lines) for k, v in value.items()}
        return value
    if tp is typing.Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)  # YAML 1.1 reads "1e-4" (no dot) as a string
    if tp in (int, float) and isinstance(value, bool):
        raise InputError(f"expected {tp.__name__}, got bool", **where(key))
    if isinstance(tp, type) and not isinstance(value, tp):
        raise InputError(f"expected {tp.__name__}, got {type(value).__name__} {json.dumps(value)[:60]}", **where(key))
    return value


def _tname(tp) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(tp) if a is not type(None))


def resolved(recipe: Recipe) -> dict:
    """The fully resolved configuration, saved next to the outputs."""
    out = {"name": recipe.name, "model": recipe.model, "out": str(recipe.out_dir), "threads": recipe.threads,
           "device": recipe.device, "dtype": recipe.dtype,
           "train_launcher": recipe.train_launcher,
           "prompts": [dataclasses.asdict(p) for p in recipe.prompts], "eval_base": recipe.eval_base,
           "eval_stages": recipe.eval_stages, "select": dataclasses.asdict(recipe.select) if recipe.select else None,
           "rounds": recipe.rounds, "prompts_per_round": recipe.prompts_per_round,
           "reuse_prompts": recipe.reuse_prompts, "round_reference": recipe.round_reference,
           "baselines": [dataclasses.asdict(v) for v in recipe.baselines]}
    for section in STAGE_SECTIONS:
        out[section] = _jsonable(dataclasses.asdict(recipe.stage_config(section)))
    return out


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))
