"""Where a DPO step's time goes: cProfile of the training stage on a finished run's pairs, in one stage.

    python benchmarks/training_profile.py runs/demo [--threads 1] [--top 35]

Reads RUN/recipe.resolved.json and RUN/pairs.jsonl (e.g. after `make demo`), trains all pairs as one stage into
a temporary folder and prints the functions with the largest cumulative time (docs/BENCHMARKS.md, demo).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=35)
    a = ap.parse_args()
    import torch

    from udasa.training import TrainConfig
    from udasa.training.trainer import train

    torch.set_num_threads(a.threads)
    t = json.loads((a.run / "recipe.resolved.json").read_text())["train"]
    cfg = TrainConfig(**{k: v for k, v in t.items() if k in TrainConfig.__dataclass_fields__})
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        with open(pairs, "w") as f:
            for line in open(a.run / "pairs.jsonl"):
                f.write(json.dumps({**json.loads(line), "stage": "all"}) + "\n")
        prof, start = cProfile.Profile(), time.time()
        prof.runcall(train, pairs, Path(tmp) / "out", cfg)
        print(f"wall {time.time() - start:.1f} s")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(a.top)


if __name__ == "__main__":
    main()
