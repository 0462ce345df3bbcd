"""Does `u` agree with human preferences? The method's preliminary study, rerunnable.

For each HH-RLHF pair we sample N fresh responses from the policy for the same dialogue, add the
human-chosen and human-rejected answers (with teacher-forced log-probs, so the factual axis sees
them like any sample), score the set of N+2 and count u(chosen) < u(rejected). TruthfulQA MC1
does the same with the correct answer against each incorrect one.

Two steps, both resumable: `collect_items` writes ``items.jsonl`` (a valid samples.jsonl whose
records also carry ``sources``: "policy", "chosen"/"rejected" or "correct"/"incorrect"), and
`evaluate_items` scores it and computes agreement. Design iteration re-runs only the second step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udasa.device import check_device_name, check_dtype_name
from udasa.errors import InputError
from udasa.io import JsonlAppender, atomic_write_json, atomic_write_text, iter_jsonl
from udasa.stats import bootstrap_ci
from udasa.uncertainty.config import AXES

DATASETS = ("hh-harmless", "hh-helpful", "truthfulqa")
DEFAULT_SPEC = {"hh-harmless": "safety", "hh-helpful": "helpful", "truthfulqa": "honest"}


DEV_SLICE = {"hh-harmless": (0, 100), "hh-helpful": (0, 100), "truthfulqa": (0, 150)}  # fitting reads only these
REPORT_SLICE = {"hh-harmless": (100, 300), "hh-helpful": (100, 300), "truthfulqa": (150, 150)}
LENGTH_MATCH = 0.2  # |Δ characters| / the longer answer, for the length-controlled reading


def truthfulqa_validation_questions() -> list[dict]:
    """TruthfulQA questions outside the truthful evaluation task's default subset, in file order: the
    validation slices (dev and report) index into this list, so they never touch evaluated questions."""
    from udasa import data as D
    from udasa.evaluation.runner import select_items
    from udasa.evaluation.task import load_task

    rows = D.truthfulqa()
    evaluated = {r["id"] for r in select_items(rows, load_task("truthful").size, full=False, limit=None)}
    return [r for r in rows if r["id"] not in evaluated]


def load_items(data: str, offset: int = 0, limit: int | None = None) -> list[dict]:
    """Validation items ``{id, prompt, messages, candidates: [str], sources: [str]}`` for a data set slice.

    HH-RLHF items are indexed in file order; TruthfulQA items in `truthfulqa_validation_questions`.
    `DEV_SLICE` is where design choices and ``--fit`` look, `REPORT_SLICE` what docs/RESULTS.md reports."""
    from udasa import data as D

    if data in ("hh-harmless", "hh-helpful"):
        rows = D.hh_rlhf(data[3:])
        items = [{"id": r["id"], "prompt": r["prompt"], "messages": r["messages"],
                  "candidates": [r["chosen"], r["rejected"]], "sources": ["chosen", "rejected"]} for r in rows]
    elif data == "truthfulqa":
        items = []
        for r in truthfulqa_validation_questions():
            answers = list(r["mc1_targets"].items())
            items.append({"id": r["id"], "prompt": r["question"],
                          "messages": [{"role": "user", "content": r["question"]}],
                          "candidates": [a for a, _ in answers],
                          "sources": ["correct" if lab else "incorrect" for _, lab in answers]})
    else:
        raise InputError(f"unknown validation data {data!r}; choose from {', '.join(DATASETS)}", field="data")
    end = None if limit is None else offset + limit
    return items[offset:end]


def collect_items(items: list[dict], out: str | os.PathLike, *, policy=None, cfg=None, batch_prompts: int = 16,
                  progress: bool = True) -> Path:
    """Sample ``cfg.n`` responses per item and append them with the human candidates to ``out`` (resumable)."""
    from tqdm.auto import tqdm

    from udasa.sampling import Policy, SampleConfig, respond
    from udasa.sampling.logprobs import response_logprobs
    from udasa.resume import check_same_producer
    from udasa.sampling.sampler import sample_meta, unchanged_pending

    cfg = cfg or SampleConfig(max_new_tokens=64)
    policy = policy or Policy(cfg.model, trust_remote_code=cfg.trust_remote_code, device=cfg.device, dtype=cfg.dtype)
    meta = sample_meta(cfg)
    with JsonlAppender(out, key="id", remember=lambda r: r.get("prompt_hash")) as writer:
        check_same_producer(writer.first, meta, path=out, what="validation items")
        todo = list(unchanged_pending(items, writer, cfg, out))
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="validation items", disable=not progress)
        for start in range(0, len(todo), batch_prompts):
            batch = todo[start:start + batch_prompts]
            recs = respond(policy, batch, cfg)
            msgs = [it["messages"] for it in batch for _ in it["candidates"]]
            texts = [c for it in batch for c in it["candidates"]]
            lps = response_logprobs(policy.model, policy.tokenizer, msgs, texts, system_prompt=cfg.system_prompt)
            k = 0
            out_recs = []
            for it, rec in zip(batch, recs):
                for c in it["candidates"]:
                    lp = [round(x, 5) for x in lps[k]]
                    k += 1
                    rec["responses"].append(c)
                    rec["num_tokens"].append(len(lp))
                    rec["logprob_sum"].append(round(sum(lp), 4))
                    rec["logprob_mean"].append(round(sum(lp) / len(lp), 5) if lp else 0.0)
                    rec["finish_reasons"].append("human")
                    if "token_logprobs" in rec:
                        rec["token_logprobs"].append(lp)
                rec["sources"] = ["policy"] * cfg.n + it["sources"]
                out_recs.append({**rec, **meta})
            writer.write(out_recs)
            bar.update(len(batch))
        bar.close()
    return Path(out)


def _agree(values: np.ndarray, better: int, worse: int) -> float:
    """1 if the better answer scores lower (more reliable), 0.5 on a tie, else 0."""
    a, b = values[better], values[worse]
    return 1.0 if a < b else 0.5 if a == b else 0.0


def comparisons(rec: dict, length_matched: bool = False) -> list[tuple[int, int]]:
    """(better, worse) response indices the human label orders: HH (chosen, rejected), TruthfulQA every
    (correct, incorrect). ``length_matched`` keeps only pairs within `LENGTH_MATCH` of each other's length."""
    src = rec["sources"]
    good = [i for i, s in enumerate(src) if s in ("chosen", "correct")]
    bad = [i for i, s in enumerate(src) if s in ("rejected", "incorrect")]
    pairs = [(g, b) for g in good for b in bad]
    if length_matched:
        n = [len(r) for r in rec["responses"]]
        pairs = [(g, b) for g, b in pairs if abs(n[g] - n[b]) <= LENGTH_MATCH * max(n[g], n[b], 1)]
    return pairs


