"""Evaluation: ground truth, l1/l2, insertion/deletion, baselines (captum, shap), timing."""

from simshap.evaluation.insertion_deletion import InsertionDeletionResult, insertion_deletion
from simshap.evaluation.metrics import attribution_errors, explained_class_values
from simshap.evaluation.tabular import estimators_at_budgets
from simshap.evaluation.timing import seconds_per_instance, timed
from simshap.evaluation.truth import ground_truth

__all__ = [
    "InsertionDeletionResult",
    "attribution_errors",
    "estimators_at_budgets",
    "explained_class_values",
    "ground_truth",
    "insertion_deletion",
    "seconds_per_instance",
    "timed",
]
