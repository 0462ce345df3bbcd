"""DPO step time with the reference log-prob cache vs TRL's default explicit reference model.

Three one-stage runs of full-weight DPO on the same pairs (HH-RLHF harmless test pairs, their human
chosen/rejected answers), a few optimizer steps each:

  explicit   ref_cache=False: TRL keeps a reference model and runs it at every step (TRL's default)
  cold       ref_cache=True, empty cache: the reference runs once over the pairs, then steps read the cache
  warm       ref_cache=True, cache filled by "cold": the reference model is never loaded

Step time is TRL's ``train_runtime / steps`` (optimizer steps only); "setup" is the rest of the
wall time of the stage (loading, tokenizing, filling the cache). Writes a JSON result and prints a
Markdown table for docs/BENCHMARKS.md.

    nice .venv/bin/python benchmarks/training.py --pairs 16 --steps 4 --threads 2
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def write_pairs(path: Path, n: int) -> None:
    from udasa.data import hh_rlhf

    rows = []
    for r in hh_rlhf("harmless")[:n]:
        rows.append({"id": r["id"], "prompt": r["prompt"], "messages": r["messages"][-1:],  # last turn only
                     "chosen": r["chosen"].strip()[:400], "rejected": r["rejected"].strip()[:400],
                     "stage": "all", "stage_index": 0})
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-training/result.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from udasa.training import TrainConfig, train

    work = Path(tempfile.mkdtemp(prefix="udasa-bench-"))
    pairs = work / "pairs.jsonl"
    write_pairs(pairs, args.pairs)
    results = {}
    try:
        for mode in ("explicit", "cold", "warm"):
            cfg = TrainConfig(model=args.model, ref_cache=mode != "explicit", ref_cache_dir=str(work / "cache"),
                              max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                              max_length=args.max_length, learning_rate=1e-6, save_steps=10_000)
            t0 = time.time()
            train(pairs, work / mode, cfg)
            wall = time.time() - t0
            rec = json.loads((work / mode / "stage-1-all" / "udasa_stage.json").read_text())
            step = rec["train_runtime_s"] / rec["steps"]
            results[mode] = {"steps": rec["steps"], "step_s": round(step, 3), "stage_s": rec["seconds"],
                             "setup_s": round(rec["seconds"] - rec["train_runtime_s"], 2), "wall_s": round(wall, 2),
                             "ref_cache": rec["ref_cache"]}
            print(mode, results[mode], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"args": vars(args), "torch_threads": torch.get_num_threads(), "results": results,
           "speedup_step": round(results["explicit"]["step_s"] / results["warm"]["step_s"], 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| run | steps | step time (s) | stage setup (s) | stage total (s) | ref cache hits/misses |")
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        c = r["ref_cache"]
        hm = f"{c['hits']}/{c['misses']}" if c else "-"
        print(f"| {mode} | {r['steps']} | {r['step_s']} | {r['setup_s']} | {r['stage_s']} | {hm} |")
    print(f"\nstep-time speed-up, explicit / warm cache: {out['speedup_step']}x")


if __name__ == "__main__":
    main()
