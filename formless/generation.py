"""Batched greedy generation, used by `generate`, `compare`, the audit and the benchmarks.

Greedy decoding runs in formless' own loop (``greedy_new_tokens``) where the model's generation
config asks for nothing but argmax: a row that has ended (its EOS) leaves the batch, so the rows
still generating stop paying for it. Each remaining row's numbers are unchanged: the batch keeps
one width (the key/value length), the linear layers treat rows independently, and positions come
from the attention mask as in ``transformers``' ``generate``; tests check token-for-token equality
with ``generate`` on every supported architecture. Anything else (a repetition penalty, forced
tokens, an encoder-decoder) goes through ``model.generate`` as before.

The same prefill also scores answers (``answers=``): the gold answer's tokens are fed once on top of
the prompt's key/value cache, their log-probabilities read, and the cache cut back to the prompt
before decoding, so the prompt is computed once for both the generation and ORT's answer
probability, and the generated tokens are exactly those of a run without answers."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from formless.matching import contains_answer
from formless.models.prompts import add_special_tokens, answer_token_ids, left_pad, render
from formless.progress import advance


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


def _cache_arg(model) -> str:
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@dataclass(frozen=True)
class SharedPrefix:
    """The keys and values of the tokens every prompt of a call starts with (a chat template's
    system turn), computed once and put in front of each batch's cache."""

    tokens: tuple[int, ...]
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def length(self) -> int:
        return len(self.tokens)


MIN_SHARED_PREFIX = 4  # fewer common tokens are not worth a separate pass


@torch.no_grad()
def shared_prefix(model, sequences: Sequence[Sequence[int]]) -> SharedPrefix | None:
    """The common leading tokens of ``sequences`` (each keeps at least its last token), computed
    once; None when there are fewer than ``MIN_SHARED_PREFIX`` or the model's cache cannot hold
    them apart (sliding-window layers)."""
    from transformers import DynamicCache

    if not sequences:
        return None
    first, n = sequences[0], min(len(s) for s in sequences) - 1
    for seq in sequences[1:]:
        n = next((i for i in range(n) if seq[i] != first[i]), n)
    if n < MIN_SHARED_PREFIX:
        return None
    cache = DynamicCache(config=model.config)
    device = next(model.parameters()).device
    model(
        input_ids=torch.tensor([list(first[:n])], device=device), use_cache=True, **{_cache_arg(model): cache}
    )
    if not can_rewind(cache):
        return None
    return SharedPrefix(tuple(first[:n]), tuple((layer.keys, layer.values) for layer in cache.layers))


def prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: SharedPrefix | None = None):
    """(output with the last position's logits, cache, full attention mask, positions of the new
    tokens) of a left-padded batch; with ``prefix`` the batch holds only what follows it and the
    prefix's keys and values start every row's cache: [prefix][padding][rest of the prompt]. The
    padding is masked and positions count real tokens only, so each row is computed as if alone."""
    from transformers import DynamicCache

    mask = attention_mask.long()
    cache = DynamicCache(config=model.config)
    if prefix is not None:
        rows = input_ids.shape[0]
        for i, (keys, values) in enumerate(prefix.layers):
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), i)
        mask = torch.cat([mask.new_ones(rows, prefix.length), mask], dim=1)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, -input_ids.shape[1] :]
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{_cache_arg(model): cache},
    )
    return out, cache, mask, positions


def can_rewind(cache) -> bool:
    """True when every layer keeps all its keys and values (no sliding window), so tokens fed on
    top of a prompt can be cut off again and leave the prompt's cache exactly as it was."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


@torch.no_grad()
def answer_log_probs(
    model, cache, first_logits: torch.Tensor, mask: torch.Tensor, last: torch.Tensor, answers
) -> list[float | None]:
    """Mean log-probability of each row's answer tokens after its cached prompt (None for a row
    without an answer). ``first_logits`` (rows x vocabulary) predict each answer's first token,
    ``mask`` and ``last`` are the prompt's attention mask and last positions. The answers are fed
    in one pass per group of like lengths (``length_groups``) and cut off again: the cache is left as
    it was (``can_rewind`` must hold)."""
    groups = length_groups([len(a) if a else 0 for a in answers])
    if len(groups) > 1 or (groups and len(groups[0]) < len(answers)):
        # answers of very different lengths (a one-token "True" beside a ten-token spelled-out name):
        # each group is fed on a copy of its rows' cache, so no row computes another's padding
        from transformers import DynamicCache

        scores: list[float | None] = [None] * len(answers)
        for group in groups:
            idx = torch.tensor(group, device=mask.device)
            sub = DynamicCache(config=model.config)
            for i, layer in enumerate(cache.layers):
                sub.update(layer.keys.index_select(0, idx), layer.values.index_select(0, idx), i)
            got = _feed_answers(
                model, sub, first_logits[idx], mask[idx], last[idx], [answers[i] for i in group]
            )
            for i, value in zip(group, got):
                scores[i] = value
        return scores
    return _feed_answers(model, cache, first_logits, mask, last, answers, rewind=True)


# a group of answers fed together pays for its longest answer on every row, and each extra group
# pays a forward pass's overhead: about this many answer tokens' worth on a CPU
GROUP_OVERHEAD_TOKENS = 48


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Rows with an answer (length > 0) split into groups by answer length so that rows x longest
    answer, plus ``GROUP_OVERHEAD_TOKENS`` per group, is least (exact, over contiguous runs of the
    rows sorted by length)."""
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: lengths[i])
    return cheapest_runs(order, lengths, GROUP_OVERHEAD_TOKENS, len(order))


