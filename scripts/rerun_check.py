"""Did a rerun draw the texts that were labelled? Compares the texts in label files (docs/audits/) with the
files a run holds now, before any label is read against them again.

    python scripts/rerun_check.py docs/audits/requests-harmless.jsonl docs/audits/pairs-harmless.jsonl ...

Each label file names where its texts came from: requests files (`pair_audit.py draw-requests`) a run and,
for another sampling, a samples file (each flagged sample is compared with the sample of the same index);
pair files (`pair_audit.py draw`) the run's pairs.jsonl (chosen and rejected); refusal files
(`refusal_audit.py draw`) an evaluation folder (its generations, or their copy in docs/runs/ where the run
folder is gone, as `refusal_audit.py score` reads them). For each file it prints how many labelled texts
are identical, how many differ (with the median number of characters they share before diverging), and
how many have nothing to compare with (no such file or item); for requests files also how many requests
now have a flagged sample that nobody labelled (`pair_audit.py score-requests` refuses those too); for pair
files how many of the different texts are still among the run's samples (drawn again, but scoring or
another changed sample of the request made another pair). The audits' `score` commands refuse any such
difference; this says how far a rerun got.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from refusal_audit import generations_path, stratum
from results_section import run_path


def _records(path: Path) -> dict[str, dict] | None:
    return {r["id"]: r for r in map(json.loads, path.open())} if path.exists() else None


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
        source = run_path(item["samples"]) if item.get("samples") else run_path(item["run"]) / "samples.jsonl"
        return source, [(item["id"], ("responses", f["index"]), f["response"]) for f in item["flagged"]]
    if "chosen" in item:  # a pair
        return (run_path(item["run"]) / "pairs.jsonl",
                [(item["id"], ("chosen",), item["chosen"]), (item["id"], ("rejected",), item["rejected"])])
    return generations_path(item["eval"], item["task"]), [(item["id"], ("response",), item["response"])]


def compare(paths: list[Path]) -> dict[str, dict]:
    report, sources = {}, {}
    for path in paths:
        counts = {"identical": 0, "different": 0, "absent": 0, "shared_chars": [], "newly_flagged": 0,
                  "still_sampled": 0}
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
                    if "chosen" in item:  # the text drawn again, but another response made the pair
                        run_samples = run_path(item["run"]) / "samples.jsonl"
                        if run_samples not in sources:
                            sources[run_samples] = _records(run_samples)
                        counts["still_sampled"] += text in ((sources[run_samples] or {}).get(rec_id) or {}).get(
                            "responses", [])
            if "flagged" in item:  # a sample the rerun changed into a flagged one has no label at all
                responses = _at((sources[source] or {}).get(item["id"]), ("responses",)) or []
                labelled = {f["index"] for f in item["flagged"]}
                counts["newly_flagged"] += any(stratum(r) != "rest" and i not in labelled
                                               for i, r in enumerate(responses))
        report[str(path)] = counts
    return report


def main(paths: list[str]) -> None:
    for path, c in compare([Path(p) for p in paths]).items():
        shared = f", sharing a median {statistics.median(c['shared_chars']):g} characters before they diverge" \
            if c["shared_chars"] else ""
        flagged = f"; {c['newly_flagged']} requests with a flagged sample nobody labelled" \
            if c["newly_flagged"] else ""
        if c["still_sampled"]:
            flagged += (f"; {c['still_sampled']} of the different pair texts were drawn again but another "
                        "response made the pair")
        print(f"{path}: {c['identical']} identical, {c['different']} different{shared}, {c['absent']} with "
              f"nothing to compare (file or item missing){flagged}")


if __name__ == "__main__":
    main(sys.argv[1:])
