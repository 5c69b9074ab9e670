"""The probes of an audit: every selected form of every target concept, the neighbours' facts in the
retain forms, and general knowledge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from formless.audit.forms import FORMS, RETAIN_FORMS, FormContext, select
from formless.audit.forms.base import gives_away
from formless.audit.probes import Probe
from formless.audit.settings import AuditSettings
from formless.knowledge import Concept, Fact, KnowledgeBase
from formless.matching import contains_answer


@dataclass
class ProbeSets:
    forget: list[Probe] = field(default_factory=list)
    neighbour: list[Probe] = field(default_factory=list)
    general: list[Probe] = field(default_factory=list)
    # forget probes whose prompt states their answer: built, never asked
    given_away: list[Probe] = field(default_factory=list)
    # neighbour probes whose answer is a forgotten concept: built, never counted as retain
    answer_is_target: list[Probe] = field(default_factory=list)

    def all(self) -> list[Probe]:
        return self.forget + self.neighbour + self.general

    def given_away_per_form(self) -> dict[str, int]:
        """Form -> forget probes not asked because their prompt states the answer."""
        return dict(Counter(p.form for p in self.given_away))


def _keep(probes: list[Probe], group, set_aside: list[Probe] | None = None) -> list[Probe]:
    """``probes`` less those that give their answer away (appended to ``set_aside`` if given)."""
    kept = []
    for p in probes:
        if not gives_away(p, group):
            kept.append(p)
        elif set_aside is not None:
            set_aside.append(p)
    return kept


def answers_with(probe: Probe, concepts: Sequence[Concept]) -> bool:
    """Whether ``probe``'s answer names one of ``concepts`` ("Who painted the Mona Lisa?" -> Leonardo da
    Vinci). Asked of a neighbour while da Vinci is forgotten, it is da Vinci's own reverse fact: losing
    it is what the edit is for, so it must not count as lost neighbouring knowledge."""
    answer = probe.answer or next(iter(probe.aliases), "")
    # the answer as stated, not every accepted one: "Name a tragedy by Shakespeare" -> Hamlet stays a
    # neighbour fact while Romeo and Juliet is forgotten, though it would also accept that title
    spellings = [s for c in concepts for s in (c.name, *c.aliases) if s.strip()]
    return bool(answer) and contains_answer(answer, spellings)


def general_probes(facts: Sequence[Fact]) -> list[Probe]:
    return [
        Probe(
            "question",
            "general",
            f"{i}:{f.subject}/{f.relation}",
            f.question,
            answer=f.answer,
            aliases=f.aliases,
        )
        for i, f in enumerate(facts)
    ]


def build_probes(kb: KnowledgeBase, concepts: Sequence[Concept], settings: AuditSettings) -> ProbeSets:
    ctx = FormContext(seed=settings.seed, few_shot=kb.general[-(6 if len(kb.general) >= 24 else 3) :])
    sets = ProbeSets()
    every_form = settings.prior_twins == "all"
    for form in select(settings.forms):
        for concept in concepts:
            kept = _keep(form.probes(concept, ctx), form.group, sets.given_away)
            sets.forget.extend(kept)
            if every_form and form.group == "forget" and not any(p.prior_twin for p in kept):
                sets.forget.extend(t for p in kept for t in form.twins(p, concept))
    if settings.neighbours:
        targets = {c.name for c in concepts}
        seen: set[str] = set()
        for concept in concepts:
            for neighbour in kb.neighbours(concept, exclude=targets | seen):
                seen.add(neighbour.name)
                for name in RETAIN_FORMS:
                    for p in _keep(FORMS[name]().probes(neighbour, ctx), FORMS[name].group):
                        (sets.answer_is_target if answers_with(p, concepts) else sets.neighbour).append(p)
    if settings.general:
        few_shot = {id(f) for f in ctx.few_shot}
        sets.general = general_probes([f for f in kb.general if id(f) not in few_shot])
    return sets
