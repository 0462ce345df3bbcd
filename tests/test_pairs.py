import json

import pytest

from udasa.errors import InputError
from udasa.io import read_jsonl
from udasa.pairs import PairConfig, build_pairs, format_summary, pick_pair, summary_path


def _rec(i, responses, u, sem=None):
    norm = {"semantic": sem or u, "factual": u, "value": u}
    return {"id": f"p{i}", "prompt": f"question {i}", "messages": [{"role": "user", "content": f"question {i}"}],
            "responses": responses, "num_tokens": [3] * len(responses), "logprob_mean": [-1.0] * len(responses),
            "components": norm, "normalized": norm, "u": u, "weights": {"semantic": 1, "factual": 1, "value": 1},
            "spec": "safety", "semantic_entropy": 0.5, "model": "m", "model_fingerprint": "f", "sampling": {}}


def _write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_pick_pair_rules():
    u = [0.5, 0.1, 0.9, 0.3]
    assert pick_pair(u, "highest") == (1, 2)
    assert pick_pair(u, "second_lowest") == (1, 3)
    import random
    picks = {pick_pair(u, "random_higher", random.Random(s))[1] for s in range(40)}
    assert picks == {0, 2, 3}
    assert pick_pair([0.2, 0.2, 0.2], "highest") == (0, 1)  # ties: lower index
    assert pick_pair([0.1], "highest") is None


def test_build_pairs_stages_drops_and_summary(tmp_path):
    recs = [_rec(i, [f"a{i}", f"b{i}", f"c{i}"], [0.1, 0.1 + 0.05 * (i + 1), 0.2]) for i in range(9)]
    recs.append(_rec(9, ["same", "same"], [0.1, 0.9]))  # identical texts
    recs.append(_rec(10, ["x", "y"], [0.5, 0.5]))  # no preference
    recs.append(_rec(11, ["only"], [0.5]))  # too few
    recs.append(_rec(12, ["", "y"], [0.1, 0.5]))  # empty chosen
    scores = _write(tmp_path / "scores.jsonl", recs)
    out = tmp_path / "pairs.jsonl"
    summary = build_pairs(scores, out, PairConfig())
    pairs = [r for _, r in read_jsonl(out)]
    assert len(pairs) == 9 and summary["pairs"] == 9
    assert summary["dropped"] == {"too_few_responses": 1, "identical_text": 1, "empty_response": 1,
                                  "delta_below_min": 1}
    assert [s["count"] for s in summary["stages"]] == [3, 3, 3]
    by_id = {p["id"]: p for p in pairs}
    # chosen = lowest u (index 0), rejected = highest
    assert by_id["p8"]["chosen"] == "a8" and by_id["p8"]["rejected"] == "b8"
    assert by_id["p0"]["rejected"] == "c0"
    assert by_id["p8"]["delta_u"] == pytest.approx(0.45)
    # conservative holds the largest Δu
    cons = [p["delta_u"] for p in pairs if p["stage"] == "conservative"]
    expl = [p["delta_u"] for p in pairs if p["stage"] == "exploratory"]
    assert min(cons) > max(expl)
    assert [p["stage_index"] for p in pairs] == sorted(p["stage_index"] for p in pairs)
    assert set(pairs[0]) >= {"id", "prompt", "messages", "chosen", "rejected", "chosen_index", "rejected_index",
                             "u_chosen", "u_rejected", "delta_u", "stage", "stage_index", "score_key"}
    saved = json.loads(summary_path(out).read_text())
    assert saved["stages"][0]["delta_u_max"] == pytest.approx(0.45)


def test_min_delta_and_single_axis(tmp_path):
    recs = [_rec(i, ["a", "b"], [0.1, 0.1 + 0.1 * i], sem=[0.9, 0.1]) for i in range(1, 5)]
    scores = _write(tmp_path / "scores.jsonl", recs)
    s = build_pairs(scores, tmp_path / "p.jsonl", PairConfig(min_delta=0.25))
    assert s["pairs"] == 2 and s["dropped"]["delta_below_min"] == 2
    with pytest.warns(UserWarning, match="ties in Δu"):  # every semantic Δu is 0.8
        s = build_pairs(scores, tmp_path / "p2.jsonl", PairConfig(score_key="semantic"))
    pairs = [r for _, r in read_jsonl(tmp_path / "p2.jsonl")]
    assert s["pairs"] == 4 and all(p["chosen"] == "b" and p["score_key"] == "semantic" for p in pairs)


