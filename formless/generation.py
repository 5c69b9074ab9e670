"""Batched greedy generation, used by `generate`, `compare`, the audit and the benchmarks.

Greedy decoding runs in formless' own loop (``greedy_new_tokens``) where the model's generation
config asks for nothing but argmax: a row that has ended (its EOS) leaves the batch, so the rows
still generating stop paying for it. Each remaining row's numbers are unchanged: the batch keeps
one width (the key/value length), the linear layers treat rows independently, and positions come
from the attention mask as in ``transformers``' ``generate``; tests check token-for-token equality
with ``generate`` on every supported architecture. Anything else (a repetition penalty, forced
tokens, an encoder-decoder) goes through ``model.generate`` as before."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterable
from pathlib import Path

import torch

from formless.models.prompts import add_special_tokens, render


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 matmuls (avx512_bf16 / AMX), where bf16 is ~2x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_inference_context(device: torch.device):
    """bf16 autocast where it speeds up inference (CPU with native bf16, or CUDA); else nothing."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# generation-config fields that change greedy decoding beyond argmax; any of them set: model.generate
_PROCESSORS = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "sequence_bias": (None,),
    "encoder_repetition_penalty": (None, 1.0),
    "exponential_decay_length_penalty": (None,),
    "stop_strings": (None,),
}


def _own_loop_applies(model) -> bool:
    """Plain greedy decoding of a decoder-only model with a dynamic cache: the own loop is exact."""
    config = getattr(model, "config", None)
    gen = getattr(model, "generation_config", None)
    if config is None or gen is None or getattr(config, "is_encoder_decoder", False):
        return False
    if any(getattr(gen, k, None) not in ok for k, ok in _PROCESSORS.items()):
        return False
    return "position_ids" in inspect.signature(model.forward).parameters


def _eos_ids(model) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@torch.no_grad()
def greedy_new_tokens(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int, pad_token_id: int
) -> torch.Tensor:
    """The tokens ``model.generate(do_sample=False)`` appends to a left-padded batch (finished rows
    filled with ``pad_token_id``, as ``generate`` returns them), computed with finished rows dropped."""
    from transformers import DynamicCache

    n = input_ids.shape[0]
    eos = torch.tensor(_eos_ids(model), dtype=torch.long, device=input_ids.device)
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache = DynamicCache(config=model.config)
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    )
    rows = torch.arange(n, device=input_ids.device)
    new = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=input_ids.device)
    last = positions[:, -1:]
    steps = 0
    while steps < max_new_tokens:
        token = out.logits[:, -1].float().argmax(-1)
        new[rows, steps] = token
        steps += 1
        running = ~torch.isin(token, eos)
        if steps == max_new_tokens or not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero().flatten()
            cache.batch_select_indices(keep)
            rows, mask, last, token = rows[keep], mask[keep], last[keep], token[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        last = last + 1
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=last,
            use_cache=True,
            **{cache_arg: cache},
        )
    return new[:, :steps]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Iterable[str],
    *,
    chat: bool = True,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    fast: bool = True,
    own_loop: bool = True,
) -> list[str]:
    """Greedy continuations of ``prompts`` (rendered with the chat template when ``chat``).
    ``own_loop=False`` always uses ``model.generate`` (the reference the own loop is tested against)."""
    prompts = list(prompts)
    texts = [render(tokenizer, p, chat=chat) for p in prompts]
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    own_loop = own_loop and _own_loop_applies(model)
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens(tokenizer, chat),
            ).to(device)
            ctx = fast_inference_context(device) if fast else contextlib.nullcontext()
            with ctx:
                if own_loop:
                    new = greedy_new_tokens(
                        model,
                        batch["input_ids"],
                        batch["attention_mask"],
                        max_new_tokens=max_new_tokens,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                else:
                    out = model.generate(
                        **batch,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                    )
                    new = out[:, batch["input_ids"].shape[1] :]
            outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = old_side
    return [o.strip() for o in outputs]
