"""Stage 1: draw several responses per prompt, with their token log-probs."""
from udasa.sampling.config import SampleConfig
from udasa.sampling.prompts import read_prompts
from udasa.sampling.sampler import Policy, sample

__all__ = ["SampleConfig", "Policy", "read_prompts", "sample"]
