"""Apply ROCR to a loaded model: redirect concepts to a harmless one, layer by layer, in closed form.

Keys are read in two context groups, chat turns (the reference's templates) and plain text (our
addition, so that completion prompts without a chat template are redirected too); each group
gets its own key column and residual, which the Woodbury solve handles at no extra cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from formless.errors import FormlessError
from formless.matching import normalise
from formless.models.loading import LoadedModel
from formless.models.prompts import add_special_tokens, render
from formless.rocr.activations import Located, collect, locate
from formless.rocr.config import ROCRConfig
from formless.rocr.grid import Snapped, find_grid, snap_to_grid
from formless.rocr.protect import FAMOUS_NAMES, protected_keys, protected_names
from formless.rocr.stats import LayerStatistics
from formless.rocr.update import rocr_delta

MAX_CONCEPT_CHARS = 200
# Keys and representations are never read at positions before this one: the first positions of a
# sequence carry outlier activations (see ``place``).
MIN_POSITION = 2
# Put before a context whose name would start before MIN_POSITION or be split differently.
LEAD_IN = "Note: "


class UnsafeEditError(FormlessError):
    """The closed-form update is too large relative to the weight it changes; nothing was edited.
    ``layer``, ``relative`` and ``limit`` say which update and by how much, for callers that report it."""

    def __init__(self, message: str, *, layer: int | None = None, relative: float | None = None,
                 limit: float | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.layer, self.relative, self.limit = layer, relative, limit


@dataclass
class LayerEdit:
    layer: int
    delta: torch.Tensor  # d_model x d_ff, float32, on CPU
    keys: torch.Tensor  # d_ff x n, the keys this edit wrote (for later sequential edits)
    null_dim: int
    delta_norm: float
    relative_norm: float  # ||delta|| / ||W||, delta as written into the weights
    solved_relative_norm: float | None = None  # the update as solved, before grid rounding (guarded)
    grid: str | None = None  # the quantization grid the edited matrix was kept on (formless.rocr.grid)
    grid_key_error: float | None = None  # ||(on grid - as solved) K|| / ||update K||, GPTQ rounding
    grid_rounded_error: float | None = None  # the same for plain nearest rounding (what re-quantizing does)


@dataclass
class EditResult:
    concepts: list[str]
    redirect: str
    layers: list[int]
    config: ROCRConfig
    layer_edits: list[LayerEdit] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the edit did differently than asked, and why


def validate_concepts(concepts: Sequence[str], redirect: str) -> list[str]:
    """Clean concept names or a FormlessError saying what is wrong with them."""
    if not concepts:
        raise FormlessError('no concept given; pass the name to forget, e.g. "Harry Potter"')
    cleaned = []
    for c in concepts:
        name = " ".join(str(c).split())
        if not name:
            raise FormlessError('a concept is empty or blank; pass the name to forget, e.g. "Harry Potter"')
        if len(name) > MAX_CONCEPT_CHARS:
            raise FormlessError(
                f"concept '{name[:40]}...' is longer than {MAX_CONCEPT_CHARS} characters; pass its name"
            )
        if not redirect.strip():
            raise FormlessError(
                "the redirect target is empty; pass a harmless concept such as 'a random person'"
            )
        if normalise(name) == normalise(redirect):
            raise FormlessError(
                f"redirect target '{redirect}' is the concept itself; choose a different, harmless concept"
            )
        cleaned.append(name)
    if len({normalise(c) for c in cleaned}) != len(cleaned):
        raise FormlessError("the same concept is given twice; pass each concept once")
    return cleaned


def _span(located: Located) -> list[int]:
    """The concept's own token ids in a located prompt."""
    start = located.first if located.first >= 0 else located.position
    return located.input_ids[start : located.position + 1]


def name_tokens(tokenizer, concept: str, after: str = ".") -> list[int]:
    """The concept's token ids as it is written inside a sentence (after a space) and followed by
    ``after``: the form every key context must give it. The earlier-token columns average keys
    token by token, so a context that splits the name differently ("H"+"arry" at the start of a
    turn) would mix other tokens in. ``after`` matters only where the name's last token merges with
    what follows it (a name ending in punctuation: "D.C.:")."""
    return _span(locate(tokenizer, f"{LEAD_IN}{concept}{after}", concept, add_special=False))


