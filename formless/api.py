"""The Python API: ``forget`` (edit + save) and ``undo``; the CLI is a thin layer over these."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from formless.checkpoint import (
    base_model_info,
    check_output_dir,
    load_originals,
    read_keys,
    read_manifest,
    restore_previous_files,
    versions,
    write_checkpoint,
)
from formless.errors import FormlessError
from formless.knowledge.split import DEFAULT_HELD_OUT
from formless.models.cache import atomic_directory, cache_dir
from formless.models.loading import LoadedModel, load_model, state_dict_hash
from formless.models.registry import DEFAULT_MODEL
from formless.rocr.config import PRESETS, ROCRConfig
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import EditResult, apply_rocr, validate_concepts
from formless.rocr.stats import layer_statistics


@dataclass
class ForgetOutcome:
    loaded: LoadedModel  # the edited model, in memory
    edit: EditResult | None  # None for the baselines (formless.methods)
    manifest: dict
    out: Path | None


def make_config(preset: str | None = None, **options) -> ROCRConfig:
    """ROCRConfig from a named preset (PRESETS; default "formless") and keyword options (None = the
    preset's value), with validation errors made readable.

    ``make_config(preset="paper")`` is the reference implementation's configuration, so a table can
    show the paper's ROCR beside formless' own; an option given as well overrides the preset's value.
    """
    name = preset or "formless"
    if name not in PRESETS:
        raise FormlessError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    given = {k: v for k, v in options.items() if v is not None}
    try:
        # only what the preset sets: every other field takes its default now (e.g. the guard's limit)
        return ROCRConfig(**{**PRESETS[name].model_dump(exclude_unset=True), **given, "preset": name})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "options"
        raise FormlessError(f"invalid ROCR option '{where}': {err['msg']}") from None


def preset_record(config: ROCRConfig) -> dict:
    """The manifest's account of the preset: its name and the fields an option changed from it.

    ``layers`` is left out: every preset resolves it from the model's depth when not given.
    """
    base = PRESETS.get(config.preset)
    if base is None:
        raise FormlessError(f"unknown preset '{config.preset}'; choose one of: {', '.join(PRESETS)}")
    mine, theirs = config.model_dump(), base.model_dump()
    return {
        "name": config.preset,
        "overridden": sorted(k for k in mine if k != "layers" and mine[k] != theirs[k]),
    }


def forget(
    concepts: str | Sequence[str],
    *,
    model: str | LoadedModel = DEFAULT_MODEL,
    out: str | Path | None = None,
    config: ROCRConfig | None = None,
    force: bool = False,
    cache: str | Path | None = None,
    seed: int = 0,
    device_map: str | None = None,
    method: str = "rocr",
    train_config=None,
    train_form: str = "all",
    held_out: float = DEFAULT_HELD_OUT,
) -> ForgetOutcome:
    """Redirect ``concepts`` in ``model`` with ROCR; save a checkpoint + manifest to ``out`` if given.

    ``method`` picks a baseline instead (ga, gd, kl, npo, simnpo, rmu, rt, icu; see
    formless.methods), trained with ``train_config`` on the ``train_form`` data of the facts not
    ``held_out`` for the audit (formless.knowledge.split), same output format.

    ``model`` is a built-in name, a directory, a hub id, or an already loaded model (edited in
    place). When the model directory holds an earlier formless edit, its keys are kept protected
    (sequential editing) and ``undo`` of the result gives that earlier model back.
    """
    if method != "rocr":
        from formless.methods.unlearn import unlearn

        if isinstance(model, str) and device_map:
            model = load_model(model, cache=cache, device_map=device_map)
        loaded, manifest = unlearn(
            concepts,
            method=method,
            model=model,
            out=out,
            config=train_config,
            train_form=train_form,
            held_out=held_out,
            force=force,
            cache=cache,
            seed=seed,
        )
        return ForgetOutcome(loaded, None, manifest, Path(out).expanduser() if out is not None else None)
    started = time.perf_counter()
    torch.manual_seed(seed)
    config = config or ROCRConfig()
    concepts = validate_concepts([concepts] if isinstance(concepts, str) else list(concepts), config.redirect)
    out_path = check_output_dir(out, force) if out is not None else None
    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, cache=cache, device_map=device_map)
    )
    adapter = loaded.adapter
    try:
        layers = config.resolved_layers(adapter.num_layers(loaded.model))
    except ValueError as exc:
        raise FormlessError(str(exc)) from None
    config = config.model_copy(update={"layers": layers})
    base_hash = loaded.weights_hash()
    previous_dir = Path(loaded.path) if loaded.source == "local" else None
    previous_manifest = read_manifest(previous_dir) if previous_dir else None
    previous_keys = read_keys(previous_dir) if previous_manifest else {}
    corpus = load_corpus(config.corpus)
    stats, stats_seconds = layer_statistics(
        loaded, layers, corpus, max_tokens=config.stats_tokens, cache=cache
    )
    originals = {
        adapter.mlp_out_name(i): adapter.mlp_out_module(loaded.model, i).weight.detach().cpu().clone()
        for i in layers
    }
    edit = apply_rocr(loaded, concepts, config, stats, previous_keys, protect_cache=cache_dir(cache))
    config = edit.config  # the fallback to the last name token, if the edit needed it
    all_keys = {
        e.layer: torch.cat([previous_keys[e.layer], e.keys], 1) if e.layer in previous_keys else e.keys
        for e in edit.layer_edits
    }
    all_keys.update({k: v for k, v in previous_keys.items() if k not in all_keys})
    manifest = {
        "method": "rocr",
        "concepts": concepts,
        "redirect": config.redirect,
        "layers": layers,
        "preset": preset_record(config),
        "hyperparameters": config.model_dump(),
        "base_model": base_model_info(loaded, base_hash),
        "edited_weights_hash": loaded.weights_hash(refresh=True),
        "update_guard": {
            "max_relative_norm": config.max_relative_norm,
            # what the guard compared: the update as solved (before any grid rounding)
            "largest_relative_norm": max(e.solved_relative_norm or e.relative_norm for e in edit.layer_edits),
        },
        "notes": edit.notes,
        "layer_updates": [
            {
                "layer": e.layer,
                "weight": adapter.mlp_out_name(e.layer),
                "update_norm": e.delta_norm,
                "relative_norm": e.relative_norm,
                "null_space_dim": e.null_dim,
                **(
                    {
                        "grid": e.grid,
                        "solved_relative_norm": e.solved_relative_norm,
                        "grid_key_error": round(e.grid_key_error or 0.0, 5),
                        "grid_plain_rounding_key_error": round(e.grid_rounded_error or 0.0, 5),
                    }
                    if e.grid
                    else {}
                ),
            }
            for e in edit.layer_edits
        ],
        "statistics": {
            "corpus": corpus.name,
            "corpus_fingerprint": corpus.fingerprint,
            "tokens": next(iter(stats.values())).n_tokens,
            "seconds_computing": round(stats_seconds, 3),
        },
        "previous_edits": ([previous_manifest] + previous_manifest.get("previous_edits", []))
        if previous_manifest
        else [],
        "seed": seed,
        "versions": versions(),
        "seconds": {"edit": round(edit.seconds, 3), "statistics": round(stats_seconds, 3)},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for prev in manifest["previous_edits"]:
        prev.pop("previous_edits", None)
    if out_path is not None:
        write_checkpoint(
            loaded.model,
            loaded.tokenizer,
            out_path,
            manifest=manifest,
            originals=originals,
            keys=all_keys,
            previous_dir=previous_dir if previous_manifest else None,
            force=force,
        )
    manifest["seconds"]["total"] = round(time.perf_counter() - started, 3)
    return ForgetOutcome(loaded, edit, manifest, out_path)


def undo(edited: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write the model as it was before the edit recorded in ``edited`` (bit-identical weights)."""
    edited = Path(edited).expanduser()
    out_path = check_output_dir(out, force)
    manifest = read_manifest(edited)
    if manifest is None:
        raise FormlessError(
            f"'{edited}' has no formless_manifest.json; it is not an output of formless forget"
        )
    originals = load_originals(edited)
    loaded = load_model(str(edited), dtype="auto")
    state = loaded.model.state_dict()
    with torch.no_grad():
        for name, tensor in originals.items():
            if name not in state:
                raise FormlessError(f"the edited model has no tensor '{name}' recorded in the manifest")
            state[name].copy_(tensor.to(state[name].dtype))
    if manifest.get("icu"):  # in-context unlearning changed the chat template, not the weights
        loaded.tokenizer.chat_template = manifest["icu"]["chat_template_original"]
    restored = state_dict_hash(loaded.model.state_dict())
    expected = manifest["base_model"]["weights_hash"]
    if restored != expected:
        raise FormlessError(
            f"restored weights hash {restored} differs from the base model's {expected}; "
            "the checkpoint was changed after the edit, so it cannot be undone exactly"
        )
    with atomic_directory(out_path, replace=force) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        restore_previous_files(edited, tmp)
    return out_path
