"""scripts/rerun_check.py: which labelled texts a rerun drew again."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import rerun_check  # noqa: E402


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_counts_identical_different_and_absent_texts_of_each_label_format(tmp_path):
    run = tmp_path / "runs" / "x"
    _jsonl(run / "samples.jsonl", [{"id": "q1", "responses": ["I can't help.", "Sure: step one"]}])
    _jsonl(run / "pairs.jsonl", [{"id": "q1", "chosen": "I can't help.", "rejected": "Sure: step one"}])
    _jsonl(run / "eval" / "generations-harmless.jsonl", [{"id": "a-0", "response": "No."}])
    requests = _jsonl(tmp_path / "requests.jsonl", [
        {"run": str(run), "id": "q1", "n": 2, "flagged": [{"index": 0, "response": "I can't help.", "label": "decline"},
                                                          {"index": 1, "response": "Sure: step two", "label": "other"},
                                                          {"index": 5, "response": "gone", "label": "other"}]},
        {"run": str(run), "id": "q9", "n": 2, "flagged": [{"index": 0, "response": "x", "label": "other"}]}])
    pairs = _jsonl(tmp_path / "pairs.jsonl", [{"run": str(run), "id": "q1", "chosen": "I can't help.",
                                               "rejected": "Sure: step one", "label": "chosen"}])
    refusals = _jsonl(tmp_path / "refusal.jsonl", [
        {"task": "harmless", "model": "m", "eval": str(run / "eval"), "id": "a-0", "response": "No.", "label": "r"},
        {"task": "helpful", "model": "m", "eval": str(run / "eval"), "id": "b-0", "response": "Hi", "label": "c"}])
    other = _jsonl(tmp_path / "other-sampling.jsonl", [{"id": "q1", "responses": ["x", "I can't help.", "I cannot."]}])
    elsewhere = _jsonl(tmp_path / "requests-other.jsonl", [  # labels of another sampling, named by `samples`
        {"run": str(run), "samples": str(other), "id": "q1", "n": 3,
         "flagged": [{"index": 1, "response": "I can't help.", "label": "decline"}]}])
    report = rerun_check.compare([requests, pairs, refusals, elsewhere])
    assert report[str(requests)] == {"identical": 1, "different": 1, "absent": 2, "shared_chars": [len("Sure: step ")],
                                     "newly_flagged": 0, "still_sampled": 0}
    assert report[str(pairs)] == {"identical": 2, "different": 0, "absent": 0, "shared_chars": [],
                                  "newly_flagged": 0, "still_sampled": 0}
    assert report[str(refusals)] == {"identical": 1, "different": 0, "absent": 1, "shared_chars": [],
                                     "newly_flagged": 0, "still_sampled": 0}
    # sample 2 ("I cannot.") is flagged now but was not labelled
    assert report[str(elsewhere)] == {"identical": 1, "different": 0, "absent": 0, "shared_chars": [],
                                      "newly_flagged": 1, "still_sampled": 0}
    _jsonl(run / "pairs.jsonl", [{"id": "q1", "chosen": "I can't help you.", "rejected": "Sure: step one"}])
    assert rerun_check.compare([pairs])[str(pairs)]["shared_chars"] == [len("I can't help")]
    assert rerun_check.compare([pairs])[str(pairs)]["still_sampled"] == 1  # "I can't help." is still sample 0
    _jsonl(run / "samples.jsonl", [{"id": "q1", "responses": ["I can't help you.", "Sure: step one"]}])
    assert rerun_check.compare([pairs])[str(pairs)]["still_sampled"] == 0
    _jsonl(run / "pairs.jsonl", [{"id": "q2", "chosen": "a", "rejected": "b"}])  # the labelled pair is gone
    assert rerun_check.compare([pairs])[str(pairs)]["absent"] == 2


def test_reads_the_kept_copy_of_a_lost_evaluation_and_prints_medians(tmp_path, monkeypatch, capsys):
    import results_section
    kept = tmp_path / "docs" / "runs"
    _jsonl(kept / "exp" / "eval" / "generations-harmless.jsonl", [{"id": "a-0", "response": "Not now."},
                                                                  {"id": "a-1", "response": "No way at all"}])
    monkeypatch.setattr(results_section, "ARCHIVE", kept)
    monkeypatch.chdir(tmp_path)
    labels = _jsonl(tmp_path / "refusal.jsonl", [
        {"task": "harmless", "model": "m", "eval": "runs/exp/eval", "id": "a-0", "response": "Not ever.", "label": "r"},
        {"task": "harmless", "model": "m", "eval": "runs/exp/eval", "id": "a-1", "response": "No", "label": "r"}])
    assert rerun_check.compare([labels])[str(labels)]["shared_chars"] == [4, 2]
    rerun_check.main([str(labels)])
    assert "0 identical, 2 different, sharing a median 3 characters" in capsys.readouterr().out
