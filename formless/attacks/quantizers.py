"""Quantization schemes the audit re-runs as attacks: one small object per scheme, one registry.

A scheme has a ``name`` (what ``--quantize`` takes), ``available()`` (its toolchain is installed)
and ``quantize(loaded) -> LoadedModel`` (a quantized copy; the original is untouched).
``quantize_with_summary`` also returns what was done, for the report. Adding a quantizer is one
small class (``apply_`` changes a model in place and returns its summary) and one registry entry.

Schemes
- ``rtn8``, ``rtn4`` (aliases ``8``, ``4``): formless' own round-to-nearest fake quantizer
  (group-wise abs-max, see ``quantize.py``). Deterministic, no dependency: the baseline.
- ``gguf-q4_0`` … ``gguf-q8_0``: llama.cpp's legacy block formats through the ``gguf`` package
  (``gguf.quants.quantize`` then ``dequantize``; byte-identical to llama.cpp for Q4_0/Q4_1/Q8_0),
  with llama.cpp's ``llama-quantize`` choice of tensors (``src/llama-quant.cpp``):
    * every 2-D weight of an ``nn.Linear`` / GPT-2 ``Conv1D`` gets the scheme's type, blocks of 32
      along the input dimension (a ``Conv1D`` is transposed first, as the converter does);
    * the output matrix (``lm_head``), and the token embedding when it is tied to it, get the
      output type: Q6_K where a row is a multiple of 256 wide (packed by ``kquants``), else Q8_0
      (576 on SmolLM2, 640 on Gemma 3 270M);
    * an untied token embedding gets the scheme's type;
    * norms, biases, position embeddings and MoE routers stay as they are (F32 in llama.cpp).
  Quantized straight from the float32 weights (llama.cpp's quantizer run on an F32 GGUF), not via
  an F16 intermediate. A row whose length is not a multiple of 32 is refused, as llama.cpp does.
- ``bnb-nf4``, ``bnb-fp4``, ``bnb-int8``: bitsandbytes, what ``from_pretrained(...,
  quantization_config=BitsAndBytesConfig(...))`` does, done in memory: every ``nn.Linear`` /
  ``Conv1D`` except the output embedding (and what transformers skips with it). 4-bit: blocks of
  64 quantized and dequantized with ``bitsandbytes.functional`` (the weights, and so the logits,
  are bit-identical to the loaded ``Linear4bit`` path). int8: the layers are swapped for
  ``Linear8bitLt`` (threshold 6.0, as transformers), because LLM.int8 also quantizes activations;
  identical to the loaded path too. Needs the optional extra ``formless[quant]``.
- ``gptq-4bit``, ``awq-4bit``: GPTQModel's GPTQ and AWQ, 4-bit, groups of 32, calibrated on the
  shipped generic corpus; every decoder linear (not ``lm_head``, not the embeddings) quantized and
  dequantized back into the dense weights with GPTQModel's own dequantizers (AWQ's rescaled norms
  come back too; see ``calibrated.py``). Needs the optional extra ``formless[gptq]``; a couple of
  minutes per copy on a CPU for a 135M model.
- ``gguf-q4_k_m``, ``gguf-q5_k_m``, ``gguf-q6_k``: llama.cpp's K-quant file types, the most
  downloaded GGUFs. ``llama-quantize``'s per-tensor mix (``GGUFKMix``) with formless' NumPy port of
  ggml's reference K-quantizers (``kquants.py``; the ``gguf`` package only decodes K-quants, and
  llama.cpp is a 20-minute source build). On SmolLM2 the 576-wide rows are not whole 256-value
  super-blocks, so most of "Q4_K_M" falls back to Q5_0 there, exactly as in llama.cpp; only
  ``down_proj`` (1536-wide rows) gets Q4_K / Q6_K.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from formless.attacks import kquants
from formless.attacks.calibrated import GPTQ_EXTRA, GPTQ_REQUIREMENT
from formless.attacks.quantize import (
    Conv1D,
    QuantizationError,
    bitsandbytes_available,
    quantize_model_,
)
from formless.models.loading import LoadedModel

BNB_REQUIREMENT = "bitsandbytes>=0.45"
QUANT_EXTRA = "formless[quant]"
NONE = frozenset({"", "none", "0", "off"})


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _mean_abs_error(total: float, parameters: int) -> float | None:
    return None if not parameters else float(f"{total / parameters:.6g}")


@dataclass(frozen=True)
class Quantizer:
    """One scheme. Subclasses set ``name`` and implement ``apply_`` (and ``available`` when they
    need an optional package)."""

    name: str
    requirement: ClassVar[str | None] = None  # pip requirement of the toolchain
    package: ClassVar[str | None] = None  # its import / distribution name
    extra: ClassVar[str | None] = None  # the formless extra that installs it, if optional

    @property
    def method(self) -> str:
        raise NotImplementedError

    def available(self) -> bool:
        return True

    def check(self) -> None:
        """Raise the one-line error a user can act on when this scheme cannot run here."""
        if not self.available():
            how = f"pip install '{self.extra}' (or pip install '{self.requirement}')"
            raise QuantizationError(
                f"--quantize {self.name} needs {self.package}, which is not installed (or does not load) "
                f"here: {how if self.extra else f'pip install {self.requirement!r}'}"
            )

    def cache_key(self) -> str:
        """Prefix of the quantized reference's cached scores: changes when the result would."""
        return f"{self.name}@{_version(self.package)}" if self.package else self.name

    def apply_(self, model: nn.Module) -> dict:
        """Quantize ``model`` in place; a JSON-ready summary of what was done."""
        raise NotImplementedError

    def apply_loaded_(self, model: nn.Module, loaded: LoadedModel) -> dict:
        """``apply_`` with the loaded model at hand: calibrated schemes need its tokenizer."""
        return self.apply_(model)

    @torch.no_grad()
    def quantize_with_summary(self, loaded: LoadedModel) -> tuple[LoadedModel, dict]:
        self.check()  # fail before paying for the copy
        clone = copy.deepcopy(loaded.model)
        summary = self.apply_loaded_(clone, loaded)
        clone.eval()  # swapped-in modules start in training mode (bnb's int8 then skips its kernel)
        out = LoadedModel(clone, loaded.tokenizer, loaded.name, loaded.source, loaded.path, loaded.adapter)
        return out, {"scheme": self.name, "method": self.method, **summary}

    def quantize(self, loaded: LoadedModel) -> LoadedModel:
        """A quantized copy of ``loaded`` (the original is untouched)."""
        return self.quantize_with_summary(loaded)[0]


