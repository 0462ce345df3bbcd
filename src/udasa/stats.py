"""Small statistics helpers shared by validation and evaluation (pure numpy, unit-tested)."""
from __future__ import annotations

import numpy as np


def bootstrap_ci(values, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                 statistic=np.mean) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap confidence interval of ``statistic`` over ``values``.

    Resamples items with replacement ``n_resamples`` times (fixed ``seed``, so reports are
    reproducible) and returns ``(estimate, low, high)`` at the given two-sided ``confidence``.
    An empty input gives NaNs; a single value gives a zero-width interval. With a 2-D ``values`` an
    item is a row (several measurements of one item, resampled together: a paired bootstrap).
    """
    x = np.asarray(values, dtype=float)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    est = float(statistic(x))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    if statistic is np.mean and x.ndim == 1:
        boots = x[idx].mean(axis=1)  # vectorised fast path
    else:
        boots = np.array([statistic(x[i]) for i in idx])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return est, float(lo), float(hi)