def place(loaded: LoadedModel, text: str, concept: str, *, chat: bool) -> Located:
    """Locate ``concept`` in ``text`` (a chat turn or plain text) where its keys can be read.

    Two things make a position unusable, and both are fixed by putting ``LEAD_IN`` before the text:
    - the name starts before ``MIN_POSITION``. A tokenizer that adds no BOS to plain text (SmolLM2)
      puts "{s}." at position 0, the attention-sink position: its block output has norm 560-880
      against 100-150 elsewhere and cosine 0.57 with the same name mid-sentence, so a key or z(s)
      read there gave updates of 0.55-0.91 of the weight norm and broke unrelated facts (issue
      #13). Skipping such contexts would also work; the lead-in keeps every context, and the name
      after "Note:" is read like the name mid-sentence (cosine 0.95-0.98 on SmolLM2).
    - the name's tokens differ from ``name_tokens``: e.g. a chat template that trims the turn
      turns " Paris." into "Paris.", another token.
    """
    tok = loaded.tokenizer
    after = text[text.rfind(concept) + len(concept) :]
    reference = name_tokens(tok, concept, after)

    def _locate(body: str) -> Located:
        return locate(tok, render(tok, body, chat=chat), concept, add_special=add_special_tokens(tok, chat))

    def _usable(loc: Located) -> bool:
        start = loc.first if loc.first >= 0 else loc.position
        return start >= MIN_POSITION and _span(loc) == reference

    located = _locate(text)
    if _usable(located):
        return located
    located = _locate(LEAD_IN + text.lstrip())
    if not _usable(located):
        raise FormlessError(
            f"cannot place '{concept}' in the key context {text!r} at position >= {MIN_POSITION} with the "
            f"same tokens as inside a sentence; write the template with a space before {{s}}"
        )
    return located


def chat_text(prefix: str, concept: str) -> str:
    """The reference's user turn "<prefix> <s>.", not stripped: with the empty prefix the name still
    follows a space, so it has the same tokens as in every other context."""
    return f"{prefix} {concept}."


# A name that starts the text is read from this position on: position 0 is the attention sink.
MIN_START_POSITION = 1


def place_start(loaded: LoadedModel, text: str, concept: str) -> Located | None:
    """Locate ``concept`` at the very start of plain ``text`` ("Michael Jordan was"), as a completion
    prompt puts it. Only its trailing tokens that are the tokens it has inside a sentence and sit at
    ``MIN_START_POSITION`` or later are kept ("Michael" + " Jordan" keeps " Jordan"; "H" + "arry" +
    " Potter" keeps " Potter"); None where not even the last one is (a one-token name: "Paris" is
    another token than " Paris", and it sits at the sink position)."""
    tok = loaded.tokenizer
    after = text[len(concept) :]
    reference = name_tokens(tok, concept, after)
    located = locate(tok, render(tok, text, chat=False), concept, add_special=add_special_tokens(tok, False))
    ids, last = located.input_ids, located.position
    matched = 0
    while (
        matched < len(reference)
        and last - matched >= MIN_START_POSITION
        and ids[last - matched] == reference[-1 - matched]
    ):
        matched += 1
    if matched == 0:
        return None
    return Located(ids, last, last - matched + 1)


def _start_canonical(loaded: LoadedModel, concept: str) -> Located | None:
    """The bare name starting a plain text ("<s>."), or None where it cannot be read there."""
    return place_start(loaded, f"{concept}.", concept)


def _contexts(loaded: LoadedModel, concept: str, config: ROCRConfig) -> dict[str, list[Located]]:
    """Key contexts per group in ``config.key_groups``: chat turns (if the model has a chat
    template) and plain text, each placed by ``place``, and plain text that starts with the name
    (placed by ``place_start``; the group is left out for a name none of whose tokens can be read
    there)."""
    groups: dict[str, list[Located]] = {}
    if "chat" in config.key_groups and loaded.has_chat_template:
        groups["chat"] = [place(loaded, chat_text(p, concept), concept, chat=True) for p in config.prefixes]
    if "plain" in config.key_groups:
        groups["plain"] = [
            place(loaded, t.format(s=concept), concept, chat=False) for t in config.plain_templates
        ]
    if "start" in config.key_groups:
        starts = [place_start(loaded, t.format(s=concept), concept) for t in config.start_templates]
        if _start_canonical(loaded, concept) is not None and all(loc is not None for loc in starts):
            groups["start"] = starts
    if not groups:
        raise FormlessError(
            "the keys are read in chat turns only (key_groups=['chat']) and this model has no chat "
            "template; use the default preset, which reads them in plain text too"
        )
    return groups


