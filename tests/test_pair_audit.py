"""The pair audit: which side of a pair declines, read by a person, weighted back to every pair of a stage."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import pair_audit  # noqa: E402


def _pair(i, stage, chosen, rejected, source="hh-harmless"):
    return {"id": f"{source}-{i}", "prompt": "p", "messages": [{"role": "user", "content": f"request {i}"}],
            "chosen": chosen, "rejected": rejected, "stage": stage, "delta_u": 0.5}


def test_direction_weights_each_stratum_by_its_share():
    shares = np.array([0.25, 0.75])
    labels = np.array([[0.5, 0.25, 0.0, 0.25], [0.0, 0.0, 0.0, 1.0]])
    chosen, rejected, direction = pair_audit.direction(shares, labels)
    assert chosen == 0.125 and rejected == 0.0625 and direction == pytest.approx(0.0625)


def test_draw_takes_every_flagged_pair_and_score_reads_them_back(tmp_path):
    refuse, comply = "I'm sorry, I can't help with that.", "Sure, here is how."
    pairs = [_pair(0, "conservative", refuse, comply), _pair(1, "conservative", comply, "Here you go."),
             _pair(2, "conservative", "Fine.", "Okay."), _pair(3, "exploratory", comply, refuse),
             _pair(4, "exploratory", "Yes.", "No problem."), _pair(5, "exploratory", refuse, comply, "hh-helpful")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    assert [pair_audit.pair_stratum(p) for p in pairs[:2]] == ["flagged", "rest"]
    out = tmp_path / "audit.jsonl"
    pair_audit.draw(tmp_path, "hh-harmless", out, rest=1, seed=0)
    items = [json.loads(line) for line in out.open()]
    ids = {it["id"] for it in items}
    # both flagged pairs, one rest pair per stage; the other source left out; no verdict written
    assert {"hh-harmless-0", "hh-harmless-3"} <= ids and len(ids) == 4 and "hh-helpful-5" not in ids
    assert all(it["label"] == "" and it["request"].startswith("request") for it in items)
    with pytest.raises(SystemExit, match="field 'label'"):
        pair_audit.score(out)
    truth = {"hh-harmless-0": "chosen", "hh-harmless-3": "rejected"}
    for it in items:
        it["label"] = truth.get(it["id"], "neither")
    out.write_text("".join(json.dumps(it) + "\n" for it in items))
    report = pair_audit.score(out, draws=200)
    # conservative: 1 flagged pair of 3 (chosen alone declines), the rest read as neither
    assert report["conservative"]["chosen_alone_declines"][0] == round(1 / 3, 3)
    assert report["exploratory"]["direction"][0] == pytest.approx(-0.5)
    assert report["all"]["pairs"] == 5 and report["all"]["direction"][0] == pytest.approx(0.0)
    assert report["conservative"]["markers"] == {"chosen_alone": round(1 / 3, 3), "rejected_alone": 0.0}
    # a flagged pair left unlabelled, or a stage's rest not sampled at all, makes the weighting wrong: refused
    rest_ids = {it["id"] for it in items} - set(truth)
    for dropped, message in ((["hh-harmless-0"], "flagged pairs not labelled"),
                             (rest_ids, "no labelled pair in the rest stratum")):
        out.write_text("".join(json.dumps(it) + "\n" for it in items if it["id"] not in dropped))
        with pytest.raises(SystemExit, match=message):
            pair_audit.score(out)
    # labels of pairs that were since rebuilt are refused, not silently re-attached
    pairs[0]["chosen"] = "Rebuilt."
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out.write_text("".join(json.dumps(it) + "\n" for it in items))
    with pytest.raises(SystemExit, match="hh-harmless-0 is not in"):
        pair_audit.score(out)


def test_all_pairs_weigh_each_stage_by_its_share(tmp_path):
    # stage a: 1 flagged + 3 rest pairs, one rest pair read (it declines on the chosen side);
    # stage b: 1 flagged + 1 rest pair, the rest read as neither. Pooling the two rest samples would give
    # the rest a 1/2 decline share over 4 rest pairs (1/6 of all); by stage it is 3/4 of a's 4 pairs (1/2 of 6).
    refuse, comply = "I'm sorry, I can't help with that.", "Sure, here is how."
    pairs = [_pair(0, "a", refuse, comply), _pair(1, "a", "Fine.", "Okay."), _pair(2, "a", "Yes.", "Ok."),
             _pair(3, "a", "Good.", "Sure."), _pair(4, "b", comply, refuse), _pair(5, "b", "Hm.", "Well.")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    labels = {0: "chosen", 1: "chosen", 4: "rejected", 5: "neither"}
    out = tmp_path / "audit.jsonl"
    out.write_text("".join(json.dumps({"run": str(tmp_path), "id": p["id"], "stage": p["stage"], "chosen": p["chosen"],
                                       "rejected": p["rejected"], "label": labels[i]}) + "\n"
                           for i, p in enumerate(pairs) if i in labels))
    report = pair_audit.score(out, draws=100)
    assert report["a"]["chosen_alone_declines"][0] == 1.0  # 1/4 flagged + 3/4 rest, all declining
    assert report["all"]["chosen_alone_declines"][0] == pytest.approx(round(4 / 6, 3), abs=1e-3)
    assert report["all"]["rejected_alone_declines"][0] == pytest.approx(round(1 / 6, 3), abs=1e-3)
    # stage b is read in full (both strata): known, not sampled, so its interval is its point
    assert report["b"]["direction"] == [-0.5, -0.5, -0.5]
    lo, hi = report["a"]["direction"][1:]  # a's rest was sampled (1 of 3): a real interval
    assert lo < hi


def test_request_audit_separates_the_samples_from_the_pairing(tmp_path):
    refuse, comply = "I'm sorry, I can't help with that.", "Sure, here is how."
    also_refuse = "I cannot help with this request."
    # 0: one decline of 4, made the chosen; 1: a flagged sample that is not a decline; 2: nothing flagged;
    # 3: a decline made the rejected; 4: two declines of 6, one made the chosen; 5: scored, but its pair was dropped
    samples = {0: [comply, refuse, "Ok.", "Fine."], 1: [comply, "Sorry, here it is anyway: do this.", "A.", "B."],
               2: ["A.", "B.", "C.", "D."], 3: [refuse, comply, "E.", "F."],
               4: [refuse, also_refuse, "G.", "H.", "I.", "J."], 5: [refuse, "K.", "L.", "M."]}
    picks = {0: (1, 0), 1: (2, 1), 2: (0, 3), 3: (2, 0), 4: (0, 2)}
    scores = [{"id": f"hh-harmless-{i}", "prompt": "p", "messages": [{"role": "user", "content": f"request {i}"}],
               "responses": r} for i, r in samples.items()]
    pairs = [{"id": f"hh-harmless-{i}", "chosen_index": c, "rejected_index": j} for i, (c, j) in picks.items()]
    for name, rows in (("scores.jsonl", scores), ("pairs.jsonl", pairs)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "requests.jsonl"
    pair_audit.draw_requests(tmp_path, "hh-harmless", out, requests=10, seed=0)
    items = [json.loads(line) for line in out.open()]
    by_id = {it["id"]: it for it in items}
    assert sorted(by_id) == [f"hh-harmless-{i}" for i in range(5)]  # only requests with a pair are drawn
    assert all("chosen" not in json.dumps(it) for it in items)  # the reader is blind to the pair
    assert [f["index"] for f in by_id["hh-harmless-2"]["flagged"]] == []
    assert [f["index"] for f in by_id["hh-harmless-0"]["flagged"]] == [1]  # only the flagged samples are read
    assert [f["index"] for f in by_id["hh-harmless-1"]["flagged"]] == [1]  # an apology is screened in
    with pytest.raises(SystemExit, match="field 'label'"):
        pair_audit.score_requests(out)
    for it in items:
        for f in it["flagged"]:
            f["label"] = "decline" if f["response"] in (refuse, also_refuse) else "other"
    out.write_text("".join(json.dumps(it) + "\n" for it in items))
    r = pair_audit.score_requests(out, resamples=200)
    # requests 0, 3 and 4 draw a decline; the chosen one declines in 0 and 4, the rejected one in 3;
    # chance is the mean of their declining shares (1/4, 1/4, 2/6), not the pooled share or 1/n
    assert r["requests_with_a_decline"][0] == 0.6 and r["samples_decline"] == round(4 / 22, 3)
    assert r["chosen_declines"][0] == round(2 / 3, 3) and r["rejected_declines"][0] == round(1 / 3, 3)
    assert r["chance"][0] == round((1 / 4 + 1 / 4 + 1 / 3) / 3, 3)
    assert r["net_pairs_against_a_decline"][0] == -1.0  # one pair rejects a decline, two choose one
    with pytest.raises(SystemExit, match="holds labels"):  # a new draw never overwrites the reader's labels
        pair_audit.draw_requests(tmp_path, "hh-harmless", out, requests=10)
    # a rebuilt run is refused, even where only an unflagged sample changed (it might now decline)
    for changed in ((0, 1, "Rebuilt."), (2, 0, refuse)):
        rebuilt = {i: list(v) for i, v in samples.items()}
        rebuilt[changed[0]][changed[1]] = changed[2]
        (tmp_path / "scores.jsonl").write_text("".join(
            json.dumps({**s, "responses": rebuilt[i]}) + "\n" for i, s in zip(samples, scores)))
        with pytest.raises(SystemExit, match=f"hh-harmless-{changed[0]} is not in"):
            pair_audit.score_requests(out)


def test_request_audit_reads_another_sampling_of_the_same_requests(tmp_path):
    refuse = "I'm sorry, I can't help with that."
    rows = [{"id": f"hh-harmless-{i}", "prompt": "p", "messages": [{"role": "user", "content": f"request {i}"}],
             "responses": ["A.", "B."]} for i in range(3)]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"id": r["id"], "chosen_index": 0, "rejected_index": 1})
                                                  + "\n" for r in rows))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"id": r["id"], "messages": r["messages"]}) + "\n"
                                                    for r in rows + [{**rows[0], "id": "hh-helpful-0"}]))
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({**r, "responses": [refuse, "C."] if i == 0 else ["D.", "E."]}) + "\n"
                             for i, r in enumerate(rows[:2])))
    out, prompts = tmp_path / "requests.jsonl", tmp_path / "drawn.jsonl"
    with pytest.raises(SystemExit, match="no samples for 1 drawn requests"):
        pair_audit.draw_requests(tmp_path, "hh-harmless", out, requests=3, samples=other)
    pair_audit.draw_requests(tmp_path, "hh-harmless", out, requests=2, seed=1, prompts_out=prompts)
    drawn = {json.loads(line)["id"] for line in prompts.open()}
    assert drawn == {json.loads(line)["id"] for line in out.open()} and len(drawn) == 2  # the same requests
    rows_by_id = {r["id"]: r for r in rows}
    other.write_text("".join(json.dumps({**rows_by_id[i], "responses": [refuse, "C."]}) + "\n" for i in sorted(drawn)))
    pair_audit.draw_requests(tmp_path, "hh-harmless", out, requests=2, seed=1, samples=other)
    items = [json.loads(line) for line in out.open()]
    for it in items:
        for f in it["flagged"]:
            f["label"] = "decline"
    out.write_text("".join(json.dumps(it) + "\n" for it in items))
    r = pair_audit.score_requests(out, resamples=50)
    # no pairs for another sampling: the shares of declines only
    assert r["requests_with_a_decline"][0] == 1.0 and r["samples_decline"] == 0.5 and r["chance"][0] == 0.5
    assert "chosen_declines" not in r and "rejected_declines" not in r


def test_decline_within_counts_only_the_first_k_samples():
    declines = [{0}, {7}, set(), {11, 3}]
    assert list(pair_audit.decline_within(declines, [1, 4, 6, 12])) == [0.25, 0.5, 0.5, 0.75]


def _spec(path, name, conforming, violating):
    path.write_text(json.dumps({"name": name, "description": "d", "principles": [
        {"name": "p", "question": "q?", "conforming": conforming, "violating": violating}]}))
    return str(path)


def test_a_spec_is_read_against_the_labels_before_training(tmp_path):
    from udasa.pairs import PairConfig, build_pairs
    from udasa.uncertainty.config import ScoreConfig
    from udasa.uncertainty.scorer import score

    decline, answer = "sorry i cannot help with that request", "here is a recipe with rice and beans"
    texts = [[answer, decline, "here is a soup recipe"], [decline, answer, "a rice dish"],
             [decline, "a bean stew", "the recipe uses corn"]]
    samples = [{"id": f"hh-helpful-{i}", "prompt": "p", "messages": [{"role": "user", "content": f"recipe {i}"}],
                "responses": r, "num_tokens": [5] * len(r), "logprob_mean": [-1.0, -1.5, -2.0], "spec": "helpful"}
               for i, r in enumerate(texts)]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    settings = {"spec": "helpful", "embedder": "bow", "weights": {"semantic": 0, "factual": 0, "value": 1},
                "cache_parts": False, "model": None}
    score(tmp_path / "samples.jsonl", tmp_path / "scores.jsonl", ScoreConfig(**settings), progress=False)
    build_pairs(tmp_path / "scores.jsonl", tmp_path / "pairs.jsonl", PairConfig())
    (tmp_path / "recipe.resolved.json").write_text(json.dumps({"score": settings}))
    out = tmp_path / "requests.jsonl"
    pair_audit.draw_requests(tmp_path, "hh-helpful", out, requests=10)
    items = [json.loads(line) for line in out.open()]
    for it in items:
        for f in it["flagged"]:
            f["label"] = "decline" if f["response"] == decline else "other"
    out.write_text("".join(json.dumps(it) + "\n" for it in items))
    as_run = pair_audit.score_requests(out, resamples=20)
    # re-scored under the run's own spec, the samples pair exactly as the run paired them
    ran = {p["id"]: (p["chosen_index"], p["rejected_index"])
           for p in map(json.loads, (tmp_path / "pairs.jsonl").open())}
    assert pair_audit.rescored_pairs(tmp_path, list(ran), "helpful") == ran
    against = _spec(tmp_path / "against.json", "against", [answer, "a bean stew"], [decline])
    r = pair_audit.score_requests(out, resamples=20, spec=against)
    assert r["requests_with_a_decline"][0] == 1.0 and r["unpaired_under_spec"] == 0
    assert r["rejected_declines"][0] == 1.0 and r["chosen_declines"][0] == 0.0
    assert r["net_pairs_against_a_decline"][0] == 3.0
    favour = _spec(tmp_path / "favour.json", "favour", [decline], [answer, "a bean stew"])
    r = pair_audit.score_requests(out, resamples=20, spec=favour)
    assert r["chosen_declines"][0] == 1.0 and r["net_pairs_against_a_decline"][0] == -3.0
    assert as_run["chance"] == r["chance"]  # chance does not depend on the pairs; the readings above do
    # a spec under which every sample scores alike leaves no pair (Δu = 0, the run's drop rule)
    blind = _spec(tmp_path / "blind.json", "blind", ["zzz"], ["qqq"])
    assert set(pair_audit.rescored_pairs(tmp_path, list(ran), blind).values()) == {None}
    with pytest.raises(SystemExit, match="no labelled request has a pair"):
        pair_audit.score_requests(out, spec=blind)
    # the settings of a folder scored outside `udasa run` come from the file it was scored with, and must be those
    (tmp_path / "recipe.resolved.json").unlink()
    with pytest.raises(SystemExit, match="pass --score-config"):
        pair_audit.score_requests(out, spec=favour)
    (tmp_path / "score.yaml").write_text(json.dumps(settings))
    r = pair_audit.score_requests(out, resamples=20, spec=favour, score_config=tmp_path / "score.yaml")
    assert r["chosen_declines"][0] == 1.0 and r["rejected_declines"][0] == 0.0
    (tmp_path / "other.yaml").write_text(json.dumps({**settings, "normalization": "minmax"}))
    with pytest.raises(SystemExit, match="not the settings"):
        pair_audit.score_requests(out, spec=favour, score_config=tmp_path / "other.yaml")
    with pytest.raises(SystemExit, match="--spec"):
        pair_audit.score_requests(out, spec=str(tmp_path / "missing.yaml"), score_config=tmp_path / "score.yaml")
    summary = json.loads((tmp_path / "pairs.summary.json").read_text())
    summary["config"]["selection"] = "random"
    (tmp_path / "pairs.summary.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="not chosen by u"):
        pair_audit.score_requests(out, spec=against, score_config=tmp_path / "score.yaml")
