"""Did a rerun draw the texts that were labelled? Compares the texts in label files (docs/audits/) with the
files a run holds now, before any label is read against them again.

    python scripts/rerun_check.py docs/audits/requests-harmless.jsonl docs/audits/pairs-harmless.jsonl ...

Each label file names where its texts came from: requests files (`pair_audit.py draw-requests`) a run and,
for another sampling, a samples file (each flagged sample is compared with the sample of the same index);
pair files (`pair_audit.py draw`) the run's pairs.jsonl (chosen and rejected); refusal files
(`refusal_audit.py draw`) an evaluation folder (its generations). For each file it prints how many labelled
texts are identical, how many differ (with the characters they share before diverging: sampling reruns
diverge where a draw falls within float rounding of a token boundary, docs/robustness.md), and how many
have nothing to compare with (no such file or item). The audits' `score` commands refuse any difference;
this says how far a rerun got.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _records(path: Path, key: str = "id") -> dict[str, dict] | None:
    return {r[key]: r for r in map(json.loads, path.open())} if path.exists() else None


def _at(record, where: tuple):
    """``record[where[0]][where[1]]...``, or None where a step is missing."""
    for step in where:
        if isinstance(step, int):
            record = record[step] if isinstance(record, list) and step < len(record) else None
        else:
            record = record.get(step) if isinstance(record, dict) else None
    return record


def labelled_texts(item: dict) -> tuple[Path, list[tuple[str, object, str]]]:
    """The file a label item's texts came from, and each text as (record id, where in the record, text)."""
    if "flagged" in item:  # a request and its flagged samples
        source = Path(item.get("samples") or Path(item["run"]) / "samples.jsonl")
        return source, [(item["id"], ("responses", f["index"]), f["response"]) for f in item["flagged"]]
    if "chosen" in item:  # a pair
        return (Path(item["run"]) / "pairs.jsonl",
                [(item["id"], ("chosen",), item["chosen"]), (item["id"], ("rejected",), item["rejected"])])
    return Path(item["eval"]) / f"generations-{item['task']}.jsonl", [(item["id"], ("response",), item["response"])]


def compare(paths: list[Path]) -> dict[str, dict]:
    report, sources = {}, {}
    for path in paths:
        counts = {"identical": 0, "different": 0, "absent": 0, "shared_chars": []}
        for item in map(json.loads, path.open()):
            source, texts = labelled_texts(item)
            if source not in sources:
                sources[source] = _records(source)
            for rec_id, where, text in texts:
                now = _at((sources[source] or {}).get(rec_id), where)
                if not isinstance(now, str):
                    counts["absent"] += 1
                elif now == text:
                    counts["identical"] += 1
                else:
                    counts["different"] += 1
                    counts["shared_chars"].append(len(os.path.commonprefix([now, text])))
        report[str(path)] = counts
    return report


def main(paths: list[str]) -> None:
    for path, c in compare([Path(p) for p in paths]).items():
        shared = sorted(c["shared_chars"])
        median = f", median {shared[len(shared) // 2]} characters shared before they diverge" if shared else ""
        print(f"{path}: {c['identical']} identical, {c['different']} different{median}, {c['absent']} with "
              "nothing to compare (file or item missing)")


if __name__ == "__main__":
    main(sys.argv[1:])
