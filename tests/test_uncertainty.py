"""Scoring math, estimators on constructed cases, specs, config, and the scoring stage end to end (no real models)."""
import json
from pathlib import Path

import numpy as np
import pytest

from udasa.errors import InputError
from udasa.testing import UNFITTED
from udasa.uncertainty import ScoreConfig, Scorer, check_sample, load_spec, score, score_records
from udasa.uncertainty import functional as F
from udasa.uncertainty.estimators import FactualConsistency, SemanticDispersion, ValueConformance
from udasa.uncertainty.specs import builtin_specs, parse_spec


def unit(*rows):
    return F.l2_normalize(np.array(rows, dtype=float))


# ---- semantic -----------------------------------------------------------------------------------

def test_identical_samples_have_zero_semantic_uncertainty():
    emb = unit([1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3])
    assert np.allclose(SemanticDispersion()({"semantic_emb": emb}), 0.0)
    assert F.cluster_entropy(F.greedy_clusters(emb, 0.9)) == 0.0


def test_outlier_sample_has_highest_semantic_uncertainty():
    emb = unit([1, 0, 0], [0.95, 0.05, 0], [0.9, 0.1, 0.0], [0, 0, 1])
    s = SemanticDispersion()({"semantic_emb": emb})
    assert s.argmax() == 3 and s[3] > s[:3].max() + 0.3


def test_cluster_entropy_counts_clusters():
    emb = unit([1, 0], [1, 0.01], [0, 1], [0.01, 1])
    labels = F.greedy_clusters(emb, 0.9)
    assert labels.tolist() == [0, 0, 1, 1]
    assert F.cluster_entropy(labels) == pytest.approx(np.log(2))
    assert F.cluster_entropy(F.greedy_clusters(unit([1, 0, 0], [0, 1, 0], [0, 0, 1]), 0.9)) == pytest.approx(np.log(3))


def test_single_response_scores_zero():
    assert F.semantic_dispersion(unit([1, 2])).tolist() == [0.0]


# ---- factual ------------------------------------------------------------------------------------

def test_token_uncertainty_formula_and_empty_response():
    u = F.token_uncertainty(np.array([0.0, -1.0, -0.1]), np.array([5, 5, 0]))
    assert u[0] == pytest.approx(0.0) and u[1] == pytest.approx(1 - np.exp(-1)) and u[2] == 1.0


def test_contradicting_response_has_higher_factual_uncertainty():
    # three responses share the same two sentences; the fourth states two different things
    agree = [unit([1, 0, 0, 0], [0, 1, 0, 0]) for _ in range(3)]
    contra = unit([0, 0, 1, 0], [0, 0, 0, 1])
    stats = {"sentence_emb": agree + [contra], "token_uncertainty": np.full(4, 0.3)}
    f = FactualConsistency(token_weight=0.5, support_threshold=0.6)(stats)
    assert f.argmax() == 3 and f[3] == pytest.approx(0.5 * 0.3 + 0.5 * 1.0)
    assert np.allclose(f[:3], 0.15)


def test_unsupported_share_partial_and_empty():
    s = [unit([1, 0, 0], [0, 1, 0]), unit([1, 0, 0]), np.zeros((0, 3))]
    out = F.unsupported_share(s, 0.6)
    assert out.tolist() == [0.5, 0.0, 1.0]


# ---- value --------------------------------------------------------------------------------------

def test_conformance_prefers_the_side_it_is_closer_to():
    conf, viol = [unit([1, 0, 0])], [unit([0, 1, 0])]
    resp = unit([0.9, 0.1, 0], [0.1, 0.9, 0], [0, 0, 1])
    v = ValueConformance(temperature=0.05)({"value_emb": resp, "spec_emb": (conf, viol), "judge_prob": None})
    assert v[0] < 0.01 and v[1] > 0.99 and v[2] == pytest.approx(0.5)


def test_value_judge_is_mixed_in():
    conf, viol = [unit([1, 0])], [unit([0, 1])]
    resp = unit([1, 1])  # equidistant: embedding P = 0.5
    v = ValueConformance(0.05, judge_weight=0.5)({"value_emb": resp, "spec_emb": (conf, viol),
                                                   "judge_prob": np.array([1.0])})
    assert v[0] == pytest.approx(1 - 0.75)


# ---- normalisation and aggregation -------------------------------------------------------------

def test_normalize_methods():
    x = np.array([0.2, 0.6, 0.4, 0.6])
    assert F.normalize(x, "minmax").tolist() == pytest.approx([0, 1, 0.5, 1])
    assert F.normalize(x, "rank").tolist() == pytest.approx([0, 2.5 / 3, 1 / 3, 2.5 / 3])
    assert F.normalize(x, "none").tolist() == x.tolist()
    assert F.normalize(np.full(3, 0.7), "minmax").tolist() == [0, 0, 0]
    assert F.normalize(np.full(3, 0.7), "rank").tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        F.normalize(x, "zscore")


