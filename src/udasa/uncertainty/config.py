"""Configuration of the scoring stage."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from udasa.device import check_device_name, check_dtype_name
from udasa.errors import InputError, check_fields, finite_number
from udasa.models import DEFAULT_EMBEDDER
from udasa.uncertainty.specs import FACTUAL_GATES

AXES = ("semantic", "factual", "value")
NORMALIZATIONS = ("minmax", "rank", "none")


@dataclass
class ScoreConfig:
    """How each response's uncertainty is scored (formulas in docs/method.md).

    Fields:
        spec: value spec for the value axis: a shipped name (safety, helpful, honest,
            positive-sentiment) or a path to a YAML spec of your own.
        weights: weight of each axis in u, keys semantic/factual/value; they are rescaled to sum to 1,
            and a zero drops an axis from u (its components are still computed and written). None = the
            weights `udasa validate --fit` wrote into the spec (fitted on human labels of the spec's dev
            slice), else equal weights.
        estimators: the estimators in u as a list of {name, weight, settings}: ``name`` a registered estimator
            (semantic, factual, value, or one added in `udasa/uncertainty/estimators.py`), ``weight`` its share
            of u (rescaled to sum to 1), ``settings`` its keyword arguments (semantic: none; factual:
            token_weight, support_threshold, factual_gate; value: temperature, contrast_weight, judge_weight).
            Only the statistics the listed estimators need are computed. None = the three axes with
            ``weights`` and the flat settings below (token_weight, support_threshold, value_temperature,
            contrast_weight, factual_gate, judge_weight), which fill any setting a listed estimator leaves out.
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
        contrast_weight: share of the contrastive estimator (the policy's mean log-prob of the response under
            the spec's "follow" minus its "violate" instruction, docs/method.md) in P(conforms); 0 = the
            embedding estimator alone, 1 = the contrastive one alone. None = the spec's fitted value, else 0.
        contrast_temperature: temperature T of sigmoid(margin / T) that maps a contrastive margin (nats per
            token) to a probability.
        contrast_max_context: the contrastive estimator reads the last this many tokens of the prompt (with the
            instruction); the end holds the request being answered.
        contrast_max_response: ... and the first this many tokens of each response (cost grows with both).
        factual_gate: "value" lets token confidence count only as far as the response conforms to the spec
            (F' = 1 - P(conforms) (1 - F)), so that a confident harmful answer is not "reliable"; "none" uses F
            as it is. None = the spec's fitted value, else "none".
        use_policy_judge: also ask the policy "Does this response follow the principle?" and mix its
            P(Yes) into P(conforms); off by default (noise on the 135M model, see docs/RESULTS.md).
        judge_weight: weight of the judge's P(Yes) in P(conforms) when use_policy_judge is on.
        model: if set, samples from any other model are refused; also the judge's model (default:
            the model named in the samples).
        device: where the embedder and the judge run ("auto", "cpu", "cuda", "cuda:N"); the bag-of-words
            embedder always runs on the CPU. A recipe's top-level ``device`` fills it.
        dtype: the judge's weights' dtype ("auto", "float32", "bfloat16", "float16"); a recipe's top-level
            ``dtype`` fills it.
        cache_parts: keep each record's estimator parts in ``$UDASA_CACHE/score-parts/``, keyed by the sample
            record and the settings that shape them: re-scoring the same samples with other weights, gate or
            contrast weight then runs no embedder and no policy.
        batch_prompts: prompts scored per batch (their statistics are computed together).
        embed_batch_size: texts per embedder forward pass.
        judge_batch_size: sequences per judge forward pass.
    """

    spec: str = "safety"
    weights: dict[str, float] | None = None
    estimators: list[dict] | None = None
    normalization: str = "rank"
    embedder: str = DEFAULT_EMBEDDER
    semantic_input: str = "prompt+response"
    value_input: str = "response"
    cluster_threshold: float = 0.85
    support_threshold: float = 0.7
    token_weight: float = 0.5
    value_temperature: float = 0.05
    contrast_weight: float | None = None
    contrast_temperature: float = 0.1
    contrast_max_context: int = 128
    contrast_max_response: int = 24
    factual_gate: str | None = None
    use_policy_judge: bool = False
    judge_weight: float = 0.5
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    cache_parts: bool = True
    batch_prompts: int = 16
    embed_batch_size: int = 64
    judge_batch_size: int = 16

    def __post_init__(self):
        if self.weights is not None:
            self.weights = _check_weights(self.weights, "weights")
        if self.estimators is not None:
            if self.weights is not None:
                raise InputError("set either weights or estimators (each estimator has its own weight)",
                                 field="weights")
            self.estimators = _check_estimators(self.estimators)
        checks = [
            (self.normalization in NORMALIZATIONS, "normalization", f"must be one of {NORMALIZATIONS}"),
            (self.semantic_input in ("prompt+response", "response"), "semantic_input",
             "must be 'prompt+response' or 'response'"),
            (self.value_input in ("prompt+response", "response"), "value_input",
             "must be 'prompt+response' or 'response'"),
            (-1 <= self.cluster_threshold <= 1, "cluster_threshold", "must be in [-1, 1]"),
            (-1 <= self.support_threshold <= 1, "support_threshold", "must be in [-1, 1]"),
            (0 <= self.token_weight <= 1, "token_weight", "must be in [0, 1]"),
            (finite_number(self.value_temperature) and self.value_temperature > 0, "value_temperature", "must be > 0"),
            (self.contrast_weight is None or (finite_number(self.contrast_weight) and 0 <= self.contrast_weight <= 1),
             "contrast_weight", "must be in [0, 1]"),
            (finite_number(self.contrast_temperature) and self.contrast_temperature > 0, "contrast_temperature",
             "must be > 0"),
            (16 <= self.contrast_max_context <= 32768, "contrast_max_context", "must be in [16, 32768]"),
            (1 <= self.contrast_max_response <= 32768, "contrast_max_response", "must be in [1, 32768]"),
            (self.factual_gate in (None, *FACTUAL_GATES), "factual_gate", f"must be one of {FACTUAL_GATES}"),
            (0 <= self.judge_weight <= 1, "judge_weight", "must be in [0, 1]"),
            (self.batch_prompts >= 1, "batch_prompts", "must be >= 1"),
            (self.embed_batch_size >= 1, "embed_batch_size", "must be >= 1"),
            (self.judge_batch_size >= 1, "judge_batch_size", "must be >= 1"),
        ]
        check_fields(self, checks)
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        self.effective = self.effective_for(self.spec)

    def effective_for(self, spec_name: str) -> dict:
        """The weights, contrast weight and factual gate scoring uses for prompts judged by ``spec_name``: this
        config's, else that spec's fitted ones, else the defaults (equal weights, no contrast, no gate);
        ``source`` says which."""
        from udasa.uncertainty.specs import load_spec

        spec = load_spec(spec_name)
        fitted = spec.fitted
        listed = {e["name"]: e for e in self.estimators or []}
        contrast = listed.get("value", {}).get("settings", {}).get("contrast_weight", self.contrast_weight)
        gate = listed.get("factual", {}).get("settings", {}).get("factual_gate", self.factual_gate)
        if self.estimators is not None:
            w = {e["name"]: e["weight"] for e in self.estimators}
            # a spec's fitted contrast and gate apply only to the estimators they belong to, when listed
            fitted = {k: v for k, v in fitted.items() if k == "weights"
                      or (k == "contrast_weight" and "value" in w)
                      or (k == "factual_gate" and "factual" in w and "value" in w)}
        else:
            w = self.weights if self.weights is not None else (
                _check_weights(fitted["weights"], "weights") if "weights" in fitted
                else {a: 1 / len(AXES) for a in AXES})
        eff = {"weights": w,
               "contrast_weight": float(contrast if contrast is not None else fitted.get("contrast_weight", 0.0)),
               "factual_gate": gate if gate is not None else fitted.get("factual_gate", "none"),
               "source": {k: "config" if v is not None else ("spec" if k in fitted else "default")
                          for k, v in (("weights", self.weights if self.estimators is None else w),
                                       ("contrast_weight", contrast), ("factual_gate", gate))}}
        if eff["factual_gate"] == "value" and "factual" in w and "value" not in w:
            raise InputError("the factual gate 'value' needs the value estimator in the list", field="estimators")
        if eff["contrast_weight"] > 0 and not spec.has_contrast:
            raise InputError(f"spec '{spec.name}' has no 'contrast' prompts in every principle ({spec.source})",
                             field="contrast_weight")
        return eff

    def estimator_list(self, spec_name: str | None = None) -> list[dict]:
        """The estimators in effect for prompts judged by ``spec_name`` (default: this config's spec), each
        {name, weight, settings} with every setting filled (the list's, else the flat fields and the spec's
        fitted values)."""
        eff = self.effective if spec_name in (None, self.spec) else self.effective_for(spec_name)
        flat = {"semantic": {},
                "factual": {"token_weight": self.token_weight, "support_threshold": self.support_threshold,
                            "factual_gate": eff["factual_gate"]},
                "value": {"temperature": self.value_temperature, "contrast_weight": eff["contrast_weight"],
                          "judge_weight": self.judge_weight if self.use_policy_judge else 0.0}}
        listed = self.estimators if self.estimators is not None else [
            {"name": a, "weight": eff["weights"][a], "settings": {}} for a in AXES]
        return [{"name": e["name"], "weight": eff["weights"][e["name"]],
                 "settings": {**flat.get(e["name"], {}), **e["settings"]}} for e in listed]

    def spec_settings(self, spec_name: str | None = None) -> dict:
        """What a spec file decided (its fitted values in use) for prompts judged by it: part of a score
        stage's key."""
        eff = self.effective if spec_name in (None, self.spec) else self.effective_for(spec_name)
        return {k: eff[k] for k, src in eff["source"].items() if src == "spec"}

    def settings(self) -> dict:
        """The settings that change the scores, as used (recorded in every output record)."""
        d = asdict(self)
        if d["estimators"] is None:  # the default list: records of scorers before the list existed stay comparable
            d.pop("estimators")
        for k in ("batch_prompts", "embed_batch_size", "judge_batch_size", "model", "device", "cache_parts"):
            d.pop(k)
        d.update({k: v for k, v in self.effective.items() if k != "source"})
        if d["contrast_weight"] == 0:  # unused: records of scorers without it stay comparable
            for k in ("contrast_weight", "contrast_temperature", "contrast_max_context", "contrast_max_response"):
                d.pop(k)
        if d["factual_gate"] == "none":
            d.pop("factual_gate")
        return d


def _check_estimators(estimators) -> list[dict]:
    """{name, weight, settings} entries checked against the registry; weights rescaled to sum to 1."""
    from udasa.uncertainty.estimators import make_estimator

    if not isinstance(estimators, list) or not estimators:
        raise InputError("must be a non-empty list of {name, weight, settings}", field="estimators")
    out = []
    for i, e in enumerate(estimators):
        where = f"estimators[{i}]"
        if not isinstance(e, dict) or set(e) - {"name", "weight", "settings"} or "name" not in e:
            raise InputError("must be a mapping with name, weight and (optionally) settings", field=where)
        w, settings = e.get("weight", 1.0), e.get("settings") or {}
        if not finite_number(w) or w < 0:
            raise InputError(f"weight must be a finite number >= 0 (got {w!r})", field=where)
        if not isinstance(settings, dict):
            raise InputError("settings must be a mapping", field=where)
        make_estimator(e["name"], settings, field=where)  # unknown names and settings fail here
        out.append({"name": e["name"], "weight": float(w), "settings": dict(settings)})
    names = [e["name"] for e in out]
    if len(set(names)) != len(names):
        raise InputError(f"names an estimator twice ({names})", field="estimators")
    total = sum(e["weight"] for e in out)
    if total <= 0:
        raise InputError("weights must have a positive sum", field="estimators")
    return [{**e, "weight": e["weight"] / total} for e in out]


def _check_weights(weights, field_name: str) -> dict[str, float]:
    """Axis weights rescaled to sum to 1 (missing axes 0)."""
    if not isinstance(weights, dict):
        raise InputError(f"must be a mapping of {', '.join(AXES)} to numbers", field=field_name)
    unknown = set(weights) - set(AXES)
    if unknown:
        raise InputError(f"unknown axis {sorted(unknown)} (axes: {', '.join(AXES)})", field=field_name)
    w = {}
    for a in AXES:
        v = weights.get(a, 0.0)
        if not finite_number(v) or v < 0:
            raise InputError(f"must be finite numbers >= 0 (got {a}: {v!r})", field=field_name)
        w[a] = float(v)
    if sum(w.values()) <= 0:
        raise InputError(f"must have a positive sum (got {w})", field=field_name)
    total = sum(w.values())
    return {a: v / total for a, v in w.items()}
