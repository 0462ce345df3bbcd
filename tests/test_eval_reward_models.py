"""Evaluator reward models: the fixed HH split and the Bradley-Terry fit, on synthetic features."""
import numpy as np
import pytest

from udasa.data import splits
from udasa.evaluation import reward_models as rmod


def test_hh_split_is_fixed_disjoint_and_proportioned():
    train, evals, policy = splits.rm_train_ids(), splits.evaluator_ids(), splits.policy_hh_ids()
    assert train <= evals and not (evals & policy)
    from udasa.data import hh_rlhf
    all_ids = {r["id"] for s in rmod.SUBSETS for r in hh_rlhf(s)}
    assert evals | policy == all_ids
    n = len(all_ids)
    assert abs(len(train) / n - 0.4) < 0.04 and abs(len(policy) / n - 0.4) < 0.04
    assert splits.hh_split("hh-harmless-0") == splits.hh_split("hh-harmless-0")  # deterministic


def test_bradley_terry_recovers_a_preference_direction():
    rng = np.random.default_rng(0)
    d = 16
    true_w = rng.normal(size=d)
    rejected = rng.normal(size=(300, d)).astype(np.float32)
    chosen = rng.normal(size=(300, d)).astype(np.float32)
    # order each pair by the true reward plus noise: chosen is the preferred one most of the time
    r_c, r_r = chosen @ true_w, rejected @ true_w
    swap = (r_c + rng.normal(scale=0.5, size=300)) < (r_r + rng.normal(scale=0.5, size=300))
    chosen[swap], rejected[swap] = rejected[swap].copy(), chosen[swap].copy()
    w, c = rmod.fit_bradley_terry(chosen[:200], rejected[:200])
    acc = np.mean(rmod.pairwise_accuracy(w, chosen[200:], rejected[200:]))
    cos = float(w @ true_w / np.linalg.norm(w) / np.linalg.norm(true_w))
    assert acc > 0.8 and cos > 0.8 and c in rmod.C_GRID
    # a head scoring the opposite way gets the complementary accuracy
    assert np.mean(rmod.pairwise_accuracy(-w, chosen[200:], rejected[200:])) == pytest.approx(1 - acc)


def test_reward_model_scores_with_given_features(monkeypatch):
    w = np.array([1.0, 0.0, 2.0, 0.0], dtype=np.float32)
    monkeypatch.setattr(rmod, "features", lambda p, r, e=None, **kw: np.array([[1, 0, 1, 0], [0, 0, 0, 5]], np.float32))
    assert rmod.RewardModel("x", w, {}).score(["p", "q"], ["a", "b"]) == [3.0, 0.0]
    assert rmod.RewardModel("x", w, {}).score([], []) == []
