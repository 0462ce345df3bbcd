"""Configuration of the sampling stage."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from udasa.device import check_device_name, check_dtype_name
from udasa.errors import check_fields, finite_number
from udasa.models import DEFAULT_POLICY


MAX_N = 1024  # responses per prompt; more would not fit a batch and no method here uses them
MAX_NEW_TOKENS = 32768


@dataclass
class SampleConfig:
    """How responses are drawn from the policy.

    Fields:
        model: embedded model name (see ``udasa models list``) or a local Hugging Face model folder.
        n: responses drawn per prompt.
        max_new_tokens: generation budget per response; longer responses end with finish_reason "length".
        temperature: sampling temperature; 0 means greedy (then all n responses are identical).
        top_p: nucleus sampling mass.
        batch_size: sequences per forward pass (prompts per batch = batch_size // n, at least 1).
        seed: base seed; each (prompt id, sample index) gets its own seed derived from it, so results do
            not depend on batching or on where a resumed run restarts.
        max_prompt_tokens: prompts longer than this are cut from the left (keeping the question's end and
            the assistant header) with a warning; None = model context minus max_new_tokens.
        system_prompt: optional system message put before every prompt; None keeps the chat template's own.
        backend: "hf" (transformers, CPU/GPU) or "vllm" (optional extra, GPU).
        device: where the policy runs: "auto" (the first CUDA device if any, else the CPU), "cpu", "cuda",
            "cuda:N"; a recipe's top-level ``device`` fills it.
        dtype: weights' dtype: "auto" (bfloat16 on a capable GPU, else float32), "float32", "bfloat16",
            "float16"; a recipe's top-level ``dtype`` fills it.
        keep_token_logprobs: store every token's log-prob (needed by the factual estimator's token view).
        trust_remote_code: passed to transformers; off unless you ask.
    """

    model: str = DEFAULT_POLICY
    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 0.95
    batch_size: int = 64
    seed: int = 0
    max_prompt_tokens: int | None = None
    system_prompt: str | None = None
    backend: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    keep_token_logprobs: bool = True
    trust_remote_code: bool = False

    def __post_init__(self):
        checks = [
            (1 <= self.n <= MAX_N, "n", f"must be in [1, {MAX_N}]"),
            (1 <= self.max_new_tokens <= MAX_NEW_TOKENS, "max_new_tokens", f"must be in [1, {MAX_NEW_TOKENS}]"),
            (finite_number(self.temperature) and 0 <= self.temperature <= 100, "temperature", "must be in [0, 100]"),
            (0 < self.top_p <= 1, "top_p", "must be in (0, 1]"),
            (1 <= self.batch_size <= 65536, "batch_size", "must be in [1, 65536]"),
            (self.max_prompt_tokens is None or 1 <= self.max_prompt_tokens <= 1_048_576, "max_prompt_tokens",
             "must be in [1, 1048576]"),
            (0 <= self.seed < 2 ** 63, "seed", "must be in [0, 2**63)"),
            (self.backend in ("hf", "vllm"), "backend", "must be 'hf' or 'vllm'"),
        ]
        check_fields(self, checks)
        check_device_name(self.device)
        check_dtype_name(self.dtype)

    def settings(self) -> dict:
        """The fields that change what is sampled (recorded in every output record)."""
        d = asdict(self)
        for k in ("batch_size", "backend", "keep_token_logprobs", "trust_remote_code", "device"):
            d.pop(k)
        return d
