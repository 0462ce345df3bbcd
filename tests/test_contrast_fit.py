"""The contrastive value estimator, the factual gate, fitted spec settings and `udasa validate --fit`."""
import shutil

import numpy as np
import pytest

from udasa.errors import InputError
from udasa.sampling.logprobs import continuation_logprobs
from udasa.testing import UNFITTED
from udasa.uncertainty import ScoreConfig, Scorer
from udasa.uncertainty import functional as F
from udasa.uncertainty.contrast import ContrastiveJudge, contrast_probability
from udasa.uncertainty.specs import load_spec
from udasa.uncertainty.validate import (ValidateConfig, comparisons, fit_settings, item_agreement, length_matched,
                                        spec_file_path, weight_grid, write_fitted)


def test_contrast_margin_is_the_mean_logprob_difference_under_the_two_instructions(tiny_policy):
    spec = load_spec("positive-sentiment")
    judge = ContrastiveJudge(tiny_policy, spec, temperature=0.1)
    rec = {"id": "a", "prompt": "This movie", "messages": [{"role": "user", "content": "This movie"}],
           "format": "plain", "responses": [" was great", " was bad", ""]}
    m = judge.margins([rec])[0]
    tok = tiny_policy.tokenizer
    p = spec.principles[0]
    conts = [tok(y, add_special_tokens=False)["input_ids"] for y in rec["responses"]]
    means = []
    for instruction in (p.follow, p.violate):  # a plain prompt: the instruction is a preamble, no template
        ctx = tok(f"{instruction}\n\nThis movie", add_special_tokens=False)["input_ids"]
        lps = continuation_logprobs(tiny_policy.model, [ctx] * 3, conts, pad_id=tok.pad_token_id)
        means.append([np.mean(x) if x else 0.0 for x in lps])
    assert m.shape == (3, 1)
    assert m[:, 0] == pytest.approx(np.array(means[0]) - np.array(means[1]), abs=1e-4)
    assert m[2, 0] == 0.0  # an empty response has no evidence either way
    assert judge.probs([rec])[0] == pytest.approx(1 / (1 + np.exp(-m[:, 0] / 0.1)))


def test_chat_contrast_puts_the_instruction_after_the_shared_dialogue(tiny_policy):
    spec = load_spec("safety")
    judge = ContrastiveJudge(tiny_policy, spec, max_context=4096)  # the tiny tokenizer spells words in bytes
    rec = {"prompt": "hi", "messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "hi there"}],
           "responses": ["sure", "no way, sorry"]}
    prefix, suffixes = judge._contexts(rec)
    tok = tiny_policy.tokenizer
    assert len(suffixes) == 2 * len(spec.principles) and "old" not in tok.decode(prefix)
    first = tok.decode(prefix + suffixes[0])
    assert first.index("hi there") < first.index(spec.principles[0].follow) and first.rstrip().endswith("assistant")
    # the branched computation equals running every full context on its own
    conts = [tok(y, add_special_tokens=False)["input_ids"] for y in rec["responses"]]
    m = judge.margins([rec])[0]
    for k in range(len(spec.principles)):
        means = []
        for s in (suffixes[2 * k], suffixes[2 * k + 1]):
            lps = continuation_logprobs(tiny_policy.model, [prefix + s] * 2, conts, pad_id=tok.pad_token_id)
            means.append(np.array([np.mean(x) for x in lps]))
        assert m[:, k] == pytest.approx(means[0] - means[1], abs=1e-4)
    assert contrast_probability(np.array([[0.0, 10.0]]), 1.0) == pytest.approx([(0.5 + 1 / (1 + np.exp(-10))) / 2])


