"""Knowledge re-introduced in context (UnUnlearning). Reported apart: it measures whether the model
can *use* the fact when told it, not whether it still remembers it."""

from __future__ import annotations

from formless.audit.forms.base import Form
from formless.knowledge import BLANK


class InContext(Form):
    name, title = "in_context", "Fact given in context"
    group = "context"

    def fact_probe(self, concept, fact, ctx):
        if not fact.cloze:
            return None
        statement = fact.cloze.replace(BLANK, fact.answer)
        return self.make(concept, fact, f"Read this: {statement}\nNow answer: {fact.question}")
