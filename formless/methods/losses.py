"""Loss primitives shared by the baselines, and the reference model they compare against.

Every log-probability here comes from ``log_softmax`` of the logits in float32 (float64 logits
stay float64, so tests can check exact identities without float32 rounding) and is taken on
target tokens only (labels != -100), shifted so that position t scores token t+1. Using raw
logits as log-probabilities (a bug reported in public unlearning code) makes losses depend on an
arbitrary per-position constant; the tests pin that shifting all logits leaves every loss unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F

from formless.methods.data import Batch


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16/fp16 logits are upcast; float64 is kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(token t+1 | ..t) per position, mask of target positions), both (B, T-1)."""
    logp = torch.log_softmax(_upcast(logits[:, :-1]), dim=-1)
    targets = labels[:, 1:]
    mask = targets != -100
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    # select, never multiply: a masked position may hold -inf (e.g. a banned token's logit), and
    # -inf * 0 is NaN, in the value and in the gradient
    return torch.where(mask, picked, torch.zeros_like(picked)), mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, average: bool = False) -> torch.Tensor:
    """log pi(y|x) per sequence: the sum over target tokens (the mean when ``average``), shape (B,)."""
    logp, mask = token_logps(logits, labels)
    total = logp.sum(-1)
    return total / mask.sum(-1).clamp_min(1) if average else total


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all target tokens of the batch (HF's causal-LM loss)."""
    logp, mask = token_logps(logits, labels)
    return -logp.sum() / mask.sum().clamp_min(1)


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024, eq. 3): -(2/beta) E[log sigmoid(-beta (log pi_theta - log pi_ref))]."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


def simnpo_loss(avg_logp: torch.Tensor, beta: float, gamma: float = 0.0) -> torch.Tensor:
    """SimNPO (Fan et al. 2024, eq. 4): -(2/beta) E[log sigmoid(-(beta/|y|) log pi_theta(y|x) - gamma)],
    with ``avg_logp`` = log pi_theta(y|x) / |y| (length-normalised, reference-free)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * avg_logp - gamma).mean()


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(p_ref || p_theta) over the full vocabulary."""
    logp = torch.log_softmax(_upcast(logits), dim=-1)
    ref = torch.log_softmax(_upcast(ref_logits), dim=-1)
    p_ref = ref.exp()
    # 0 log 0 = 0: a token the reference gives probability 0 (a -inf logit) adds nothing, even where
    # the policy's logit is -inf too (-inf - -inf is NaN); masked positions are selected away likewise
    terms = torch.where(p_ref > 0, p_ref * (ref - logp), torch.zeros_like(p_ref))
    per_token = terms.sum(-1)
    mask = mask.bool()
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum() / mask.sum().clamp_min(1)


def forward(model, batch: Batch, hidden: bool = False):
    return model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        output_hidden_states=hidden,
        use_cache=False,
    )


def layer_output(outputs, layer: int) -> torch.Tensor:
    """Residual stream after decoder layer ``layer`` (hidden_states[0] is the embedding output)."""
    return outputs.hidden_states[layer + 1]


class Reference:
    """The reference model pi_ref, as the losses see it.

    ``context`` switches the model to its reference behaviour (with LoRA: ``disable_adapter``, so
    no second copy is kept). With ``cache=True`` results are memoised per fixed batch key; after
    :meth:`freeze` a miss raises instead of silently computing from a model that is being trained.
    """

    def __init__(
        self,
        model,
        context: Callable[[], AbstractContextManager] = contextlib.nullcontext,
        cache: bool = False,
    ):
        self.model, self.context, self.cache = model, context, cache
        self._memo: dict[tuple, torch.Tensor] = {}
        self.frozen = False

    def _get(self, batch: Batch, what: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = (batch.key, *what)
        if self.cache and key in self._memo:
            return self._memo[key]
        if self.frozen:
            raise RuntimeError(f"reference output {key} was not precomputed before training")
        with torch.no_grad(), self.context():
            value = compute().detach()
        if self.cache:
            self._memo[key] = value
        return value

    def freeze(self) -> None:
        self.frozen = True

    @property
    def cached_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._memo.values())

    def logits(self, batch: Batch) -> torch.Tensor:
        return self._get(batch, ("logits",), lambda: _upcast(forward(self.model, batch).logits))

    def sequence_logps(self, batch: Batch) -> torch.Tensor:
        return self._get(
            batch, ("logps",), lambda: sequence_logps(forward(self.model, batch).logits, batch.labels)
        )

    def hidden(self, batch: Batch, layer: int) -> torch.Tensor:
        return self._get(
            batch,
            ("hidden", layer),
            lambda: _upcast(layer_output(forward(self.model, batch, hidden=True), layer)),
        )
