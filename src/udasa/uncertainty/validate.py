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

from udasa.errors import InputError
from udasa.io import JsonlAppender, atomic_write_json, atomic_write_text, iter_jsonl
from udasa.stats import bootstrap_ci

DATASETS = ("hh-harmless", "hh-helpful", "truthfulqa")
DEFAULT_SPEC = {"hh-harmless": "safety", "hh-helpful": "helpful", "truthfulqa": "honest"}


def load_items(data: str, offset: int = 0, limit: int | None = None) -> list[dict]:
    """Validation items ``{id, prompt, messages, candidates: [str], sources: [str]}`` for a data set slice."""
    from udasa import data as D

    if data in ("hh-harmless", "hh-helpful"):
        rows = D.hh_rlhf(data[3:])
        items = [{"id": r["id"], "prompt": r["prompt"], "messages": r["messages"],
                  "candidates": [r["chosen"], r["rejected"]], "sources": ["chosen", "rejected"]} for r in rows]
    elif data == "truthfulqa":
        items = []
        for r in D.truthfulqa():
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

    from udasa.sampling import Policy, SampleConfig
    from udasa.sampling.logprobs import response_logprobs
    from udasa.sampling.sampler import _check_compatible, _fingerprint

    cfg = cfg or SampleConfig(max_new_tokens=64)
    policy = policy or Policy(cfg.model, trust_remote_code=cfg.trust_remote_code)
    meta = {"model": cfg.model, "model_fingerprint": _fingerprint(cfg.model), "sampling": cfg.settings()}
    with JsonlAppender(out, key="id") as writer:
        _check_compatible(writer, meta, out)
        todo = [it for it in items if it["id"] not in writer.done]
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="validation items", disable=not progress)
        for start in range(0, len(todo), batch_prompts):
            batch = todo[start:start + batch_prompts]
            recs = policy.respond(batch, cfg)
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


def item_agreement(rec: dict) -> dict[str, float]:
    """Agreement of each scorer and baseline with the human label on one scored item.

    HH: one (chosen, rejected) comparison. TruthfulQA: mean over (correct, incorrect) pairs.
    Lower is "more reliable" for every entry: u, each raw axis, and the baselines (length in
    characters for shorter-wins, minus length for longer-wins, minus mean log-prob for likelihood).
    """
    src = rec["sources"]
    good = [i for i, s in enumerate(src) if s in ("chosen", "correct")]
    bad = [i for i, s in enumerate(src) if s in ("rejected", "incorrect")]
    lengths = np.array([len(r) for r in rec["responses"]], dtype=float)
    metrics = {"combined u": np.array(rec["u"])}
    metrics.update({f"{a} only": np.array(rec["components"][a]) for a in rec["components"]})
    metrics["shorter wins"] = lengths
    metrics["longer wins"] = -lengths
    metrics["higher log-likelihood wins"] = -np.array(rec["logprob_mean"])
    out = {name: float(np.mean([_agree(v, g, b) for g in good for b in bad])) for name, v in metrics.items()}
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


def evaluate_items(items_path: str | os.PathLike, ids: list[str] | None, scorer, *,
                   scores_out: str | os.PathLike | None = None) -> tuple[dict, list[dict]]:
    """Score the items (``ids`` in that order; None = all) and return ``(summary, per-item agreement)``.

    With ``scores_out`` the scored records are appended there, resumably.
    """
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
    per_item = [item_agreement(scored[i]) for i in order]
    return summarize(per_item), per_item


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
        offset, limit: the slice of the data set's items used (limit None = to the end). Keep the
            design-tuning (dev) slice and the reported slice disjoint.
        n_samples: fresh policy samples per item, added to the human / MC candidates.
        max_new_tokens: generation budget of the fresh samples.
        model: policy that samples (and whose log-probs score the human answers).
        seed: sampling seed.
    """

    data: str = "hh-harmless"
    offset: int = 0
    limit: int | None = 300
    n_samples: int = 4
    max_new_tokens: int = 64
    model: str = "smollm2-135m-instruct"
    seed: int = 0

    def __post_init__(self):
        if self.data not in DATASETS:
            raise InputError(f"must be one of {DATASETS} (got {self.data!r})", field="data")
        for name, lo in (("offset", 0), ("n_samples", 1), ("max_new_tokens", 1)):
            if getattr(self, name) < lo:
                raise InputError(f"must be >= {lo} (got {getattr(self, name)!r})", field=name)
        if self.limit is not None and self.limit < 1:
            raise InputError(f"must be >= 1 (got {self.limit!r})", field="limit")


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
    items = load_items(vcfg.data, vcfg.offset, vcfg.limit)
    scfg = SampleConfig(model=vcfg.model, n=vcfg.n_samples, max_new_tokens=vcfg.max_new_tokens, seed=vcfg.seed)
    if collect:
        collect_items(items, out_dir / "items.jsonl", cfg=scfg, progress=progress)
    tag = hashlib.sha256(json.dumps(score_cfg.settings(), sort_keys=True).encode()).hexdigest()[:8]
    summary, per_item = evaluate_items(out_dir / "items.jsonl", [it["id"] for it in items], Scorer(score_cfg),
                                       scores_out=out_dir / f"scores-{tag}.jsonl")
    result = {"data": vcfg.data, "items": len(per_item), "offset": vcfg.offset, "limit": vcfg.limit,
              "n_samples": vcfg.n_samples, "max_new_tokens": vcfg.max_new_tokens, "model": vcfg.model,
              "seed": vcfg.seed, "scoring": score_cfg.settings(), "agreement": summary}
    title = (f"{vcfg.data}: {len(per_item)} items from item {vcfg.offset}, {vcfg.n_samples} policy samples + "
             f"human answers per item, spec {score_cfg.spec}")
    atomic_write_json(out_dir / "validation.json", result)
    atomic_write_text(out_dir / "validation.md", markdown_table(summary, title))
    return result