# ---------------------------------------------------------------- formless' round-to-nearest


@dataclass(frozen=True)
class RTN(Quantizer):
    bits: int = 8
    group_size: int = 128

    @property
    def method(self) -> str:
        return (
            f"round-to-nearest, group-wise, symmetric abs-max int{self.bits}, groups of {self.group_size} "
            "(formless' own fake quantizer; embeddings and lm_head kept)"
        )

    def cache_key(self) -> str:
        return f"q{self.bits}g{self.group_size}"  # the key audits used before named schemes

    def apply_(self, model: nn.Module) -> dict:
        r = quantize_model_(model, self.bits, self.group_size)
        return {
            "group_size": self.group_size,
            "tensors": {f"int{self.bits}": r.modules},
            "parameters": r.parameters,
            "mean_abs_error": _mean_abs_error(r.mean_abs_error * r.parameters, r.parameters),
        }


# ---------------------------------------------------------------- GGUF (llama.cpp formats)

GGUF_BLOCK = 32  # every legacy type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
_ROUTERS = frozenset({"gate", "router", "shared_expert_gate"})  # ffn_gate_inp: never quantized
_SKIPPED_TOWERS = ("vision_tower", "vision_model", "multi_modal_projector")  # mmproj: another file


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """The same tensor (tied weights). Meta tensors (offloaded layers, shape-only models) all have
    data pointer 0, so for them only identity counts."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    if "meta" in (a.device.type, b.device.type) or a.data_ptr() == 0:
        return False
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


def gguf_tensors(model: nn.Module) -> list[tuple[str, nn.Parameter, bool, str]]:
    """(name, weight, transposed, role) of every tensor llama.cpp quantizes, each weight once.
    role: "output" (lm_head, or a token embedding tied to it), "token_embd" or "linear"."""
    inp = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_w = getattr(out, "weight", None)
    found: list[tuple[str, nn.Parameter, bool, str]] = []
    seen: set[int] = set()

    def add(name: str, weight: nn.Parameter, transposed: bool, role: str) -> None:
        if id(weight) not in seen:
            seen.add(id(weight))
            found.append((name, weight, transposed, role))

    for name, module in model.named_modules():
        if any(t in name.split(".") for t in _SKIPPED_TOWERS):
            continue
        if module is out and out_w is not None:
            add(name, out_w, False, "output")
        elif module is inp:
            add(name, module.weight, False, "output" if _same(module.weight, out_w) else "token_embd")
        elif isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] not in _ROUTERS:
            add(name, module.weight, False, "output" if _same(module.weight, out_w) else "linear")
        elif Conv1D is not None and isinstance(module, Conv1D):
            add(name, module.weight, True, "linear")  # [in, out]: the converter writes it transposed
    return found


def _gguf_round_trip(w: torch.Tensor, qtype: str) -> torch.Tensor:
    """``w`` (rows along the GGUF row) stored as ``qtype`` and read back, float32: legacy types
    through ``gguf.quants``, K-quants packed by ``kquants`` and decoded by ``gguf.quants``."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    if qtype == "F16":
        return w.to(torch.float16).to(torch.float32)
    a = w.to(torch.float32).cpu().contiguous().numpy()
    kind = GGMLQuantizationType[qtype]
    packed = kquants.quantize(a, qtype) if qtype in kquants.QUANTIZERS else quants.quantize(a, kind)
    return torch.from_numpy(
        np.ascontiguousarray(quants.dequantize(packed, kind), dtype=np.float32).reshape(a.shape)
    )


