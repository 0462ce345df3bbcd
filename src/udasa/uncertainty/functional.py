"""The scoring math as pure numpy functions (no models, no I/O); docs/method.md gives the formulas.

Conventions: ``emb`` arrays are L2-normalised rows (so a dot product is a cosine similarity);
every per-response score is in [0, 1] and higher means less reliable.
"""
from __future__ import annotations

import math
import re

import numpy as np

_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str, min_chars: int = 3) -> list[str]:
    """Sentences of a response: split after . ! ? and at line breaks; fragments shorter than ``min_chars`` dropped."""
    return [s.strip() for s in _SENT.split(text) if len(s.strip()) >= min_chars]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def semantic_dispersion(emb: np.ndarray) -> np.ndarray:
    """1 - mean cosine similarity of each response to the *other* responses, clipped to [0, 1].

    Identical responses give 0; the response farthest from the rest gets the highest score.
    With a single response there is nothing to compare with and the score is 0.
    """
    n = len(emb)
    if n < 2:
        return np.zeros(n)
    sim = emb @ emb.T
    mean_other = (sim.sum(axis=1) - np.diag(sim)) / (n - 1)
    return np.clip(1.0 - mean_other, 0.0, 1.0)


def greedy_clusters(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster label per response: each joins the first cluster whose founding response has cosine >= threshold.

    Order-dependent by design (cheap, deterministic); it stands in for the bidirectional
    entailment clustering of semantic entropy, for which no offline NLI model is available.
    """
    labels = np.full(len(emb), -1)
    founders: list[int] = []
    for i in range(len(emb)):
        for c, f in enumerate(founders):
            if float(emb[i] @ emb[f]) >= threshold:
                labels[i] = c
                break
        else:
            labels[i] = len(founders)
            founders.append(i)
    return labels


def cluster_entropy(labels: np.ndarray) -> float:
    """Shannon entropy (nats) of the cluster frequencies: 0 when all responses agree, log(n) when all differ."""
    if len(labels) == 0:
        return 0.0
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def token_uncertainty(logprob_mean: np.ndarray, num_tokens: np.ndarray) -> np.ndarray:
    """1 - geometric-mean token probability = 1 - exp(mean log p); an empty response counts as 1."""
    lp = np.asarray(logprob_mean, dtype=np.float64)
    u = 1.0 - np.exp(np.minimum(lp, 0.0))
    return np.where(np.asarray(num_tokens) > 0, u, 1.0)


def unsupported_share(sent_emb: list[np.ndarray], threshold: float) -> np.ndarray:
    """Share of each response's sentences that no *other* response supports (SelfCheckGPT-style).

    A sentence is supported when its best cosine match among the other responses' sentences
    reaches ``threshold``. A response with no sentences scores 1 (it states nothing checkable);
    a response alone in its set scores 0 (nothing to check against).
    """
    n = len(sent_emb)
    out = np.zeros(n)
    for i, s in enumerate(sent_emb):
        if len(s) == 0:
            out[i] = 1.0
            continue
        others = [sent_emb[j] for j in range(n) if j != i and len(sent_emb[j])]
        if not others:
            out[i] = 0.0 if n == 1 else 1.0
            continue
        best = (s @ np.concatenate(others).T).max(axis=1)
        out[i] = float((best < threshold).mean())
    return out


def conformance(resp_emb: np.ndarray, conforming: list[np.ndarray], violating: list[np.ndarray],
                temperature: float) -> np.ndarray:
    """P(conforms) per response: mean over principles of sigmoid((max-sim conforming - max-sim violating) / T).

    ``conforming[k]`` / ``violating[k]`` hold the statement embeddings of principle k. A two-way
    softmax over the best match on each side is this sigmoid; T sets how sharp it is.
    """
    probs = []
    for c, v in zip(conforming, violating):
        margin = (resp_emb @ c.T).max(axis=1) - (resp_emb @ v.T).max(axis=1)
        probs.append(1.0 / (1.0 + np.exp(-margin / temperature)))
    return np.mean(probs, axis=0) if probs else np.full(len(resp_emb), 0.5)


def conformance_from_parts(parts: dict[str, np.ndarray], *, contrast_weight: float = 0.0,
                           judge_weight: float = 0.0) -> np.ndarray:
    """P(conforms to the spec): the embedding estimate mixed with the contrastive one (``contrast_weight``), then
    with the policy judge (``judge_weight``, when its part was computed)."""
    p = np.asarray(parts["value_embedding"], dtype=np.float64)
    if contrast_weight > 0:
        p = (1 - contrast_weight) * p + contrast_weight * np.asarray(parts["value_contrast"])
    if judge_weight > 0 and "value_judge" in parts:
        p = (1 - judge_weight) * p + judge_weight * np.asarray(parts["value_judge"])
    return p


def factual_from_parts(parts: dict[str, np.ndarray], *, token_weight: float, factual_gate: str = "none",
                       conforms: np.ndarray | None = None) -> np.ndarray:
    """The factual axis: token uncertainty and unsupported-sentence share, optionally gated by P(conforms)."""
    factual = token_weight * np.asarray(parts["token"]) + (1 - token_weight) * np.asarray(parts["unsupported"])
    if factual_gate == "value":
        if conforms is None:
            raise ValueError("the factual gate 'value' needs P(conforms) from the value estimator")
        factual = 1.0 - conforms * (1.0 - factual)
    elif factual_gate != "none":
        raise ValueError(f"unknown factual gate {factual_gate!r}")
    return np.clip(factual, 0, 1)


def components_from_parts(parts: dict[str, np.ndarray], *, token_weight: float, contrast_weight: float = 0.0,
                          judge_weight: float = 0.0, factual_gate: str = "none") -> dict[str, np.ndarray]:
    """The three axes (each in [0, 1], higher = less reliable) from the estimators' raw parts.

    ``parts``: ``semantic``; ``token`` and ``unsupported`` (factual); ``value_embedding`` and, when
    computed, ``value_contrast`` and ``value_judge`` (each a P(conforms)). The value axis is
    1 - P with P the embedding estimate mixed with the contrastive one (``contrast_weight``) and then
    the judge (``judge_weight``). ``factual_gate = "value"`` lets token confidence count only as far
    as the response conforms: F' = 1 - P (1 - F), so a confident violating answer is not "reliable".
    """
    p = conformance_from_parts(parts, contrast_weight=contrast_weight, judge_weight=judge_weight)
    return {"semantic": np.clip(parts["semantic"], 0, 1),
            "factual": factual_from_parts(parts, token_weight=token_weight, factual_gate=factual_gate, conforms=p),
            "value": np.clip(1.0 - p, 0, 1)}


def normalize(x: np.ndarray, method: str) -> np.ndarray:
    """Within-prompt normalisation to [0, 1]: ``minmax``, ``rank`` (ties share the mean rank) or ``none``.

    A constant vector maps to 0 under minmax and rank (no response is less reliable than another).
    """
    x = np.asarray(x, dtype=np.float64)
    if method == "none" or len(x) == 0:
        return x.copy()
    if method == "minmax":
        span = x.max() - x.min()
        return (x - x.min()) / span if span > 1e-12 else np.zeros_like(x)
    if method == "rank":
        if len(x) == 1 or np.ptp(x) <= 1e-12:
            return np.zeros_like(x)
        order = x.argsort(kind="stable")
        ranks = np.empty(len(x))
        ranks[order] = np.arange(len(x), dtype=np.float64)
        for v in np.unique(x):  # average ranks over ties
            m = x == v
            ranks[m] = ranks[m].mean()
        return ranks / (len(x) - 1)
    raise ValueError(f"unknown normalisation {method!r}")


def combine(normalized: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """u = sum_a w_a * normalized_a (weights sum to 1, so u stays in [0, 1]); zero-weight axes drop out."""
    total = sum(weights.values())
    n = len(next(iter(normalized.values())))
    u = np.zeros(n)
    for axis, w in weights.items():
        if w:
            u += (w / total) * np.asarray(normalized[axis], dtype=np.float64)
    return u


def safe_float(x: float, ndigits: int = 5) -> float:
    return round(float(x), ndigits) if math.isfinite(x) else 0.0
