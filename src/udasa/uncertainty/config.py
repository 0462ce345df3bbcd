"""Configuration of the scoring stage."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from udasa.errors import InputError, check_fields
from udasa.models import DEFAULT_EMBEDDER

AXES = ("semantic", "factual", "value")
NORMALIZATIONS = ("minmax", "rank", "none")


def _equal_weights() -> dict[str, float]:
    return {a: 1.0 for a in AXES}


@dataclass
class ScoreConfig:
    """How each response's uncertainty is scored (formulas in docs/method.md).

    Fields:
        spec: value spec for the value axis: a shipped name (safety, helpful, honest,
            positive-sentiment) or a path to a YAML spec of your own.
        weights: weight of each axis in u, keys semantic/factual/value; they are rescaled to sum to 1,
            and a zero drops an axis from u (its components are still computed and written).
        normalization: how each axis is normalised within a prompt's sample set before weighting:
            "rank" (default, chosen by measurement on the validation dev slice), "minmax" or "none".
        embedder: sentence embedder (embedded name or a sentence-transformers folder); "bow" is a
            hashing bag-of-words embedder with no model, for tests and dry runs only.
        semantic_input: text embedded for the semantic axis: "prompt+response" or "response".
        value_input: text embedded for the value axis: "response" or "prompt+response".
        cluster_threshold: cosine similarity at or above which two responses count as equivalent
            when clustering for the prompt-level semantic entropy.
        support_threshold: cosine similarity a sentence needs with some sentence of another sample
            to count as supported (factual axis).
        token_weight: share of the factual score from token confidence (1 - exp(mean log p)); the
            rest comes from the unsupported-sentence share.
        value_temperature: temperature T of the conformance sigmoid over the similarity margin.
        use_policy_judge: also ask the policy "Does this response follow the principle?" and mix its
            P(Yes) into P(conforms); off by default (noise on the 135M model, see docs/RESULTS.md).
        judge_weight: weight of the judge's P(Yes) in P(conforms) when use_policy_judge is on.
        model: if set, samples from any other model are refused; also the judge's model (default:
            the model named in the samples).
        batch_prompts: prompts scored per batch (their statistics are computed together).
        embed_batch_size: texts per embedder forward pass.
        judge_batch_size: sequences per judge forward pass.
    """

    spec: str = "safety"
    weights: dict[str, float] = field(default_factory=_equal_weights)
    normalization: str = "rank"
    embedder: str = DEFAULT_EMBEDDER
    semantic_input: str = "prompt+response"
    value_input: str = "response"
    cluster_threshold: float = 0.85
    support_threshold: float = 0.7
    token_weight: float = 0.5
    value_temperature: float = 0.05
    use_policy_judge: bool = False
    judge_weight: float = 0.5
    model: str | None = None
    batch_prompts: int = 16
    embed_batch_size: int = 64
    judge_batch_size: int = 16

    def __post_init__(self):
        if not isinstance(self.weights, dict):
            raise InputError(f"must be a mapping of {', '.join(AXES)} to numbers", field="weights")
        unknown = set(self.weights) - set(AXES)
        if unknown:
            raise InputError(f"unknown axis {sorted(unknown)} (axes: {', '.join(AXES)})", field="weights")
        w = {a: float(self.weights.get(a, 0.0)) for a in AXES}
        if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise InputError(f"must be >= 0 with a positive sum (got {w})", field="weights")
        total = sum(w.values())
        self.weights = {a: v / total for a, v in w.items()}
        checks = [
            (self.normalization in NORMALIZATIONS, "normalization", f"must be one of {NORMALIZATIONS}"),
            (self.semantic_input in ("prompt+response", "response"), "semantic_input",
             "must be 'prompt+response' or 'response'"),
            (self.value_input in ("prompt+response", "response"), "value_input",
             "must be 'prompt+response' or 'response'"),
            (-1 <= self.cluster_threshold <= 1, "cluster_threshold", "must be in [-1, 1]"),
            (-1 <= self.support_threshold <= 1, "support_threshold", "must be in [-1, 1]"),
            (0 <= self.token_weight <= 1, "token_weight", "must be in [0, 1]"),
            (self.value_temperature > 0, "value_temperature", "must be > 0"),
            (0 <= self.judge_weight <= 1, "judge_weight", "must be in [0, 1]"),
            (self.batch_prompts >= 1, "batch_prompts", "must be >= 1"),
            (self.embed_batch_size >= 1, "embed_batch_size", "must be >= 1"),
            (self.judge_batch_size >= 1, "judge_batch_size", "must be >= 1"),
        ]
        check_fields(self, checks)

    def settings(self) -> dict:
        """The fields that change the scores (recorded in every output record)."""
        d = asdict(self)
        for k in ("batch_prompts", "embed_batch_size", "judge_batch_size", "model"):
            d.pop(k)
        return d
