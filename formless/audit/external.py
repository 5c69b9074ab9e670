"""ORT/RWKU probe files turned into audit probes: forget probes join the forget side under the
form they name, neighbour probes join the retain side."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from formless.audit.forms.choice import LETTERS
from formless.audit.ort import ExternalProbe, load_probes
from formless.audit.probes import Probe
from formless.audit.run import ProbeSets

MAX_NEW_TOKENS = 32  # RWKU judges at most 30 new tokens


def to_probe(ext: ExternalProbe) -> Probe:
    if ext.form == "multiple_choice_letter":
        n = len(ext.options) or len(LETTERS)
        letters = tuple(LETTERS[:n])
        return Probe(
            ext.form,
            ext.subject,
            ext.source,
            ext.query,
            answer=letters[ext.correct],
            options=letters,
            correct=ext.correct,
            variant=ext.split,
        )
    return Probe(
        ext.form,
        ext.subject,
        ext.source,
        ext.query,
        answer=ext.answer,
        aliases=ext.aliases,
        max_new_tokens=MAX_NEW_TOKENS,
        variant=ext.split,
    )


def external_probe_sets(
    path: str | Path, subjects: Iterable[str] | None = None
) -> tuple[ProbeSets, list[str]]:
    """(probe sets, notes on what was skipped) for ``formless audit --probes``."""
    loaded = load_probes(path, subjects)
    sets = ProbeSets()
    for ext in loaded.probes:
        (sets.forget if ext.split == "forget" else sets.neighbour).append(to_probe(ext))
    return sets, loaded.skip_notes()