def _canonical(loaded: LoadedModel, concept: str, group: str) -> Located:
    """The prompt whose block output stands for the concept's representation in ``group``: the bare
    name (" <s>." as a chat turn, "<s>." as plain text), placed by ``place`` like the keys."""
    if group == "start":
        located = _start_canonical(loaded, concept)
        if located is None:
            raise FormlessError(f"'{concept}' cannot be read at the start of a text on this tokenizer")
        return located
    chat = group == "chat"
    text = chat_text("", concept) if chat else f"{concept}."
    return place(loaded, text, concept, chat=chat)


def _specific_offsets(
    loaded: LoadedModel, located: Located, wanted: int, stats: dict[int, LayerStatistics], layers, config
) -> list[int]:
    """Offsets (0 = last token) of the name tokens to redirect.

    The last token is always redirected (the reference). Earlier tokens carry the concept too
    ("Eiffel" already says Paris), but some are generic ("The", "Michael"): those have keys that
    generic text also produces, so less of their energy lies in the null space. A token is kept
    when its null-space share is at least ``token_specificity`` times the last token's.
    """
    if wanted <= 1:
        return [0]
    first = layers[0]
    keys, _ = collect(loaded, [located.back(o) for o in range(wanted)], key_layers=[first])
    k = keys[first]
    basis = stats[first].basis(config.threshold).to(k.device)
    share = (k @ basis).pow(2).sum(1) / k.pow(2).sum(1).clamp_min(1e-30)
    if share[0] <= 0:
        return [0]
    return [o for o in range(wanted) if o == 0 or share[o] >= config.token_specificity * share[0]]


def closest_on_norm_output(gain: torch.Tensor, wanted: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """Per row of ``wanted`` (n x d), the ``u`` with ``rms(u) = 1`` that brings ``gain * u`` closest
    to it: what an RMS norm with these gains can output at best (its output is always ``gain * u``
    for some ``u`` of unit rms). Lagrange: ``u = gain * wanted / (gain^2 + mu)``, with ``mu`` in
    ``(-min gain^2, inf)`` found by bisection in float64 (the rms falls monotonically in ``mu``)."""
    g = gain.double()
    g2, gy = g.pow(2), (g * wanted.double())
    live = g2 > 0
    if not live.any():  # a norm with no gain outputs zeros whatever it is given: nothing to aim at
        return torch.zeros_like(wanted)
    lo = torch.full((wanted.shape[0], 1), -float(g2[live].min()) * (1 - 1e-9), dtype=torch.float64)
    hi = 2 * gy.pow(2).mean(1, keepdim=True).sqrt() + float(g2.max()) + 1e-30

    def u(mu: torch.Tensor) -> torch.Tensor:
        return torch.where(live, gy / (g2 + mu), torch.zeros((), dtype=torch.float64))

    for _ in range(steps):
        mid = (lo + hi) / 2
        above = u(mid).pow(2).mean(1, keepdim=True) > 1
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    best = u(hi)
    best = best / best.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-300)  # rms exactly 1
    return best.to(wanted.dtype)


@torch.no_grad()
def _through_post_norm(
    loaded, norm, layer: int, located: list[Located], residuals: torch.Tensor
) -> torch.Tensor:
    """Residuals for ``W a`` when the block adds ``norm(W a)`` (Gemma 2/3, OLMo 2) instead of ``W a``.

    An RMS-type norm outputs ``g * m / rms(m)``: whatever ``m`` is, the output is ``g * u`` with
    ``rms(u) = 1``, so the wanted output ``y = norm(m) + r`` is reachable only up to that surface.
    The exact solve takes the point of the surface closest to ``y`` (:func:`closest_on_norm_output`)
    and asks the MLP for ``m' = rms(m) * u`` (same scale as now, so ``norm(m') = g * u``). The
    earlier first-order map ``rms(m) g r / (g^2 + delta)`` only pointed along ``y``: on Gemma 3
    270M, with uneven gains, it left 12% of the gap where the surface allows 1% (measured).
    """
    projections: dict[int, torch.Tensor] = {}
    collect(loaded, located, projection_layers=[layer], projections=projections)
    m = projections[layer]  # n x d
    param = next(norm.parameters())
    gain = norm(torch.ones(1, m.shape[1], dtype=param.dtype, device=param.device)).float()[0].to(m.device)
    current = norm(m.to(param.device, param.dtype)).float().to(m.device)
    u = closest_on_norm_output(gain, current + residuals.T)
    rms = m.pow(2).mean(1, keepdim=True).sqrt()
    return (rms * u - m).T


