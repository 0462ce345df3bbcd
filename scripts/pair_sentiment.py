"""Does the training signal point towards positive sentiment? VADER on the chosen vs rejected texts of a pairs file.

    python scripts/pair_sentiment.py runs/cpu-sentiment/pairs.jsonl [more pairs files ...]
    python scripts/pair_sentiment.py PAIRS --trained MODEL/pairs.trained.jsonl   # per stage, as trained

VADER is the sentiment task's evaluator and plays no part in scoring or pairing, so this checks the
label-free preference against an independent measure (VADER's own accuracy is in docs/evaluation.md).
With ``--trained`` (the adaptive curriculum's record of which stage each pair was trained in), the pairs
are grouped by the stage they were trained in, next to the stage the static split gave them.
"""
import argparse

import numpy as np

from udasa.evaluation.metrics import vader_compound
from udasa.io import iter_jsonl
from udasa.stats import bootstrap_ci


def more_positive(pairs: list[dict]) -> tuple[np.ndarray, float]:
    """VADER(chosen) - VADER(rejected) per pair, and the share of pairs where it is > 0 (ties count half)."""
    diff = np.array(vader_compound([p["chosen"] for p in pairs])) - np.array(vader_compound([p["rejected"] for p in pairs]))
    return diff, float(np.mean(np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs", nargs="+")
    ap.add_argument("--trained", help="pairs.trained.jsonl of an adaptive run (with a single pairs file)")
    a = ap.parse_args()
    for path in a.pairs:
        pairs = [r for _, r in iter_jsonl(path)]
        diff, wins = more_positive(pairs)
        est, lo, hi = bootstrap_ci(diff)
        print(f"{path}: {len(pairs)} pairs; chosen - rejected {est:+.3f} [{lo:+.3f}, {hi:+.3f}]; "
              f"chosen more positive in {100 * wins:.1f}% of pairs")
        if a.trained:
            by_id = {p["id"]: p for p in pairs}
            trained = {r["id"]: r["stage"] for _, r in iter_jsonl(a.trained)}
            for stage in dict.fromkeys(p["stage"] for p in pairs):
                static = [p for p in pairs if p["stage"] == stage]
                as_trained = [by_id[i] for i, s in trained.items() if s == stage]
                print(f"  {stage}: static split {100 * more_positive(static)[1]:.1f}% of {len(static)}; "
                      f"as trained {100 * more_positive(as_trained)[1]:.1f}% of {len(as_trained)}")


if __name__ == "__main__":
    main()