def item_agreement(rec: dict, length_matched: bool = False) -> dict[str, float] | None:
    """Agreement of each scorer and baseline with the human label on one scored item (None when
    ``length_matched`` leaves no comparison).

    HH: one (chosen, rejected) comparison. TruthfulQA: mean over (correct, incorrect) pairs.
    Lower is "more reliable" for every entry: u, each raw axis, the value axis's estimators on their
    own (from ``parts``), and the baselines (length in characters for shorter-wins, minus length for
    longer-wins, minus mean log-prob for likelihood).
    """
    pairs = comparisons(rec, length_matched)
    if not pairs:
        return None
    lengths = np.array([len(r) for r in rec["responses"]], dtype=float)
    metrics = {"combined u": np.array(rec["u"])}
    parts = rec.get("parts") or {}
    if {"semantic", "token", "unsupported", "value_embedding"} <= set(parts):
        metrics["combined u, unfitted defaults"] = u_from_parts(parts, DEFAULT_MIX, rec.get("scoring") or {})
    metrics.update({f"{a} only": np.array(rec["components"][a]) for a in rec["components"]})
    for key, label in (("value_embedding", "value: embedding estimator"), ("value_contrast", "value: contrastive estimator")):
        if key in parts:
            metrics[label] = 1.0 - np.array(parts[key])
    metrics["shorter wins"] = lengths
    metrics["longer wins"] = -lengths
    metrics["higher log-likelihood wins"] = -np.array(rec["logprob_mean"])
    out = {name: float(np.mean([_agree(v, g, b) for g, b in pairs])) for name, v in metrics.items()}
    out["random"] = 0.5
    return out


