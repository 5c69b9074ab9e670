"""GPTQ and AWQ through GPTQModel (the optional extra ``formless[gptq]``), read back as dense weights.

GPTQModel quantizes a checkpoint directory with calibration text and returns a model whose decoder
linears are packed-int4 modules (``TorchLinear`` for GPTQ, ``AwqTorchLinear`` for AWQ). The audit
scores dense Hugging Face models, so, as the GGUF schemes do, the quantized weights are unpacked
with GPTQModel's own dequantizers (the very tensors its forward multiplies by) and written back into
a copy of the audited model. AWQ also rescales the tensors feeding each quantized group (norms, the
previous projection): those come back too, so the dense copy computes what GPTQModel's model
computes, up to the activations' precision (AWQ's torch kernel multiplies in float16).

Calibration text: the shipped generic corpus (``formless/data/generic_corpus.jsonl``), rendered as
the ROCR statistics render it (even documents chat-formatted when the model has a template).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from formless.attacks.quantize import QuantizationError
from formless.models.loading import LoadedModel

GPTQ_REQUIREMENT = "gptqmodel>=7.6,<7.7"
GPTQ_EXTRA = "formless[gptq]"
MIN_CALIBRATION_TOKENS = 10  # GPTQModel drops shorter samples (calibration_data_min_length)


@dataclass(frozen=True)
class Calibrated:
    """What GPTQModel returned: its quantized model and the calibration it was given."""

    model: nn.Module  # the GPTQModel-quantized transformers model (packed linears)
    samples: int
    tokens: int


def calibration_samples(loaded: LoadedModel, documents: int, max_tokens: int) -> list[dict[str, list[int]]]:
    """Token ids of the first ``documents`` documents of the generic corpus, ``max_tokens`` at most
    each, as GPTQModel takes them (``input_ids`` and ``attention_mask``)."""
    from formless.rocr.corpus import load_corpus
    from formless.rocr.stats import _render_documents

    ids = _render_documents(loaded, load_corpus(None), max_doc_tokens=max_tokens)
    kept = [x for x in ids if len(x) >= MIN_CALIBRATION_TOKENS][:documents]
    if not kept:
        raise QuantizationError(
            "the generic corpus gave no calibration sample of at least "
            f"{MIN_CALIBRATION_TOKENS} tokens with this tokenizer"
        )
    return [{"input_ids": x, "attention_mask": [1] * len(x)} for x in kept]


@contextlib.contextmanager
def _errors_raise() -> Iterator[None]:
    """GPTQModel's worker threads end the interpreter (``os._exit(1)``) when a task fails, after
    handing the exception to the task's future: let the future raise it in the caller instead."""
    from gptqmodel.utils import threadx

    worker = getattr(threadx, "_DeviceWorker", None)
    original = getattr(worker, "_abort_process", None)
    if original is None:
        yield
        return
    worker._abort_process = lambda self, exc: None
    try:
        yield
    finally:
        worker._abort_process = original


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """GPTQModel draws progress bars and banners on stdout/stderr; the audit prints its own table."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, or where it was raised when it has no message."""
    text = str(exc).strip().splitlines()
    if text:
        return f"{type(exc).__name__}: {text[0]}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


def _import_gptqmodel():
    # GPTQModel's CPU thread pool needs at least 2 workers (its loader asks for 2)
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 2)))
    try:
        with _quiet():
            import gptqmodel
    except Exception as exc:  # a missing or broken install: say what to run
        raise QuantizationError(
            f"GPTQModel does not load here ({_one_line(exc)}): "
            f"pip install '{GPTQ_EXTRA}' (or pip install '{GPTQ_REQUIREMENT}')"
        ) from None
    return gptqmodel