def cheapest_runs(
    order: Sequence[int], lengths: Sequence[int], overhead: float, most: int
) -> list[list[int]]:
    """``order`` (indices sorted by ``lengths``) cut into contiguous runs of at most ``most`` where
    the sum over runs of rows x longest length + ``overhead`` is least (exact dynamic programme)."""
    best = [0.0] + [math.inf] * len(order)  # best[j]: cost of the first j rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(max(0, j - most), j):  # rows i..j-1 as one run, the longest being j-1
            cost = best[i] + (j - i) * lengths[order[j - 1]] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs, j = [], len(order)
    while j:
        runs.append(list(order[cut[j] : j]))
        j = cut[j]
    return runs[::-1]


@torch.no_grad()
def _feed_answers(
    model, cache, first_logits, mask, last, answers, rewind: bool = False
) -> list[float | None]:
    device = mask.device
    width = max((len(a) for a in answers if a), default=0)
    if not width:
        return [None] * len(answers)
    ids = torch.zeros((len(answers), width), dtype=torch.long, device=device)
    fed = torch.zeros_like(ids)
    for i, a in enumerate(answers):
        if a:
            ids[i, : len(a)] = torch.tensor(a, dtype=torch.long, device=device)
            fed[i, : len(a)] = 1
    out = model(
        input_ids=ids,
        attention_mask=torch.cat([mask.long(), fed], dim=1),
        position_ids=last + 1 + torch.arange(width, device=device)[None],
        use_cache=True,
        **{_cache_arg(model): cache},
    )
    if rewind:
        cache.crop(-width)
    # position j's logits predict answer token j + 1; the prompt's last position predicts token 0
    dtype = torch.promote_types(out.logits.dtype, torch.float32)  # float32 at least, as the metric
    logits = torch.cat([first_logits[:, None].to(dtype), out.logits[:, :-1].to(dtype)], dim=1)
    token_lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None])[..., 0]
    return [float(token_lp[i, : len(a)].mean()) if a else None for i, a in enumerate(answers)]


@torch.no_grad()
def greedy_new_tokens(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    pad_token_id: int,
    answers=None,
    prefix: SharedPrefix | None = None,
    decided: Callable[[int, torch.Tensor], bool] | None = None,
    budgets: Sequence[int] | None = None,
):
    """The tokens ``model.generate(do_sample=False)`` appends to a left-padded batch (finished rows
    filled with ``pad_token_id``, as ``generate`` returns them), computed with finished rows dropped.
    ``budgets`` (per row, each ≤ ``max_new_tokens``): a row stops after its own number of tokens,
    so prompts with different budgets share one batch and each row reads as it would alone.
    With ``answers`` (token ids per row, or None) it returns ``(tokens, mean log-probabilities)``,
    the answers scored on the prompt's own cache (None for every row where the cache cannot be
    rewound: then nothing is fed). With ``prefix`` the batch holds what follows it (``prefill``).
    ``decided(row, tokens so far)``: True stops that row there (its answer is settled)."""
    n = input_ids.shape[0]
    out, cache, mask, positions = prefill(model, input_ids, attention_mask, prefix)
    scores = None
    if answers is not None:
        scores = (
            answer_log_probs(model, cache, out.logits[:, -1], mask, positions[:, -1:], answers)
            if can_rewind(cache)
            else [None] * n
        )
    new = decode(
        model, out.logits[:, -1], cache, mask, positions[:, -1:],
        max_new_tokens=max_new_tokens, pad_token_id=pad_token_id, decided=decided, budgets=budgets,
    )  # fmt: skip
    return new if answers is None else (new, scores)


