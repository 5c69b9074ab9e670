"""The fact reached another way: from the object, through a description, another entity, another
language, or spelled out one character per line."""

from __future__ import annotations

import re
from dataclasses import replace

from formless.audit.forms.base import Form
from formless.audit.probes import Probe, spell
from formless.knowledge import Concept, Fact
from formless.matching import normalise


class Reverse(Form):
    """Object -> subject: the answer is the concept itself."""

    name, title = "reverse", "Reverse (object → subject)"

    def fact_probe(self, concept, fact, ctx):
        if not fact.reverse:
            return None
        return self.make(concept, fact, fact.reverse, answer=concept.name, aliases=concept.names)


def _name_replaced(text: str, name: str, phrase: str) -> str | None:
    """``text`` with the concept's name (and an article before it) replaced by ``phrase``; None when
    the text never names it. "the Amazon River" -> "the largest river ...", not "the the largest"."""
    if name not in text:
        return None
    return re.sub(rf"(?:\b[Tt]he )?(?<![\w]){re.escape(name)}(?![\w])", phrase, text)


def describe(text: str, name: str, description: str) -> str | None:
    """``text`` with the concept's name (and its possessive) replaced by its description."""
    phrase = description if description.lower().startswith(("the ", "a ", "an ")) else f"the {description}"
    out = _name_replaced(text, name, phrase)
    if out is None:
        return None
    return out[0].upper() + out[1:] if out.startswith(phrase) else out


# a run of capitalised words (with the particles of names and titles inside it) or a year
_WORD = r"(?:[A-Z][\w'.&-]*|\d{4})"
_CUE = re.compile(rf"{_WORD}(?: (?:(?:de|du|of|the|van|von|da|di|la|le) )*{_WORD})*")
MAX_CUES = 3


def description_cues(description: str, concept: Concept) -> list[str]:
    """The named entities and years a description mentions ("Champ de Mars", "Paris"), at most
    ``MAX_CUES``, none naming the concept itself."""
    own = {w for n in concept.names for w in normalise(n).split() if len(w) > 3}
    cues = []
    for match in _CUE.finditer(description):
        cue = re.sub(r"'s$", "", match.group(0))
        words = set(normalise(cue).split())
        if words and not words & own and words - {"the", "a", "an"} and cue not in cues:
            cues.append(cue)
    return cues[:MAX_CUES]


class Indirect(Form):
    """The concept described, never named: "Who wrote the book series about a boy wizard ...?".

    Its prior twins ask the question about each entity the description mentions instead of the
    concept: a fact the reference answers right about one of them ("In which country is Paris?" ->
    France) is implied by the description, not recalled through it, so it is set apart like a fact a
    made-up name gets right in the forms that name the concept."""

    name, title = "indirect", "Indirect reference"

    def fact_probe(self, concept, fact, ctx):
        # a description that states this fact's answer would be read, not recalled: use another
        description = self.description(concept, fact)
        prompt = describe(fact.question, concept.name, description)
        return self.make(concept, fact, prompt) if prompt else None

    @staticmethod
    def description(concept: Concept, fact: Fact) -> str:
        return concept.description_for(fact.aliases) or concept.description

    def twins(self, probe: Probe, concept: Concept) -> list[Probe]:
        fact = next((f for f in concept.facts if f.relation == probe.item), None)
        if fact is None:
            return []
        out = []
        for cue in description_cues(self.description(concept, fact), concept):
            prompt = _name_replaced(fact.question, concept.name, cue)
            if prompt is not None:
                prompt = prompt[0].upper() + prompt[1:]
                out.append(replace(probe, prompt=prompt, prior_twin=True, twin=len(out), cue=cue))
        return out


class MultiHop(Form):
    """Questions that reach a fact of the concept through another entity."""

    name, title = "multihop", "Multi-hop"

    def probes(self, concept, ctx):
        return [
            Probe(self.name, concept.name, f"hop{i}", hop.question, answer=hop.answer, aliases=hop.aliases)
            for i, hop in enumerate(concept.multihop)
        ]


class CrossLingual(Form):
    """The question in other languages (erasure often fails to cross languages)."""

    name, title = "crosslingual", "Other languages"

    def fact_probe(self, concept, fact, ctx):
        probes = []
        for lang in ctx.languages:
            tr = fact.translations.get(lang)
            if tr is None:
                continue
            aliases = tuple(dict.fromkeys([*tr.aliases, *fact.aliases]))
            probes.append(
                self.make(concept, fact, tr.question, answer=aliases[0], aliases=aliases, variant=lang)
            )
        return probes


class Spelled(Form):
    """ORT's sub-token form: the answer written one character per line."""

    name, title = "spelled", "Spelled out"

    def fact_probe(self, concept, fact, ctx):
        if len(normalise(fact.answer)) < 2:
            return None
        prompt = f"{fact.question}\nWrite the answer one character per line, nothing else."
        return self.make(concept, fact, prompt, answer=spell(fact.answer), match="spelled", max_new_tokens=40)
