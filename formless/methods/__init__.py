"""Unlearning baselines (GA, GD, KL, NPO, SimNPO, RMU, RT) behind one interface, for comparison
with ROCR: data from the knowledge base, one loss per method, one training loop."""

from formless.methods.data import (
    Example,
    check_disjoint,
    forget_examples,
    generate_descriptions,
    retain_examples,
    split_data,
)
from formless.methods.registry import METHODS, LossInputs, Method, make_method, method_names, register
from formless.methods.train import TrainConfig, TrainResult, train

__all__ = [
    "METHODS",
    "Example",
    "LossInputs",
    "Method",
    "TrainConfig",
    "TrainResult",
    "check_disjoint",
    "forget_examples",
    "generate_descriptions",
    "make_method",
    "method_names",
    "register",
    "retain_examples",
    "split_data",
    "train",
]