def test_curriculum_none_single_stage(tmp_path):
    from udasa.curriculum import CurriculumConfig
    recs = [_rec(i, ["a", "b"], [0.0, 0.1 * (i + 1)]) for i in range(6)]
    scores = _write(tmp_path / "scores.jsonl", recs)
    s = build_pairs(scores, tmp_path / "p.jsonl", PairConfig(curriculum=CurriculumConfig(curriculum="none")))
    assert [(st["stage"], st["count"]) for st in s["stages"]] == [("all", 6)]


def test_bad_scores_name_file_line_field(tmp_path):
    good = _rec(0, ["a", "b"], [0.1, 0.2])
    bad = _rec(1, ["a", "b"], [0.1])
    scores = _write(tmp_path / "scores.jsonl", [good, bad])
    with pytest.raises(InputError, match=r"scores.jsonl:2: field 'u'"):
        build_pairs(scores, tmp_path / "p.jsonl")
    bad = _rec(1, ["a", "b"], [0.1, float("nan")])
    scores = _write(tmp_path / "scores.jsonl", [good, bad])
    with pytest.raises(InputError, match=r":2: field 'u\[1\]'"):
        build_pairs(scores, tmp_path / "p.jsonl")
    rec = _rec(1, ["a", "b"], [0.1, 0.2])
    del rec["normalized"]["factual"]
    scores = _write(tmp_path / "scores.jsonl", [good, rec])
    with pytest.raises(InputError, match=r":2: field 'normalized.factual'"):
        build_pairs(scores, tmp_path / "p.jsonl", PairConfig(score_key="factual"))
    with pytest.raises(InputError, match="duplicate id"):
        build_pairs(_write(tmp_path / "s2.jsonl", [good, good]), tmp_path / "p.jsonl")
    with pytest.raises(InputError, match="score_key"):
        PairConfig(score_key="entropy")


def test_cli_pairs_prints_stage_counts(tmp_path):
    from typer.testing import CliRunner

    from udasa.cli import app

    recs = [_rec(i, ["a", "b", "c"], [0.0, 0.1 * (i + 1), 0.05]) for i in range(6)]
    scores = _write(tmp_path / "scores.jsonl", recs)
    out = tmp_path / "pairs.jsonl"
    with pytest.warns(UserWarning, match="ties in Δu"):  # second lowest is always 0.05: every Δu is 0.05
        res = CliRunner().invoke(app, ["pairs", "--scores", str(scores), "--out", str(out), "--curriculum",
                                       "reverse", "--rejected", "second_lowest"])
    assert res.exit_code == 0, res.output
    assert "100% of the comparisons across stages are Δu ties" in res.output
    assert "stage 1 exploratory" in res.output and "stage 3 conservative" in res.output
    pairs = [r for _, r in read_jsonl(out)]
    assert pairs[0]["stage"] == "exploratory" and pairs[0]["stage_index"] == 0
    assert all(p["rejected"] == "c" for p in pairs)  # second lowest is always "c" (0.05)
    res = CliRunner().invoke(app, ["pairs", "--scores", str(scores), "--out", str(out), "--split", "threshold",
                                   "--thresholds", "0.2"])
    assert res.exit_code != 0 and "thresholds" in str(res.exception or res.output)