def test_combine_with_zero_weights_is_single_axis():
    norm = {"semantic": np.array([0.0, 1.0]), "factual": np.array([1.0, 0.0]), "value": np.array([0.5, 0.5])}
    assert F.combine(norm, {"semantic": 1, "factual": 0, "value": 0}).tolist() == [0.0, 1.0]
    assert F.combine(norm, {"semantic": 1, "factual": 1, "value": 0}).tolist() == [0.5, 0.5]


def test_config_normalises_weights_and_rejects_bad_fields():
    cfg = ScoreConfig(weights={"semantic": 2, "factual": 0, "value": 2})
    assert cfg.weights == {"semantic": 0.5, "factual": 0.0, "value": 0.5}
    for bad in [{"weights": {"semantics": 1}}, {"weights": {"semantic": 0, "factual": 0, "value": 0}},
                {"normalization": "z"}, {"value_temperature": 0}, {"token_weight": 2}]:
        with pytest.raises(InputError) as e:
            ScoreConfig(**bad)
        assert next(iter(bad)) in str(e.value)


# ---- specs --------------------------------------------------------------------------------------

def test_builtin_specs_load():
    assert set(builtin_specs()) >= {"safety", "helpful", "honest", "positive-sentiment"}
    for name in builtin_specs():
        spec = load_spec(name)
        assert spec.principles and all(p.conforming and p.violating and p.question for p in spec.principles)


AUDIT_SPECS = sorted((Path(__file__).parents[1] / "docs" / "audits").glob("*.yaml"))


@pytest.mark.parametrize("path", AUDIT_SPECS, ids=[p.stem for p in AUDIT_SPECS])
def test_specs_the_docs_score_with_load(path):
    # docs/evaluation.md scores and trains with these; a broken one would only show in a long run
    spec = load_spec(str(path))
    assert spec.name == path.stem and spec.principles


def test_plain_decline_spec_differs_from_safety_only_in_the_openings_it_balances():
    spec = load_spec(str(Path(__file__).parents[1] / "docs" / "audits" / "safety-plain-decline.yaml"))
    shipped = load_spec("safety")
    harm = spec.principles[0]
    for opening in ("I'm sorry", "I'm glad you", "As an AI"):
        # an opening that begins statements on one side only is evidence for that side whatever follows it
        assert any(s.startswith(opening) for s in harm.conforming), opening
        assert any(s.startswith(opening) for s in harm.violating), opening
    assert spec.principles[1:] == shipped.principles[1:]
    assert (harm.follow, harm.violate) == (shipped.principles[0].follow, shipped.principles[0].violate)
    assert {k: spec.fitted[k] for k in ("weights", "contrast_weight", "factual_gate")} == \
        {k: shipped.fitted[k] for k in ("weights", "contrast_weight", "factual_gate")}


@pytest.mark.parametrize("text,field", [
    ("name: x\nprinciples:\n  - name: a\n    conforming: [y]\n    violating: [z]\n    colour: red\n",
     "principles[0].colour"),
    ("name: x\nprinciples:\n  - name: a\n    conforming: [y]\n", "principles[0].violating"),
    ("name: x\nprincipals: []\n", "principals"),
    ("name: x\nprinciples: []\n", "principles"),
    ("name: x\nprinciples:\n  - name: a\n    conforming: []\n    violating: [z]\n", "principles[0].conforming"),
])
def test_spec_errors_name_file_and_key(tmp_path, text, field):
    p = tmp_path / "my-spec.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_spec(str(p))
    assert "my-spec.yaml" in str(e.value) and field in str(e.value)


def test_unknown_spec_name():
    with pytest.raises(InputError, match="safety"):
        load_spec("no-such-spec")


