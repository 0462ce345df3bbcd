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
    report = rerun_check.compare([requests, pairs, refusals])
    assert report[str(requests)] == {"identical": 1, "different": 1, "absent": 2, "shared_chars": [len("Sure: step ")]}
    assert report[str(pairs)] == {"identical": 2, "different": 0, "absent": 0, "shared_chars": []}
    assert report[str(refusals)] == {"identical": 1, "different": 0, "absent": 1, "shared_chars": []}