def _output_type(default: str, cols: int) -> str:
    """llama-quantize's type for ``output.weight`` (or a token embedding tied to it): Q6_K unless
    the scheme is Q8_0, and Q8_0 when a row is not a whole number of 256-value super-blocks."""
    if default == "Q8_0":
        return "Q8_0"
    return "Q6_K" if cols % kquants.QK_K == 0 else "Q8_0"


@dataclass(frozen=True)
class GGUF(Quantizer):
    """One llama.cpp file type, with ``llama-quantize``'s choice of type per tensor."""

    qtype: str = "Q4_0"
    package: ClassVar[str] = "gguf"
    requirement: ClassVar[str] = "gguf>=0.10"

    @property
    def method(self) -> str:
        return (
            f"GGUF {self.qtype} (gguf {_version('gguf')} quantize + dequantize, llama-quantize's tensor "
            f"choice: linears {self.qtype}, output/tied embedding Q6_K (Q8_0 where rows are not a multiple "
            f"of {kquants.QK_K}), norms and biases kept)"
        )

    def available(self) -> bool:
        return importlib.util.find_spec("gguf") is not None

    def cache_key(self) -> str:
        # the output matrix may be a K-quant (Q6_K) made by formless' own port: its version counts
        return f"{super().cache_key()}+kquants{kquants.VERSION}"

    def tensor_type(self, role: str, cols: int) -> str:
        return _output_type(self.qtype, cols) if role == "output" else self.qtype

    def tensor_types(self, targets: list[tuple[str, nn.Parameter, bool, str]]) -> list[str]:
        return [self.tensor_type(role, _row_length(w, t)) for _, w, t, role in targets]

    def check_rows(self, targets: list[tuple[str, nn.Parameter, bool, str]]) -> None:
        for name, weight, transposed, _ in targets:
            cols = _row_length(weight, transposed)
            if weight.dim() != 2 or cols % GGUF_BLOCK:
                raise QuantizationError(
                    f"{name} has rows of {cols} values; GGUF {self.qtype} needs a multiple of {GGUF_BLOCK} "
                    "(llama.cpp refuses such a tensor too)"
                )

    def apply_(self, model: nn.Module) -> dict:
        targets = gguf_tensors(model)
        self.check_rows(targets)
        types: dict[str, int] = {}
        error, parameters = 0.0, 0
        for (_, weight, transposed, _), qtype in zip(targets, self.tensor_types(targets), strict=True):
            w = weight.detach()
            new = _gguf_round_trip(w.t() if transposed else w, qtype)
            new = new.t() if transposed else new
            error += float((new - w.float().cpu()).abs().sum())
            parameters += weight.numel()
            weight.copy_(new.to(weight.device, weight.dtype))
            types[qtype] = types.get(qtype, 0) + 1
        return {
            "tensors": types,
            "parameters": parameters,
            "mean_abs_error": _mean_abs_error(error, parameters),
            "kept": "norms, biases, position embeddings (F32)",
        }


def _row_length(weight: torch.Tensor, transposed: bool) -> int:
    return int(weight.shape[0] if transposed else weight.shape[-1])


