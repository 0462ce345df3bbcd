"""udasa: uncertainty-driven adaptive self-alignment of language models.

Pipeline: sample -> score -> pair -> stage -> train -> evaluate -> report (docs/architecture.md).
Heavy dependencies (torch, transformers) load lazily, so ``import udasa`` is fast.
"""
from __future__ import annotations

__version__ = "0.1.0"


def sample(*args, **kwargs):
    """Draw n responses per prompt with token log-probs; see `udasa.sampling.sample`."""
    from udasa.sampling import sample as _sample
    return _sample(*args, **kwargs)


def score(*args, **kwargs):
    """Score each response's semantic, factual and value uncertainty; see `udasa.uncertainty.score`."""
    from udasa.uncertainty import score as _score
    return _score(*args, **kwargs)

