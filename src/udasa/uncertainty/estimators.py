"""Estimators and the statistics they share, in the spirit of LM-Polygraph.

An estimator is registered under a name (the axis it scores, its key in `ScoreConfig.estimators` and in
scores.jsonl), declares the statistics it ``requires`` for its settings, turns one prompt's statistics into
raw per-response ``parts`` (cached, so a weight sweep reuses them) and maps parts to its ``axis`` in [0, 1],
higher = less reliable. It never touches a model: `compute_stats` computes only the statistics the configured
estimators require (`required_statistics`), with one embedder call per batch of prompts over every text
needed and, when required, one pass of the policy judge and of the contrastive estimator.

Adding an estimator: a subclass here decorated with ``@register`` (plus its test); one that needs a new
statistic also adds it to `STATISTICS` and to `compute_stats`.
"""
from __future__ import annotations

import hashlib
import inspect

import numpy as np

from udasa.errors import InputError, finite_number
from udasa.uncertainty import functional as F
from udasa.uncertainty.specs import FACTUAL_GATES

STATISTICS = {  # the statistics of one prompt with n responses, and what computes them
    "semantic_emb": "(n, d) embeddings of the semantic-axis texts (prompt+response by default): embedder",
    "value_emb": "(n, d) embeddings of the value-axis texts (response by default): embedder",
    "sentence_emb": "n arrays (k_i, d), one row per sentence of response i: embedder",
    "token_uncertainty": "(n,) 1 - exp(mean token log p), 1 for empty responses: the sampler's log-probs",
    "spec_emb": "per principle, its (conforming, violating) statement embeddings: embedded once per spec",
    "judge_prob": "(n,) the policy judge's P(Yes), averaged over principles: the policy",
    "contrast_prob": "(n,) the contrastive estimator's P(conforms), averaged over principles: the policy",
}
ESTIMATORS: dict[str, type["Estimator"]] = {}


def register(cls: type["Estimator"]) -> type["Estimator"]:
    """Make an estimator class available by its ``name`` to `ScoreConfig.estimators`."""
    unknown = set(cls.base_requires) - set(STATISTICS)
    if not cls.name or unknown:
        raise ValueError(f"estimator {cls.__name__} needs a name and known statistics (unknown: {sorted(unknown)})")
    ESTIMATORS[cls.name] = cls
    return cls


class Estimator:
    """Base class: ``name`` (the axis), ``base_requires`` (statistic names, extended by ``requires()`` for the
    settings in use), ``parts(stats)`` (raw per-response quantities) and ``axis(parts, conforms)``.
    ``conforms`` is P(conforms to the spec) from the value estimator when one is configured (the factual gate
    reads it). ``__call__(stats)`` gives the axis of one prompt alone."""

    name: str = ""
    base_requires: tuple[str, ...] = ()
    part_settings: tuple[str, ...] = ()  # the settings that shape ``parts`` (the rest only combine them)

    def requires(self) -> tuple[str, ...]:
        return self.base_requires

    def problems(self) -> list[str]:
        """What is wrong with this estimator's settings (empty when they are valid)."""
        return []

    def parts(self, stats: dict) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def axis(self, parts: dict[str, np.ndarray], conforms: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, stats: dict) -> np.ndarray:
        return self.axis({k: np.asarray(v, dtype=np.float64) for k, v in self.parts(stats).items()})

    @classmethod
    def setting_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


@register
class SemanticDispersion(Estimator):
    """1 - mean cosine similarity to the other samples of the same prompt."""

    name, base_requires = "semantic", ("semantic_emb",)

    def parts(self, stats):
        return {"semantic": F.semantic_dispersion(stats["semantic_emb"])}

    def axis(self, parts, conforms=None):
        return np.clip(parts["semantic"], 0, 1)


@register
class FactualConsistency(Estimator):
    """token_weight * (1 - exp(mean log p)) + (1 - token_weight) * share of unsupported sentences; with
    ``factual_gate = "value"``, token confidence counts only as far as the response conforms."""

    name, base_requires, part_settings = "factual", ("token_uncertainty", "sentence_emb"), ("support_threshold",)

    def __init__(self, token_weight: float = 0.5, support_threshold: float = 0.7, factual_gate: str = "none"):
        self.token_weight, self.support_threshold, self.factual_gate = token_weight, support_threshold, factual_gate

    def problems(self):
        return [m for ok, m in (
            (finite_number(self.token_weight) and 0 <= self.token_weight <= 1, "token_weight must be in [0, 1]"),
            (finite_number(self.support_threshold) and -1 <= self.support_threshold <= 1,
             "support_threshold must be in [-1, 1]"),
            (self.factual_gate in FACTUAL_GATES, f"factual_gate must be one of {FACTUAL_GATES}")) if not ok]

    def parts(self, stats):
        return {"token": np.asarray(stats["token_uncertainty"], dtype=np.float64),
                "unsupported": F.unsupported_share(stats["sentence_emb"], self.support_threshold)}

    def axis(self, parts, conforms=None):
        return F.factual_from_parts(parts, token_weight=self.token_weight, factual_gate=self.factual_gate,
                                    conforms=conforms)