def summarize(per_item: list[dict[str, float]], *, seed: int = 0) -> dict[str, dict]:
    """Mean agreement per scorer with a 95% bootstrap CI over items (random: its exact 50% and binomial CI)."""
    out = {}
    for name in per_item[0]:
        vals = [p[name] for p in per_item]
        if name == "random":
            half = 1.96 * np.sqrt(0.25 / len(vals))
            out[name] = {"agreement": 0.5, "ci_low": 0.5 - half, "ci_high": 0.5 + half}
            continue
        est, lo, hi = bootstrap_ci(vals, seed=seed)
        out[name] = {"agreement": est, "ci_low": lo, "ci_high": hi}
    return out


BASELINES = ("shorter wins", "longer wins", "higher log-likelihood wins")  # annotation-free


def paired_differences(per_item: list[dict[str, float]], scorer: str = "combined u", *,
                       seed: int = 0) -> dict[str, dict]:
    """``scorer``'s agreement minus each annotation-free baseline's, as a paired bootstrap over the same items
    (95% CI): the comparison the validation goal asks for."""
    out = {}
    for b in BASELINES:
        if per_item and scorer in per_item[0] and b in per_item[0]:
            est, lo, hi = bootstrap_ci([p[scorer] - p[b] for p in per_item], seed=seed)
            out[b] = {"difference": est, "ci_low": lo, "ci_high": hi}
    return out


def score_items(items_path: str | os.PathLike, ids: list[str] | None, scorer, *,
                scores_out: str | os.PathLike | None = None) -> list[dict]:
    """Scored records of the items (``ids`` in that order; None = all). With ``scores_out`` they are
    appended there and reused on a rerun with the same settings."""
    from udasa.uncertainty.scorer import check_sample

    recs = {}
    for line, r in iter_jsonl(items_path):
        if r is not None and (ids is None or r["id"] in ids):
            s = check_sample(r, path=str(items_path), line=line)
            recs[s["id"]] = s
    order = [i for i in (ids if ids is not None else list(recs)) if i in recs]
    if not order:
        raise InputError("holds none of the requested items", path=str(items_path))
    todo = [recs[i] for i in order]
    scored: dict[str, dict] = {}
    if scores_out is not None:
        done = {r["id"]: r for _, r in iter_jsonl(scores_out, partial_tail_ok=True)} \
            if Path(scores_out).exists() else {}
        scored.update({k: v for k, v in done.items() if v.get("scoring") == scorer.cfg.settings()})
        todo = [r for r in todo if r["id"] not in scored]
        with JsonlAppender(scores_out) as w:
            for s in range(0, len(todo), 32):
                batch = scorer.score_records(todo[s:s + 32], checked=True)
                w.write(batch)
                scored.update({b["id"]: b for b in batch})
    else:
        scored.update({b["id"]: b for b in scorer.score_records(todo, checked=True)})
    return [scored[i] for i in order]


def evaluate_items(items_path: str | os.PathLike, ids: list[str] | None, scorer, *,
                   scores_out: str | os.PathLike | None = None) -> tuple[dict, list[dict]]:
    """Score the items and return ``(summary, per-item agreement)``; see `score_items`."""
    per_item = [item_agreement(r) for r in score_items(items_path, ids, scorer, scores_out=scores_out)]
    return summarize(per_item), per_item