@torch.no_grad()
def decode(
    model,
    first_logits: torch.Tensor,
    cache,
    mask: torch.Tensor,
    last: torch.Tensor,
    *,
    max_new_tokens: int,
    pad_token_id: int,
    decided: Callable[[int, torch.Tensor], bool] | None = None,
    budgets: Sequence[int] | None = None,
) -> torch.Tensor:
    """Greedy decoding from prefilled prompts (``first_logits``: each row's last prompt position,
    ``mask`` the cache's attention mask, ``last`` each row's last position), finished rows dropped:
    see ``greedy_new_tokens``."""
    n = first_logits.shape[0]
    device = first_logits.device
    eos = torch.tensor(_eos_ids(model), dtype=torch.long, device=device)
    cache_arg = _cache_arg(model)
    rows = torch.arange(n, device=device)
    limit = None if budgets is None else torch.tensor(list(budgets), dtype=torch.long, device=device)
    new = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logits = first_logits
    steps = 0
    while steps < max_new_tokens:
        token = logits.float().argmax(-1)
        new[rows, steps] = token
        steps += 1
        running = ~torch.isin(token, eos)
        if limit is not None:  # rows at their own budget leave like finished ones
            running &= limit[rows] > steps
        if decided is not None:  # rows whose answer is already settled leave like finished ones
            running &= torch.tensor(
                [not decided(int(r), new[r, :steps]) for r in rows], device=running.device
            )
        if steps == max_new_tokens or not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero().flatten()
            cache.batch_select_indices(keep)
            rows, mask, last, token = rows[keep], mask[keep], last[keep], token[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        last = last + 1
        logits = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=last,
            use_cache=True,
            **{cache_arg: cache},
        ).logits[:, -1]
    return new[:, :steps]


# a prefill pass costs about this many prompt tokens' worth beyond its tokens (the weights read once)
BUCKET_OVERHEAD_TOKENS = 24
# rows decoded together at most: one decoding step reads the weights once for all of them, so fewer,
# fuller steps; bounded because the rows' caches are held at once, and by their bytes (a 7B model's
# keys and values for 256 long rows would not fit beside it)
DECODE_ROWS = 256
DECODE_CACHE_BYTES = 4 * 2**30


def decode_rows(model, width: int, batch_size: int) -> int:
    """How many rows to decode together: ``DECODE_ROWS``, fewer where their key/value cache of
    ``width`` positions would pass ``DECODE_CACHE_BYTES``, never fewer than a prefill batch."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (
        config.hidden_size // heads if heads and getattr(config, "hidden_size", None) else None
    )
    if not (layers and kv_heads and head_dim):
        return max(1, min(DECODE_ROWS, batch_size))  # an unknown layout: a prefill batch at a time
    element = next(model.parameters()).element_size()
    per_row = 2 * layers * kv_heads * head_dim * element * max(1, width)
    return max(batch_size, min(DECODE_ROWS, DECODE_CACHE_BYTES // per_row))


def prompt_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """The prompts (by index) in prefill batches of at most ``batch_size``: contiguous runs of the
    prompts sorted by length, split where rows x longest prompt plus ``BUCKET_OVERHEAD_TOKENS`` per
    batch is least (exact dynamic programme), so that short prompts are not padded to long ones."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return cheapest_runs(order, lengths, BUCKET_OVERHEAD_TOKENS, batch_size)


def merge_prefills(model, parts, prefix_length: int):
    """One cache (and first logits, mask, last positions) for the rows of several prefilled batches
    of different widths: each batch's cache is widened with masked zeros after the shared prefix,
    [prefix][padding][prompt] as ``prefill`` lays it out, so every row reads as it did alone.
    ``parts``: (first logits, cache, mask, last) per batch; their caches must be ``can_rewind``."""
    from transformers import DynamicCache

    width = max(mask.shape[1] for _, _, mask, _ in parts)

    def widened(t: torch.Tensor, dim: int) -> torch.Tensor:  # masked zeros after the prefix
        shape = list(t.shape)
        shape[dim] = width - t.shape[dim]  # a cache holds as many positions as its mask
        rest = t.narrow(dim, prefix_length, t.shape[dim] - prefix_length)
        return torch.cat([t.narrow(dim, 0, prefix_length), t.new_zeros(shape), rest], dim)

    cache = DynamicCache(config=model.config)
    for i in range(len(parts[0][1].layers)):
        layers = [part_cache.layers[i] for _, part_cache, _, _ in parts]
        cache.update(
            torch.cat([widened(layer.keys, 2) for layer in layers]),
            torch.cat([widened(layer.values, 2) for layer in layers]),
            i,
        )
    masks = [widened(mask, 1) for _, _, mask, _ in parts]
    first = torch.cat([logits for logits, _, _, _ in parts])
    last = torch.cat([part_last for _, _, _, part_last in parts])
    return first, cache, torch.cat(masks), last


