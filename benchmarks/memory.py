"""Peak memory of sampling and scoring as the input grows (they stream: memory should stay flat).

    python benchmarks/memory.py [--sizes 1000 10000 100000] [--write]

Each stage runs in a fresh subprocess on the tiny random model (tests' fixture) with the hashing
bag-of-words embedder, so the figure is the pipeline's own memory, not a big model's weights.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import write_section  # noqa: E402

CHILD = r"""
import resource, sys, time, torch
torch.set_num_threads(1)
stage, model, src, out = sys.argv[1:5]
t = time.time()
if stage == "sample":
    from udasa.sampling import sample
    sample(src, out, model=model, n=2, max_new_tokens=2, batch_size=512, progress=False)
else:
    from udasa.uncertainty import score
    score(src, out, embedder="bow", progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time() - t)
"""


def run_child(*args) -> tuple[float, float]:
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    kb, secs = r.stdout.split()[-2:]
    return int(kb) / 1024, float(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    from udasa.testing import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = str(build_tiny_model(d / "tiny"))
        for n in a.sizes:
            prompts = d / f"p{n}.jsonl"
            with open(prompts, "w") as f:
                for i in range(n):
                    f.write(json.dumps({"id": i, "prompt": f"prompt number {i} asks about item {i % 97}"}) + "\n")
            s_mb, s_t = run_child("sample", model, str(prompts), str(d / f"s{n}.jsonl"))
            u_mb, u_t = run_child("score", model, str(d / f"s{n}.jsonl"), str(d / f"u{n}.jsonl"))
            rows.append((n, s_mb, s_t, u_mb, u_t))
            print(f"{n:>7} prompts: sample peak {s_mb:.0f} MiB ({s_t:.0f} s), score peak {u_mb:.0f} MiB ({u_t:.0f} s)")
    cmd = "python benchmarks/memory.py " + " ".join(sys.argv[1:])
    body = (f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}). Peak resident memory (ru_maxrss) of one process per "
            "stage; tiny random model, 2 samples per prompt, 2 new tokens, bag-of-words embedder.\n\n"
            "| prompts | sampling peak RSS (MiB) | sampling s | scoring peak RSS (MiB) | scoring s |\n|---|---|---|---|---|\n")
    body += "".join(f"| {n} | {s:.0f} | {st:.0f} | {u:.0f} | {ut:.0f} |\n" for n, s, st, u, ut in rows)
    growth = (rows[-1][1] - rows[0][1], rows[-1][3] - rows[0][3])
    body += (f"\nFrom {rows[0][0]} to {rows[-1][0]} prompts peak memory grows by {growth[0]:.0f} MiB (sampling) "
             f"and {growth[1]:.0f} MiB (scoring).")
    print(body)
    if a.write:
        write_section("Memory: streaming sampling and scoring", body)


if __name__ == "__main__":
    main()