@register
class ValueConformance(Estimator):
    """1 - P(conforms to the spec); P from embedding similarity, optionally mixed with the contrastive
    estimator (`contrast.py`) and the policy judge (`judge.py`)."""

    name, base_requires, part_settings = "value", ("value_emb", "spec_emb"), ("temperature",)

    def __init__(self, temperature: float = 0.05, judge_weight: float = 0.0, contrast_weight: float = 0.0):
        self.temperature, self.judge_weight, self.contrast_weight = temperature, judge_weight, contrast_weight

    def problems(self):
        return [m for ok, m in (
            (finite_number(self.temperature) and self.temperature > 0, "temperature must be > 0"),
            (finite_number(self.judge_weight) and 0 <= self.judge_weight <= 1, "judge_weight must be in [0, 1]"),
            (finite_number(self.contrast_weight) and 0 <= self.contrast_weight <= 1,
             "contrast_weight must be in [0, 1]")) if not ok]

    def requires(self):
        return self.base_requires + (("contrast_prob",) if self.contrast_weight > 0 else ()) + (
            ("judge_prob",) if self.judge_weight > 0 else ())

    def parts(self, stats):
        conf, viol = stats["spec_emb"]
        out = {"value_embedding": F.conformance(stats["value_emb"], conf, viol, self.temperature)}
        if stats.get("contrast_prob") is not None:
            out["value_contrast"] = np.asarray(stats["contrast_prob"], dtype=np.float64)
        if stats.get("judge_prob") is not None:
            out["value_judge"] = np.asarray(stats["judge_prob"], dtype=np.float64)
        return out

    def conforms(self, parts):
        return F.conformance_from_parts(parts, contrast_weight=self.contrast_weight, judge_weight=self.judge_weight)

    def axis(self, parts, conforms=None):
        return np.clip(1.0 - self.conforms(parts), 0, 1)


def make_estimator(name: str, settings: dict, *, field: str = "estimators") -> Estimator:
    """The registered estimator ``name`` with ``settings`` (its constructor's keyword arguments)."""
    if not isinstance(name, str) or name not in ESTIMATORS:
        raise InputError(f"unknown estimator {name!r} (registered: {', '.join(sorted(ESTIMATORS))})", field=field)
    cls = ESTIMATORS[name]
    unknown = set(settings) - set(cls.setting_names())
    if unknown:
        raise InputError(f"estimator {name!r} has no setting {sorted(unknown)} (settings: "
                         f"{', '.join(cls.setting_names()) or 'none'})", field=field)
    est = cls(**settings)
    bad = est.problems()
    if bad:
        raise InputError(f"estimator {name!r}: {'; '.join(bad)} (got {settings})", field=field)
    return est


def build_estimators(cfg, spec_name: str | None = None) -> list[Estimator]:
    """The estimators ``cfg`` configures for prompts judged by ``spec_name`` (default: its own spec)."""
    return [make_estimator(e["name"], e["settings"]) for e in cfg.estimator_list(spec_name)]


def required_statistics(estimators: list[Estimator], extra: tuple[str, ...] = ()) -> set[str]:
    """The statistics these estimators need (plus ``extra``): what `compute_stats` computes."""
    need = {s for e in estimators for s in e.requires()} | set(extra)
    unknown = need - set(STATISTICS)
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)} (known: {', '.join(STATISTICS)})")
    return need


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


def compute_stats(records: list[dict], cfg, embedder, spec_emb, judge=None, contrast=None,
                  needed: set[str] | None = None) -> list[dict]:
    """The ``needed`` statistics (default: all) for a batch of prompts, with one embedder call over every text
    they need (and, when needed and given, one pass of the policy judge and of the contrastive estimator)."""
    needed = set(STATISTICS) if needed is None else needed
    texts: list[str] = []
    plan = []
    for r in records:
        groups = {}
        if "semantic_emb" in needed:
            groups["semantic_emb"] = [_text(cfg.semantic_input, r["prompt"], x) for x in r["responses"]]
        if "value_emb" in needed:
            groups["value_emb"] = [_text(cfg.value_input, r["prompt"], x) for x in r["responses"]]
        sents = [F.split_sentences(x) for x in r["responses"]] if "sentence_emb" in needed else []
        spans = {}
        for k, ts in groups.items():
            spans[k] = (len(texts), len(texts) + len(ts))
            texts += ts
        sent_spans = []
        for ss in sents:
            sent_spans.append((len(texts), len(texts) + len(ss)))
            texts += ss
        plan.append((spans, sent_spans))
    vecs = embed(embedder, texts, cfg.embed_batch_size)
    use_judge, use_contrast = judge is not None and "judge_prob" in needed, \
        contrast is not None and "contrast_prob" in needed
    judge_probs = judge.probs(records) if use_judge else [None] * len(records)
    contrast_probs = contrast.probs(records) if use_contrast else [None] * len(records)
    out = []
    for r, (spans, sent_spans), jp, cp in zip(records, plan, judge_probs, contrast_probs):
        st = {k: vecs[a:b] for k, (a, b) in spans.items()}
        if "sentence_emb" in needed:
            st["sentence_emb"] = [vecs[a:b] for a, b in sent_spans]
        if "token_uncertainty" in needed:
            st["token_uncertainty"] = F.token_uncertainty(r["logprob_mean"], r["num_tokens"])
        if "spec_emb" in needed:
            st["spec_emb"] = spec_emb
        st["judge_prob"], st["contrast_prob"] = jp, cp
        out.append(st)
    return out


def embed_spec(spec, embedder, batch_size: int = 64):
    """Per principle, the embeddings of its conforming and of its violating statements."""
    conf = [embed(embedder, list(p.conforming), batch_size) for p in spec.principles]
    viol = [embed(embedder, list(p.violating), batch_size) for p in spec.principles]
    return conf, viol