def gptqmodel_quantize(
    model: nn.Module,
    loaded: LoadedModel,
    *,
    algorithm: str,
    bits: int,
    group_size: int,
    documents: int,
    max_tokens: int,
) -> Calibrated:
    """Run GPTQModel's ``algorithm`` ("gptq" or "awq") on ``model`` (saved to a temporary directory
    with ``loaded``'s tokenizer, as GPTQModel loads from a path) on the model's device: GPTQ in float32,
    AWQ in float16 (its torch kernel's only precisions besides bfloat16)."""
    if not hasattr(model, "save_pretrained"):
        raise QuantizationError(f"GPTQModel quantizes Hugging Face models; got {type(model).__name__}")
    gptqmodel = _import_gptqmodel()
    if algorithm == "awq":
        _check_awq_shapes(model)
    samples = calibration_samples(loaded, documents, max_tokens)
    device = next(model.parameters()).device
    kwargs = {"method": "awq"} if algorithm == "awq" else {}
    # offload_to_disk=False: keep the quantized modules in memory (GPTQModel would leave them on meta)
    config = gptqmodel.QuantizeConfig(bits=bits, group_size=group_size, offload_to_disk=False, **kwargs)
    # AWQ's default backend needs CUDA; its torch kernel runs anywhere
    backend = gptqmodel.BACKEND.AWQ_TORCH if algorithm == "awq" else gptqmodel.BACKEND.AUTO
    # AWQ's torch kernel takes float16/bfloat16 models only; GPTQ runs in float32
    dtype = torch.float16 if algorithm == "awq" else torch.float32
    with tempfile.TemporaryDirectory(prefix="formless-gptq-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        # GPTQModel writes a logs/ folder into the working directory: let it write into tmp
        with _quiet(), _errors_raise(), _working_directory(tmp):
            try:
                q = gptqmodel.GPTQModel.load(tmp, config, device=str(device), dtype=dtype)
                q.quantize(samples, batch_size=1, backend=backend)
            except Exception as exc:
                raise QuantizationError(f"GPTQModel {algorithm} failed: {_one_line(exc)}") from None
    q.model.eval()
    return Calibrated(q.model, len(samples), sum(len(s["input_ids"]) for s in samples))


AWQ_ROWS = 64  # GPTQModel's AWQ clip search takes output rows 64 (or 256) at a time


def _check_awq_shapes(model: nn.Module) -> None:
    """GPTQModel's AWQ asserts that every quantized linear has a multiple of 64 output rows."""
    layers = model.get_decoder().layers if hasattr(model, "get_decoder") else []
    for name, module in layers.named_modules() if hasattr(layers, "named_modules") else []:
        if isinstance(module, nn.Linear) and module.out_features % AWQ_ROWS:
            raise QuantizationError(
                f"layers.{name} has {module.out_features} output rows; GPTQModel's AWQ needs a multiple of "
                f"{AWQ_ROWS} (use gptq-4bit on this model)"
            )


def is_quantized_linear(module: nn.Module) -> bool:
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    return isinstance(module, BaseQuantLinear)


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The [out, in] weight GPTQModel's forward multiplies by, from its own dequantizer."""
    from gptqmodel.nn_modules.qlinear import AWQuantLinear

    if isinstance(module, AWQuantLinear):
        from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

        w = dequantize_gemm(module.qweight, module.qzeros, module.scales, module.bits, module.group_size)
    elif hasattr(module, "dequantize_weight"):
        w = module.dequantize_weight()
    else:
        raise QuantizationError(f"no dequantizer for GPTQModel's {type(module).__name__}")
    return w.t()  # GPTQModel's layout is [in, out]


@torch.no_grad()
def write_dense_(model: nn.Module, quantized: nn.Module) -> dict:
    """Copy ``quantized`` (GPTQModel's model of the same architecture) into ``model``'s dense weights:
    each packed linear dequantized, every other tensor as GPTQModel left it (AWQ rescales some)."""
    qmods = {n: m for n, m in quantized.named_modules() if is_quantized_linear(m)}
    if not qmods:
        raise QuantizationError("GPTQModel quantized no layer of this model")
    error, parameters = 0.0, 0
    for name, qmod in qmods.items():
        target = model.get_submodule(name)
        w = dense_weight(qmod).to(target.weight.device, torch.float32)
        if w.shape != target.weight.shape:
            raise QuantizationError(
                f"{name}: GPTQModel's weight is {tuple(w.shape)}, the model's {tuple(target.weight.shape)}"
            )
        error += float((w - target.weight.detach().float()).abs().sum())
        parameters += w.numel()
        target.weight.copy_(w.to(target.weight.dtype))
        if getattr(target, "bias", None) is not None and getattr(qmod, "bias", None) is not None:
            target.bias.copy_(qmod.bias.to(target.bias.device, target.bias.dtype))
    qstate = quantized.state_dict()
    rescaled = []
    for key, value in model.state_dict().items():
        if key.rsplit(".", 1)[0] in qmods or key not in qstate or qstate[key].shape != value.shape:
            continue
        new = qstate[key].to(value.device)
        if torch.equal(new, value.to(new.dtype)):  # untouched (up to the dtype GPTQModel ran in): keep ours
            continue
        rescaled.append(key)
        value.copy_(new.to(value.dtype))
    return {"modules": len(qmods), "parameters": parameters, "abs_error": error, "rescaled": rescaled}
