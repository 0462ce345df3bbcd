"""Evaluation: tasks as versioned YAML (``tasks/``), pure metrics, independent evaluator reward
models trained on human labels, a resumable runner (``udasa eval``) and a report (``udasa report``)."""
from udasa.evaluation.runner import EvalConfig, evaluate

__all__ = ["EvalConfig", "evaluate"]
