"""Reading activations at chosen token positions with forward hooks.

Only the layers up to the deepest one asked for are run: a hook raises ``_Stop`` after it, which
makes key and statistics collection cost a fraction of a full forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from formless.errors import ConceptNotFoundError
from formless.models.loading import LoadedModel
from formless.models.prompts import right_pad


class _Stop(Exception):
    pass


@dataclass
class Located:
    """A tokenized prompt and the index of the last token of the concept in it."""

    input_ids: list[int]
    position: int
    first: int = -1  # index of the concept's first token (-1: unknown)

    def back(self, offset: int) -> Located:
        """The same prompt read ``offset`` tokens before the concept's last token."""
        return Located(self.input_ids, self.position - offset, self.first)

    @property
    def n_concept_tokens(self) -> int:
        return self.position - self.first + 1 if self.first >= 0 else 1


def locate(tokenizer, text: str, concept: str, *, add_special: bool) -> Located:
    """Tokenize ``text`` and find the token holding the last character of ``concept`` (last occurrence)."""
    end = text.rfind(concept)
    if end < 0 or not concept.strip():
        raise ConceptNotFoundError(
            f"concept '{concept}' does not occur in the prompt {text!r}: the chat template rewrites "
            "the text, so ROCR cannot find the last token of the concept; spell it as the template writes it"
        )
    last_char = end + len(concept.rstrip()) - 1
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    first = next((i for i, (s, e) in enumerate(offsets) if s <= end < e), -1)
    for i, (s, e) in enumerate(offsets):
        if s <= last_char < e:
            return Located(list(enc["input_ids"]), i, first if 0 <= first <= i else -1)
    raise ConceptNotFoundError(
        f"the tokenizer gives no token for the end of concept '{concept}' in {text!r}; "
        "check the spelling or use a fast tokenizer"
    )


def _output_tensor(output):
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def collect(
    loaded: LoadedModel,
    items: Sequence[Located],
    *,
    key_layers: Sequence[int] = (),
    output_layers: Sequence[int] = (),
    projection_layers: Sequence[int] = (),
    batch_size: int = 16,
    projections: dict[int, torch.Tensor] | None = None,
    shared_prompts: bool = True,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """For each item, the MLP-projection input (key) and the block output at ``item.position``.

    Returns ({layer: [n, d_ff]}, {layer: [n, d_model]}) in float32. For ``projection_layers``
    the output of the MLP projection itself (``W a``) is written into ``projections``.
    ``shared_prompts`` (default): items with the same tokens are read from one forward pass (the
    several name tokens of one context: a third of the work for a three-token name); False runs one
    row per item, whose batches differ, so float sums may differ from the shared read in the last bits.
    """
    model, adapter = loaded.model, loaded.adapter
    deepest = max([*key_layers, *output_layers, *projection_layers])
    proj: dict[int, list[torch.Tensor]] = {layer: [] for layer in projection_layers}
    keys: dict[int, list[torch.Tensor]] = {layer: [] for layer in key_layers}
    outs: dict[int, list[torch.Tensor]] = {layer: [] for layer in output_layers}
    rows: list[torch.Tensor] = []
    cols: list[torch.Tensor] = []
    device = loaded.device

    def _pick(hidden: torch.Tensor) -> torch.Tensor:
        """Rows at the chosen positions, float32, on the model's first device (layers may sit elsewhere)."""
        picked = hidden[rows[-1].to(hidden.device), cols[-1].to(hidden.device)]
        return picked.float().to(device)

    def key_hook(layer):
        def hook(_module, args):
            keys[layer].append(_pick(args[0]))

        return hook

    def out_hook(layer):
        def hook(_module, _args, output):
            outs[layer].append(_pick(_output_tensor(output)))
            if layer == deepest:
                raise _Stop

        return hook

    def proj_hook(layer):
        def hook(_module, _args, output):
            proj[layer].append(_pick(output))

        return hook

    def stop_hook(_module, _args, _output):
        raise _Stop

    handles = [
        adapter.mlp_out_module(model, layer).register_forward_pre_hook(key_hook(layer)) for layer in keys
    ]
    handles += [adapter.layer(model, layer).register_forward_hook(out_hook(layer)) for layer in outs]
    handles += [
        adapter.mlp_out_module(model, layer).register_forward_hook(proj_hook(layer)) for layer in proj
    ]
    if deepest not in outs:
        handles.append(adapter.layer(model, deepest).register_forward_hook(stop_hook))
    pad = loaded.tokenizer.pad_token_id or 0
    # one row per prompt, or (shared_prompts) per distinct prompt with every position asked of it
    prompts: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for i, it in enumerate(items):
        key = tuple(it.input_ids) if shared_prompts else (i, *it.input_ids)
        prompts.setdefault(key, []).append((i, it.position))
    texts = list(prompts.values())
    ids_of = [items[picks[0][0]].input_ids for picks in texts]
    order: list[int] = []  # the item each picked row belongs to
    try:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            ids, mask = right_pad(ids_of[start : start + batch_size], pad)
            pairs = [(row, pos, i) for row, picks in enumerate(batch) for i, pos in picks]
            rows.append(torch.tensor([r for r, _, _ in pairs], device=device))
            cols.append(torch.tensor([p for _, p, _ in pairs], device=device))
            order += [i for _, _, i in pairs]
            with contextlib.suppress(_Stop):
                model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    back = torch.argsort(torch.tensor(order)) if shared_prompts else None

    def _stack(v: list[torch.Tensor]) -> torch.Tensor:
        out = torch.cat(v)
        return out if back is None else out[back.to(out.device)]

    if projections is not None:
        projections.update({layer: _stack(v) for layer, v in proj.items()})
    return (
        {layer: _stack(v) for layer, v in keys.items()},
        {layer: _stack(v) for layer, v in outs.items()},
    )