@torch.no_grad()
def add_to_weight(module: torch.nn.Module, transposed: bool, delta: torch.Tensor) -> torch.Tensor:
    """Add ``delta`` (d_model x d_ff) to ``module.weight`` wherever the weight lives; returns the new
    weight as a (d_model, d_ff) view.

    A layer that accelerate offloads (``device_map`` with "cpu" next to GPUs, or "disk") holds its
    weight on the meta device; the real tensor sits in its hook's ``weights_map`` and is copied to
    the execution device at every forward. Adding to the meta tensor would do nothing (and its norm
    cannot be read), so the edited tensor is written into the map instead: the offload loader
    serves its in-memory ``state_dict`` before the files on disk, so the edit is what every later
    forward sees, and the offload folder itself is never modified.
    """
    weight = module.weight
    hook = getattr(module, "_hf_hook", None)
    weights_map = getattr(hook, "weights_map", None)
    if weight.device.type != "meta" or not getattr(hook, "offload", False) or weights_map is None:
        view = weight.T if transposed else weight
        view.add_(delta.to(device=weight.device, dtype=weight.dtype))
        return view
    from accelerate.utils.offload import OffloadedWeightsLoader

    stored = weights_map["weight"]
    edited = stored.clone()
    (edited.T if transposed else edited).add_(delta.to(device=stored.device, dtype=stored.dtype))
    dataset = weights_map.dataset
    target = dataset.state_dict if isinstance(dataset, OffloadedWeightsLoader) else dataset
    target[f"{weights_map.prefix}weight"] = edited
    return edited.T if transposed else edited


def _on_grid(
    weight: torch.Tensor, delta: torch.Tensor, stats: LayerStatistics, keys: torch.Tensor, key_weight: float
) -> Snapped | None:
    """``weight + delta`` put back on the block grid ``weight`` sits on (formless.rocr.grid), or None
    where it sits on none, is not float32, or the rounded result would not survive re-quantization."""
    if weight.dtype != torch.float32:
        return None
    grid = find_grid(weight)
    if grid is None:
        return None
    return snap_to_grid(weight, weight + delta, grid, stats.second_moment(), keys, key_weight)


def _offload_map(module: torch.nn.Module):
    """The offload hook's weights map of a layer accelerate keeps on the meta device, else None."""
    hook = getattr(module, "_hf_hook", None)
    weights_map = getattr(hook, "weights_map", None)
    if module.weight.device.type != "meta" or not getattr(hook, "offload", False) or weights_map is None:
        return None
    return weights_map


def stored_weight(module: torch.nn.Module) -> torch.Tensor:
    """The tensor a layer's forward really uses: its weight, or for an offloaded layer the copy in
    the offload map (its ``weight`` is an empty meta tensor)."""
    weights_map = _offload_map(module)
    return module.weight if weights_map is None else weights_map["weight"]


def _restore(originals: list[tuple[torch.nn.Module, torch.Tensor]]) -> None:
    """Put back the weights an aborted edit already changed, bit for bit."""
    from accelerate.utils.offload import OffloadedWeightsLoader

    with torch.no_grad():
        for module, value in originals:
            weights_map = _offload_map(module)
            if weights_map is None:
                module.weight.copy_(value)
                continue
            dataset = weights_map.dataset
            target = dataset.state_dict if isinstance(dataset, OffloadedWeightsLoader) else dataset
            target[f"{weights_map.prefix}weight"] = value


