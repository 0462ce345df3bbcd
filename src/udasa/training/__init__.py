"""Stage 4: staged preference optimisation (DPO per curriculum stage) on TRL."""
from udasa.training.config import TrainConfig
from udasa.training.trainer import train

__all__ = ["TrainConfig", "train"]