def length_matched(scored: list[dict]) -> tuple[dict | None, int]:
    """Agreement over the comparisons whose two answers are within `LENGTH_MATCH` of each other's length
    (a scorer that only learned length is at chance here), and how many items have one."""
    per_item = [a for a in (item_agreement(r, length_matched=True) for r in scored) if a is not None]
    return (summarize(per_item) if per_item else None), len(per_item)


# The fit's grid: axis weights on a simplex in steps of 0.1 (equal weights first), the contrastive
# estimator's share of the value axis, and the factual gate; simplest settings first, so ties keep them.
FIT_CONTRAST = (0.0, 0.5, 1.0)
FIT_GATES = ("none", "value")


DEFAULT_MIX = {"weights": {a: 1 / 3 for a in AXES}, "contrast_weight": 0.0, "factual_gate": "none"}


def u_from_parts(parts: dict, mix: dict, scoring: dict) -> np.ndarray:
    """u recomputed from a scored record's parts under other weights / contrast weight / factual gate
    (``scoring`` supplies the record's own token weight and normalisation)."""
    from udasa.uncertainty import functional as F

    arrays = {k: np.asarray(v, dtype=float) for k, v in parts.items()}
    comp = F.components_from_parts(arrays, token_weight=scoring.get("token_weight", 0.5),
                                   contrast_weight=mix["contrast_weight"], factual_gate=mix["factual_gate"])
    norm = {a: F.normalize(comp[a], scoring.get("normalization", "rank")) for a in AXES}
    return F.combine(norm, mix["weights"])


def weight_grid(step: int = 10) -> np.ndarray:
    grid = [(1 / 3, 1 / 3, 1 / 3)] + [(a / step, b / step, (step - a - b) / step)
                                      for a in range(step + 1) for b in range(step + 1 - a)]
    return np.array(grid)


def fit_settings(scored: list[dict], score_cfg) -> dict:
    """The weights, contrast weight and factual gate whose u agrees most with the human labels of ``scored``
    (records scored with every part computed), by exhaustive search over the grid; recomputed from the
    stored parts, so no model runs. Returns the choice, its agreement and the default settings' agreement."""
    from udasa.uncertainty import functional as F

    weights = weight_grid()
    has_contrast = all("value_contrast" in (r.get("parts") or {}) for r in scored)
    pairs = [comparisons(r) for r in scored]
    trials = []
    for gate in FIT_GATES:
        for cw in (FIT_CONTRAST if has_contrast else (0.0,)):
            per_item = np.zeros((len(weights), len(scored)))
            for j, (r, ps) in enumerate(zip(scored, pairs)):
                parts = {k: np.asarray(v, dtype=float) for k, v in r["parts"].items()}
                comp = F.components_from_parts(parts, token_weight=score_cfg.token_weight, contrast_weight=cw,
                                               factual_gate=gate)
                norm = np.stack([F.normalize(comp[a], score_cfg.normalization) for a in AXES])
                u = weights @ norm  # (grid, n responses)
                per_item[:, j] = np.mean([np.where(u[:, g] < u[:, b], 1.0, np.where(u[:, g] == u[:, b], 0.5, 0.0))
                                          for g, b in ps], axis=0)
            for w, agreement in zip(weights, per_item.mean(axis=1)):
                trials.append((float(agreement), gate, cw, w))
    default = next(t for t in trials if t[1] == "none" and t[2] == 0.0)  # equal weights come first
    best = max(trials, key=lambda t: t[0])  # the first maximum: the simplest of the best
    return {"weights": {a: round(float(x), 3) for a, x in zip(AXES, best[3])}, "contrast_weight": best[2],
            "factual_gate": best[1], "dev_agreement": round(best[0], 4),
            "default_dev_agreement": round(default[0], 4), "trials": len(trials), "items": len(scored)}