def apply_rocr(
    loaded: LoadedModel,
    concepts: Sequence[str],
    config: ROCRConfig,
    stats: dict[int, LayerStatistics],
    previous_keys: dict[int, torch.Tensor] | None = None,
    protect_cache: Path | None = None,
) -> EditResult:
    """Edit ``loaded.model`` in place so that each concept's representation becomes the redirect's.

    An update's ``||dW|| / ||W||`` above ``config.max_relative_norm`` changes what the matrix does
    for every input, not just the concept's keys (the spec's closed form has no step size to scale
    back). When redirecting several name tokens needs an update that large, the edit falls back to
    the name's last token only (the reference's choice) and says so in ``EditResult.notes``: "The
    Lord of the Rings" passes the specificity rule with " of" and " the", whose redirect needs
    1.08 of a weight's norm on SmolLM2, where " Rings" alone needs 0.05. Refused with
    ``UnsafeEditError``, the model left as it was, when the last token alone is still too large.
    ``protect_cache``: a folder where the protected names' keys are kept per model (``protected``,
    ``protect_famous``); None reads them afresh.
    """
    try:
        return _apply_rocr(loaded, concepts, config, stats, previous_keys, protect_cache)
    except UnsafeEditError as refused:
        if config.concept_tokens == 1:
            raise
        fallback = config.model_copy(update={"concept_tokens": 1})
        try:
            result = _apply_rocr(loaded, concepts, fallback, stats, previous_keys, protect_cache)
        except UnsafeEditError:
            raise refused from None
        largest = max(e.solved_relative_norm or e.relative_norm for e in result.layer_edits)
        name, last = ("the name", "the name's") if len(result.concepts) == 1 else ("the names", "each name's")
        result.notes.append(
            f"redirecting every specific token of {name} would change layer {refused.layer} by "
            f"{refused.relative:.2f} of its weight's norm (limit {refused.limit:g}); redirected {last} "
            f"last token only (largest update {largest:.2f}), which forgets less in forms that read the "
            "earlier tokens"
        )
        return result


