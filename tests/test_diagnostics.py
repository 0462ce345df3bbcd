"""Run diagnostics: independent checks of the training pairs and the training curves."""
import json

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
    assert (c["conservative"]["pairs"], c["conservative"]["pairs_trained"]) == (None, None)  # not recorded


def test_training_curves_count_the_pairs_each_stage_trained():
    rows = [{"event": "log", "stage": s, "stage_index": i, "step": 1, "loss": 0.6}
            for i, s in enumerate(["conservative", "moderate"])]
    rows += [{"event": "stage_end", "stage": "conservative", "pairs": 350, "pairs_trained": 240},
             # an older log: the reference cache was looked up once per pair TRL kept
             {"event": "stage_end", "stage": "moderate", "pairs": 349, "ref_cache": {"hits": 200, "misses": 43}}]
    c = training_curves(rows)
    assert (c["conservative"]["pairs"], c["conservative"]["pairs_trained"]) == (350, 240)
    assert (c["moderate"]["pairs"], c["moderate"]["pairs_trained"]) == (349, 243)


def test_training_section_shows_pairs_not_trained(tmp_path):
    from types import SimpleNamespace

    from udasa.run_report import _kept_note, _training_section

    rows = [{"event": "log", "stage": "all", "stage_index": 0, "step": k, "loss": 0.6} for k in (1, 2)]
    for name, kept in (("udasa", 724), ("random-pair", 1048)):
        (tmp_path / name).mkdir()
        log = rows + [{"event": "stage_end", "stage": "all", "pairs": 1048, "pairs_trained": kept}]
        (tmp_path / name / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    trained = [SimpleNamespace(name=n, method="dpo", model_dir=tmp_path / n) for n in ("udasa", "random-pair")]
    lines, curves = _training_section(trained, tmp_path)
    text = "\n".join(lines)
    assert "| udasa | all | 724 of 1048 | 2 |" in text and "| random-pair | all | 1048 | 2 |" in text
    assert "Pairs not trained" in text and "udasa 324" in text and "random-pair 0" not in text
    assert _kept_note(curves["udasa"]) == " (724 of them kept by TRL: the others' prompts fill `max_length`)"
    assert _kept_note(curves["random-pair"]) == ""