def write_fitted(spec_path: str | os.PathLike, fitted: dict) -> None:
    """Replace the ``fitted:`` block at the end of a spec file (the rest of the file, comments included, stays)."""
    import re

    import yaml

    path = Path(spec_path)
    text = re.sub(r"(?ms)^fitted:.*\Z", "", path.read_text(encoding="utf-8")).rstrip("\n") + "\n"
    fit = fitted["fit"]
    body = yaml.safe_dump(fitted, sort_keys=False, default_flow_style=None, width=110)
    block = (f"fitted:  # by `udasa validate --fit` on human labels of the dev slice only ({fit['data']} "
             f"items {fit['slice']})\n" + "".join(f"  {line}\n" for line in body.splitlines()))
    atomic_write_text(path, text + block)


def markdown_table(summary: dict, title: str) -> str:
    lines = [f"**{title}**", "", "| scorer | agreement | 95% CI |", "|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {100 * s['agreement']:.1f}% | {100 * s['ci_low']:.1f} - {100 * s['ci_high']:.1f} |")
    return "\n".join(lines) + "\n"


@dataclass
class ValidateConfig:
    """One `udasa validate` run.

    Fields:
        data: hh-harmless, hh-helpful or truthfulqa.
        offset, limit: the slice of the data set's items used (limit None = to the end). Both None = the
            reporting slice (`REPORT_SLICE`), or with ``fit`` the dev slice (`DEV_SLICE`); a fit may not read
            reporting items.
        fit: choose the spec's weights, contrast weight and factual gate on this slice's human labels
            (`fit_settings`) and write them into the spec file.
        n_samples: fresh policy samples per item, added to the human / MC candidates.
        max_new_tokens: generation budget of the fresh samples.
        model: policy that samples (and whose log-probs score the human answers).
        seed: sampling seed.
        device, dtype: where the policy samples (see `udasa.device`).
    """

    data: str = "hh-harmless"
    offset: int | None = None
    limit: int | None = None
    fit: bool = False
    n_samples: int = 4
    max_new_tokens: int = 64
    model: str = "smollm2-135m-instruct"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self):
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        if self.data not in DATASETS:
            raise InputError(f"must be one of {DATASETS} (got {self.data!r})", field="data")
        for name, lo in (("n_samples", 1), ("max_new_tokens", 1)):
            if getattr(self, name) < lo:
                raise InputError(f"must be >= {lo} (got {getattr(self, name)!r})", field=name)
        if self.offset is not None and self.offset < 0:
            raise InputError(f"must be >= 0 (got {self.offset!r})", field="offset")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"must be >= 1 (got {self.limit!r})", field="limit")
        if self.offset is None and self.limit is None:
            self.offset, self.limit = (DEV_SLICE if self.fit else REPORT_SLICE)[self.data]
        self.offset = self.offset or 0
        if self.fit:
            lo, n = REPORT_SLICE[self.data]
            end = float("inf") if self.limit is None else self.offset + self.limit
            if self.offset < lo + n and end > lo:
                raise InputError(f"a fit may not read the reporting slice (items {lo}-{lo + n - 1} of {self.data}); "
                                 f"fit on the dev slice, items {DEV_SLICE[self.data][0]}-"
                                 f"{sum(DEV_SLICE[self.data]) - 1}", field="offset")


