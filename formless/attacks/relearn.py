"""The relearning probe: fine-tune a copy of the audited model for a few steps on half of each
concept's facts, then ask the other half. Knowledge that was only hidden comes back from a little
related text; knowledge that is gone does not (Hu et al. 2024; Deeb & Roger 2024)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from formless.audit.probes import rng_for
from formless.knowledge import Concept, KnowledgeBase
from formless.methods.data import Example, forget_examples
from formless.methods.losses import forward, nll
from formless.methods.registry import LossInputs, _Base, _f
from formless.methods.train import TrainConfig, train
from formless.models.loading import LoadedModel


@dataclass
class Relearn(_Base):
    """Plain fine-tuning, L = NLL of the given texts: what an attacker does to bring a fact back.
    Deliberately not registered: it is an attack, not an unlearning method."""

    name: ClassVar[str] = "relearn"

    def loss(self, inputs: LossInputs):
        value = nll(forward(inputs.model, inputs.forget).logits, inputs.forget.labels)
        return value, {"nll": _f(value)}


def split_facts(concept: Concept, seed: int) -> tuple[Concept, set[str]]:
    """(the concept with only the facts to relearn, the relations held out for asking)."""
    relations = [f.relation for f in concept.facts]
    rng_for(seed, concept.name, "relearn").shuffle(relations)
    trained = set(relations[: len(relations) // 2])
    part = concept.model_copy(update={"facts": tuple(f for f in concept.facts if f.relation in trained)})
    return part, set(relations) - trained


def relearning_plan(
    kb: KnowledgeBase, concepts: Sequence[Concept], seed: int
) -> tuple[list[Example], dict[str, set[str]]]:
    """(the texts a relearned copy is fine-tuned on, the relations held out per concept): fixed by
    the seed, so the probes to ask are known before (or without) fine-tuning."""
    examples: list[Example] = []
    held_out: dict[str, set[str]] = {}
    for concept in concepts:
        part, held_out[concept.name] = split_facts(concept, seed)
        examples += forget_examples(kb, part, form="all")  # no generated text: it could name held-out facts
    return examples, held_out


def relearned_copy(
    loaded: LoadedModel,
    kb: KnowledgeBase,
    concepts: Sequence[Concept],
    *,
    seed: int = 0,
    steps: int = 10,
    lr: float = 1e-3,
) -> tuple[LoadedModel, dict[str, set[str]], dict]:
    """A fine-tuned copy of ``loaded`` (original untouched), the held-out relations per concept,
    and a summary of the run. LoRA, so the copy costs one model's memory."""
    examples, held_out = relearning_plan(kb, concepts, seed)
    clone = LoadedModel(
        copy.deepcopy(loaded.model), loaded.tokenizer, loaded.name, loaded.source, loaded.path, loaded.adapter
    )
    config = TrainConfig(steps=steps, lr=lr, lora=True, seed=seed, guard_every=0, batch_size=4)
    result = train(clone, Relearn(), examples, [], config)
    summary = {
        "steps": result.steps,
        "lr": lr,
        "examples": len(examples),
        "method": "LoRA fine-tuning (NLL)",
        "seconds": round(result.seconds, 2),
    }
    return clone, held_out, summary
