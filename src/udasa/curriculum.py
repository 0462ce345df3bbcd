"""The Δu curriculum: which training stage each preference pair belongs to.

A pair with a large Δu = u(rejected) - u(chosen) is one the uncertainty scores are confident
about, so it is trained first ("conservative"); pairs with a small Δu come last ("exploratory").
Everything here is pure: Δu values (and pair keys for tie-breaking) in, stage labels out.

Stage *label* (what kind of pair it is) and stage *index* (when it is trained) are kept apart,
so the ablations stay honest: ``reverse`` trains the exploratory pairs first but still calls them
exploratory; ``random`` shuffles the labels (same stage sizes) and trains in the usual order.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from udasa.errors import InputError

STAGES = ("conservative", "moderate", "exploratory")  # largest Δu first
ALL = "all"  # the single stage of --curriculum none
CURRICULA = ("udasa", "none", "reverse", "random", "adaptive")
SPLITS = ("quantile", "threshold")


@dataclass
class CurriculumConfig:
    """How pairs are split into stages and in which order the stages are trained.

    Fields:
        curriculum: "udasa" (conservative -> moderate -> exploratory), "none" (one stage "all": plain DPO
            on the same pairs), "reverse" (exploratory first), "random" (stage labels shuffled at random,
            keeping the stage sizes, trained in the usual order), "adaptive" (split like "udasa"; after each
            stage the pairs not yet trained are re-scored with the updated policy and re-split by their new
            Δu, keeping the stage sizes: `udasa.adaptive`).
        split: "quantile" (by rank of Δu, stage sizes set by ``fractions``) or "threshold" (fixed Δu cuts).
        fractions: share of pairs in (conservative, moderate, exploratory) for the quantile split; must
            sum to 1. Default: thirds. Ranks are by Δu descending, ties broken by pair id, so equal Δu may
            straddle a boundary but stage sizes are exact.
        thresholds: (low, high) for the threshold split: Δu >= high is conservative, low <= Δu < high is
            moderate, Δu < low is exploratory.
        seed: seed of the ``random`` curriculum.
    """

    curriculum: str = "udasa"
    split: str = "quantile"
    fractions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    thresholds: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self):
        self.fractions = tuple(float(f) for f in self.fractions)
        if self.curriculum not in CURRICULA:
            raise InputError(f"must be one of {CURRICULA} (got {self.curriculum!r})", field="curriculum")
        if self.split not in SPLITS:
            raise InputError(f"must be one of {SPLITS} (got {self.split!r})", field="split")
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions) or not math.isclose(sum(self.fractions), 1,
                                                                                               abs_tol=1e-6):
            raise InputError(f"must be three non-negative shares summing to 1 (got {self.fractions})",
                             field="fractions")
        if self.split == "threshold":
            if self.thresholds is None or len(self.thresholds) != 2:
                raise InputError("the threshold split needs two values (low, high)", field="thresholds")
            self.thresholds = (float(self.thresholds[0]), float(self.thresholds[1]))
            if self.thresholds[0] > self.thresholds[1]:
                raise InputError(f"low must be <= high (got {self.thresholds})", field="thresholds")


def stage_sizes(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``n`` items into len(fractions) parts, rounding by largest remainder (sizes sum to n)."""
    raw = [n * f for f in fractions]
    sizes = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def split_by_rank(deltas: list[float], keys: list[str], fractions: tuple[float, float, float]) -> list[int]:
    """Label index per pair (0 = conservative): the largest-Δu share first, by exact rank."""
    order = sorted(range(len(deltas)), key=lambda i: (-deltas[i], keys[i]))
    labels = [0] * len(deltas)
    start = 0
    for label, size in enumerate(stage_sizes(len(deltas), fractions)):
        for i in order[start:start + size]:
            labels[i] = label
        start += size
    return labels


def split_by_threshold(deltas: list[float], thresholds: tuple[float, float]) -> list[int]:
    low, high = thresholds
    return [0 if d >= high else 1 if d >= low else 2 for d in deltas]


def assign_stages(deltas: list[float], keys: list[str], cfg: CurriculumConfig) -> list[tuple[str, int]]:
    """``(stage label, stage index)`` for each pair; the index is the training order (0 first)."""
    if cfg.curriculum == "none":
        return [(ALL, 0)] * len(deltas)
    if cfg.split == "quantile":
        labels = split_by_rank(deltas, keys, cfg.fractions)
    else:
        labels = split_by_threshold(deltas, cfg.thresholds)
    if cfg.curriculum == "random":
        # a seeded permutation of the labels: same stage sizes, no relation to Δu
        rng = random.Random(int.from_bytes(hashlib.sha256(f"curriculum:{cfg.seed}".encode()).digest()[:8], "little"))
        rng.shuffle(labels)
    if cfg.curriculum == "reverse":
        return [(STAGES[lab], len(STAGES) - 1 - lab) for lab in labels]
    return [(STAGES[lab], lab) for lab in labels]


def unordered_share(deltas: list[float], stage_indices: list[int], digits: int = 4) -> float:
    """Of all comparisons between two pairs in different stages, the share whose Δu are equal (to ``digits``
    decimals: scores are rounded, so equal Δu can differ in the last digit). The quantile split breaks such
    ties by pair id, so the stages do not order them by Δu: one tie at a stage boundary is a few
    comparisons, but with one score axis under rank normalisation every pair can have the same Δu (share 1),
    and then the stages are an arbitrary split. 0 when there are fewer than two stages."""
    per_value: dict[float, dict[int, int]] = {}
    per_stage: dict[int, int] = {}
    for d, s in zip(deltas, stage_indices):
        counts = per_value.setdefault(round(d, digits), {})
        counts[s] = counts.get(s, 0) + 1
        per_stage[s] = per_stage.get(s, 0) + 1

    def across(counts) -> int:  # comparisons between members of different stages
        total = sum(counts)
        return (total * total - sum(c * c for c in counts)) // 2

    comparisons = across(per_stage.values())
    return sum(across(c.values()) for c in per_value.values()) / comparisons if comparisons else 0.0


def stage_order(curriculum: str) -> list[str]:
    """Stage labels in training order for a curriculum."""
    if curriculum == "none":
        return [ALL]
    return list(reversed(STAGES)) if curriculum == "reverse" else list(STAGES)
