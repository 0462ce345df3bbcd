"""Preference pairs from uncertainty scores: chosen = the lowest score, rejected = a worse response.

Input: scores.jsonl (one record per prompt, n responses with a score each). Output: pairs.jsonl,
one record per kept pair with its Δu and curriculum stage, and pairs.summary.json with counts
per stage, the Δu range of each stage, and how many prompts were dropped and why.
"""
from __future__ import annotations

import hashlib
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from udasa.curriculum import CurriculumConfig, assign_stages, stage_order, unordered_share
from udasa.errors import InputError, finite_number
from udasa.io import (atomic_write_json, atomic_write_jsonl, check_distinct, check_messages, iter_jsonl, prompt_format,
                      require)

SCORE_KEYS = ("u", "semantic", "factual", "value")
REJECTED_RULES = ("highest", "second_lowest", "random_higher")
SELECTIONS = ("score", "random")
DROP_REASONS = ("too_few_responses", "identical_text", "empty_response", "delta_below_min")
ORDERED_BY_DELTA = ("udasa", "reverse", "adaptive")  # curricula whose stages are meant to follow Δu
UNORDERED_WARN_SHARE = 0.05  # a tie at a stage boundary is harmless; past this share the stages stop following Δu


@dataclass
class PairConfig:
    """How pairs are built from a scores file.

    Fields:
        selection: "score" (chosen = the lowest score, rejected by ``rejected``) or "random" (the random-pair
            baseline: two distinct responses drawn at random per prompt, seeded by ``seed`` and the prompt id;
            the first is "chosen", Δu is recorded as it is, may be <= 0, and ``min_delta`` does not apply).
            Random pairs separate what the scorer contributes from what DPO on the policy's own samples does.
        score_key: "u" (the combined score) or one axis, "semantic" / "factual" / "value", read from
            ``normalized[axis]`` (single-axis ablations reuse the same code). Lower = more certain = better.
        rejected: which response is rejected: "highest" (the highest score), "second_lowest", or
            "random_higher" (a random response scored strictly higher than the chosen one, seeded per prompt).
        min_delta: pairs with Δu = score(rejected) - score(chosen) below this are dropped. A pair is also
            dropped when Δu <= 0 (no preference), whatever min_delta.
        seed: seed of the ``random_higher`` rule (each prompt derives its own from it and its id).
        curriculum: how kept pairs are split into stages (see `CurriculumConfig`).
    """

    selection: str = "score"
    score_key: str = "u"
    rejected: str = "highest"
    min_delta: float = 0.0
    seed: int = 0
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise InputError(f"must be one of {SELECTIONS} (got {self.selection!r})", field="selection")
        if self.score_key not in SCORE_KEYS:
            raise InputError(f"must be one of {SCORE_KEYS} (got {self.score_key!r})", field="score_key")
        if self.rejected not in REJECTED_RULES:
            raise InputError(f"must be one of {REJECTED_RULES} (got {self.rejected!r})", field="rejected")
        if not (finite_number(self.min_delta) and self.min_delta >= 0):
            raise InputError(f"must be a finite number >= 0 (got {self.min_delta!r})", field="min_delta")
        if isinstance(self.curriculum, dict):
            self.curriculum = CurriculumConfig(**self.curriculum)


def pick_pair(scores: list[float], rule: str, rng: random.Random | None = None) -> tuple[int, int] | None:
    """``(chosen index, rejected index)`` under ``rule``; ties go to the lower index. None if n < 2."""
    if len(scores) < 2:
        return None
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    chosen = order[0]
    if rule == "highest":
        rejected = min(order[1:], key=lambda i: (-scores[i], i))
    elif rule == "second_lowest":
        rejected = order[1]
    elif rule == "random_higher":
        higher = [i for i in order[1:] if scores[i] > scores[chosen]]
        rejected = (rng or random.Random(0)).choice(higher) if higher else order[-1]
    else:
        raise InputError(f"unknown rule {rule!r}", field="rejected")
    return chosen, rejected