_WORD_END = re.compile(r"^(.*\W)", re.DOTALL)


def answer_settled(text: str, alias_sets: Sequence[tuple[str, ...]]) -> bool:
    """True when every alias set is already matched (formless.matching.contains_answer) in the part
    of ``text`` that ends at a non-word character: more text appended cannot undo such a match,
    while a match at the very end could still grow into a longer word ("Paris" -> "Parisian")."""
    closed = _WORD_END.match(text.rstrip("\ufffd"))  # a cut multi-byte character is no word end
    return bool(closed) and all(contains_answer(closed.group(1), aliases) for aliases in alias_sets)


def _settled_rows(tokenizer, stop_at: Sequence[Sequence[tuple[str, ...]] | None]):
    """``decided`` for ``greedy_new_tokens``: row -> tokens so far -> answer settled."""

    def decided(row: int, tokens: torch.Tensor) -> bool:
        sets = stop_at[row]
        return bool(sets) and answer_settled(tokenizer.decode(tokens, skip_special_tokens=True), sets)

    return decided


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Iterable[str],
    *,
    chat: bool = True,
    max_new_tokens: int | Sequence[int] = 32,
    batch_size: int = 16,
    fast: bool = True,
    own_loop: bool = True,
    answers: Sequence[str | None] | None = None,
    share_prefix: bool = True,
    stop_at: Sequence[Sequence[tuple[str, ...]] | None] | None = None,
):
    """Greedy continuations of ``prompts`` (rendered with the chat template when ``chat``).
    ``max_new_tokens``: one budget for all, or one per prompt (rows of one batch then stop at their
    own budget: a long free generation does not hold a separate batch of its own).
    ``own_loop=False`` always uses ``model.generate`` (the reference the own loop is tested against).

    With ``answers`` (one gold answer or None per prompt) it returns ``(continuations,
    probabilities)``: each answer's geometric-mean token probability, read off the prompt's own
    prefill in float32 (``formless.audit.scoring.answer_probability``'s metric); None where it was
    not computed here (no answer; ``fast``, whose head would run in bf16; a model outside the own
    loop; a sliding-window cache), for the caller to score apart.

    ``share_prefix``: the tokens all prompts start with (the chat template's system turn) are
    computed once (``shared_prefix``). The same numbers up to float rounding (tested in float64);
    in float32 a near-tie between two tokens can still break the other way, as batch padding can.

    ``stop_at`` (per prompt: alias sets, or None): a prompt stops generating once every set has an
    alias in the text so far, followed by a character that ends the word (``answer_settled``): the
    judgement of the full generation cannot change any more, and its continuation is not needed.
    The output is then that shorter text."""
    prompts = list(prompts)
    scored = answers is not None
    answers = list(answers) if scored else [None] * len(prompts)
    if len(answers) != len(prompts):
        raise ValueError("prompts and answers must pair up")
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != len(prompts):
        raise ValueError("one token budget per prompt, or one for all")
    if len(set(budgets)) > 1 and not (own_loop and _own_loop_applies(model)):
        # model.generate takes one budget per call: one call per budget, put back in order
        outputs, probabilities = [""] * len(prompts), [None] * len(prompts)
        for budget in sorted(set(budgets)):
            idx = [i for i, b in enumerate(budgets) if b == budget]
            result = generate(
                model, tokenizer, [prompts[i] for i in idx], chat=chat, max_new_tokens=budget,
                batch_size=batch_size, fast=fast, own_loop=own_loop,
                answers=[answers[i] for i in idx] if scored else None, share_prefix=share_prefix,
                stop_at=[stop_at[i] for i in idx] if stop_at else None,
            )  # fmt: skip
            texts, probs = result if scored else (result, [None] * len(idx))
            for i, text, prob in zip(idx, texts, probs):
                outputs[i], probabilities[i] = text, prob
        return (outputs, probabilities) if scored else outputs
    special = add_special_tokens(tokenizer, chat)
    sequences = [
        list(tokenizer(render(tokenizer, p, chat=chat), add_special_tokens=special)["input_ids"])
        for p in prompts
    ]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    own_loop = own_loop and _own_loop_applies(model)
    ctx = fast_inference_context(device) if fast else contextlib.nullcontext()
    outputs: list[str] = []
    probabilities: list[float | None] = []
    with ctx:
        prefix = shared_prefix(model, sequences) if own_loop and share_prefix else None
        started = time.perf_counter()
        top = max(budgets, default=0)
        what = (
            f"batches of {top}-token answers"
            if len(set(budgets)) <= 1
            else f"batches of ≤ {top}-token answers"
        )
        if own_loop:
            outputs, probabilities = _own_loop_generations(
                model, tokenizer, prompts, sequences, budgets, answers if scored and not fast else None,
                stop_at, prefix, batch_size, chat, what.replace("batches", "passes"),
            )  # fmt: skip
        else:
            for start in range(0, len(sequences), batch_size):
                advance(start // batch_size, -(-len(sequences) // batch_size), started, what)
                ids, mask = left_pad(sequences[start : start + batch_size], pad)
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=budgets[start],  # one budget here (split above otherwise)
                    do_sample=False,
                    pad_token_id=pad,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
                outputs.extend(tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True))
            probabilities = [None] * len(outputs)
    outputs = [o.strip() for o in outputs]
    return (outputs, probabilities) if scored else outputs


