"""Teacher-forced answer probability, ORT's metric.

For a prompt and a gold answer, the score is the geometric mean of the answer tokens'
probabilities given the (chat-formatted) prompt and the answer tokens before them:
``exp(mean_t log p(a_t | prompt, a_<t))``. Length-normalised, so long answers are not
penalised for their length; computed from log-softmax of the logits (never raw logits).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch

from formless.generation import (
    _own_loop_applies,
    answer_log_probs,
    can_rewind,
    fast_inference_context,
    prefill,
    prompt_buckets,
    shared_prefix,
)
from formless.models.loading import LoadedModel
from formless.models.prompts import add_special_tokens, answer_token_ids, left_pad, render, right_pad


@torch.no_grad()
def answer_probability(
    loaded: LoadedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    chat: bool = True,
    batch_size: int = 16,
    fast: bool = True,
) -> list[float]:
    """Geometric-mean token probability of each answer after its prompt (one float per pair).

    ``fast`` runs the transformer body in bf16 on hardware where that is quicker (scores then agree
    with float32 to about 1%, see tests); ``fast=False`` is exact float32."""
    if len(prompts) != len(answers):
        raise ValueError("prompts and answers must pair up")
    tok, model = loaded.tokenizer, loaded.model
    special = add_special_tokens(tok, chat)
    contexts = {
        p: list(tok(render(tok, p, chat=chat), add_special_tokens=special)["input_ids"]) for p in prompts
    }
    targets = [answer_token_ids(tok, p, a, chat=chat) for p, a in zip(prompts, answers)]
    if not fast and _own_loop_applies(model):
        shared = _on_shared_prompts(loaded, list(prompts), targets, contexts, batch_size)
        if shared is not None:
            return shared
    pairs = [(contexts[p], t) for p, t in zip(prompts, targets)]
    scores: list[float] = []
    pad = tok.pad_token_id or 0
    device = loaded.device
    head = model.get_output_embeddings()
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        ids, mask = right_pad([c + t for c, t in batch], pad)
        # the body may run in bf16 where that is fast; the vocabulary head always runs in float32,
        # and only on the answer positions (it is a fifth of the model's compute at every position)
        with fast_inference_context(device) if fast else contextlib.nullcontext():
            hidden = model.base_model(
                input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
            )[0]
        for i, (c, t) in enumerate(batch):
            # the hidden state at position j predicts token j + 1
            h = hidden[i, len(c) - 1 : len(c) + len(t) - 1].float()
            logits = torch.nn.functional.linear(h, head.weight.float(), _bias(head))
            log_probs = torch.log_softmax(_softcap(model, logits), dim=-1)
            token_lp = log_probs[torch.arange(len(t)), torch.tensor(t, device=log_probs.device)]
            scores.append(float(token_lp.mean().exp()))
    return scores


@torch.no_grad()
def _on_shared_prompts(
    loaded: LoadedModel,
    prompts: list[str],
    targets: list[list[int]],
    contexts: dict[str, list[int]],
    batch_size: int,
) -> list[float] | None:
    """The same metric with each distinct prompt computed once: its cache is prefilled and every
    answer asked after it (the options of a multiple-choice question) is fed on top and cut off
    again (formless.generation.answer_log_probs); the tokens every prompt starts with (the chat
    template's system turn) are computed once for all (formless.generation.shared_prefix). Float32
    throughout; the numbers agree with the one-pass path to float rounding. None when the model's
    cache cannot be rewound (sliding-window layers): the caller scores the pairs whole. The prompts
    are prefilled in batches of like lengths (formless.generation.prompt_buckets)."""
    asked: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        asked.setdefault(p, []).append(i)
    order = sorted(asked, key=lambda p: len(contexts[p]))
    scores: list[float] = [0.0] * len(prompts)
    pad = loaded.tokenizer.pad_token_id or 0
    device = loaded.device
    prefix = shared_prefix(loaded.model, [contexts[p] for p in order])
    skip = prefix.length if prefix else 0
    for bucket in prompt_buckets([len(contexts[p]) - skip for p in order], batch_size):
        batch = [order[k] for k in bucket]
        ids, mask = left_pad([contexts[p][skip:] for p in batch], pad)
        out, cache, mask, positions = prefill(loaded.model, ids.to(device), mask.to(device), prefix)
        if not can_rewind(cache):
            return None
        for k in range(max(len(asked[p]) for p in batch)):
            kth = [asked[p][k] if k < len(asked[p]) else None for p in batch]
            log_probs = answer_log_probs(
                loaded.model, cache, out.logits[:, -1], mask, positions[:, -1:],
                [None if i is None else targets[i] for i in kth],
            )  # fmt: skip
            for i, lp in zip(kth, log_probs):
                if i is not None:
                    scores[i] = math.exp(lp)
    return scores


def _bias(head) -> torch.Tensor | None:
    return None if getattr(head, "bias", None) is None else head.bias.float()


def _softcap(model, logits: torch.Tensor) -> torch.Tensor:
    """Gemma 2 caps its final logits; apply the same so probabilities match the model's own."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
