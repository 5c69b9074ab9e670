"""Loading models (built-in offline packages, local directories, hub ids) and knowing their layout."""

from formless.models.adapters import ArchitectureAdapter, adapter_for, supported_architectures
from formless.models.loading import LoadedModel, load_model
from formless.models.registry import BUILTIN_MODELS, DEFAULT_MODEL

__all__ = [
    "ArchitectureAdapter",
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "LoadedModel",
    "adapter_for",
    "load_model",
    "supported_architectures",
]
