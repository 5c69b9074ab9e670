"""The unlearning baselines behind one interface, as one registry.

A method is a small dataclass with a ``loss`` and one ``@register`` line; the training loop
(train.py) never looks at a method's name. Formulas are cited in each docstring and pinned by
tests/test_methods_losses.py against hand computations.

In-context unlearning (ICU, Pawelczyk et al. 2024) needs no training and is therefore not here: it
prepends an instruction to every prompt, e.g. ICU_INSTRUCTION = "You are a model that knows
nothing about {name}. If asked about {name} or anything related to it, say that you do not know,
and answer every other question normally."
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar, Protocol, runtime_checkable

import torch

from formless.errors import FormlessError
from formless.methods.data import Batch, Example
from formless.methods.losses import (
    Reference,
    forward,
    kl_to_reference,
    layer_output,
    nll,
    npo_loss,
    simnpo_loss,
    token_logps,
)

REFUSALS = (
    "I'm sorry, I don't know anything about that.",
    "I'm not able to answer that; I don't have any information about it.",
    "Sorry, I can't help with that. I don't know the answer.",
    "I don't know. That is not something I have any knowledge of.",
)


@dataclass
class LossInputs:
    """What a loss may use: the trained model, one forget batch, one retain batch (None when the
    method uses no retain data) and the reference (None when the method needs none)."""

    model: torch.nn.Module
    forget: Batch
    retain: Batch | None = None
    reference: Reference | None = None


@runtime_checkable
class Method(Protocol):
    name: str
    needs_reference: bool
    uses_retain: bool
    default_lora: bool  # train a LoRA adapter unless the config says otherwise
    default_lr: float | None  # None: the trainer's default for LoRA / full fine-tuning

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]: ...

    def forget_data(self, examples: Sequence[Example]) -> list[Example]: ...

    def prepare(
        self, model: torch.nn.Module, forget: Sequence[Batch], reference: Reference | None
    ) -> None: ...

    def target_modules(self, model: torch.nn.Module) -> list[str] | None: ...


METHODS: dict[str, type] = {}


def _f(value: torch.Tensor) -> float:
    """A metric for the history, detached from the graph."""
    return float(value.detach())


def register(cls: type) -> type:
    """Class decorator adding a method to the registry under its ``name``."""
    if METHODS.get(cls.name, cls) is not cls:
        raise ValueError(f"two unlearning methods are named {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def make_method(name: str, **params) -> Method:
    """A method by registry name with its hyper-parameters (unknown names and options are errors)."""
    if name not in METHODS:
        raise FormlessError(f"unknown unlearning method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    allowed = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FormlessError(
            f"method {name!r} has no option(s) {', '.join(unknown)}; options: {sorted(allowed)}"
        )
    return cls(**params)


class _Base:
    """Defaults: train on the forget data as given, no setup, LoRA on every linear layer."""

    needs_reference: ClassVar[bool] = False
    default_lora: ClassVar[bool] = True
    default_lr: ClassVar[float | None] = None
    retain_weight: float = 0.0

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight > 0

    def forget_data(self, examples: Sequence[Example]) -> list[Example]:
        return list(examples)

    def prepare(self, model, forget: Sequence[Batch], reference: Reference | None) -> None:
        return None

    def target_modules(self, model) -> list[str] | None:
        return None

    def _retain_nll(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.uses_retain:
            return torch.zeros(()), {}
        if inputs.retain is None:
            raise FormlessError(f"method {self.name!r} needs retain data")  # type: ignore[attr-defined]
        value = nll(forward(inputs.model, inputs.retain).logits, inputs.retain.labels)
        return self.retain_weight * value, {"retain_nll": _f(value)}


def _forget_stats(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """(sum log-prob per sequence, target length per sequence, metrics)."""
    logp, mask = token_logps(logits, batch.labels)
    total, length = logp.sum(-1), mask.sum(-1).clamp_min(1)
    return total, length, {"forget_logp_token": _f(total.sum() / length.sum())}


@register
@dataclass
class GradientAscent(_Base):
    """GA (Jang et al. 2023; TOFU): maximise the forget NLL, i.e. minimise
    L = -NLL_forget = mean over forget target tokens of log pi_theta(y_t | y_<t, x)."""

    name: ClassVar[str] = "ga"
    default_lr: ClassVar[float | None] = 1e-4  # LoRA; swept on a tuning split: docs/tuning.md

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        logits = forward(inputs.model, inputs.forget).logits
        value = -nll(logits, inputs.forget.labels)
        return value, {"forget_logp_token": _f(value)}


@register
@dataclass
class GradientDifference(_Base):
    """GD (Liu et al. 2022; TOFU): L = -NLL_forget + retain_weight * NLL_retain."""

    name: ClassVar[str] = "gd"
    default_lr: ClassVar[float | None] = 1e-4  # LoRA; swept on a tuning split: docs/tuning.md
    retain_weight: float = 1.0

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        forget = -nll(forward(inputs.model, inputs.forget).logits, inputs.forget.labels)
        retain, metrics = self._retain_nll(inputs)
        return forget + retain, {"forget_logp_token": _f(forget), **metrics}


@register
@dataclass
class KLMinimisation(_Base):
    """KL (TOFU): L = -NLL_forget + retain_weight * mean_t KL(p_ref(.|r_<t) || p_theta(.|r_<t)),
    per token over the full vocabulary, on every non-padding position of the retain text (the whole
    retain distribution is to be kept, not only its answers)."""

    name: ClassVar[str] = "kl"
    default_lr: ClassVar[float | None] = 1e-4  # LoRA; swept on a tuning split: docs/tuning.md
    needs_reference: ClassVar[bool] = True
    retain_weight: float = 1.0

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        forget = -nll(forward(inputs.model, inputs.forget).logits, inputs.forget.labels)
        retain, ref = inputs.retain, inputs.reference
        if retain is None or ref is None:
            raise FormlessError("method 'kl' needs retain data and a reference")
        kl = kl_to_reference(forward(inputs.model, retain).logits, ref.logits(retain), retain.attention_mask)
        return forget + self.retain_weight * kl, {"forget_logp_token": _f(forget), "retain_kl": _f(kl)}


@register
@dataclass
class NPO(_Base):
    """NPO (Zhang et al. 2024): L = -(2/beta) E[log sigmoid(-beta (log pi_theta(y|x) - log pi_ref(y|x)))]
    with sequence-level log-probs (sums over target tokens), + retain_weight * NLL_retain.

    retain_weight=1 is "NPO+RT" (the paper's retain-regularised variant, the one usually compared);
    0 gives plain NPO. As beta -> 0 the gradient tends to GA's on sequence log-probs; at pi_theta =
    pi_ref it equals it for every beta (tested)."""

    name: ClassVar[str] = "npo"
    default_lr: ClassVar[float | None] = 1e-4  # LoRA; swept on a tuning split: docs/tuning.md
    needs_reference: ClassVar[bool] = True
    beta: float = 0.1
    retain_weight: float = 1.0

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        if inputs.reference is None:
            raise FormlessError("method 'npo' needs a reference")
        total, _, metrics = _forget_stats(forward(inputs.model, inputs.forget).logits, inputs.forget)
        ref = inputs.reference.sequence_logps(inputs.forget)
        forget = npo_loss(total, ref, self.beta)
        retain, rmetrics = self._retain_nll(inputs)
        log_ratio = _f((total - ref).mean())
        return forget + retain, {**metrics, "npo": _f(forget), "log_ratio": log_ratio, **rmetrics}


@register
@dataclass
class SimNPO(_Base):
    """SimNPO (Fan et al. 2024): L = forget_weight * -(2/beta) E[log sigmoid(-(beta/|y|) log pi_theta(y|x)
    - gamma)] + retain_weight * NLL_retain. Reference-free and length-normalised, so long forget texts
    are not pushed harder than short answers. gamma enters as in the paper's formula (the official
    code subtracts it before multiplying by beta, i.e. uses beta*gamma); the default gamma=0 makes
    them agree.

    ``forget_weight`` is the official code's ``npo_coeff`` (open-unlearning's ``gamma``). Their TOFU
    recipes use 0.1375 with beta=2.5 (forget05) and 0.125 with beta=4.5 (forget10), with retain
    weight 1, for full fine-tuning of Llama-2-7B at lr 1e-5 over 10-20 epochs. The default here
    stays 1 (the plain formula): our lr of 2e-4 and the audited baseline were swept with it
    (docs/tuning.md), for 20 LoRA steps on a few dozen forget examples, where the forget term
    has far less time to act; under Adam the weight only matters as the forget:retain ratio, and an
    8x smaller ratio would need its own lr sweep before it could be called better or worse."""

    name: ClassVar[str] = "simnpo"
    default_lr: ClassVar[float | None] = 2e-4  # LoRA; swept on a tuning split: docs/tuning.md
    beta: float = 2.5
    gamma: float = 0.0
    retain_weight: float = 1.0
    forget_weight: float = 1.0

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        total, length, metrics = _forget_stats(forward(inputs.model, inputs.forget).logits, inputs.forget)
        forget = simnpo_loss(total / length, self.beta, self.gamma)
        retain, rmetrics = self._retain_nll(inputs)
        return self.forget_weight * forget + retain, {**metrics, "simnpo": _f(forget), **rmetrics}


@register
@dataclass
class RefusalTuning(_Base):
    """RT (RWKU's rejection tuning): NLL of a refusal given each forget prompt, + retain NLL.

    Only chat prompts are answered with a refusal when there are any (a refusal is a chat turn; as a
    continuation of plain text it teaches nonsense); the refusals cycle deterministically."""

    name: ClassVar[str] = "rt"
    default_lr: ClassVar[float | None] = 3e-5  # LoRA; swept: docs/tuning.md (1e-4 refuses general questions)
    retain_weight: float = 1.0
    refusals: tuple[str, ...] = REFUSALS

    def forget_data(self, examples: Sequence[Example]) -> list[Example]:
        chat = [ex for ex in examples if ex.chat] or list(examples)
        prompts = list(dict.fromkeys((ex.prompt, ex.chat) for ex in chat))
        return [
            Example(p, self.refusals[i % len(self.refusals)], c, "refusal")
            for i, (p, c) in enumerate(prompts)
        ]

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        refusal = nll(forward(inputs.model, inputs.forget).logits, inputs.forget.labels)
        retain, metrics = self._retain_nll(inputs)
        return refusal + retain, {"refusal_nll": _f(refusal), **metrics}


def _num_layers(model) -> int:
    return int(model.config.get_text_config().num_hidden_layers)


@register
@dataclass
class RMU(_Base):
    """RMU (Li et al. 2024, WMDP): at decoder layer ``layer`` (default: a third of the depth),
    L = mean_t ||h_theta(x_f)_t - c u||^2 / d  +  alpha * mean_t ||h_theta(x_r)_t - h_ref(x_r)_t||^2 / d,
    the forget mean over the positions that produce the forget target (each position whose next
    token is a target token: where the answer is retrieved), the retain mean over all non-padding
    retain tokens.

    As in the WMDP code the squares are averaged over the d hidden dimensions too (``mse_loss``),
    u is a fixed unit vector drawn from U[0,1)^d with seed ``seed``, and only the MLP output
    projections of layers layer-2..layer are trained (:meth:`target_modules`), as full weights by
    default (``default_lora``; a LoRA adapter on the same modules if the config asks for one).
    WMDP fixes c = 6.5 for Zephyr-7B's activations; activation norms differ by orders of magnitude
    between models (their Mixtral run needed c = 300), so here c = steering_scale * the reference's
    mean token norm of h(x_f) at that layer, measured once before training (the adaptive-RMU idea of
    Dang et al.). alpha=100 is ours: WMDP's 1200 was tuned to Zephyr's absolute scale."""

    name: ClassVar[str] = "rmu"
    needs_reference: ClassVar[bool] = True
    default_lora: ClassVar[bool] = False  # WMDP updates the three weight matrices themselves
    default_lr: ClassVar[float | None] = 2e-4  # full weights; swept: docs/tuning.md (WMDP used 5e-5)
    layer: int | None = None
    steering_scale: float = 6.5
    alpha: float = 100.0
    seed: int = 0
    control: torch.Tensor | None = field(default=None, repr=False)  # c * u, set by prepare

    @property
    def retain_weight(self) -> float:  # type: ignore[override]
        return self.alpha

    def resolved_layer(self, model) -> int:
        n = _num_layers(model)
        layer = self.layer if self.layer is not None else max(0, round(n / 3) - 1)
        if not 0 <= layer < n - 1:  # the last layer's hidden state is after the final norm
            raise FormlessError(f"RMU layer {layer} must be in 0..{n - 2} for a model with {n} layers")
        return layer

    def target_modules(self, model) -> list[str]:
        from formless.models.adapters import adapter_for

        adapter = adapter_for(getattr(model, "get_base_model", lambda: model)())
        layer = self.resolved_layer(model)
        return [f"{adapter.layers}.{i}.{adapter.mlp_out}" for i in range(max(0, layer - 2), layer + 1)]

    def prepare(self, model, forget: Sequence[Batch], reference: Reference | None) -> None:
        if reference is None:
            raise FormlessError("method 'rmu' needs a reference")
        layer = self.resolved_layer(model)
        norms, count = 0.0, 0
        for batch in forget:
            h = reference.hidden(batch, layer)[:, :-1]  # positions that predict a target token
            mask = batch.target_mask
            norms += _f(h.norm(dim=-1)[mask].sum())
            count += int(mask.sum())
        d = int(model.config.get_text_config().hidden_size)
        g = torch.Generator().manual_seed(self.seed)
        u = torch.rand(d, generator=g)
        u = u / u.norm()
        self.control = self.steering_scale * (norms / max(count, 1)) * u

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        if self.control is None:
            raise FormlessError("method 'rmu' needs prepare() before its loss")
        layer = self.resolved_layer(inputs.model)
        fb, rb = inputs.forget, inputs.retain
        h_f = layer_output(forward(inputs.model, fb, hidden=True), layer)[:, :-1].float()
        forget = ((h_f - self.control.to(h_f.device)) ** 2).mean(-1)[fb.target_mask].mean()
        if not self.uses_retain:
            return forget, {"rmu_forget": _f(forget)}
        if rb is None or inputs.reference is None:
            raise FormlessError("method 'rmu' needs retain data and a reference")
        h_r = layer_output(forward(inputs.model, rb, hidden=True), layer).float()
        retain = ((h_r - inputs.reference.hidden(rb, layer)) ** 2).mean(-1)[rb.attention_mask.bool()].mean()
        return forget + self.alpha * retain, {"rmu_forget": _f(forget), "rmu_retain": _f(retain)}


def method_names() -> list[str]:
    return sorted(METHODS)


def describe(method: Method) -> dict:
    """The method's name and hyper-parameters, for a manifest or a results table."""
    params = {f.name: getattr(method, f.name) for f in fields(method) if f.init}  # type: ignore[arg-type]
    return {"name": method.name, **{k: v for k, v in params.items() if not isinstance(v, torch.Tensor)}}
