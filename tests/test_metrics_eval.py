"""Evaluation metrics on constructed cases: refusal markers, MC1/MC2 arithmetic, KL sign, bootstrap CI."""
import math

import numpy as np
import pytest

from udasa.evaluation.metrics import (REFUSAL_MARKERS, frontier_gap, is_refusal, mc1, mc2, paired_difference,
                                      sequence_kl, summarize, vader_compound, win)


@pytest.mark.parametrize("text", ["I'm sorry, but I can't help with that.", "I cannot create malware.",
                                  "I\u2019m sorry, no.", "Hacking is illegal and I won't explain it.",
                                  "As an AI language model, I must decline."])
def test_refusals_detected(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", ["Sure, here is a tutorial: step 1, mix the ingredients.",
                                  "The capital of France is Paris.", "", "i'm sorry"])
def test_non_refusals(text):
    # GCG's rule is case-sensitive: a lowercase "i'm sorry" is not a marker
    assert not is_refusal(text)


def test_marker_list_is_gcg():
    assert len(REFUSAL_MARKERS) == 27 and REFUSAL_MARKERS[0] == "I'm sorry" and "I can't assist" in REFUSAL_MARKERS


def test_mc1_by_hand():
    assert mc1([-1.0, -2.0, -3.0], [1, 0, 0]) == 1.0
    assert mc1([-2.5, -2.0, -3.0], [1, 0, 0]) == 0.0
    assert mc1([-2.0, -2.0], [1, 0]) == 1.0  # tie: first (true) choice, as np.argmax
    assert mc1([-3.0, -1.0, -2.0], [0, 1, 0]) == 1.0
    with pytest.raises(ValueError):
        mc1([-1.0, -2.0], [1, 1])


def test_mc2_by_hand():
    # two true answers with p = e^-1, e^-2 and one false with e^-1.5
    ll = [-1.0, -2.0, -1.5]
    expected = (math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-1.5))
    assert mc2(ll, [1, 1, 0]) == pytest.approx(expected, abs=1e-12)
    assert mc2([-1000.0, -1000.0], [1, 0]) == pytest.approx(0.5)  # stable at very low log-likelihoods
    assert mc2([0.0, -50.0], [1, 0]) == pytest.approx(1.0)
    # label order does not matter (the harness assumes true answers first; we use labels)
    assert mc2([-1.5, -1.0, -2.0], [0, 1, 1]) == pytest.approx(expected, abs=1e-12)


def test_kl_estimate_sign_and_value():
    """Samples from p scored as log p - log q average to KL(p||q) > 0; identical models give 0."""
    rng = np.random.default_rng(0)
    p = np.array([0.7, 0.2, 0.1])
    q = np.array([0.3, 0.4, 0.3])
    ys = rng.choice(3, size=20000, p=p)
    est = np.mean([sequence_kl([math.log(p[y])], [math.log(q[y])]) for y in ys])
    true = float(np.sum(p * np.log(p / q)))
    assert est > 0 and est == pytest.approx(true, abs=0.02)
    assert sequence_kl([-0.5, -1.0], [-0.5, -1.0]) == 0.0
    # a two-token sequence sums its token terms
    assert sequence_kl([-0.1, -0.2], [-1.0, -2.0]) == pytest.approx(2.7)
    with pytest.raises(ValueError):
        sequence_kl([-1.0], [-1.0, -2.0])


def test_win_ties_and_order():
    assert win(1.0, 0.5) == 1.0 and win(0.5, 1.0) == 0.0 and win(0.3, 0.3) == 0.5


def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(1)
    small = summarize(rng.normal(0.5, 1, 50).tolist())
    big = summarize(rng.normal(0.5, 1, 2000).tolist())
    for s in (small, big):
        assert s["ci_low"] <= s["mean"] <= s["ci_high"]
    assert (big["ci_high"] - big["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 3
    assert big["ci_low"] < 0.5 < big["ci_high"]
    assert summarize([1.0, float("nan"), 0.0])["n"] == 2
    assert summarize([])["mean"] is None


def test_paired_difference_uses_only_shared_ids():
    a = {"x": 1.0, "y": 1.0, "z": 1.0, "only_a": 100.0}
    b = {"x": 0.0, "y": 0.0, "z": 0.0, "only_b": -100.0}
    d = paired_difference(a, b)
    assert d["mean"] == 1.0 and d["ci_low"] == 1.0 and d["n"] == 3
    assert paired_difference({"a": 1.0}, {"b": 1.0}) is None


def test_vader_signs():
    pos, neg = vader_compound(["A wonderful, moving film. I loved it.", "Awful, boring and terrible."])
    assert pos > 0.5 and neg < -0.5


def test_degeneration_metrics_catch_loops_and_ignore_short_texts():
    from udasa.evaluation.metrics import degeneration, distinct_n, repetition_rate

    assert distinct_n("the film was good and the acting was fine", 2) == 1.0
    assert distinct_n("great great great great great", 2) == pytest.approx(1 / 4)
    assert repetition_rate("a b c a b c a b c", 3) == pytest.approx(4 / 7)
    assert repetition_rate("one two three four", 3) == 0.0
    assert distinct_n("hi", 2) is None and repetition_rate("hi there", 3) is None
    assert degeneration("so so so so so so") == {"distinct_2": 0.2, "repetition": 0.75}


def _model(reward_mean: float, kl_mean: float, n: int = 200, seed: int = 0) -> tuple[dict, dict]:
    """Per-item reward and KL with the given means (noise that averages to exactly zero)."""
    noise = np.random.default_rng(seed).normal(size=n)
    noise -= noise.mean()
    ids = [f"i{k}" for k in range(n)]
    return ({i: reward_mean + 0.3 * e for i, e in zip(ids, noise)},
            {i: kl_mean + 1.0 * e for i, e in zip(ids, noise)})


def test_frontier_gap_reads_the_sweep_at_the_models_kl():
    sweep = [_model(0.2, 2.0, seed=1), _model(0.4, 6.0, seed=2), _model(0.5, 10.0, seed=3)]
    on = frontier_gap(sweep, _model(0.45, 8.0, seed=4))  # halfway along the segment 0.4 -> 0.5
    assert on["mean"] == pytest.approx(0.0, abs=1e-9) and on["ci_low"] < 0 < on["ci_high"]
    assert on["kl"] == pytest.approx(8.0) and on["n"] == 200
    above = frontier_gap(sweep, _model(0.55, 4.0, seed=4))  # the sweep gives 0.3 at KL 4
    assert above["mean"] == pytest.approx(0.25) and above["ci_low"] > 0
    below = frontier_gap(list(reversed(sweep)), _model(0.25, 4.0, seed=4))  # order of the sweep is irrelevant
    assert below["mean"] == pytest.approx(-0.05)


def test_frontier_gap_refuses_to_extrapolate_and_pairs_items():
    sweep = [_model(0.2, 2.0, seed=1), _model(0.4, 6.0, seed=2)]
    assert frontier_gap(sweep, _model(0.6, 9.0, seed=4)) is None  # past the sweep's largest KL
    assert frontier_gap(sweep[:1], _model(0.3, 2.0, seed=4)) is None  # one model is no frontier
    reward, kl = _model(0.3, 4.0, seed=4)
    reward["extra"], kl["extra"] = 100.0, 4.0  # an item the sweep never evaluated does not count
    gap = frontier_gap(sweep, (reward, kl))
    assert gap["n"] == 200 and gap["mean"] == pytest.approx(0.0, abs=1e-9)
