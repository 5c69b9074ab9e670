"""The fact asked directly: as a question, in other words, as a cloze, as plain text to continue."""

from __future__ import annotations

from formless.audit.forms.base import Form
from formless.knowledge import BLANK


class Question(Form):
    name, title = "question", "Question"

    def fact_probe(self, concept, fact, ctx):
        return self.make(concept, fact, fact.question)


class Paraphrase(Form):
    name, title = "paraphrase", "Paraphrase"

    def fact_probe(self, concept, fact, ctx):
        return self.make(concept, fact, fact.paraphrase) if fact.paraphrase else None


class Cloze(Form):
    name, title = "cloze", "Fill in the blank"

    def fact_probe(self, concept, fact, ctx):
        if not fact.cloze:
            return None
        return self.make(concept, fact, f"Fill in the blank ({BLANK}) with a short answer.\n{fact.cloze}")


class Completion(Form):
    """Plain text with no chat template: the form base models and many attacks use."""

    name, title = "completion", "Plain completion"

    def fact_probe(self, concept, fact, ctx):
        return self.make(concept, fact, fact.completion, chat=False, max_new_tokens=16)
