"""Where each architecture keeps its decoder layers and MLP output projections.

One table of module-name templates (the EasyEdit idea) instead of per-method special cases: an
edit asks the adapter for "layer i", "the MLP output projection of layer i" and "its weight as a
d_model x d_ff matrix", and never needs to know the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from formless.errors import UnsupportedArchitectureError


@dataclass(frozen=True)
class ArchitectureAdapter:
    family: str
    layers: str  # attribute path of the ModuleList of decoder layers
    mlp_out: str  # path of the MLP output projection inside one decoder layer
    transposed: bool = False  # GPT-2's Conv1D stores the weight as (in, out)
    # Gemma 2/3 and OLMo 2 normalise the MLP output before adding it to the residual stream
    # (``h + norm(W a)``); the edit must then go through that norm.
    post_mlp_norm: str | None = None

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        return model.get_submodule(self.layers)

    def num_layers(self, model: nn.Module) -> int:
        return len(self.layer_list(model))

    def layer(self, model: nn.Module, index: int) -> nn.Module:
        return self.layer_list(model)[index]

    def mlp_out_module(self, model: nn.Module, index: int) -> nn.Module:
        return self.layer(model, index).get_submodule(self.mlp_out)

    def post_mlp_norm_module(self, model: nn.Module, index: int) -> nn.Module | None:
        return self.layer(model, index).get_submodule(self.post_mlp_norm) if self.post_mlp_norm else None

    def mlp_out_name(self, index: int) -> str:
        return f"{self.layers}.{index}.{self.mlp_out}.weight"

    def weight(self, model: nn.Module, index: int) -> torch.Tensor:
        """The projection weight as a (d_model, d_ff) view: ``out = W @ a``."""
        w = self.mlp_out_module(model, index).weight
        return w.T if self.transposed else w

    def dims(self, model: nn.Module) -> tuple[int, int]:
        """(d_model, d_ff) of the edited projection."""
        d_model, d_ff = self.weight(model, 0).shape
        return int(d_model), int(d_ff)


_LLAMA_LIKE = ArchitectureAdapter("llama-like", "model.layers", "mlp.down_proj")
# Llama layout plus a norm on the MLP output (Gemma 2/3, OLMo 2: post_feedforward_layernorm).
_POST_NORM = ArchitectureAdapter(
    "post-norm", "model.layers", "mlp.down_proj", post_mlp_norm="post_feedforward_layernorm"
)

# model_type (config.model_type) -> adapter. Several families share the Llama layout.
_ADAPTERS: dict[str, ArchitectureAdapter] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _POST_NORM,
    "gemma3_text": _POST_NORM,
    "gemma3": ArchitectureAdapter(
        "gemma3-multimodal",
        "model.language_model.layers",
        "mlp.down_proj",
        post_mlp_norm="post_feedforward_layernorm",
    ),
    "phi3": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,  # OLMo 1: pre-norm (a LayerNorm without parameters), MLP output added as is
    "olmo2": _POST_NORM,
    "gpt2": ArchitectureAdapter("gpt2", "transformer.h", "mlp.c_proj", transposed=True),
    "gpt_neox": ArchitectureAdapter("gpt_neox", "gpt_neox.layers", "mlp.dense_4h_to_h"),
}


def supported_architectures() -> list[str]:
    return sorted(_ADAPTERS)


def adapter_for(model: nn.Module) -> ArchitectureAdapter:
    """The adapter for ``model``, checked against the model's actual modules."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    adapter = _ADAPTERS.get(model_type or "")
    if adapter is None:
        raise UnsupportedArchitectureError(
            f"architecture '{model_type}' is not supported; supported model types: "
            f"{', '.join(supported_architectures())}"
        )
    try:
        adapter.mlp_out_module(model, 0)
    except AttributeError as exc:
        raise UnsupportedArchitectureError(
            f"model type '{model_type}' does not have the expected module layout "
            f"({adapter.layers}.N.{adapter.mlp_out}): {exc}"
        ) from None
    return adapter
