"""Quantization attack: does a forgotten concept come back once the weights are quantized?

Gradient-based unlearning often moves weights by less than one quantization step, so rounding
the edited model to 4 or 8 bits can snap it back to (nearly) the original weights and restore
the "forgotten" knowledge. The audit therefore re-audits a quantized copy of the edited model.

Two paths:
- ``quantize_weight`` / ``quantize_model_`` / ``quantized_copy``: pure-torch fake quantization
  (round-to-nearest, group-wise, symmetric abs-max; the GPTQ baseline and llama.cpp Q8_0/Q4_0
  style). Runs anywhere, including CPU, and is deterministic, so audits are reproducible.
- ``load_bitsandbytes``: the real backend most users load 4/8-bit models with (CPU or CUDA).

The audit's named schemes (RTN, GGUF, bitsandbytes) live in ``formless.attacks.quantizers``.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from formless.errors import FormlessError

try:  # GPT-2 style models keep their projections in Conv1D ([in, out] weights)
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a dependency, but keep the module importable
    Conv1D = None

SUPPORTED_BITS = (2, 3, 4, 8)
DEFAULT_SKIP = ("lm_head", "embed")


class QuantizationError(FormlessError, ValueError):
    """Bad quantization settings (a ``ValueError`` too, so plain Python callers can catch it)."""


@dataclass
class QuantizationReport:
    """What a quantization pass did, for the audit report."""

    bits: int
    group_size: int
    modules: int  # layers whose weight was quantized
    parameters: int  # weight elements quantized (biases stay full precision)
    mean_abs_error: float  # mean |w - q(w)| over those elements
    method: str


def _check_settings(bits: int, group_size: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise QuantizationError(
            f"bits must be one of {', '.join(map(str, SUPPORTED_BITS))} (got {bits!r}); "
            "use 8 or 4 to mimic the usual 8-bit/4-bit loading of a model."
        )
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise QuantizationError(
            f"group_size must be a positive integer (got {group_size!r}); 128 is the common choice, "
            "32 matches llama.cpp's Q4_0/Q8_0 blocks."
        )


def quantize_weight(weight: torch.Tensor, bits: int, group_size: int = 128) -> torch.Tensor:
    """Round-to-nearest, symmetric abs-max fake quantization in groups along the last dimension.

    Each run of ``group_size`` consecutive elements of a row (the input dimension of an
    ``nn.Linear`` weight) gets its own scale ``absmax / (2**(bits-1) - 1)``; values are rounded
    (half to even, as ``torch.round``) to integers in ``[-2**(bits-1), 2**(bits-1) - 1]`` and
    scaled back. Computed in float32, returned in the input's dtype and shape. A last group that
    is shorter than ``group_size`` is zero-padded (padding does not change an abs-max); an
    all-zero group stays zero.
    """
    _check_settings(bits, group_size)
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise QuantizationError("quantize_weight needs a floating-point tensor (a layer's weight).")
    if weight.dim() == 0 or weight.numel() == 0:
        raise QuantizationError(f"cannot quantize a weight of shape {tuple(weight.shape)}.")
    w = weight.detach().to(torch.float32)
    if not torch.isfinite(w).all():
        raise QuantizationError("the weight contains NaN or inf values; quantizing it would be meaningless.")

    shape = w.shape
    n_in = shape[-1]
    rows = w.reshape(-1, n_in)
    pad = (-n_in) % group_size
    if pad:
        rows = torch.nn.functional.pad(rows, (0, pad))
    groups = rows.reshape(rows.shape[0], -1, group_size)

    qmax = 2 ** (bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True) / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # zero group: 0 / 1 = 0, no NaN
    q = torch.clamp(torch.round(groups / safe), -qmax - 1, qmax) * scale

    q = q.reshape(rows.shape[0], -1)[:, :n_in].reshape(shape)
    return q.to(weight.dtype)


def _quantizable(model: nn.Module, skip: Iterable[str]) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, transposed) for every Linear / Conv1D not skipped by name."""
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    found = []
    for name, module in model.named_modules():
        if any(s in name for s in skip):
            continue
        if isinstance(module, nn.Linear):
            found.append((name, module, False))
        elif Conv1D is not None and isinstance(module, Conv1D):
            found.append((name, module, True))  # weight is [in, out]: group along dim 0
    return found


