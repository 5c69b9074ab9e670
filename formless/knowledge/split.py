"""Which of a concept's facts a trained method may see, and which only the audit asks.

A baseline trained on the audit's own questions is scored on what it memorised, not on whether the
concept is gone. So each concept's facts are split, by a seeded hash of (seed, concept, relation),
into facts a method trains on and facts held out for the audit alone; the audit reports residual
on the held-out facts beside the trained ones. The split depends on nothing else (not on the other
concepts, not on the order of facts), so a forget run and a later audit compute the same split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from formless.knowledge.schema import Concept

DEFAULT_HELD_OUT = 0.5


@dataclass(frozen=True)
class FactSplit:
    """Relations of one concept's facts: the ones a method may train on, and the held-out rest."""

    concept: str
    trained: tuple[str, ...]
    held_out: tuple[str, ...]

    def exposure(self, relation: str) -> str | None:
        """ "trained" / "held_out" for a relation of this concept; None for one it does not hold."""
        if relation in self.trained:
            return "trained"
        if relation in self.held_out:
            return "held_out"
        return None


def _rank(seed: int, concept: str, relation: str) -> str:
    return hashlib.sha256(f"{seed}|{concept}|{relation}|train-split".encode()).hexdigest()


def split_facts(concept: Concept, *, seed: int = 0, held_out: float = DEFAULT_HELD_OUT) -> FactSplit:
    """Hold out ``round(held_out * n)`` of the concept's n facts (at most n - 1: a method always has
    something to train on), chosen by a seeded hash per relation."""
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must be in [0, 1), got {held_out}")
    relations = list(dict.fromkeys(f.relation for f in concept.facts))
    n_held = min(round(held_out * len(relations)), max(len(relations) - 1, 0))
    ranked = sorted(relations, key=lambda r: _rank(seed, concept.name, r))
    held = set(ranked[:n_held])
    return FactSplit(
        concept.name,
        trained=tuple(r for r in relations if r not in held),
        held_out=tuple(r for r in relations if r in held),
    )
