"""Does the training signal point towards positive sentiment? VADER on the chosen vs rejected texts of a pairs file.

    python scripts/pair_sentiment.py runs/cpu-sentiment/pairs.jsonl [more pairs files ...]
    python scripts/pair_sentiment.py PAIRS --trained MODEL/pairs.trained.jsonl   # per stage, as trained

VADER is the sentiment task's evaluator and plays no part in scoring or pairing, so this checks the
label-free preference against an independent measure (VADER's own accuracy is in docs/evaluation.md).
With ``--trained`` (the adaptive curriculum's record of which stage each pair was trained in), each stage's
agreement is shown both for the static split and as trained (the same figures as the run report).
"""
import argparse

import numpy as np

from udasa.adaptive import as_trained
from udasa.diagnostics import pair_diagnostics
from udasa.evaluation.metrics import vader_compound
from udasa.io import iter_jsonl
from udasa.stats import bootstrap_ci

ap = argparse.ArgumentParser()
ap.add_argument("pairs", nargs="+")
ap.add_argument("--trained", help="pairs.trained.jsonl of an adaptive run")
a = ap.parse_args()
for path in a.pairs:
    pairs = [r for _, r in iter_jsonl(path)]
    chosen = np.array(vader_compound([p["chosen"] for p in pairs]))
    rejected = np.array(vader_compound([p["rejected"] for p in pairs]))
    diff = chosen - rejected
    est, lo, hi = bootstrap_ci(diff)
    wins = float(np.mean(np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))))
    print(f"{path}: {len(pairs)} pairs; VADER chosen {chosen.mean():+.3f}, rejected {rejected.mean():+.3f}; "
          f"chosen - rejected {est:+.3f} [{lo:+.3f}, {hi:+.3f}]; chosen more positive in {100 * wins:.1f}% of pairs")
    if a.trained:
        static = pair_diagnostics(pairs, n_resamples=10)["stages"]
        trained = pair_diagnostics(as_trained(pairs, a.trained), n_resamples=10)["stages"]
        def share(s: dict) -> str:  # VADER agreement of a stage (plain-text pairs only)
            v = s.get("chosen_more_positive")
            return f"{100 * v:.1f}% of {s['pairs']}" if v is not None else f"– ({s.get('pairs', 0)} pairs)"

        for stage, s in static.items():
            print(f"  {stage}: static split {share(s)}; as trained {share(trained.get(stage, {}))}")
