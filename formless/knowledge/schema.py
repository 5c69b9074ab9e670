"""The knowledge-base record types: what one concept and one fact must say so that every form can
be asked from it. Validated with pydantic so a user's YAML/JSON error points at the entry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from formless.matching import contains_answer

BLANK = "___"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Translation(_Record):
    """The question in another language; ``aliases`` only where the answer itself is translated."""

    question: str = Field(min_length=3)
    aliases: tuple[str, ...] = ()


class Fact(_Record):
    """One (subject, relation, object) fact, phrased in the forms that cannot be generated."""

    subject: str = ""  # filled with the concept's name when loaded from a concept
    relation: str = Field(min_length=1)
    question: str = Field(min_length=3)  # asked as a chat turn
    completion: str = Field(min_length=3)  # plain text the model continues with the answer
    answer: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()  # every accepted spelling; the answer itself is always first
    cloze: str | None = None  # a statement with the answer replaced by ___
    paraphrase: str | None = None  # the question asked in other words
    distractors: tuple[str, ...] = ()  # wrong but plausible answers (multiple choice, true/false)
    reverse: str | None = None  # a question whose answer is the subject (object -> subject)
    translations: dict[str, Translation] = {}  # language code -> question

    @field_validator("aliases", mode="after")
    @classmethod
    def _no_blank_alias(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        if any(not a.strip() for a in aliases):
            raise ValueError("aliases must not be blank")
        return aliases

    @field_validator("cloze")
    @classmethod
    def _one_blank(cls, cloze: str | None) -> str | None:
        if cloze is not None and cloze.count(BLANK) != 1:
            raise ValueError(f"cloze must contain the blank {BLANK!r} exactly once: {cloze!r}")
        return cloze

    @model_validator(mode="after")
    def _answer_first(self) -> Fact:
        aliases = tuple(dict.fromkeys([self.answer, *self.aliases]))
        if aliases != self.aliases:
            object.__setattr__(self, "aliases", aliases)
        lowered = {a.lower() for a in aliases}
        if any(d.lower() in lowered for d in self.distractors):
            raise ValueError("a distractor is also an accepted answer")
        return self


class Hop(_Record):
    """A question that reaches one of the concept's facts through another entity."""

    question: str = Field(min_length=3)
    answer: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _answer_first(self) -> Hop:
        object.__setattr__(self, "aliases", tuple(dict.fromkeys([self.answer, *self.aliases])))
        return self


Kind = Literal["person", "work", "place", "thing", "organisation", "event", "other"]


class Concept(_Record):
    name: str = Field(min_length=1)
    kind: Kind = "other"
    description: str = Field(min_length=3)  # a noun phrase naming it without its name (indirect form)
    # other such phrases, each stating other facts: a fact whose answer the first one states
    # ("the playwright who wrote Hamlet" for "what was his profession?") is asked through another
    other_descriptions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # other names of the concept (synonym form; reverse answers)
    neighbours: tuple[str, ...] = ()  # related but distinct concepts that must be kept
    multihop: tuple[Hop, ...] = ()
    facts: tuple[Fact, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Concept:
        for text in self.descriptions:
            if self.name.lower() in text.lower():
                raise ValueError(
                    f"description {text!r} must not contain the concept's name (it is the indirect form)"
                )
        if self.name in self.neighbours:
            raise ValueError("a concept cannot be its own neighbour")
        facts = tuple(f if f.subject else f.model_copy(update={"subject": self.name}) for f in self.facts)
        object.__setattr__(self, "facts", facts)
        relations = [f.relation for f in facts]
        duplicated = sorted({r for r in relations if relations.count(r) > 1})
        if duplicated:
            raise ValueError(f"relations must be unique within a concept; repeated: {duplicated}")
        return self

    @property
    def descriptions(self) -> tuple[str, ...]:
        """Every description, the main one first."""
        return tuple(dict.fromkeys([self.description, *self.other_descriptions]))

    def description_for(self, answers: tuple[str, ...]) -> str | None:
        """The first description that does not state any of ``answers`` (so a probe through it asks
        memory, not reading); None when every one does."""
        return next((d for d in self.descriptions if not contains_answer(d, answers)), None)

    @property
    def names(self) -> tuple[str, ...]:
        """The name and its aliases: what a reverse question must produce."""
        return tuple(dict.fromkeys([self.name, *self.aliases]))


class KnowledgeFile(_Record):
    """One YAML/JSON file: concepts and/or general facts (a retain set)."""

    concepts: tuple[Concept, ...] = ()
    general: tuple[Fact, ...] = ()