def test_factual_gate_stops_confident_violations_from_counting_as_reliable():
    parts = {"semantic": np.zeros(2), "token": np.array([0.05, 0.6]), "unsupported": np.array([0.0, 0.0]),
             "value_embedding": np.array([0.05, 0.95])}  # response 0: confident but violating
    plain = F.components_from_parts(parts, token_weight=1.0)
    gated = F.components_from_parts(parts, token_weight=1.0, factual_gate="value")
    assert plain["factual"][0] < plain["factual"][1]
    assert gated["factual"][0] > gated["factual"][1]
    assert gated["factual"][1] == pytest.approx(1 - 0.95 * 0.4)
    mixed = F.components_from_parts({**parts, "value_contrast": np.array([1.0, 0.0])}, token_weight=1.0,
                                    contrast_weight=1.0)
    assert mixed["value"].tolist() == [0.0, 1.0]


def test_config_uses_the_spec_fitted_settings_unless_it_sets_its_own(tmp_path):
    spec = tmp_path / "s.yaml"
    shutil.copy(spec_file_path("safety"), spec)
    text = spec.read_text().split("fitted:")[0]
    spec.write_text(text + "fitted:\n  weights: {semantic: 0, factual: 1, value: 3}\n  contrast_weight: 0.5\n"
                           "  factual_gate: value\n")
    cfg = ScoreConfig(spec=str(spec))
    assert cfg.effective["weights"] == {"semantic": 0.0, "factual": 0.25, "value": 0.75}
    assert cfg.effective["contrast_weight"] == 0.5 and cfg.effective["factual_gate"] == "value"
    assert cfg.spec_settings() == {k: cfg.effective[k] for k in ("weights", "contrast_weight", "factual_gate")}
    own = ScoreConfig(spec=str(spec), weights={"semantic": 1}, contrast_weight=0.0, factual_gate="none")
    assert own.effective["weights"]["semantic"] == 1.0 and own.spec_settings() == {}
    assert "contrast_weight" not in own.settings() and "factual_gate" not in own.settings()
    spec.write_text(text + "fitted:\n  weights: {semantic: -1}\n")
    with pytest.raises(InputError, match="fitted.weights"):
        ScoreConfig(spec=str(spec))
    with pytest.raises(InputError, match="contrast_weight"):
        ScoreConfig(contrast_weight=1.5)


def test_scorer_records_parts_and_mixes_the_contrastive_estimator(tiny_policy):
    rec = {"id": "x", "prompt": "Tell me", "responses": ["sure thing", "no way", "maybe later"], "num_tokens": [2, 2, 2],
           "logprob_mean": [-1.0, -2.0, -0.5], "model": tiny_policy.name}
    cfg = ScoreConfig(spec="safety", embedder="bow", contrast_weight=1.0, weights={"value": 1})
    out = Scorer(cfg, judge_policy=tiny_policy).score_records([rec])[0]
    assert set(out["parts"]) == {"semantic", "token", "unsupported", "value_embedding", "value_contrast"}
    assert out["components"]["value"] == pytest.approx([1 - p for p in out["parts"]["value_contrast"]], abs=1e-4)
    assert out["scoring"]["contrast_weight"] == 1.0


def _scored(parts, sources, responses):
    return {"parts": parts, "sources": sources, "responses": responses, "u": [0.5] * len(sources),
            "components": {}, "logprob_mean": [-1.0] * len(sources)}


def test_fit_finds_the_informative_estimator_and_reports_the_defaults():
    rng = np.random.default_rng(0)
    recs = []
    for _ in range(40):  # the contrastive estimator separates chosen (index 0) from rejected; the rest is noise
        noise = {k: rng.random(2) for k in ("semantic", "token", "unsupported", "value_embedding")}
        recs.append(_scored({**noise, "value_contrast": np.array([0.9, 0.1])}, ["chosen", "rejected"], ["a", "b"]))
    fit = fit_settings(recs, ScoreConfig(embedder="bow"))
    assert fit["contrast_weight"] > 0 and fit["weights"]["value"] == max(fit["weights"].values())
    assert fit["dev_agreement"] == 1.0 and fit["default_dev_agreement"] < 0.9
    assert fit["trials"] == len(weight_grid()) * 6 and fit["items"] == 40


