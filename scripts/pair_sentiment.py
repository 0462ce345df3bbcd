"""Does the training signal point towards positive sentiment? VADER on the chosen vs rejected texts of a pairs file.

    python scripts/pair_sentiment.py runs/cpu-sentiment/pairs.jsonl [more pairs files ...]

VADER is the sentiment task's evaluator and plays no part in scoring or pairing, so this checks the
label-free preference against an independent measure (VADER's own accuracy is in docs/evaluation.md).
"""
import sys

import numpy as np

from udasa.evaluation.metrics import vader_compound
from udasa.io import iter_jsonl
from udasa.stats import bootstrap_ci

for path in sys.argv[1:]:
    pairs = [r for _, r in iter_jsonl(path)]
    chosen = np.array(vader_compound([p["chosen"] for p in pairs]))
    rejected = np.array(vader_compound([p["rejected"] for p in pairs]))
    diff = chosen - rejected
    est, lo, hi = bootstrap_ci(diff)
    wins = float(np.mean(np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))))
    print(f"{path}: {len(pairs)} pairs; VADER chosen {chosen.mean():+.3f}, rejected {rejected.mean():+.3f}; "
          f"chosen - rejected {est:+.3f} [{lo:+.3f}, {hi:+.3f}]; chosen more positive in {100 * wins:.0f}% of pairs")
