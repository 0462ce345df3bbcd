"""One DPO step on the accelerator: full fine-tuning of a SmolLM2-135M-shaped model, bf16 autocast over float32
master weights, reference log-probs precomputed (udasa's cache), batch 16 x up to 256 tokens.

    python benchmarks/training_gpu.py [--steps 10 --batch-size 16 --write]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    import torch

    from sampling_gpu import smollm2_shaped
    from udasa.device import resolve_device
    from udasa.testing import build_tiny_model
    from udasa.training import TrainConfig, train

    device = resolve_device(a.device)
    work = Path(tempfile.mkdtemp(prefix="udasa-gpu-train-"))
    model, what = smollm2_shaped(torch.float32, "cpu")
    folder = work / "model"
    model.save_pretrained(folder, safe_serialization=True)
    tok_src = build_tiny_model(work / "tok")  # a tokenizer with a chat template; the pairs are plain text
    for f in tok_src.glob("*token*"):
        (folder / f.name).write_bytes(f.read_bytes())
    words = "the film was good bad long short fine great awful slow quick".split()
    pairs = [{"id": f"p{i}", "messages": [{"role": "user", "content": " ".join(words[j % 12] for j in range(i, i + 8))}],
              "chosen": " ".join(words[(i + j) % 12] for j in range(100)), "rejected": " ".join(
                  words[(i + 2 * j) % 12] for j in range(100)), "delta_u": 0.5, "stage": "all", "stage_index": 0,
              "format": "plain"} for i in range(a.batch_size * (a.steps + 2))]
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    cfg = TrainConfig(model=str(folder), device=a.device, dtype="auto", max_steps=a.steps,
                      per_device_train_batch_size=a.batch_size, max_length=a.max_length, save_steps=1000,
                      ref_cache_dir=str(work / "cache"), logging_steps=1)
    t0 = time.perf_counter()
    train(work / "pairs.jsonl", work / "out", cfg)
    wall = time.perf_counter() - t0
    rec = json.loads((work / "out" / "stage-1-all" / "udasa_stage.json").read_text())
    per_step = rec["train_runtime_s"] / rec["steps"]
    mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    body = f"""Command: `python benchmarks/training_gpu.py {' '.join(sys.argv[1:])}` on {name} ({machine()}).
{what}, full fine-tuning, {cfg.placement().describe()['dtype']} autocast over float32 weights, reference log-probs
precomputed, batch {a.batch_size} pairs of up to {a.max_length} tokens: **{per_step:.3f} s per DPO step**
({rec['steps']} steps; {wall:.0f} s wall with loading and the reference pass; peak memory {mem:.1f} GiB)."""
    print(body)
    if a.write:
        write_section("GPU DPO step", body)


if __name__ == "__main__":
    main()
