"""How good is the sentiment evaluator? VADER (compound >= 0.05 = positive) against IMDb's human labels.

    python scripts/vader_accuracy.py [--split test] [--words 48]

Scores whole reviews and, closer to what the sentiment task scores, their first ``--words`` words.
"""
import argparse

import numpy as np

from udasa.data import imdb
from udasa.evaluation.metrics import vader_compound
from udasa.stats import bootstrap_ci

ap = argparse.ArgumentParser()
ap.add_argument("--split", default="test")
ap.add_argument("--words", type=int, default=48)
a = ap.parse_args()
rows = imdb(a.split)
labels = np.array([r["label"] == "pos" for r in rows])
for name, texts in (("whole review", [r["text"] for r in rows]),
                    (f"first {a.words} words", [" ".join(r["text"].split()[:a.words]) for r in rows])):
    pred = np.array(vader_compound(texts)) >= 0.05
    est, lo, hi = bootstrap_ci((pred == labels).astype(float))
    print(f"IMDb {a.split}, {len(rows)} reviews, {name}: VADER accuracy {est:.3f} [{lo:.3f}, {hi:.3f}] "
          f"(positive share: labels {labels.mean():.2f}, VADER {pred.mean():.2f})")
