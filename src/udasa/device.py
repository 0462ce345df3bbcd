"""Where models run: one ``device`` and ``dtype`` setting for the whole pipeline.

``device``: "auto" (the first CUDA device when there is one, else the CPU), "cpu", "cuda" or
"cuda:N". ``dtype``: "auto" (bfloat16 on a CUDA device that supports it, else float32),
"float32", "bfloat16" or "float16". Inference (sampling, log-probs, judging, evaluation) runs the
weights in that dtype; training keeps float32 master weights and uses the dtype for autocast.
Lexicon and linear evaluators (VADER, profanity-check) and the bag-of-words test embedder always
run on the CPU.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from udasa.errors import InputError

DEVICE_HELP = "auto, cpu, cuda or cuda:N"
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, field: str = "device") -> str:
    """Validate the spelling only (no torch import): configs call this when they are built."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise InputError(f"must be {DEVICE_HELP} (got {name!r})", field=field)
    return name


def check_dtype_name(name: str, field: str = "dtype") -> str:
    if name not in DTYPES:
        raise InputError(f"must be one of {', '.join(DTYPES)} (got {name!r})", field=field)
    return name


def resolve_device(name: str = "auto"):
    """The torch device for a setting; a CUDA device that does not exist is an error, not a fallback."""
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"'{name}' was asked for but this machine has no CUDA device (torch "
                         f"{torch.__version__}); use device: cpu or auto", field="device")
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise InputError(f"'{name}' does not exist: {torch.cuda.device_count()} CUDA device(s)", field="device")
    return torch.device("cuda", index)


def resolve_dtype(name: str, device):
    """The torch dtype for a setting on ``device`` ("auto": bfloat16 on a capable GPU, else float32)."""
    import torch

    check_dtype_name(name)
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


@dataclass(frozen=True)
class Placement:
    """A resolved (device, dtype) pair, and how run cards and reports write it."""

    device: object  # torch.device
    dtype: object  # torch.dtype

    @classmethod
    def of(cls, device: str = "auto", dtype: str = "auto") -> "Placement":
        dev = resolve_device(device)
        return cls(dev, resolve_dtype(dtype, dev))

    def describe(self) -> dict:
        return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}