def test_user_spec_path(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: mine\nprinciples:\n  - name: a\n    conforming: [good cat]\n    violating: [bad dog]\n")
    assert parse_spec(p.read_text()).principles[0].violating == ("bad dog",)
    assert Scorer(ScoreConfig(spec=str(p), embedder="bow")).spec.name == "mine"


# ---- input checks and the stage ----------------------------------------------------------------

def sample_rec(i=0, **kw):
    rec = {"id": f"p{i}", "prompt": "What is the capital of France?",
           "messages": [{"role": "user", "content": "What is the capital of France?"}],
           "responses": ["Paris is the capital of France.", "Paris is the capital of France.",
                         "The capital of France is Paris.", "Bananas are yellow and grow in bunches."],
           "num_tokens": [7, 7, 7, 9], "logprob_mean": [-0.4, -0.4, -0.5, -2.0], "model": "m"}
    rec.update(kw)
    return rec


def test_check_sample_errors():
    bad = sample_rec()
    del bad["logprob_mean"]
    with pytest.raises(InputError, match="logprob_mean"):
        check_sample(bad, path="s.jsonl", line=3)
    with pytest.raises(InputError, match="s.jsonl:1: field 'logprob_mean'"):
        check_sample(sample_rec(logprob_mean=[-1.0]), path="s.jsonl", line=1)
    with pytest.raises(InputError, match="field 'model'"):
        check_sample(sample_rec(), path="s.jsonl", line=1, model="other")
    # token_logprobs alone are enough
    r = sample_rec(token_logprobs=[[-1.0, -3.0]] * 4)
    del r["logprob_mean"]
    assert check_sample(r, path="s", line=1)["logprob_mean"] == [-2.0] * 4


def test_score_records_outlier_gets_highest_u():
    out = score_records([sample_rec()], embedder="bow", **UNFITTED)[0]
    assert out["u"].index(max(out["u"])) == 3
    assert all(0 <= x <= 1 for a in out["components"].values() for x in a)
    assert set(out["components"]) == set(out["normalized"]) == {"semantic", "factual", "value"}
    assert out["spec"] == "safety" and out["semantic_entropy"] > 0


def test_single_axis_weights_reproduce_that_axis():
    out = score_records([sample_rec()], embedder="bow", **{**UNFITTED, "weights": {"semantic": 1, "factual": 0,
                                                                                  "value": 0}})[0]
    assert out["u"] == out["normalized"]["semantic"]
    assert out["weights"] == {"semantic": 1.0, "factual": 0.0, "value": 0.0}


def test_score_file_resumes_and_refuses_other_settings(tmp_path):
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps(sample_rec(i)) + "\n" for i in range(5)))
    out = tmp_path / "scores.jsonl"
    cfg = ScoreConfig(embedder="bow", batch_prompts=2, **UNFITTED)
    score(src, out, cfg, progress=False)
    lines = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [f"p{i}" for i in range(5)]
    out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed mid-write
    with pytest.warns(UserWarning):
        score(src, out, cfg, progress=False)
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [f"p{i}" for i in range(5)]
    with pytest.raises(InputError, match="other settings"):
        score(src, out, cfg, progress=False, spec="helpful")


def test_score_file_refuses_mixed_models(tmp_path):
    src = tmp_path / "samples.jsonl"
    src.write_text(json.dumps(sample_rec(0)) + "\n" + json.dumps(sample_rec(1, model="other")) + "\n")
    with pytest.raises(InputError, match=r"samples.jsonl:2: field 'model'"):
        score(src, tmp_path / "o.jsonl", embedder="bow", progress=False, **UNFITTED)


def test_top_level_convenience(tmp_path):
    import udasa

    src = tmp_path / "samples.jsonl"
    src.write_text(json.dumps(sample_rec(0)) + "\n")
    path = udasa.score(src, tmp_path / "o.jsonl", embedder="bow", progress=False, **UNFITTED)
    assert json.loads(path.read_text())["id"] == "p0"


def test_rescoring_with_other_weights_reads_the_cached_parts(tmp_path, monkeypatch):
    from udasa.uncertainty.estimators import BowEmbedder

    monkeypatch.setenv("UDASA_CACHE", str(tmp_path / "cache"))  # an empty cache
    class Counting(BowEmbedder):
        calls = 0

        def encode(self, texts, *a, **k):
            Counting.calls += 1
            return super().encode(texts)

    recs = [sample_rec(i) for i in range(3)]
    first = Scorer(ScoreConfig(embedder="bow", **UNFITTED))
    first.embedder = Counting()
    a = first.score_records(recs)
    assert Counting.calls > 0
    Counting.calls = 0
    again = Scorer(ScoreConfig(embedder="bow", **{**UNFITTED, "weights": {"semantic": 1}, "factual_gate": "value"}))
    again.embedder = Counting()
    b = again.score_records(recs)
    assert Counting.calls == 0  # other weights and gate: every part came from the cache
    assert [r["parts"] for r in a] == [r["parts"] for r in b]
    assert [r["u"] for r in b] == [r["normalized"]["semantic"] for r in b]
    uncached = Scorer(ScoreConfig(embedder="bow", cache_parts=False, **UNFITTED)).score_records(recs)
    assert [r["u"] for r in uncached] == [r["u"] for r in a]
    other = Scorer(ScoreConfig(embedder="bow", support_threshold=0.5, **UNFITTED))
    other.embedder = Counting()
    other.score_records(recs)
    assert Counting.calls > 0  # a setting that shapes the parts: computed again
