"""The adaptive curriculum: after each stage, the pairs not yet trained are re-scored with the updated policy.

Only the policy-dependent parts of u change with the policy: the factual axis's token confidence
(teacher-forced log-probs of every response under the new model) and, when the run uses it, the
contrastive value estimator. Semantic dispersion and the embedding value estimator read the same
texts and stay as they were. With the new u, each remaining pair keeps its chosen and rejected
responses and gets a new Δu = u(rejected) - u(chosen); the remaining pairs are re-split by that Δu
into the remaining stages, whose sizes stay as they were (so the number of DPO steps is unchanged).

What happened is written next to the model: ``adaptive.jsonl`` (one line per re-scoring: the rank
correlation of the old and new Δu, how many pairs changed stage) and ``pairs.trained.jsonl`` (every
pair with the Δu it had when its stage was trained).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udasa.io import atomic_write_jsonl, iter_jsonl
from udasa.training.data import Stage, read_pairs


def rank_correlation(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than two values or no spread."""
    if len(a) < 2:
        return None

    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = x.argsort(kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


class AdaptiveRescorer:
    """The ``adapt`` callback of `udasa.training.train` for ``curriculum: adaptive``."""

    def __init__(self, pairs_path: Path, scores_path: Path, score_cfg, out_dir: Path):
        import dataclasses

        # the re-scored samples come from each stage's model, not the run's: no model restriction
        self.cfg = dataclasses.replace(score_cfg, model=None)
        self.pairs_path, self.scores_path, self.out = Path(pairs_path), Path(scores_path), Path(out_dir)
        self.log: list[dict] = []

    def __call__(self, stage_folder: Path, remaining: list[Stage]) -> list[Stage]:
        pairs = [p for s in remaining for p in s.pairs]
        new_u = self._rescore(Path(stage_folder), {p["id"] for p in pairs})
        old = [p["delta_u"] for p in pairs]
        new = [round(float(new_u[p["id"]][p["rejected_index"]] - new_u[p["id"]][p["chosen_index"]]), 6) for p in pairs]
        # re-split: largest new Δu first, stage sizes as they were (ties broken by pair key, as the static split)
        order = sorted(range(len(pairs)), key=lambda i: (-new[i], pairs[i]["pair_key"]))
        stages, start = [], 0
        for s in remaining:
            members = [{**pairs[i], "delta_u": new[i]} for i in order[start:start + len(s.pairs)]]
            stages.append(Stage(s.index, s.label, members))
            start += len(s.pairs)
        before = {p["id"]: s.label for s in remaining for p in s.pairs}
        moved = sum(before[p["id"]] != s.label for s in stages for p in s.pairs)
        self.log = [r for r in self.log if r["after"] != Path(stage_folder).name]
        self.log.append({"after": Path(stage_folder).name, "pairs": len(pairs), "moved_stage": moved,
                         "rank_correlation": rank_correlation(old, new),
                         "delta_u_mean_before": round(float(np.mean(old)), 6),
                         "delta_u_mean_after": round(float(np.mean(new)), 6)})
        atomic_write_jsonl(self.out / "adaptive.jsonl", self.log)
        self._write_trained(stages)
        return stages

    def _rescore(self, model_dir: Path, ids: set[str]) -> dict[str, list[float]]:
        """u of every response of the prompts ``ids``, with the log-probs (and judge) of the model in ``model_dir``."""
        from udasa.policy import Policy
        from udasa.uncertainty.scorer import Scorer

        policy = Policy(str(model_dir), device=self.cfg.device, dtype=self.cfg.dtype)
        records = [r for _, r in iter_jsonl(self.scores_path) if r["id"] in ids]
        samples = []
        for r in records:
            plain = r.get("format") == "plain"
            ctx = policy.encode(r["messages"], plain=plain)
            conts = [policy.tokenizer(y, add_special_tokens=False)["input_ids"] for y in r["responses"]]
            lps = policy.logprobs([ctx] * len(conts), conts)
            samples.append({k: r[k] for k in ("id", "prompt", "messages", "responses") if k in r} |
                           {k: r[k] for k in ("format", "spec") if k in r} |
                           {"num_tokens": [len(x) for x in lps], "model": str(model_dir),
                            "logprob_mean": [float(np.mean(x)) if x else 0.0 for x in lps]})
        scored = Scorer(self.cfg, judge_policy=policy).score_records(samples)
        return {s["id"]: s["u"] for s in scored}

    def _write_trained(self, remaining: list[Stage]) -> None:
        """Every pair with the Δu it has when its stage trains: the stages already trained keep theirs."""
        upcoming = {s.index for s in remaining}
        earlier = {}
        path = self.out / "pairs.trained.jsonl"
        if path.exists():
            earlier = {r["id"]: r for _, r in iter_jsonl(path) if r["stage_index"] not in upcoming}
        else:
            earlier = {p["id"]: {"id": p["id"], "stage": s.label, "stage_index": s.index,
                                 "delta_u_initial": p["delta_u"], "delta_u": p["delta_u"]}
                       for s in read_pairs(self.pairs_path) if s.index not in upcoming for p in s.pairs}
        initial = {p["id"]: p["delta_u"] for s in read_pairs(self.pairs_path) for p in s.pairs}
        rows = list(earlier.values()) + [{"id": p["id"], "stage": s.label, "stage_index": s.index,
                                          "delta_u_initial": initial[p["id"]], "delta_u": p["delta_u"]}
                                         for s in remaining for p in s.pairs]
        atomic_write_jsonl(path, sorted(rows, key=lambda r: r["stage_index"]))


def as_trained(pairs: list[dict], trained_path: Path) -> list[dict]:
    """``pairs`` with the stage each was trained in and the Δu it had then, when ``trained_path`` (an adaptive
    run's pairs.trained.jsonl) exists; otherwise as they are (the static split is what was trained)."""
    if not Path(trained_path).exists():
        return pairs
    trained = {r["id"]: r for _, r in iter_jsonl(trained_path)}
    return [{**p, **{k: trained[p["id"]][k] for k in ("stage", "stage_index", "delta_u")}} if p["id"] in trained
            else p for p in pairs]


def read_adaptive_log(model_dir: Path) -> list[dict]:
    path = Path(model_dir) / "adaptive.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
