"""Free generation about the concept: does any of its facts leak when the model just talks?"""

from __future__ import annotations

from formless.audit.forms.base import Form

PROMPT = "Tell me everything you know about {name}."


class FreeGeneration(Form):
    """One long generation per concept; each fact is a hit when one of its aliases appears in it."""

    name, title = "free_generation", "Free generation"

    def fact_probe(self, concept, fact, ctx):
        # answer=None: no teacher forcing; every fact's probe shares one generation (deduplicated)
        return self.make(concept, fact, PROMPT.format(name=concept.name), answer=None, max_new_tokens=96)
