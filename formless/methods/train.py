"""One training loop for every baseline: fixed batches, LoRA or full fine-tuning, a utility guard.

With LoRA (the default) the reference pi_ref is the same model with its adapter disabled, so no
second copy is held, and the adapter is merged at the end so the result is a plain checkpoint.
Without LoRA the reference is either precomputed once before the first step (``reference="cache"``:
memory grows with the data, e.g. KL keeps full-vocabulary logits of every retain batch, B x T x V
floats each, while NPO keeps one float per forget example) or a frozen copy of the model
(``reference="copy"``: one model's worth of memory, independent of the data size). The default
``"auto"`` caches and falls back to the copy once the cache would outgrow the model.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from formless.errors import FormlessError
from formless.generation import fast_inference_context
from formless.methods.data import Batch, Example, collate
from formless.methods.distributed import Policy, Runner, make_runner
from formless.methods.losses import Reference, forward, nll
from formless.methods.registry import LossInputs, Method, describe, make_method

Progress = Callable[[int, int, dict], None]


class TrainConfig(BaseModel):
    """Hyper-parameters of a baseline run; the method's own ones live on the method."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("npo", description="registry name, used when train() is given no method")
    method_options: dict[str, Any] = Field(default_factory=dict, description="the method's hyper-parameters")
    lr: float | None = Field(None, gt=0, description="default 1e-4 with LoRA, 1e-5 for full fine-tuning")
    steps: int = Field(20, ge=1, description="optimizer steps (ignored when epochs is set)")
    epochs: int | None = Field(None, ge=1, description="passes over the forget batches instead of steps")
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(256, ge=8)
    lora: bool | None = Field(
        None, description="LoRA adapter (merged afterwards); None = the method's default (LoRA, except RMU)"
    )
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    autocast: bool = Field(True, description="bf16 autocast on CUDA and on CPUs with native bf16")
    reference: Literal["auto", "cache", "copy"] = Field(
        "auto",
        description="full fine-tuning only: precompute reference outputs, keep a frozen copy, or (auto) "
        "precompute unless the cache would outgrow the model, then copy",
    )
    guard_every: int = Field(5, ge=0, description="check retain NLL every k steps (0 = never)")
    guard_factor: float = Field(1.5, gt=1, description="stop when retain NLL exceeds this x its start")
    guard_batches: int = Field(2, ge=1, description="retain batches the guard scores")
    guard_restore: bool = Field(
        True, description="on a stop, restore the trained weights of the last check that passed"
    )

    def use_lora(self, method: Method) -> bool:
        return method.default_lora if self.lora is None else self.lora

    def learning_rate(self, method: Method) -> float:
        """The given lr, else the method's own (tuned for its default LoRA-or-full mode, so only used
        in that mode), else 1e-4 with LoRA, 1e-5 without."""
        if self.lr is not None:
            return self.lr
        if method.default_lr is not None and self.use_lora(method) == method.default_lora:
            return method.default_lr
        return 1e-4 if self.use_lora(method) else 1e-5


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    steps: int = 0
    restored_step: int | None = None  # the guard's last good step whose weights were restored
    method: dict = field(default_factory=dict)  # name and hyper-parameters
    reference: str = "none"  # how pi_ref was obtained: "adapter", "cache", "copy" or "none"


def make_batches(tokenizer, examples: Sequence[Example], size: int, prefix: str, seed: int, max_length: int):
    """Fixed batches (shuffled once with ``seed``): fixed contents let reference outputs be cached."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    return [
        collate(tokenizer, order[i : i + size], key=f"{prefix}:{i // size}", max_length=max_length)
        for i in range(0, len(order), size)
    ]


def lora_model(model, method: Method, config: TrainConfig):
    """``model`` wrapped with a LoRA adapter on the method's modules (default: every linear layer
    but the output head). Dropout is off so that step 0 reproduces the reference exactly."""
    from peft import LoraConfig, get_peft_model

    targets = method.target_modules(model) or "all-linear"
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=targets,
        bias="none",
    )
    return get_peft_model(model, lora)


def _full_parameters(model, method: Method) -> list[torch.nn.Parameter]:
    targets = method.target_modules(model)
    if targets is None:
        return [p for p in model.parameters()]
    params = [model.get_submodule(name).weight for name in targets]
    for p in model.parameters():
        p.requires_grad_(False)
    return params


def _cycle_order(n: int, rng: random.Random):
    """Batch indices, every batch once per pass, in a seeded order."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


