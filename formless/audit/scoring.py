"""Teacher-forced answer probability, ORT's metric.

For a prompt and a gold answer, the score is the geometric mean of the answer tokens'
probabilities given the (chat-formatted) prompt and the answer tokens before them:
``exp(mean_t log p(a_t | prompt, a_<t))``. Length-normalised, so long answers are not
penalised for their length; computed from log-softmax of the logits (never raw logits).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from formless.generation import fast_inference_context
from formless.models.loading import LoadedModel
from formless.models.prompts import add_special_tokens, render, right_pad


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
    pairs = []
    for prompt, answer in zip(prompts, answers):
        context = tok(render(tok, prompt, chat=chat), add_special_tokens=special)["input_ids"]
        sep = "" if chat or prompt.endswith((" ", "\n")) else " "
        target = tok(sep + answer, add_special_tokens=False)["input_ids"]
        if not target:
            raise ValueError(f"answer {answer!r} has no tokens")
        pairs.append((list(context), list(target)))
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


def _bias(head) -> torch.Tensor | None:
    return None if getattr(head, "bias", None) is None else head.bias.float()


def _softcap(model, logits: torch.Tensor) -> torch.Tensor:
    """Gemma 2 caps its final logits; apply the same so probabilities match the model's own."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
