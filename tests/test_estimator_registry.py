"""The estimator registry: a config lists {name, weight, settings}; only the statistics the listed
estimators require are computed; a new estimator is one registered class."""
import numpy as np
import pytest

from udasa.errors import InputError
from udasa.testing import UNFITTED
from udasa.uncertainty import ScoreConfig, Scorer
from udasa.uncertainty import estimators as E
from udasa.uncertainty.estimators import BowEmbedder

from test_uncertainty import sample_rec

NO_FIT = {"contrast_weight": 0.0, "factual_gate": "none"}


class Recording(BowEmbedder):
    """Remembers every text it embedded."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts, *a, **k):
        self.seen += list(texts)
        return super().encode(texts)


def scorer(cfg: ScoreConfig) -> tuple[Scorer, Recording]:
    s = Scorer(cfg)
    s.embedder = Recording()
    return s, s.embedder


def test_default_list_is_the_three_axes_with_the_flat_settings():
    cfg = ScoreConfig(embedder="bow", token_weight=0.3, value_temperature=0.2, **UNFITTED)
    assert cfg.estimator_list() == [
        {"name": "semantic", "weight": pytest.approx(1 / 3), "settings": {}},
        {"name": "factual", "weight": pytest.approx(1 / 3),
         "settings": {"token_weight": 0.3, "support_threshold": 0.7, "factual_gate": "none"}},
        {"name": "value", "weight": pytest.approx(1 / 3),
         "settings": {"temperature": 0.2, "contrast_weight": 0.0, "judge_weight": 0.0}}]
    assert "estimators" not in cfg.settings()  # records of the default list are unchanged


def test_default_scoring_is_pinned_to_what_it_was_before_the_registry():
    """The parts cache key, the recorded settings and u of the default config, as commit c0d71b5 gave them:
    a change here invalidates every cached part and every resumable scores file."""
    from udasa.resume import content_hash

    s = Scorer(ScoreConfig(embedder="bow", **UNFITTED))
    assert s.for_spec("safety").cache.path.stem == "7af68e83182c6829"
    assert content_hash(s.cfg.settings()) == "ae42452e64bfe654"
    out = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **UNFITTED)).score_records([sample_rec(0)])[0]
    assert out["u"] == [0.38889, 0.38889, 0.55556, 0.66667]


def test_a_weight_sweep_over_a_list_reads_the_cached_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("UDASA_CACHE", str(tmp_path / "cache"))
    recs = [sample_rec(i) for i in range(2)]
    first, seen = scorer(ScoreConfig(embedder="bow", **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}, {"name": "factual", "weight": 1, "settings": {"token_weight": 0.2}}]))
    first.score_records(recs)
    assert seen.seen
    again, seen2 = scorer(ScoreConfig(embedder="bow", **NO_FIT, estimators=[
        {"name": "semantic", "weight": 3}, {"name": "factual", "weight": 1, "settings": {"token_weight": 0.8}}]))
    again.score_records(recs)
    assert seen2.seen == []  # weights and token_weight only combine parts: nothing embedded again
    other, seen3 = scorer(ScoreConfig(embedder="bow", **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}, {"name": "factual", "weight": 1, "settings": {"support_threshold": 0.2}}]))
    other.score_records(recs)
    assert seen3.seen  # a setting that shapes the parts: computed again


def test_fitted_contrast_and_gate_apply_only_to_listed_estimators(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(load_safety_with_fit(contrast=0.5, gate="value"))
    only_semantic = ScoreConfig(embedder="bow", spec=str(spec), estimators=[{"name": "semantic", "weight": 1}])
    assert only_semantic.effective["contrast_weight"] == 0.0 and only_semantic.effective["factual_gate"] == "none"
    no_value = ScoreConfig(embedder="bow", spec=str(spec), estimators=[{"name": "semantic"}, {"name": "factual"}])
    assert no_value.effective["factual_gate"] == "none"  # the fitted gate needs the value estimator: not applied
    full = ScoreConfig(embedder="bow", spec=str(spec), estimators=[{"name": "factual"}, {"name": "value"}])
    assert full.effective["contrast_weight"] == 0.5 and full.effective["factual_gate"] == "value"


def load_safety_with_fit(contrast: float, gate: str) -> str:
    from udasa.uncertainty.validate import spec_file_path

    text = spec_file_path("safety").read_text().split("\nfitted:")[0]
    return text + f"\nfitted:\n  contrast_weight: {contrast}\n  factual_gate: {gate}\n"


def test_an_explicit_default_list_scores_exactly_like_the_flat_config():
    recs = [sample_rec(i) for i in range(3)]
    flat = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **UNFITTED)).score_records(recs)
    listed = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}, {"name": "factual", "weight": 1}, {"name": "value", "weight": 1}],
    )).score_records(recs)
    assert [r["u"] for r in listed] == [r["u"] for r in flat]
    assert [r["components"] for r in listed] == [r["components"] for r in flat]


def test_only_the_statistics_of_the_listed_estimators_are_computed():
    rec = sample_rec(0, responses=["One. Two.", "Three. Four.", "Five.", "Six. Seven."])
    full, rec_full = scorer(ScoreConfig(embedder="bow", cache_parts=False, **UNFITTED))
    full.score_records([rec])
    seen_full = rec_full.seen
    assert "One." in seen_full  # sentences are embedded for the factual axis
    lean, rec_lean = scorer(ScoreConfig(embedder="bow", cache_parts=False, **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}, {"name": "value", "weight": 2}]))
    out = lean.score_records([rec])[0]
    seen = rec_lean.seen
    assert "One." not in seen and len(seen) < len(seen_full)  # no factual axis: no sentence embeddings
    assert set(out["components"]) == {"semantic", "value"} and out["weights"] == {"semantic": 1 / 3, "value": 2 / 3}
    u = (np.array(out["normalized"]["semantic"]) + 2 * np.array(out["normalized"]["value"])) / 3
    assert np.allclose(out["u"], u, atol=1e-4)
    assert E.required_statistics(lean.for_spec(lean.cfg.spec).estimators) == {"semantic_emb", "value_emb", "spec_emb"}


def test_contrast_and_judge_statistics_are_required_only_when_weighted():
    assert "contrast_prob" not in E.ValueConformance().requires()
    assert set(E.ValueConformance(contrast_weight=0.5, judge_weight=0.2).requires()) >= {"contrast_prob", "judge_prob"}


def test_a_registered_estimator_joins_u_by_its_name():
    @E.register
    class Brevity(E.Estimator):
        """Token uncertainty scaled and capped (a toy estimator for this test)."""

        name, base_requires = "brevity", ("token_uncertainty",)

        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def parts(self, stats):
            return {"brevity": np.asarray(stats["token_uncertainty"]) * self.scale}

        def axis(self, parts, conforms=None):
            return np.clip(parts["brevity"], 0, 1)

    try:
        cfg = ScoreConfig(embedder="bow", cache_parts=False, **NO_FIT,
                          estimators=[{"name": "brevity", "weight": 1, "settings": {"scale": 0.5}}])
        out = Scorer(cfg).score_records([sample_rec(0)])[0]
        assert list(out["components"]) == ["brevity"]
        tu = 1 - np.exp(np.array(sample_rec(0)["logprob_mean"]))
        assert np.allclose(out["components"]["brevity"], 0.5 * tu, atol=1e-4)
        assert out["u"] == out["normalized"]["brevity"]
    finally:
        E.ESTIMATORS.pop("brevity")


@pytest.mark.parametrize("estimators,message", [
    ([{"name": "nope", "weight": 1}], "unknown estimator 'nope'"),
    ([{"name": "factual", "weight": 1, "settings": {"temperature": 1}}], "no setting ['temperature']"),
    ([{"name": "value", "weight": 0}], "positive sum"),
    ([{"name": "value"}, {"name": "value"}], "twice"),
    ([{"name": "factual", "settings": {"factual_gate": "value"}}], "needs the value estimator"),
    ([], "non-empty list"),
    ([{"name": "factual", "settings": {"token_weight": 5}}], "token_weight must be in"),
    ([{"name": "value", "settings": {"contrast_weight": "x"}}], "contrast_weight must be in"),
    ([{"name": "factual", "settings": {"factual_gate": "bogus"}}], "factual_gate must be"),
    ([{"name": ["a"]}], "unknown estimator"),
])
def test_bad_estimator_lists_are_refused(estimators, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ScoreConfig(embedder="bow", estimators=estimators)


def test_fit_refuses_an_estimator_list(tmp_path):
    from udasa.uncertainty.validate import ValidateConfig, validate

    cfg = ScoreConfig(embedder="bow", estimators=[{"name": "semantic", "weight": 1}])
    with pytest.raises(InputError, match="--fit"):
        validate(ValidateConfig(data="hh-harmless", limit=1, fit=True), cfg, tmp_path, collect=False)


def test_weights_and_estimators_together_are_refused():
    with pytest.raises(InputError, match="either weights or estimators"):
        ScoreConfig(embedder="bow", weights={"value": 1}, estimators=[{"name": "value", "weight": 1}])


def test_the_run_report_reads_the_axes_the_records_have():
    from udasa.run_report import axis_correlation

    recs = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}])).score_records([sample_rec(0), sample_rec(1)])
    assert axis_correlation(recs).shape == (1, 1)
    two = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **NO_FIT, estimators=[
        {"name": "semantic", "weight": 1}, {"name": "value", "weight": 1}])).score_records([sample_rec(0)])
    assert axis_correlation(two).shape == (2, 2)
