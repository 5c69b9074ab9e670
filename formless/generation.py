"""Batched greedy generation, used by `generate`, `compare` and the benchmarks."""

from __future__ import annotations

import contextlib
import functools
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
) -> list[str]:
    """Greedy continuations of ``prompts`` (rendered with the chat template when ``chat``)."""
    prompts = list(prompts)
    texts = [render(tokenizer, p, chat=chat) for p in prompts]
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
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