# module-name templates for the tensors llama-quantize treats apart (last name component)
ATTN_V = frozenset({"v_proj"})
ATTN_QKV = frozenset({"qkv_proj", "c_attn", "query_key_value", "Wqkv"})
FFN_DOWN = frozenset({"down_proj", "fc2", "dense_4h_to_h", "w2"})
# a K-quant whose rows are not whole super-blocks falls back to a legacy type (then F16)
K_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _tensor_kind(name: str) -> str:
    parts = name.split(".")
    last = parts[-1]
    if last in ATTN_V:
        return "attn_v"
    if last in ATTN_QKV:
        return "attn_qkv"
    if last in FFN_DOWN or (last == "c_proj" and len(parts) > 1 and parts[-2] == "mlp"):  # GPT-2's MLP out
        return "ffn_down"
    return ""


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama-quantize's layers that get more bits: the first and last eighth, and every third."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


@dataclass(frozen=True)
class GGUFKMix(GGUF):
    """A K-quant file type (``Q4_K_M``, ``Q5_K_M``, ``Q6_K``): the mix of types ``llama-quantize``
    writes, without an importance matrix. Per tensor: output / tied embedding Q6_K; ``attn_v`` and
    ``ffn_down`` Q6_K in the layers ``use_more_bits`` picks (``_M`` types); fused QKV one step up;
    every other linear the base K type; a row that is not whole 256-value super-blocks falls back as
    llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; F16 when not a multiple of 32).
    Layers are counted in module order; MoE experts and Falcon's special cases are not modelled."""

    ftype: str = "Q4_K_M"

    @property
    def base(self) -> str:
        return self.ftype.removesuffix("_M").removesuffix("_S")

    @property
    def method(self) -> str:
        return (
            f"GGUF {self.ftype} (formless' NumPy port of ggml's reference K-quantizers, decoded by gguf "
            f"{_version('gguf')}; llama-quantize's tensor mix without an importance matrix: output/tied "
            f"embedding Q6_K, attn_v and ffn_down Q6_K in the use_more_bits layers, "
            f"other linears {self.base}, rows that are not whole 256-value super-blocks fall back "
            "as llama.cpp does)"
        )

    def check_rows(self, targets: list[tuple[str, nn.Parameter, bool, str]]) -> None:
        for name, weight, _, _ in targets:
            if weight.dim() != 2:
                raise QuantizationError(
                    f"{name} is not a matrix; GGUF {self.ftype} quantizes 2-D weights only"
                )

    def tensor_types(self, targets: list[tuple[str, nn.Parameter, bool, str]]) -> list[str]:
        kinds = [_tensor_kind(name) if role == "linear" else "" for name, _, _, role in targets]
        counts = {k: kinds.count(k) for k in ("attn_v", "ffn_down")}
        seen = dict.fromkeys(counts, 0)
        types = []
        for (_, weight, transposed, role), kind in zip(targets, kinds, strict=True):
            cols = _row_length(weight, transposed)
            qtype = self.base
            if role == "output":
                qtype = _output_type(self.base, cols)
            elif kind in counts:
                if self.ftype.endswith("_M") and _use_more_bits(seen[kind], counts[kind]):
                    qtype = "Q6_K"
                seen[kind] += 1
            elif kind == "attn_qkv":
                qtype = {"Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(self.ftype, qtype)
            if qtype in K_FALLBACK and cols % kquants.QK_K:
                qtype = K_FALLBACK[qtype]
            if qtype != "F16" and cols % GGUF_BLOCK:
                qtype = "F16"
            types.append(qtype)
        return types


# ---------------------------------------------------------------- bitsandbytes


def bnb_targets(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, is_conv1d) of the layers transformers' bitsandbytes loading converts: every
    ``nn.Linear`` / ``Conv1D`` except the output embedding, weights tied to it, the module of the
    last parameter and the model's ``_keep_in_fp32_modules`` (``get_keys_to_not_convert``)."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_w = getattr(out, "weight", None)
    params = list(model.named_parameters())
    last = params[-1][0].rsplit(".", 1)[0] if params else ""
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    found = []
    for name, module in model.named_modules():
        if module is out or name == last or _same(getattr(module, "weight", None), out_w):
            continue
        if any(name == k or name.endswith(f".{k}") or name.startswith(f"{k}.") for k in keep):
            continue
        if type(module) is nn.Linear:
            found.append((name, module, False))
        elif Conv1D is not None and isinstance(module, Conv1D):
            found.append((name, module, True))
    if not found:
        raise QuantizationError("found no nn.Linear or Conv1D layer for bitsandbytes to quantize")
    return found


class _DropCastWarning(logging.Filter):
    """bitsandbytes logs 'inputs will be cast from float32 to float16' on every int8 matmul."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be cast from" not in record.getMessage()


def _quiet_bitsandbytes() -> None:
    log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropCastWarning) for f in log.filters):
        log.addFilter(_DropCastWarning())


@dataclass(frozen=True)
class _BitsAndBytes(Quantizer):
    package: ClassVar[str] = "bitsandbytes"
    requirement: ClassVar[str] = BNB_REQUIREMENT
    extra: ClassVar[str] = QUANT_EXTRA

    def available(self) -> bool:
        return bitsandbytes_available()


@dataclass(frozen=True)
class BnB4bit(_BitsAndBytes):
    quant_type: str = "nf4"
    blocksize: int = 64  # Linear4bit's default, what from_pretrained uses

    @property
    def method(self) -> str:
        return (
            f"bitsandbytes {_version('bitsandbytes')} {self.quant_type.upper()}, blocks of {self.blocksize} "
            "(BitsAndBytesConfig(load_in_4bit=True), float32 compute; lm_head and embeddings kept)"
        )

    def apply_(self, model: nn.Module) -> dict:
        import bitsandbytes.functional as F

        error, parameters = 0.0, 0
        targets = bnb_targets(model)
        for _, module, conv in targets:
            weight = module.weight
            w = (weight.detach().t() if conv else weight.detach()).contiguous()
            packed, state = F.quantize_4bit(w, blocksize=self.blocksize, quant_type=self.quant_type)
            new = F.dequantize_4bit(packed, state).reshape(w.shape)
            new = new.t() if conv else new
            error += float((new.float() - weight.detach().float()).abs().sum())
            parameters += weight.numel()
            weight.copy_(new.to(weight.dtype))
        return {
            "blocksize": self.blocksize,
            "tensors": {self.quant_type: len(targets)},
            "parameters": parameters,
            "mean_abs_error": _mean_abs_error(error, parameters),
        }


@dataclass(frozen=True)
class BnBInt8(_BitsAndBytes):
    threshold: float = 6.0  # BitsAndBytesConfig.llm_int8_threshold's default

    @property
    def method(self) -> str:
        return (
            f"bitsandbytes {_version('bitsandbytes')} LLM.int8 (BitsAndBytesConfig(load_in_8bit=True): "
            f"int8 row-wise weights and activations, outlier threshold {self.threshold}; lm_head kept)"
        )

    def apply_(self, model: nn.Module) -> dict:
        import bitsandbytes as bnb

        _quiet_bitsandbytes()
        error, parameters = 0.0, 0
        targets = bnb_targets(model)
        for name, module, conv in targets:
            w = (module.weight.detach().t() if conv else module.weight.detach()).contiguous()
            out_features, in_features = w.shape
            layer = bnb.nn.Linear8bitLt(
                in_features,
                out_features,
                bias=module.bias is not None,
                has_fp16_weights=False,
                threshold=self.threshold,
                device="meta",
            )
            layer.weight = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
            if module.bias is not None:
                layer.bias = nn.Parameter(module.bias.detach().clone(), requires_grad=False)
            layer = layer.to(w.device)  # quantizes the weight (Int8Params.to)
            cb, scb = layer.weight.data, layer.weight.SCB
            error += float((cb.float() * scb.float().unsqueeze(1) / 127 - w.float()).abs().sum())
            parameters += w.numel()
            model.set_submodule(name, layer)
        return {
            "threshold": self.threshold,
            "tensors": {"int8": len(targets)},
            "parameters": parameters,
            "mean_abs_error": _mean_abs_error(error, parameters),
        }


# ---------------------------------------------------------------- GPTQModel (GPTQ, AWQ)


@dataclass(frozen=True)
class GPTQModelScheme(Quantizer):
    algorithm: str = "gptq"  # or "awq"
    bits: int = 4
    group_size: int = 32
    documents: int = 128  # calibration samples from the generic corpus
    max_tokens: int = 256  # per sample
    package: ClassVar[str] = "gptqmodel"
    requirement: ClassVar[str] = GPTQ_REQUIREMENT
    extra: ClassVar[str] = GPTQ_EXTRA

    @property
    def method(self) -> str:
        return (
            f"GPTQModel {_version('gptqmodel')} {self.algorithm.upper()} {self.bits}-bit, groups of "
            f"{self.group_size}, calibrated on {self.documents} documents of formless' generic corpus "
            f"(<= {self.max_tokens} tokens each); decoder linears dequantized back into dense weights, "
            "lm_head and embeddings kept"
        )

    def available(self) -> bool:
        return importlib.util.find_spec("gptqmodel") is not None

    def apply_(self, model: nn.Module) -> dict:
        raise QuantizationError(f"{self.name} needs calibration text: quantize a LoadedModel (its tokenizer)")

    def apply_loaded_(self, model: nn.Module, loaded: LoadedModel) -> dict:
        from formless.attacks.calibrated import gptqmodel_quantize, write_dense_

        done = gptqmodel_quantize(
            model,
            loaded,
            algorithm=self.algorithm,
            bits=self.bits,
            group_size=self.group_size,
            documents=self.documents,
            max_tokens=self.max_tokens,
        )
        r = write_dense_(model, done.model)
        return {
            "group_size": self.group_size,
            "tensors": {f"{self.algorithm}-int{self.bits}": r["modules"]},
            "parameters": r["parameters"],
            "mean_abs_error": _mean_abs_error(r["abs_error"], r["parameters"]),
            "calibration": {"samples": done.samples, "tokens": done.tokens, "corpus": "formless-generic-v1"},
            **({"rescaled": r["rescaled"]} if r["rescaled"] else {}),
        }


SCHEMES: dict[str, Quantizer] = {
    q.name: q
    for q in (
        RTN("rtn8", bits=8),
        RTN("rtn4", bits=4),
        GGUF("gguf-q4_0", qtype="Q4_0"),
        GGUF("gguf-q4_1", qtype="Q4_1"),
        GGUF("gguf-q5_0", qtype="Q5_0"),
        GGUF("gguf-q5_1", qtype="Q5_1"),
        GGUF("gguf-q8_0", qtype="Q8_0"),
        BnB4bit("bnb-nf4", quant_type="nf4"),
        BnB4bit("bnb-fp4", quant_type="fp4"),
        BnBInt8("bnb-int8"),
        GPTQModelScheme("gptq-4bit", algorithm="gptq"),
        GPTQModelScheme("awq-4bit", algorithm="awq"),
        GGUFKMix("gguf-q4_k_m", ftype="Q4_K_M"),
        GGUFKMix("gguf-q5_k_m", ftype="Q5_K_M"),
        GGUFKMix("gguf-q6_k", ftype="Q6_K"),
    )
}
ALIASES = {"8": "rtn8", "4": "rtn4"}
# what the audit runs unless told otherwise: the llama.cpp formats cost what RTN costs (a few seconds
# to quantize, the same dense forward passes to score) and are what gets deployed; Q4_1 is also the
# grid the default model ships on, so its quantized reference is the reference itself
DEFAULT_SCHEMES = ("gguf-q8_0", "gguf-q4_1")


def scheme_names() -> list[str]:
    return list(SCHEMES)


def get_quantizer(name: str | int, *, group_size: int | None = None) -> Quantizer:
    """The scheme called ``name`` (or a legacy bit width 8 / 4); ``group_size`` sets RTN's groups.
    Unknown names raise a one-line error listing the valid ones."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in SCHEMES:
        raise QuantizationError(
            f"unknown quantization scheme {str(name)!r}; --quantize takes {', '.join(scheme_names())} "
            f"(8 and 4 stand for rtn8 and rtn4), comma-separated, or 'none'"
        )
    quantizer = SCHEMES[key]
    if group_size is not None and isinstance(quantizer, RTN):
        quantizer = replace(quantizer, group_size=group_size)
    return quantizer


def parse_schemes(text: str) -> tuple[str, ...]:
    """'rtn8, gguf-q4_0' -> ('rtn8', 'gguf-q4_0'), each checked (known, and runnable here);
    'none' -> (). Duplicates are dropped; the order is kept."""
    if text.strip().lower() in NONE:
        return ()
    names: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        quantizer = get_quantizer(part)
        quantizer.check()
        if quantizer.name not in names:
            names.append(quantizer.name)
    return tuple(names)