@torch.no_grad()
def quantize_model_(
    model: nn.Module,
    bits: int,
    group_size: int = 128,
    skip: Iterable[str] = DEFAULT_SKIP,
) -> QuantizationReport:
    """Quantize, in place, the weight of every ``nn.Linear`` and GPT-2 ``Conv1D`` of ``model``.

    Modules whose qualified name contains any ``skip`` substring are left alone: embeddings and
    the (often tied) ``lm_head`` stay full precision, as with the usual 4/8-bit loading. Biases
    are not quantized. A weight shared by several modules is quantized once.
    """
    _check_settings(bits, group_size)
    targets = _quantizable(model, skip)
    if not targets:
        raise QuantizationError(
            f"found no nn.Linear or Conv1D layer to quantize outside skip={tuple(skip)!r}; "
            "the quantization attack would be a no-op on this model."
        )
    seen: set[int] = set()
    modules = parameters = 0
    abs_error = 0.0
    for _name, module, transposed in targets:
        weight = module.weight
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        if transposed:
            q = quantize_weight(weight.t(), bits, group_size).t()
        else:
            q = quantize_weight(weight, bits, group_size)
        abs_error += (weight.detach().float() - q.float()).abs().sum().item()
        weight.copy_(q)
        modules += 1
        parameters += weight.numel()
    return QuantizationReport(
        bits=bits,
        group_size=group_size,
        modules=modules,
        parameters=parameters,
        mean_abs_error=abs_error / parameters,
        method=f"rtn-absmax-symmetric-int{bits}-g{group_size}",
    )


def quantized_copy(
    model: nn.Module,
    bits: int,
    group_size: int = 128,
    skip: Iterable[str] = DEFAULT_SKIP,
) -> tuple[nn.Module, QuantizationReport]:
    """A quantized deep copy of ``model`` (the original is untouched), and the pass's report.

    Used to re-audit what a user would get by loading the edited model in 4 or 8 bits. The copy
    needs as much memory as the model itself.
    """
    _check_settings(bits, group_size)  # fail before paying for the copy
    clone = copy.deepcopy(model)
    report = quantize_model_(clone, bits, group_size, skip)
    return clone, report


def bitsandbytes_available() -> bool:
    """True when bitsandbytes imports here (>= 0.45 runs its 4/8-bit layers on CPU as well as CUDA)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # a broken install (wrong CUDA build) raises all sorts of errors
        return False
    return True


def load_bitsandbytes(
    path: str | Path, bits: int, *, quant_type: str = "nf4", device_map: str | dict | None = None
) -> nn.Module:
    """Load a Hugging Face checkpoint directory in 8-bit (LLM.int8) or 4-bit NF4/FP4 with bitsandbytes,
    the way users do (``BitsAndBytesConfig``; float32 compute, on the GPU when there is one, else CPU).

    The audit's ``bnb-*`` schemes do the same in memory (``formless.attacks.quantizers``) and are
    tested against this loaded path.
    """
    if isinstance(bits, bool) or bits not in (4, 8):
        raise QuantizationError(f"bitsandbytes loading supports bits=4 (NF4/FP4) or bits=8 (got {bits!r}).")
    if quant_type not in ("nf4", "fp4"):
        raise QuantizationError(f"bitsandbytes 4-bit types are nf4 and fp4 (got {quant_type!r}).")
    if not bitsandbytes_available():
        raise QuantizationError(
            "bitsandbytes quantization needs the bitsandbytes package: pip install 'formless[quant]' "
            "(or pip install 'bitsandbytes>=0.45')"
        )
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if bits == 8:
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_compute_dtype=torch.float32
        )
    model = AutoModelForCausalLM.from_pretrained(
        str(path),
        quantization_config=config,
        dtype=torch.float32,
        device_map=device_map or ("cuda" if torch.cuda.is_available() else "cpu"),
        use_safetensors=True,
        local_files_only=True,
    )
    model.eval()
    return model
