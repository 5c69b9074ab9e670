"""The form plug-in contract: a form turns a concept (and the audit context) into probes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from formless.audit.probes import Probe
from formless.knowledge import Concept, Fact
from formless.knowledge.templates import LANGUAGES, MADE_UP_NAMES
from formless.matching import contains_answer

Group = Literal["forget", "context"]
# the made-up names of the prior twins: a recognition probe is asked about each (a model that never
# knew the concept keeps a fact with the share of them it gets right: its own per-fact chance); other
# forms get the first only. None may be a name ROCR averages for its redirect
# (formless.rocr.config.UNKNOWN_NAMES), or the edited model would match the prior by construction.
PRIOR_NAMES = (*MADE_UP_NAMES, "Harvo Lindqvell")
PRIOR_NAME = PRIOR_NAMES[0]


@dataclass(frozen=True)
class FormContext:
    seed: int = 0
    few_shot: tuple[Fact, ...] = ()  # general facts used as in-context examples
    languages: tuple[str, ...] = LANGUAGES


@dataclass(frozen=True)
class Form:
    """Base class: subclasses set ``name``/``title`` and implement ``probes`` or ``fact_probe``."""

    name: ClassVar[str]
    title: ClassVar[str]  # heading in reports
    group: ClassVar[Group] = "forget"  # "context": knowledge re-introduced, reported apart
    options: dict = field(default_factory=dict)

    def probes(self, concept: Concept, ctx: FormContext) -> list[Probe]:
        out = []
        for fact in concept.facts:
            probe = self.fact_probe(concept, fact, ctx)
            out.extend(probe if isinstance(probe, list) else [probe] if probe else [])
        return out

    def fact_probe(self, concept: Concept, fact: Fact, ctx: FormContext) -> Probe | list[Probe] | None:
        raise NotImplementedError

    def make(self, concept: Concept, fact: Fact, prompt: str, **kw) -> Probe:
        kw.setdefault("answer", fact.answer)
        kw.setdefault("aliases", fact.aliases)
        return Probe(form=self.name, concept=concept.name, item=fact.relation, prompt=prompt, **kw)

    def twins(self, probe: Probe, concept: Concept) -> list[Probe]:
        """What a model without the concept is asked beside ``probe`` (``prior_twins="all"``): the
        same prompt about a made-up name, where the prompt names the concept."""
        twin = prior_twin(probe, concept)
        return [] if twin is None else [twin]


def gives_away(probe: Probe, group: Group = "forget") -> bool:
    """The prompt itself states an accepted answer ("What was the playwright who wrote Hamlet and
    Macbeth's profession?" -> playwright): a hit would measure reading, not memory, so the audit does
    not ask it. Choice probes are scored over their options, and the context group states the fact on
    purpose; neither is checked."""
    return group == "forget" and not probe.options and contains_answer(probe.prompt, probe.aliases)


def prior_twin(probe: Probe, concept: Concept, twin: int = 0) -> Probe | None:
    """``probe`` with every spelling of the concept (longest first, any case) replaced by the made-up
    name ``PRIOR_NAMES[twin]``; None when the prompt never names it ("Who is Harry's best friend?"
    has no twin)."""
    prompt = probe.prompt
    for name in sorted({concept.name, *concept.aliases}, key=len, reverse=True):
        if name.strip():
            made_up = PRIOR_NAMES[twin]
            prompt = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", made_up, prompt, flags=re.IGNORECASE)
    return None if prompt == probe.prompt else replace(probe, prompt=prompt, prior_twin=True, twin=twin)