def test_random_pairs_are_distinct_seeded_and_keep_their_delta_u(tmp_path):
    recs = [_rec(i, [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], [0.1, 0.4, 0.2, 0.9]) for i in range(40)]
    recs.append(_rec(40, ["same", "same", " same "], [0.1, 0.5, 0.9]))  # no two distinct texts
    scores = _write(tmp_path / "scores.jsonl", recs)
    cfg = PairConfig(selection="random", curriculum={"curriculum": "none"}, seed=3)
    summary = build_pairs(scores, tmp_path / "r.jsonl", cfg)
    pairs = [r for _, r in read_jsonl(tmp_path / "r.jsonl")]
    assert summary["pairs"] == 40 and summary["dropped"]["identical_text"] == 1
    assert all(p["selection"] == "random" and p["chosen"] != p["rejected"] for p in pairs)
    u = [0.1, 0.4, 0.2, 0.9]
    for p in pairs:  # Δu recorded as it is: negative when the random "chosen" scored worse
        assert p["delta_u"] == pytest.approx(u[p["rejected_index"]] - u[p["chosen_index"]])
    assert any(p["delta_u"] < 0 for p in pairs) and any(p["delta_u"] > 0 for p in pairs)
    assert len({(p["chosen_index"], p["rejected_index"]) for p in pairs}) > 4  # not one fixed pattern
    again = build_pairs(scores, tmp_path / "r2.jsonl", cfg)
    assert (tmp_path / "r2.jsonl").read_text() == (tmp_path / "r.jsonl").read_text() and again["pairs"] == 40
    build_pairs(scores, tmp_path / "r3.jsonl", PairConfig(selection="random", curriculum={"curriculum": "none"}))
    assert (tmp_path / "r3.jsonl").read_text() != (tmp_path / "r.jsonl").read_text()  # another seed, other pairs
    with pytest.raises(InputError, match="selection"):
        PairConfig(selection="best")


def test_delta_u_ties_across_stages_are_measured_and_warned(tmp_path):
    from udasa.curriculum import CurriculumConfig, unordered_share
    assert unordered_share([0.3, 0.2, 0.1], [0, 1, 2]) == 0
    assert unordered_share([0.3, 0.3, 0.1], [0, 0, 1]) == 0  # a tie inside one stage orders nothing wrongly
    # 0.3 straddles stages 0 and 1 (2 x 1 of the 3 x 1 + 3 x 1 + 1 x 1 = 7 cross-stage comparisons)
    assert unordered_share([0.3, 0.3, 0.3, 0.1, 0.0], [0, 0, 1, 1, 2]) == pytest.approx(2 / 8)
    assert unordered_share([0.73333, 0.73334], [0, 1]) == 1.0  # rounded scores: equal Δu up to the last digit
    assert unordered_share([0.5] * 6, [0, 0, 1, 1, 2, 2]) == 1.0 and unordered_share([0.5, 0.5], [0, 0]) == 0
    # one axis whose rank-normalised scores give every prompt the same Δu: the stages follow pair ids
    same = [_rec(i, ["a", "b"], [0.0, 1.0]) for i in range(6)]
    with pytest.warns(UserWarning, match="100% of the comparisons between pairs of different stages are ties"):
        s = build_pairs(_write(tmp_path / "same.jsonl", same), tmp_path / "p.jsonl")
    assert s["unordered_share"] == 1.0 and json.loads(summary_path(tmp_path / "p.jsonl").read_text())[
        "unordered_share"] == 1.0
    assert "100% of the comparisons across stages are Δu ties" in format_summary(s)
    # one tie at a boundary among 30 distinct values: recorded, below the warning
    edge = [_rec(i, ["a", "b"], [0.0, 0.01 * (i + 1) if i != 10 else 0.1]) for i in range(30)]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = build_pairs(_write(tmp_path / "edge.jsonl", edge), tmp_path / "p2.jsonl")
    assert 0 < s["unordered_share"] < 0.05 and "Δu ties" not in format_summary(s)
    for cfg in (CurriculumConfig(curriculum="none"), CurriculumConfig(curriculum="random"),
                CurriculumConfig(split="threshold", thresholds=(0.2, 0.8))):
        s = build_pairs(tmp_path / "same.jsonl", tmp_path / "p3.jsonl", PairConfig(curriculum=cfg))
        assert "unordered_share" not in s  # nothing the split orders by Δu
