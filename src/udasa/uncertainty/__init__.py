"""Stage 2: score each response's uncertainty on three axes (semantic, factual, value) and combine to u.

See docs/method.md for the formulas and docs/architecture.md for the scores.jsonl schema.
"""
import dataclasses

from udasa.uncertainty.config import AXES, ScoreConfig
from udasa.uncertainty.estimators import (ESTIMATORS, Estimator, FactualConsistency, SemanticDispersion,
                                          ValueConformance, register)
from udasa.uncertainty.scorer import Scorer, check_sample, score
from udasa.uncertainty.specs import ValueSpec, builtin_specs, load_spec


def score_records(records: list[dict], config: ScoreConfig | None = None, **overrides) -> list[dict]:
    """Score in-memory sample records (samples.jsonl dicts) without files; see `Scorer` to reuse the models."""
    cfg = config or ScoreConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    return Scorer(cfg).score_records(records)


__all__ = ["AXES", "ScoreConfig", "ESTIMATORS", "register", "Estimator", "SemanticDispersion", "FactualConsistency",
           "ValueConformance", "Scorer", "check_sample", "score", "score_records", "ValueSpec", "builtin_specs", "load_spec"]
