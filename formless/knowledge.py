"""The shipped facts (formless/data/facts.json): concepts the default model knows, with questions
and plain-completion prompts whose true answers are known, plus unrelated general facts.

Every entry was checked against SmolLM2-135M-Instruct with scripts/check_facts.py (both forms).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from formless import DATA_DIR


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    question: str  # asked through the chat template
    completion: str  # plain text the model continues
    answer: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Concept:
    name: str
    kind: str
    description: str
    facts: tuple[Fact, ...]


def _fact(row: dict, subject: str) -> Fact:
    aliases = tuple(dict.fromkeys([row["answer"], *row.get("aliases", [])]))
    return Fact(
        row.get("subject", subject),
        row["relation"],
        row["question"],
        row["completion"],
        row["answer"],
        aliases,
    )


@functools.cache
def load_facts() -> tuple[dict[str, Concept], tuple[Fact, ...]]:
    data = json.loads((DATA_DIR / "facts.json").read_text(encoding="utf-8"))
    concepts = {
        c["name"]: Concept(
            c["name"],
            c.get("kind", ""),
            c.get("description", ""),
            tuple(_fact(f, c["name"]) for f in c["facts"]),
        )
        for c in data["concepts"]
    }
    general = tuple(_fact(f, f.get("subject", "")) for f in data["general"])
    return concepts, general
