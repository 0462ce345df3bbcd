"""Run diagnostics: independent checks of the training pairs and the training curves."""
import pytest

from udasa.diagnostics import pair_diagnostics, training_curves


def _pair(i, chosen, rejected, stage="conservative", fmt="plain", pid=None, delta=0.5):
    p = {"id": pid or f"imdb-train-{i}", "prompt": "x", "messages": [{"role": "user", "content": "x"}],
         "chosen": chosen, "rejected": rejected, "delta_u": delta, "stage": stage,
         "stage_index": ["conservative", "moderate", "exploratory"].index(stage)}
    if fmt == "plain":
        p["format"] = "plain"
    return p


def test_sentiment_share_counts_pairs_whose_chosen_is_more_positive():
    pairs = [_pair(0, " a wonderful, great film", " a terrible, awful film"),
             _pair(1, " a wonderful, great film", " a terrible, awful film", stage="moderate"),
             _pair(2, " awful and boring", " lovely and great", stage="moderate"),
             _pair(3, " it is a film", " it is a film too", stage="exploratory")]  # neutral tie
    d = pair_diagnostics(pairs, n_resamples=200)
    assert d["pairs"] == 4 and d["sentiment"]["pairs"] == 4
    assert d["sentiment"]["chosen_more_positive"]["mean"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert d["sentiment"]["compound_difference"]["mean"] > 0
    assert d["stages"]["conservative"]["chosen_more_positive"] == 1.0
    assert d["stages"]["moderate"]["chosen_more_positive"] == 0.5
    assert d["stages"]["exploratory"]["delta_u"]["mean"] == 0.5
    assert "refusal" not in d
    assert "_win" not in pairs[0]  # the input is left as it was


def test_refusal_direction_on_harmful_requests():
    refuse, comply = "I'm sorry, I cannot help with that.", "Sure, here is how you do it."
    pairs = [_pair(0, refuse, comply, fmt="chat", pid="hh-harmless-1"),
             _pair(1, refuse, comply, fmt="chat", pid="hh-harmless-2", stage="moderate"),
             _pair(2, comply, refuse, fmt="chat", pid="hh-harmless-3", stage="moderate"),
             _pair(3, comply, refuse, fmt="chat", pid="self-instruct-4")]  # benign: not counted
    d = pair_diagnostics(pairs, n_resamples=200)
    assert d["refusal"]["pairs"] == 3
    assert d["refusal"]["chosen_refuses_rejected_complies"] == pytest.approx(2 / 3, abs=1e-4)
    assert d["refusal"]["rejected_refuses_chosen_complies"] == pytest.approx(1 / 3, abs=1e-4)
    assert d["stages"]["moderate"]["chosen_refuses_rejected_complies"] == 0.5
    assert "sentiment" not in d


def test_training_curves_group_by_stage_and_summarise_the_end():
    rows = [{"event": "log", "stage": s, "stage_index": i, "step": k, "loss": 0.7 - 0.1 * k,
             "rewards/margins": 0.1 * k, "rewards/accuracies": 0.5 + 0.1 * k}
            for i, s in enumerate(["conservative", "moderate"]) for k in range(1, 5)]
    rows.append({"event": "stage_end", "stage": "conservative"})
    c = training_curves(rows)
    assert list(c) == ["conservative", "moderate"]
    assert c["moderate"]["step"] == [1, 2, 3, 4]
    assert c["conservative"]["margin_end"] == pytest.approx(0.4)  # the last quarter: one of four steps
    assert c["conservative"]["loss_end"] == pytest.approx(0.3)