def test_write_fitted_round_trips_through_the_spec_reader(tmp_path):
    spec = tmp_path / "s.yaml"
    shutil.copy(spec_file_path("honest"), spec)
    fitted = {"weights": {"semantic": 0.1, "factual": 0.2, "value": 0.7}, "contrast_weight": 0.5,
              "factual_gate": "value", "fit": {"data": "truthfulqa", "slice": "0-149", "dev_agreement": 0.7}}
    write_fitted(spec, fitted)
    write_fitted(spec, {**fitted, "contrast_weight": 1.0})  # replaces, never appends a second block
    text = spec.read_text()
    assert text.count("fitted:") == 1 and "# by `udasa validate --fit`" in text
    loaded = load_spec(str(spec))
    assert loaded.fitted["contrast_weight"] == 1.0 and loaded.fitted["weights"]["value"] == 0.7
    assert len(loaded.principles) == len(load_spec("honest").principles)


def test_fit_slices_never_touch_the_reporting_items():
    assert (ValidateConfig(fit=True).offset, ValidateConfig(fit=True).limit) == (0, 100)
    assert (ValidateConfig().offset, ValidateConfig().limit) == (100, 300)
    assert (ValidateConfig(data="truthfulqa").offset, ValidateConfig(data="truthfulqa").limit) == (150, 150)
    with pytest.raises(InputError, match="may not read the reporting slice"):
        ValidateConfig(fit=True, offset=50, limit=100)
    with pytest.raises(InputError, match="may not read the reporting slice"):
        ValidateConfig(fit=True, offset=0)  # to the end
    from udasa.evaluation.runner import select_items
    from udasa.evaluation.task import load_task
    from udasa.data import truthfulqa
    from udasa.uncertainty.validate import load_items

    evaluated = {r["id"] for r in select_items(truthfulqa(), load_task("truthful").size, full=False, limit=None)}
    assert not {i["id"] for i in load_items("truthfulqa", 0, 300)} & evaluated


def test_length_controlled_reading_keeps_only_comparable_lengths():
    rec = {"u": [0.1, 0.2, 0.9], "sources": ["correct", "incorrect", "incorrect"],
           "responses": ["ten chars!", "nine char", "a much, much longer wrong answer"],
           "components": {"value": [0.1, 0.2, 0.9]}, "logprob_mean": [-1, -1, -1]}
    assert comparisons(rec) == [(0, 1), (0, 2)] and comparisons(rec, length_matched=True) == [(0, 1)]
    a = item_agreement(rec, length_matched=True)
    assert a["longer wins"] == 1.0 and a["shorter wins"] == 0.0 and a["combined u"] == 1.0
    far = {**rec, "sources": ["correct", "policy", "incorrect"]}
    assert item_agreement(far, length_matched=True) is None
    summary, n = length_matched([rec, far])
    assert n == 1 and summary["combined u"]["agreement"] == 1.0


def test_each_prompt_can_name_its_own_spec():
    rec = {"id": "a", "prompt": "Tell me", "responses": ["Sure, here are the steps.", "I'm sorry, I can't help."],
           "num_tokens": [5, 5], "logprob_mean": [-1.0, -1.5], "model": "m"}
    out = Scorer(ScoreConfig(spec="safety", embedder="bow", **UNFITTED)).score_records(
        [rec, {**rec, "id": "b", "spec": "helpful"}])
    assert [o["spec"] for o in out] == ["safety", "helpful"] and [o["id"] for o in out] == ["a", "b"]
    alone = Scorer(ScoreConfig(spec="helpful", embedder="bow", **UNFITTED)).score_records([{**rec, "id": "b"}])[0]
    assert out[1]["components"]["value"] == alone["components"]["value"]
    assert out[0]["components"]["value"] != alone["components"]["value"]