def random_pair(responses: list[str], rng: random.Random) -> tuple[int, int] | None:
    """Two indices of distinct (non-empty, different text) responses drawn at random; None if impossible."""
    idx = [i for i, r in enumerate(responses) if r.strip()]
    rng.shuffle(idx)
    for a_pos, a in enumerate(idx):
        for b in idx[a_pos + 1:]:
            if responses[a].strip() != responses[b].strip():
                return a, b
    return None


def prompt_rng(seed: int, prompt_id: str) -> random.Random:
    """A generator per prompt, so a pair does not depend on file order."""
    digest = hashlib.sha256(f"pairs:{seed}\x00{prompt_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def read_scores(path: str, score_key: str):
    """Yield ``(line, record, messages, responses, scores)`` per checked scores record."""
    seen: dict[str, int] = {}
    for line, rec in iter_jsonl(path):
        if rec is None:
            continue
        pid = rec.get("id")
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            raise InputError("missing or not a string/integer", path=path, line=line, field="id")
        pid = str(pid)
        if pid in seen:
            raise InputError(f"duplicate id {pid!r} (first on line {seen[pid]})", path=path, line=line, field="id")
        seen[pid] = line
        responses = require(rec, "responses", list, path=path, line=line)
        for j, r in enumerate(responses):
            if not isinstance(r, str):
                raise InputError("must be a string", path=path, line=line, field=f"responses[{j}]")
        if score_key == "u":
            scores, fname = require(rec, "u", list, path=path, line=line), "u"
        else:
            norm = require(rec, "normalized", dict, path=path, line=line)
            fname = f"normalized.{score_key}"
            if score_key not in norm:
                raise InputError("missing", path=path, line=line, field=fname)
            scores = norm[score_key]
            if not isinstance(scores, list):
                raise InputError("expected a list", path=path, line=line, field=fname)
        if len(scores) != len(responses):
            raise InputError(f"has {len(scores)} scores for {len(responses)} responses", path=path, line=line,
                             field=fname)
        for j, s in enumerate(scores):
            if not finite_number(s):
                raise InputError(f"must be a finite number (got {s!r})", path=path, line=line, field=f"{fname}[{j}]")
        if rec.get("messages") is None:
            prompt = require(rec, "prompt", str, path=path, line=line, nonempty=True)
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = check_messages(rec, path=path, line=line, fmt=prompt_format(rec, path=path, line=line))
        yield line, {**rec, "id": pid}, messages, responses, [float(s) for s in scores]


def choose_pair(prompt_id: str, responses: list[str], scores: list[float], cfg: PairConfig
                ) -> tuple[tuple[int, int] | None, str | None]:
    """The (chosen, rejected) indices ``cfg`` keeps for one prompt, or None and why not (a key of DROP_REASONS)."""
    if len(responses) < 2:
        return None, "too_few_responses"
    rng = prompt_rng(cfg.seed, prompt_id)
    if cfg.selection == "random":
        picked = random_pair(responses, rng)
        if picked is None:
            return None, "identical_text"
    else:
        picked = pick_pair(scores, cfg.rejected, rng)
    chosen, rejected = (responses[k].strip() for k in picked)
    if chosen == rejected:
        return None, "identical_text" if chosen else "empty_response"
    if not chosen or not rejected:
        return None, "empty_response"
    delta = scores[picked[1]] - scores[picked[0]]
    if cfg.selection == "score" and (delta <= 0 or delta < cfg.min_delta):
        return None, "delta_below_min"
    return picked, None


def build_pairs(scores_path: str | Path, out_path: str | Path, config: PairConfig | None = None) -> dict:
    """Write pairs.jsonl (and pairs.summary.json next to it); return the summary."""
    cfg = config or PairConfig()
    scores_path, out_path = str(scores_path), Path(out_path)
    check_distinct(out_path, scores=scores_path)
    check_distinct(summary_path(out_path), scores=scores_path)
    kept: list[dict] = []
    dropped = {r: 0 for r in DROP_REASONS}
    prompts = 0
    for _, rec, messages, responses, scores in read_scores(scores_path, cfg.score_key):
        prompts += 1
        picked, reason = choose_pair(rec["id"], responses, scores, cfg)
        if reason:
            dropped[reason] += 1
            continue
        ci, ri = picked
        chosen, rejected = responses[ci], responses[ri]
        delta = scores[ri] - scores[ci]
        kept.append({"id": rec["id"], "prompt": rec.get("prompt") or messages[-1]["content"], "messages": messages,
                     "chosen": chosen, "rejected": rejected, "chosen_index": ci, "rejected_index": ri,
                     "u_chosen": scores[ci], "u_rejected": scores[ri], "delta_u": round(delta, 6),
                     "score_key": cfg.score_key, **({"format": "plain"} if rec.get("format") == "plain" else {}),
                     **({"selection": "random"} if cfg.selection == "random" else {})})
    if prompts == 0:
        raise InputError("holds no score records", path=scores_path)

    stages = assign_stages([p["delta_u"] for p in kept], [p["id"] for p in kept], cfg.curriculum)
    for p, (label, index) in zip(kept, stages):
        p["stage"], p["stage_index"] = label, index
    kept.sort(key=lambda p: p["stage_index"])  # stable: input order within a stage
    atomic_write_jsonl(out_path, [_ordered(p) for p in kept])

    summary = {
        "scores": scores_path, "pairs_file": str(out_path), "prompts": prompts, "pairs": len(kept),
        "dropped": dropped, "config": asdict(cfg), "stages": stage_summary(kept, cfg.curriculum.curriculum),
    }
    if cfg.curriculum.curriculum in ORDERED_BY_DELTA and cfg.curriculum.split == "quantile":
        share = unordered_share([p["delta_u"] for p in kept], [p["stage_index"] for p in kept])
        summary["unordered_share"] = round(share, 4)
        if share >= UNORDERED_WARN_SHARE:
            warnings.warn(f"{out_path}: {share:.0%} of the comparisons between pairs of different stages are ties in "
                          "Δu, which the split breaks by pair id (one score axis under rank normalisation can give "
                          "every pair the same Δu): the curriculum orders little here; consider the curriculum "
                          "'none' (`--curriculum none`, recipe pairs.curriculum.curriculum)")
    atomic_write_json(summary_path(out_path), summary)
    return summary


FIELD_ORDER = ("id", "prompt", "messages", "chosen", "rejected", "chosen_index", "rejected_index", "u_chosen",
               "u_rejected", "delta_u", "stage", "stage_index", "score_key")


def _ordered(p: dict) -> dict:
    return {k: p[k] for k in FIELD_ORDER + ("format", "selection") if k in p}


def stage_summary(pairs: list[dict], curriculum: str) -> list[dict]:
    """Count and Δu range of each stage, in training order (empty stages included, count 0)."""
    rows = []
    for label in stage_order(curriculum):
        members = [p for p in pairs if p["stage"] == label]
        d = [p["delta_u"] for p in members]
        index = members[0]["stage_index"] if members else stage_order(curriculum).index(label)
        rows.append({"stage": label, "stage_index": index, "count": len(members),
                     "delta_u_min": min(d) if d else None, "delta_u_max": max(d) if d else None,
                     "delta_u_mean": round(sum(d) / len(d), 6) if d else None})
    return sorted(rows, key=lambda r: r["stage_index"])


def summary_path(pairs_path: str | Path) -> Path:
    p = Path(pairs_path)
    return p.with_name(p.stem + ".summary.json")


def format_summary(summary: dict) -> str:
    lines = [f"{summary['pairs']} pairs from {summary['prompts']} prompts -> {summary['pairs_file']}"]
    for s in summary["stages"]:
        rng = "-" if s["count"] == 0 else f"{s['delta_u_min']:.4f} .. {s['delta_u_max']:.4f}"
        lines.append(f"  stage {s['stage_index'] + 1} {s['stage']:<12} {s['count']:>6} pairs   Δu {rng}")
    drops = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items() if v) or "none"
    lines.append(f"  dropped: {drops}")
    if summary.get("unordered_share", 0) >= UNORDERED_WARN_SHARE:
        lines.append(f"  {summary['unordered_share']:.0%} of the comparisons across stages are Δu ties "
                     "(placed by pair id, not by Δu)")
    return "\n".join(lines)
