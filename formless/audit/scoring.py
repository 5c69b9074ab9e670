"""Teacher-forced answer probability, ORT's metric.

For a prompt and a gold answer, the score is the geometric mean of the answer tokens'
probabilities given the (chat-formatted) prompt and the answer tokens before them:
``exp(mean_t log p(a_t | prompt, a_<t))``. Length-normalised, so long answers are not
penalised for their length; computed from log-softmax of the logits (never raw logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

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
) -> list[float]:
    """Geometric-mean token probability of each answer after its prompt (one float per pair)."""
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
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        ids, mask = right_pad([c + t for c, t in batch], pad)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        for i, (c, t) in enumerate(batch):
            # logits at position j predict token j + 1
            positions = torch.arange(len(c) - 1, len(c) + len(t) - 1, device=log_probs.device)
            token_lp = log_probs[i, positions, torch.tensor(t, device=log_probs.device)]
            scores.append(float(token_lp.mean().exp()))
    return scores
