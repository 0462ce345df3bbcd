"""Helpers shared by the benchmarks: the machine's own matmul limit and a docs/BENCHMARKS.md writer."""
from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def matmul_flops(size: int = 1024, seconds: float = 3.0) -> float:
    """Sustained float32 matmul FLOP/s with torch's current thread count (the machine's practical limit)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - start)


def machine() -> str:
    """The setting of a measurement, load average included: figures taken on a busy machine say so."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, load average {load} at the start")


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of docs/BENCHMARKS.md."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEvery figure here comes from the command shown with it.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
