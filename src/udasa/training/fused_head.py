"""Score only the completion tokens in TRL's fused LM head on the CPU.

TRL's DPO loss computes each token's log-probability through a chunked LM head over the whole
vocabulary (``trl.kernels.chunked_logprob``). On CUDA with Triton it scores only the completion
positions; elsewhere it scores every position, prompt and padding included, so that devices that
compile per shape (Neuron, XLA) see one shape. The CPU compiles nothing, and in our pairs the prompt
is most of the sequence (an HH dialogue of ~200 tokens before a 48-token response), so the head,
about 40% of a CPU step, mostly scores tokens whose log-probabilities are then multiplied by zero.
Inside this context the CPU takes the compact path too. The result is the same per-token
log-probabilities at the completion positions (up to float summation order) and zeros elsewhere.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def completion_only_lm_head(enabled: bool = True):
    """Make TRL's fused LM head score only labelled (completion) positions on the CPU, for this block.

    ``enabled=False`` (e.g. under ``torch_compile``, where the data-dependent shapes of the compact path would
    recompile at every batch) leaves TRL as it is."""
    if enabled:
        try:
            import trl.trainer.utils as trl_utils

            original = trl_utils._use_triton
        except (ImportError, AttributeError):  # another TRL layout: leave it as it is
            enabled = False
    if not enabled:
        yield
        return
    trl_utils._use_triton = lambda device: original(device) or device.type == "cpu"
    try:
        yield
    finally:
        trl_utils._use_triton = original
