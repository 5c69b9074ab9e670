"""Baselines as a ``forget`` method: data from the knowledge base and the reference model, one
training run, and the same checkpoint + manifest output as ROCR (undo restores every changed tensor)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from formless.checkpoint import base_model_info, check_output_dir, versions, write_checkpoint
from formless.errors import FormlessError
from formless.knowledge import KnowledgeBase, load
from formless.knowledge.elicit import resolve_names
from formless.knowledge.split import DEFAULT_HELD_OUT
from formless.methods.data import Example, check_disjoint, generate_descriptions, training_material
from formless.methods.distributed import launched_distributed, process_state
from formless.methods.icu import icu_template, instruction
from formless.methods.registry import make_method, method_names
from formless.methods.train import TrainConfig, train
from formless.models.loading import LoadedModel, load_model
from formless.rocr.corpus import load_corpus

TRAINED = tuple(method_names())
ALL_METHODS = ("rocr", *TRAINED, "icu")

# descriptions the reference writes about a concept, per (base weights hash, concept): greedy
# decoding makes them a pure function of both, and a benchmark forgetting one concept with several
# methods would otherwise regenerate them every run
_DESCRIPTIONS: dict[tuple[str, str], list[str]] = {}


def _descriptions(loaded: LoadedModel, base_hash: str, concept) -> list[str]:
    key = (base_hash, concept.name)
    if key not in _DESCRIPTIONS:
        _DESCRIPTIONS[key] = generate_descriptions(loaded, concept)
    return list(_DESCRIPTIONS[key])


def corpus_retain(n_docs: int = 64, prompt_words: int = 12, target_words: int = 48) -> list[Example]:
    """Neutral text as the retain set: held out from the audit, whose neighbour and general facts
    must not be trained on (they are what the audit measures). Targets carry no leading space:
    :func:`~formless.methods.data.encode` inserts the one separator between prompt and target."""
    docs = load_corpus().documents[:n_docs]
    out = []
    for i, doc in enumerate(docs):
        words = doc.text.split()
        if len(words) > prompt_words + 8:
            out.append(
                Example(
                    " ".join(words[:prompt_words]),
                    " ".join(words[prompt_words : prompt_words + target_words]),
                    False,
                    f"corpus:{i}",
                )
            )
    return out


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    after = model.state_dict()
    return {k: v for k, v in before.items() if k in after and not torch.equal(v, after[k].detach().cpu())}


def unlearn(
    concepts: str | Sequence[str],
    *,
    method: str,
    model: str | LoadedModel,
    out: str | Path | None = None,
    config: TrainConfig | None = None,
    train_form: str = "all",
    kb: KnowledgeBase | None = None,
    force: bool = False,
    cache: str | Path | None = None,
    seed: int = 0,
    held_out: float = DEFAULT_HELD_OUT,
) -> tuple[LoadedModel, dict]:
    """Forget ``concepts`` with a baseline ``method``; returns (model, manifest), saved to ``out``.

    A trained method sees only part of each concept's facts: ``held_out`` of them are kept for the
    audit alone (``training_material``; the split is recorded in the manifest, and the audit
    reports residual on trained and held-out facts apart)."""
    if method not in (*TRAINED, "icu"):
        raise FormlessError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    started = time.perf_counter()
    torch.manual_seed(seed)
    names = [concepts] if isinstance(concepts, str) else list(concepts)
    kb = kb or load()
    out_path = check_output_dir(out, force) if out is not None else None  # before any slow work
    # a concept the knowledge base does not know is elicited from the (unedited) model
    resolved = resolve_names(kb, names, model, cache=cache, out=out)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, cache=cache)
    base_hash = loaded.weights_hash()
    manifest: dict = {"method": method, "concepts": [c.name for c in resolved]}
    originals: dict[str, torch.Tensor] = {}
    if method == "icu":
        text = instruction([c.name for c in resolved])
        manifest["icu"] = {"instruction": text, "chat_template_original": loaded.tokenizer.chat_template}
        loaded.tokenizer.chat_template = icu_template(loaded.tokenizer.chat_template, text)
    else:
        config = (config or TrainConfig()).model_copy(update={"method": method, "seed": seed})
        if not 0.0 <= held_out < 1.0:
            raise FormlessError(f"--hold-out must be in [0, 1) (a share of the facts), got {held_out}")
        forget: list[Example] = []
        splits: dict[str, dict] = {}
        t = time.perf_counter()
        for concept in resolved:
            generated = _descriptions(loaded, base_hash, concept) if train_form in ("all", "text") else ()
            examples, splits[concept.name] = training_material(
                kb, concept, form=train_form, generated=generated, seed=seed, held_out=held_out
            )
            forget += examples
        data_seconds = time.perf_counter() - t
        retain = corpus_retain()
        for concept in resolved:
            check_disjoint(forget, retain, names=concept.names)
        before = {k: v.detach().cpu().clone() for k, v in loaded.model.state_dict().items()}
        result = train(loaded, make_method(method, **config.method_options), forget, retain, config)
        originals = _changed(before, loaded.model)
        del before
        manifest["training"] = {
            "config": config.model_dump(),
            "method": result.method,
            "train_form": train_form,
            "split": splits,
            "forget_examples": len(forget),
            "retain_examples": len(retain),
            "retain_source": "formless-generic-v1 corpus (held out from the audit)",
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "restored_step": result.restored_step,
            "reference": result.reference,
            "history": result.history,
            "seconds": {"data": round(data_seconds, 3), "train": round(result.seconds, 3)},
        }
    manifest.update(
        {
            "base_model": base_model_info(loaded, base_hash),
            "edited_weights_hash": loaded.weights_hash(refresh=True),
            "changed_tensors": len(originals),
            "previous_edits": [],
            "seed": seed,
            "versions": versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    manifest["seconds"] = {"total": round(time.perf_counter() - started, 3)}
    main, wait = _main_process()
    if out_path is not None and main:
        write_checkpoint(
            loaded.model,
            loaded.tokenizer,
            out_path,
            manifest=manifest,
            originals=originals,
            keys={},
            previous_dir=None,
            force=force,
        )
    wait()  # the other processes return once the main one has written the checkpoint
    return loaded, manifest


def _main_process() -> tuple[bool, Callable[[], None]]:
    """(whether this process writes the checkpoint, a barrier). Every process of an ``accelerate
    launch`` ends training with the same model; one writer avoids N processes racing to rename
    the same output directory into place."""
    if not launched_distributed():
        return True, lambda: None
    state = process_state()
    return state.is_main_process, state.wait_for_everyone
