"""ROCR: Rank-One Concept Redirection (closed-form MLP edits). Spec: shared/design/rocr.md."""

from formless.rocr.config import DEFAULT_REDIRECT, ROCRConfig, default_layers
from formless.rocr.edit import EditResult, apply_rocr
from formless.rocr.stats import layer_statistics
from formless.rocr.update import rocr_delta

__all__ = [
    "DEFAULT_REDIRECT",
    "EditResult",
    "ROCRConfig",
    "apply_rocr",
    "default_layers",
    "layer_statistics",
    "rocr_delta",
]
