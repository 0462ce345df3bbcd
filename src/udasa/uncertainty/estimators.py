"""Estimators (one per axis) and the statistics they share, in the spirit of LM-Polygraph.

An estimator declares the statistics it ``requires`` and maps one prompt's statistics to one
score per response in [0, 1], higher = less reliable. It never touches a model: `compute_stats`
runs the embedder (and the optional judge) once per batch of prompts, over every text any
estimator needs, and hands each prompt a plain dict of numpy arrays.

Statistics of one prompt with n responses:
    semantic_emb  (n, d)  embeddings of the semantic-axis texts (prompt+response by default)
    value_emb     (n, d)  embeddings of the value-axis texts (response by default)
    sentence_emb  list of n (k_i, d) arrays, one row per sentence of response i
    token_uncertainty (n,)  1 - exp(mean token log p), 1 for empty responses
    spec_emb      (conforming, violating): per principle, the statement embeddings
    judge_prob    (n,) or None: the policy judge's P(Yes), averaged over principles
    contrast_prob (n,) or None: the contrastive estimator's P(conforms), averaged over principles
"""
from __future__ import annotations

import hashlib

import numpy as np

from udasa.uncertainty import functional as F


class Estimator:
    """Base class: ``name`` (the axis), ``requires`` (statistic names) and ``parts(stats)``: the raw
    per-response quantities of the axis (`functional.components_from_parts` turns parts into axes, so
    a weight sweep or another mix reuses them). ``__call__(stats)`` gives the axis alone."""

    name: str = ""
    requires: tuple[str, ...] = ()

    def parts(self, stats: dict) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __call__(self, stats: dict) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class SemanticDispersion(Estimator):
    """1 - mean cosine similarity to the other samples of the same prompt."""

    name, requires = "semantic", ("semantic_emb",)

    def parts(self, stats):
        return {"semantic": F.semantic_dispersion(stats["semantic_emb"])}

    def __call__(self, stats):
        return self.parts(stats)["semantic"]


class FactualConsistency(Estimator):
    """token_weight * (1 - exp(mean log p)) + (1 - token_weight) * share of unsupported sentences."""

    name, requires = "factual", ("token_uncertainty", "sentence_emb")

    def __init__(self, token_weight: float = 0.5, support_threshold: float = 0.7):
        self.token_weight, self.support_threshold = token_weight, support_threshold

    def parts(self, stats):
        return {"token": np.asarray(stats["token_uncertainty"], dtype=np.float64),
                "unsupported": F.unsupported_share(stats["sentence_emb"], self.support_threshold)}

    def __call__(self, stats):
        p = self.parts(stats)
        return self.token_weight * p["token"] + (1 - self.token_weight) * p["unsupported"]


class ValueConformance(Estimator):
    """1 - P(conforms to the spec); P from embedding similarity, optionally mixed with the contrastive
    estimator (`contrast.py`) and the policy judge (`judge.py`)."""

    name, requires = "value", ("value_emb", "spec_emb", "judge_prob", "contrast_prob")

    def __init__(self, temperature: float = 0.05, judge_weight: float = 0.5, contrast_weight: float = 0.0):
        self.temperature, self.judge_weight, self.contrast_weight = temperature, judge_weight, contrast_weight

    def parts(self, stats):
        conf, viol = stats["spec_emb"]
        out = {"value_embedding": F.conformance(stats["value_emb"], conf, viol, self.temperature)}
        if stats.get("contrast_prob") is not None:
            out["value_contrast"] = np.asarray(stats["contrast_prob"], dtype=np.float64)
        if stats.get("judge_prob") is not None:
            out["value_judge"] = np.asarray(stats["judge_prob"], dtype=np.float64)
        return out

    def __call__(self, stats):
        p = self.parts(stats)
        parts = {"semantic": np.zeros(len(p["value_embedding"])), "token": 0.0, "unsupported": 0.0, **p}
        return F.components_from_parts(parts, token_weight=0.5, contrast_weight=self.contrast_weight,
                                       judge_weight=self.judge_weight)["value"]


