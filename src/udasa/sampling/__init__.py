"""Stage 1: draw several responses per prompt, with their token log-probs."""
from udasa.sampling.config import SampleConfig
from udasa.sampling.prompts import read_prompts
from udasa.policy import Policy
from udasa.sampling.sampler import respond, sample

__all__ = ["SampleConfig", "Policy", "read_prompts", "respond", "sample"]