def _own_loop_generations(
    model, tokenizer, prompts, sequences, budgets, answers, stop_at, prefix, batch_size, chat, what
) -> tuple[list[str], list[float | None]]:
    """``generate``'s own-loop path: up to ``decode_rows`` prompts at a time are prefilled in
    batches of like lengths (``prompt_buckets``), each batch's answers scored on its own cache, and
    all of them decoded together from one merged cache (``merge_prefills``): short prompts are not
    padded to long ones, and each decoding step serves every row. Where a cache cannot be merged
    (sliding-window layers) the prompts keep the caller's order and batches, each decoded alone."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    skip = prefix.length if prefix else 0
    outputs: list[str] = [""] * len(prompts)
    probabilities: list[float | None] = [None] * len(prompts)
    started = time.perf_counter()
    from transformers import DynamicCache

    # sliding-window layers keep a cache that cannot be widened: the caller's batches, as model.generate
    mergeable = can_rewind(DynamicCache(config=model.config))
    groups = []
    rows_at_once = decode_rows(
        model, max(map(len, sequences), default=0) + max(budgets, default=0), batch_size
    )
    for start in range(0, len(prompts), rows_at_once):
        group = list(range(start, min(start + rows_at_once, len(prompts))))
        buckets = (
            prompt_buckets([len(sequences[i]) - skip for i in group], batch_size)
            if mergeable
            else [list(range(k, min(k + batch_size, len(group)))) for k in range(0, len(group), batch_size)]
        )
        groups.append((group, buckets))
    # progress, in passes: each prefilled batch, and each decoding (one per group, or per batch unmerged)
    total = sum(len(b) + (1 if mergeable and len(b) > 1 else len(b)) for _, b in groups)
    done = 0
    for group, buckets in groups:
        parts, rows = [], []
        for bucket in buckets:
            advance(done, total, started, what)
            done += 1
            idx = [group[k] for k in bucket]
            ids, mask = left_pad([sequences[i][skip:] for i in idx], pad)
            out, cache, mask, positions = prefill(model, ids.to(device), mask.to(device), prefix)
            if answers is not None and any(answers[i] is not None for i in idx):
                targets = [
                    None
                    if answers[i] is None
                    else answer_token_ids(tokenizer, prompts[i], answers[i], chat=chat)
                    for i in idx
                ]
                if can_rewind(cache):
                    log_probs = answer_log_probs(
                        model, cache, out.logits[:, -1], mask, positions[:, -1:], targets
                    )
                    for i, lp in zip(idx, log_probs):
                        probabilities[i] = None if lp is None else math.exp(lp)
            parts.append((out.logits[:, -1], cache, mask, positions[:, -1:]))
            rows.append(idx)
        if mergeable and len(parts) > 1 and all(can_rewind(part[1]) for part in parts):
            parts, rows = [merge_prefills(model, parts, skip)], [[i for idx in rows for i in idx]]
        for (first, cache, mask, last), idx in zip(parts, rows):
            advance(done, total, started, what)
            done += 1
            row_budgets = [budgets[i] for i in idx]
            new = decode(
                model, first, cache, mask, last, max_new_tokens=max(row_budgets), pad_token_id=pad,
                decided=_settled_rows(tokenizer, [stop_at[i] for i in idx]) if stop_at else None,
                budgets=row_budgets if len(set(row_budgets)) > 1 else None,
            )  # fmt: skip
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                outputs[i] = text
    return outputs, probabilities