def validate(vcfg: ValidateConfig, score_cfg, out_dir: str | os.PathLike, *, collect: bool = True,
             progress: bool = True) -> dict:
    """Collect (resumable), score and summarise; writes items.jsonl, scores-<hash>.jsonl, validation.{json,md}.

    With ``collect=False`` nothing is sampled: only the slice's items already in items.jsonl are scored
    (to report on a partly finished collection; the result says how many items it covers).
    """
    import hashlib
    import json

    from udasa.sampling import SampleConfig
    from udasa.uncertainty.scorer import Scorer

    out_dir = Path(out_dir)
    if vcfg.fit and score_cfg.estimators is not None:
        raise InputError("--fit fits the weights of the three default axes; leave `estimators` unset to fit",
                         field="estimators")
    items = load_items(vcfg.data, vcfg.offset, vcfg.limit)
    scfg = SampleConfig(model=vcfg.model, n=vcfg.n_samples, max_new_tokens=vcfg.max_new_tokens, seed=vcfg.seed,
                        device=vcfg.device, dtype=vcfg.dtype)
    if collect:
        collect_items(items, out_dir / "items.jsonl", cfg=scfg, progress=progress)
    # every part is computed (the contrastive estimator included) so that each estimator gets its own row
    # and the fit can recombine them without running a model again
    contrast = {k: getattr(score_cfg, k) for k in ("contrast_temperature", "contrast_max_context",
                                                   "contrast_max_response")}
    tag = hashlib.sha256(json.dumps({**score_cfg.settings(), "all_parts": contrast}, sort_keys=True).encode()
                         ).hexdigest()[:8]
    scored = score_items(out_dir / "items.jsonl", [it["id"] for it in items], Scorer(score_cfg, all_parts=True),
                         scores_out=out_dir / f"scores-{tag}.jsonl")
    per_item = [item_agreement(r) for r in scored]
    summary = summarize(per_item)
    matched, n_matched = length_matched(scored)
    paired = paired_differences(per_item)
    result = {"data": vcfg.data, "items": len(per_item), "offset": vcfg.offset, "limit": vcfg.limit,
              "n_samples": vcfg.n_samples, "max_new_tokens": vcfg.max_new_tokens, "model": vcfg.model,
              "seed": vcfg.seed, "scoring": score_cfg.settings(), "agreement": summary,
              "combined_u_minus": paired,
              "length_matched": {"items": n_matched, "rule": f"|Δ characters| / longer <= {LENGTH_MATCH}",
                                 "agreement": matched}}
    title = (f"{vcfg.data}: {len(per_item)} items from item {vcfg.offset}, {vcfg.n_samples} policy samples + "
             f"human answers per item, spec {score_cfg.spec}")
    md = markdown_table(summary, title)
    md += "\ncombined u minus each baseline on the same items (paired bootstrap, 95% CI): " + "; ".join(
        f"{b}: {100 * d['difference']:+.1f} pts [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
        for b, d in paired.items()) + "\n"
    if matched:
        md += "\n" + markdown_table(matched, f"length-matched comparisons only ({n_matched} items)")
    if vcfg.fit:
        fit = fit_settings(scored, score_cfg)
        spec_file = spec_file_path(score_cfg.spec)
        fitted = {"weights": fit["weights"], "contrast_weight": fit["contrast_weight"],
                  "factual_gate": fit["factual_gate"],
                  "fit": {"data": vcfg.data, "slice": f"{vcfg.offset}-{vcfg.offset + len(scored) - 1}",
                          "items": len(scored), "dev_agreement": fit["dev_agreement"],
                          "default_dev_agreement": fit["default_dev_agreement"], "grid": fit["trials"],
                          "n_samples": vcfg.n_samples, "model": vcfg.model}}
        write_fitted(spec_file, fitted)
        result["fit"] = {**fitted, "spec_file": str(spec_file)}
        md += (f"\nFitted on these items (human labels): {json.dumps(fitted)} -> written to {spec_file}\n")
    atomic_write_json(out_dir / "validation.json", result)
    atomic_write_text(out_dir / "validation.md", md)
    return result


def spec_file_path(spec: str) -> Path:
    """The YAML file behind a spec name (the shipped file in udasa/specs) or path."""
    from udasa.uncertainty.specs import builtin_specs

    if spec in builtin_specs():
        return Path(__file__).resolve().parents[1] / "specs" / f"{spec}.yaml"
    return Path(spec).expanduser()