@torch.no_grad()
def retain_nll(model, batches: Sequence[Batch], device) -> float:
    values = [nll(forward(model, b.to(device)).logits, b.labels.to(device)) for b in batches]
    return float(torch.stack(values).mean())


def train(
    loaded,
    method: Method | str | None,
    forget: Sequence[Example],
    retain: Sequence[Example],
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    accelerator=None,
) -> TrainResult:
    """Train ``loaded.model`` in place with ``method``; with LoRA the adapter is merged afterwards.

    Launched on several processes (``accelerate launch``), or given an ``accelerator``, the model
    and optimizer go through ``Accelerator.prepare`` (DDP, FSDP or ZeRO as its config says) and
    every process trains on its rows of the same global batches (see
    :mod:`formless.methods.distributed`); logged numbers are averages over processes. Every
    process ends with the same merged model: the caller saves it from the main process only.

    If training raises (or is interrupted), the model is left as it was given, bit for bit: a LoRA
    adapter is removed unmerged, full fine-tuning restores a snapshot of the trained weights taken
    before the first step (a CPU copy of them), and the error is re-raised.

    ``retain`` feeds the method's retain term (if it has one) and the utility guard: every
    ``guard_every`` steps the retain NLL is measured, and the run stops once it exceeds
    ``guard_factor`` times its value before training (recorded as ``guard`` entries in the history).
    """
    config = config or TrainConfig()
    if method is None or isinstance(method, str):
        method = make_method(method or config.method, **config.method_options)
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tok = loaded.tokenizer
    forget = method.forget_data(forget)
    if not forget:
        raise FormlessError("no forget examples to train on")
    if method.uses_retain and not retain:
        raise FormlessError(f"method {method.name!r} needs retain examples")
    fb = make_batches(tok, forget, config.batch_size, "forget", config.seed, config.max_length)
    rb = make_batches(tok, retain, config.batch_size, "retain", config.seed + 1, config.max_length)
    runner = make_runner(accelerator)
    device = runner.device(loaded.device)
    base = loaded.model.to(device) if device != loaded.device else loaded.model
    was_training = base.training
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    base.eval()  # dropout off: the policy must equal the reference at step 0 (NPO's log ratio = 0)
    autocast = (lambda: fast_inference_context(device)) if config.autocast else contextlib.nullcontext

    lora = config.use_lora(method)
    model = base
    initial: list[torch.Tensor] | None = None  # full fine-tuning: the weights to restore on a failure
    history: list[dict] = []
    result = TrainResult(history=history, method=describe(method))
    completed = False
    try:
        if lora:
            model = lora_model(base, method, config)
            params = [p for p in model.parameters() if p.requires_grad]
            reference = Reference(model, context=model.disable_adapter) if method.needs_reference else None
        else:
            reference = None
            if method.needs_reference and config.reference == "copy":
                frozen = copy.deepcopy(base).requires_grad_(False)
                reference = Reference(frozen)
            elif method.needs_reference:
                reference = Reference(base, cache=True)
            params = _full_parameters(base, method)
            for p in params:
                p.requires_grad_(True)
            initial = _snapshot(params)
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate(method), weight_decay=config.weight_decay
        )
        wrapped, optimizer = runner.prepare(model, optimizer)
        policy = model if wrapped is model else Policy(wrapped, model)
        if reference is not None and reference.model is model:  # not a frozen copy: via the wrapper
            reference.model = policy
        shard = runner.shard
        with autocast():
            method.prepare(policy, [b.to(device) for b in fb], reference)  # whole batches: same on all
            if reference is not None and reference.cache:
                reference = _precompute(
                    reference, method, policy, fb, rb, device, config.reference == "auto", runner
                )
                history.append({"step": 0, "reference_cache_bytes": reference.cached_bytes})
            if reference is not None:
                result.reference = "adapter" if lora else ("cache" if reference.cache else "copy")
            guard = rb[: config.guard_batches] if config.guard_every and rb else []
            start_nll = retain_nll(policy, guard, device) if guard else None
            if start_nll is not None:
                history.append({"step": 0, "guard": True, "retain_nll": start_nll})
        steps = config.epochs * len(fb) if config.epochs else config.steps
        f_order, r_order = _cycle_order(len(fb), rng), _cycle_order(max(len(rb), 1), rng)
        good = (initial or _snapshot(params)) if guard and config.guard_restore else None
        good_step = 0
        for step in range(1, steps + 1):
            (fbatch, weight), rbatch = shard(fb[next(f_order)]), shard(rb[next(r_order)])[0] if rb else None
            with autocast():
                loss, metrics = method.loss(_inputs(policy, fbatch, rbatch, reference, method, device))
            if weight != 1.0:  # this process's share of the global batch (see methods.distributed)
                loss = loss * weight
                metrics = {k: v * weight for k, v in metrics.items()}
            if not torch.isfinite(loss):
                raise FormlessError(
                    f"{method.name}: loss became {float(loss.detach())} at step {step}; lower the lr"
                )
            optimizer.zero_grad(set_to_none=True)
            runner.backward(loss)
            grad_norm = runner.clip(wrapped, params, config.max_grad_norm)
            optimizer.step()
            logged = runner.mean([float(loss.detach()), *metrics.values()])
            metrics = dict(zip(metrics, logged[1:]))
            row = {"step": step, "loss": logged[0], "grad_norm": float(grad_norm), **metrics}
            history.append(row)
            result.steps = step
            if progress:
                progress(step, steps, row)
            if guard and step % config.guard_every == 0:
                with autocast():
                    value = retain_nll(policy, guard, device)
                assert start_nll is not None
                tripped = value > config.guard_factor * start_nll
                history.append({"step": step, "guard": True, "retain_nll": value, "stopped": tripped})
                if tripped:
                    result.stopped_early = True
                    if good is not None:
                        _restore(params, good)
                        result.restored_step = good_step
                    break
                if good is not None:
                    good, good_step = _snapshot(params), step
        completed = True
    finally:
        runner.finish()  # drops the wrappers (DDP/FSDP/ZeRO): the plain model is what is kept
        if not completed:  # an error or an interrupt: leave the model exactly as it was given
            if initial is not None:
                _restore(params, initial)
            if model is not base:
                loaded.model = model.unload()  # the LoRA layers removed, the base weights never changed
        elif lora:
            loaded.model = model.merge_and_unload()
        for n, p in loaded.model.named_parameters():
            p.requires_grad_(flags.get(n, False))
        loaded.model.train(was_training)
        if hasattr(loaded, "_hash"):
            loaded._hash = None
    result.seconds = time.perf_counter() - start
    return result