def _apply_rocr(
    loaded: LoadedModel,
    concepts: Sequence[str],
    config: ROCRConfig,
    stats: dict[int, LayerStatistics],
    previous_keys: dict[int, torch.Tensor] | None = None,
    protect_cache: Path | None = None,
) -> EditResult:
    """``apply_rocr`` with ``config`` as given: refused when an update is too large."""
    start = time.perf_counter()
    for redirect in dict.fromkeys([config.redirect, *config.redirect_targets()]):
        concepts = validate_concepts(concepts, redirect)
    model, adapter = loaded.model, loaded.adapter
    layers = config.resolved_layers(adapter.num_layers(model))
    last = layers[-1]
    contexts = {c: _contexts(loaded, c, config) for c in concepts}
    # every group some concept is read in; the start group needs the redirect's targets there too
    groups = [g for g in ("chat", "plain", "start") if any(g in contexts[c] for c in concepts)]
    redirects = config.redirect_targets()
    if "start" in groups and any(_start_canonical(loaded, r) is None for r in redirects):
        groups.remove("start")
        for c in concepts:
            contexts[c].pop("start", None)
    canonical = {(c, g): _canonical(loaded, c, g) for c in concepts for g in contexts[c]}
    # Columns: one per (concept, group, token counted back from the name's last token).
    columns = []
    for c in concepts:
        for g in contexts[c]:
            available = min(loc.n_concept_tokens for loc in [*contexts[c][g], canonical[c, g]])
            wanted = available if config.concept_tokens == 0 else min(config.concept_tokens, available)
            columns += [
                (c, g, o) for o in _specific_offsets(loaded, canonical[c, g], wanted, stats, layers, config)
            ]
    # Targets v*: the redirect's own representation (its last token) per group, averaged over the
    # targets where there are several ("an unknown name": made-up names; ``redirect_average``).
    _, v_out = collect(
        loaded, [_canonical(loaded, r, g) for g in groups for r in redirects], output_layers=[last]
    )
    per_group = v_out[last].split(len(redirects))
    target = {g: per_group[i].mean(0) for i, g in enumerate(groups)}
    # read once, before any layer is edited: what the protected names' keys are is what to keep
    protected = list(dict.fromkeys([*(FAMOUS_NAMES if config.protect_famous else ()), *config.protected]))
    kept_keys = {}
    if protected:
        kept_keys = protected_keys(
            loaded,
            protected,
            protected_names(protected, concepts, redirects),
            [g for g in groups if g != "start"],
            layers,
            lambda name, group: _canonical(loaded, name, group),
            cache=protect_cache,
        )
    result = EditResult(concepts, config.redirect, layers, config)
    originals: list[tuple[torch.nn.Module, torch.Tensor]] = []  # (layer, its weight before the edit)
    for i, layer in enumerate(layers):
        flat = [loc.back(o) for c, g, o in columns for loc in contexts[c][g]]
        sizes = [len(contexts[c][g]) for c, g, _ in columns]
        k_out, _ = collect(loaded, flat, key_layers=[layer])  # every name token of a context: one pass
        keys = torch.stack([chunk.mean(0) for chunk in k_out[layer].split(sizes)], dim=1)  # d_ff x n
        z_at = [canonical[c, g].back(o) for c, g, o in columns]
        _, z_out = collect(loaded, z_at, output_layers=[last])
        residuals = torch.stack([target[g] for _, g, _ in columns], 1) - z_out[last].T  # d x n
        residuals = residuals * config.strength / (len(layers) - i)
        post_norm = adapter.post_mlp_norm_module(model, layer)
        if post_norm is not None:
            residuals = _through_post_norm(loaded, post_norm, layer, z_at, residuals)
        st = stats[layer]
        basis = st.basis(config.threshold).to(keys.device)  # keys come back on the first layer's device
        prev = None if previous_keys is None else previous_keys.get(layer)
        prev = None if prev is None else prev.to(keys.device)
        if kept_keys:
            kept = kept_keys[layer].T.to(keys.device) * math.sqrt(config.protect_weight)
            prev = kept if prev is None else torch.cat([prev, kept], 1)
        delta = rocr_delta(keys, residuals, basis, config.lam, prev)
        module = adapter.mlp_out_module(model, layer)
        current = stored_weight(module)
        relative = float(delta.norm() / current.detach().float().norm().to(delta.device))
        if not math.isfinite(relative):  # NaN compares False against any limit
            _restore(originals)
            raise UnsafeEditError(
                f"refusing to edit {', '.join(repr(c) for c in concepts)}: the update of layer {layer} is "
                "not finite (its keys or representations hold NaN or inf); the model is unchanged. Check "
                "the model's weights and dtype (float16 overflows on some models; load it in float32)",
                layer=layer, relative=relative, limit=config.max_relative_norm,
            )  # fmt: skip
        if relative > config.max_relative_norm:
            _restore(originals)
            raise UnsafeEditError(
                f"refusing to edit {', '.join(repr(c) for c in concepts)}: the update of layer {layer} "
                f"would be {relative:.2f} of its weight's norm (limit {config.max_relative_norm:g}), large "
                "enough to break unrelated knowledge, so the concept cannot be edited safely; the model "
                "is unchanged. Try the full, more specific name (e.g. 'Paris, France'), another "
                "--redirect, or fewer name tokens; --max-relative-norm raises the limit at your own risk",
                layer=layer,
                relative=relative,
                limit=config.max_relative_norm,
            )
        originals.append((module, current.detach().clone()))
        snapped = None
        if config.grid == "auto":
            # a copy: the weight itself changes below, and the written share is measured against it
            before = (current.T if adapter.transposed else current).detach().float().cpu().clone()  # d x d_ff
            kept_too = [] if prev is None else [prev.cpu()]
            flat = torch.cat([k_out[layer].T.cpu(), *kept_too], 1)
            snapped = _on_grid(before, delta.cpu(), st, flat, config.grid_key_weight)
            if snapped is not None:
                delta = snapped.weight - before
        written = add_to_weight(module, adapter.transposed, delta)
        if snapped is not None:
            with torch.no_grad():  # exactly the grid's values: w + (s - w) can round off them
                written.copy_(snapped.weight.to(device=written.device, dtype=written.dtype))
        result.layer_edits.append(
            LayerEdit(
                layer=layer,
                delta=delta.cpu(),
                keys=keys.cpu(),
                null_dim=basis.shape[1],
                delta_norm=float(delta.norm()),
                # the guard reads the update as solved; grid rounding adds quantization-sized noise
                relative_norm=relative if snapped is None else float(delta.norm() / before.norm()),
                solved_relative_norm=relative if snapped is not None else None,
                grid=snapped.qtype if snapped else None,
                grid_key_error=snapped.key_error if snapped else None,
                grid_rounded_error=snapped.rounded_error if snapped else None,
            )
        )
    result.seconds = time.perf_counter() - start
    return result