def build_estimators(cfg, effective: dict | None = None) -> list[Estimator]:
    eff = effective or cfg.effective
    return [SemanticDispersion(),
            FactualConsistency(cfg.token_weight, cfg.support_threshold),
            ValueConformance(cfg.value_temperature, cfg.judge_weight, eff["contrast_weight"])]


class BowEmbedder:
    """Hashing bag-of-words embedder (no model): for tests and dry runs only, not for real scoring."""

    def __init__(self, dim: int = 256):
        self.dim = dim

    def encode(self, texts, batch_size=None, normalize_embeddings=True, **_):
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                w = w.strip(".,!?;:\"'()")
                if w:
                    out[i, int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        return F.l2_normalize(out) if normalize_embeddings else out


def get_embedder(name: str, device: str = "cpu"):
    """The sentence embedder ``name`` on ``device`` ("bow": the model-free test embedder, always CPU)."""
    if name == "bow":
        return BowEmbedder()
    from udasa.device import resolve_device
    from udasa.models import load_embedder

    return load_embedder(name, str(resolve_device(device)))


def embed(embedder, texts: list[str], batch_size: int) -> np.ndarray:
    """Embed texts once each (duplicates share one row), L2-normalised."""
    if not texts:
        return np.zeros((0, 1))
    uniq = list(dict.fromkeys(texts))
    vecs = embedder.encode(uniq, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False) \
        if not isinstance(embedder, BowEmbedder) else embedder.encode(uniq)
    vecs = F.l2_normalize(np.asarray(vecs, dtype=np.float64))
    row = {t: i for i, t in enumerate(uniq)}
    return vecs[[row[t] for t in texts]]


def _text(kind: str, prompt: str, response: str) -> str:
    return f"{prompt}\n\n{response}" if kind == "prompt+response" else response


def compute_stats(records: list[dict], cfg, embedder, spec_emb, judge=None, contrast=None) -> list[dict]:
    """All statistics for a batch of prompts, with one embedder call over every text needed (and, when
    given, one pass of the policy judge and of the contrastive estimator)."""
    texts: list[str] = []
    plan = []
    for r in records:
        n = len(r["responses"])
        sem = [_text(cfg.semantic_input, r["prompt"], x) for x in r["responses"]]
        val = [_text(cfg.value_input, r["prompt"], x) for x in r["responses"]]
        sents = [F.split_sentences(x) for x in r["responses"]]
        start = len(texts)
        texts += sem + val + [s for ss in sents for s in ss]
        plan.append((start, n, [len(ss) for ss in sents]))
    vecs = embed(embedder, texts, cfg.embed_batch_size)
    judge_probs = judge.probs(records) if judge is not None else [None] * len(records)
    contrast_probs = contrast.probs(records) if contrast is not None else [None] * len(records)
    out = []
    for r, (start, n, counts), jp, cp in zip(records, plan, judge_probs, contrast_probs):
        sent_emb, pos = [], start + 2 * n
        for c in counts:
            sent_emb.append(vecs[pos:pos + c])
            pos += c
        out.append({
            "semantic_emb": vecs[start:start + n],
            "value_emb": vecs[start + n:start + 2 * n],
            "sentence_emb": sent_emb,
            "token_uncertainty": F.token_uncertainty(r["logprob_mean"], r["num_tokens"]),
            "spec_emb": spec_emb,
            "judge_prob": jp,
            "contrast_prob": cp,
        })
    return out


def embed_spec(spec, embedder, batch_size: int = 64):
    """Per principle, the embeddings of its conforming and of its violating statements."""
    conf = [embed(embedder, list(p.conforming), batch_size) for p in spec.principles]
    viol = [embed(embedder, list(p.violating), batch_size) for p in spec.principles]
    return conf, viol