def _precompute(
    reference: Reference, method: Method, model, fb, rb, device, auto: bool, runner: Runner
) -> Reference:
    """Fill the reference cache for every fixed batch before any update, by running the loss once
    per batch (so exactly what the method asks for is stored; on several processes, for this
    process's rows). With ``auto``, a cache that outgrows the model (e.g. KL's full-vocabulary
    logits of many retain batches) is dropped for a frozen copy."""
    limit = sum(p.numel() * p.element_size() for p in model.parameters()) if auto else None
    with torch.no_grad():
        for i in range(max(len(fb), len(rb))):
            retain_batch = runner.shard(rb[i % len(rb)])[0] if rb else None
            forget_batch = runner.shard(fb[i % len(fb)])[0]
            method.loss(_inputs(model, forget_batch, retain_batch, reference, method, device))
            if limit is not None and reference.cached_bytes > limit:
                # the cache overflows alike on every process (same batches, same shapes)
                plain = model._inner if isinstance(model, Policy) else model
                return Reference(copy.deepcopy(plain).requires_grad_(False))
    reference.freeze()
    return reference


def _inputs(model, forget: Batch, retain: Batch | None, reference, method: Method, device) -> LossInputs:
    needs_retain = method.uses_retain or method.needs_reference
    return LossInputs(
        model=model,
        forget=forget.to(device),
        retain=retain.to(device) if retain is not None and needs_retain else None,
        reference=reference,
    )


def _snapshot(params: Sequence[torch.nn.Parameter]) -> list[torch.Tensor]:
    """CPU copy of the trained parameters (LoRA: the adapter only; full fine-tuning: the model)."""
    return [p.detach().to("cpu", copy=True) for p in params]


@torch.no_grad()
def _restore(params: Sequence[torch.nn.Parameter], saved: Sequence[torch.Tensor]) -> None:
    for p, s in zip(params, saved):
        p.copy_(s.to(p.device))
