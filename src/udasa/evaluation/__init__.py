"""Evaluation: tasks as versioned YAML (``tasks/``), pure metrics, independent evaluator reward
models trained on human labels, a resumable runner (``udasa eval``) and a report (``udasa report``)."""
from udasa.evaluation.reward_models import evaluator_ids, hh_split, policy_hh_ids, rm_train_ids
from udasa.evaluation.runner import EvalConfig, evaluate

__all__ = ["EvalConfig", "evaluate", "rm_train_ids", "evaluator_ids", "policy_hh_ids", "hh_split"]
