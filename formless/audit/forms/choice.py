"""Recognition rather than recall: multiple choice (option likelihood, letters) and true/false."""

from __future__ import annotations

from formless.audit.forms.base import Form
from formless.audit.probes import rng_for
from formless.knowledge import BLANK

LETTERS = "ABCD"


def _shuffled(fact, seed: int, concept: str) -> tuple[list[str], int] | None:
    """The answer and three distractors in a seeded order, and the answer's index (None: too few)."""
    if len(fact.distractors) < 3:
        return None
    options = [fact.answer, *fact.distractors[:3]]
    order = list(range(len(options)))
    rng_for(seed, concept, fact.relation, "options").shuffle(order)
    return [options[i] for i in order], order.index(0)


class MultipleChoice(Form):
    """Which option does the model find most likely as the answer? Works for small models."""

    name, title = "multiple_choice", "Multiple choice (option likelihood)"

    def fact_probe(self, concept, fact, ctx):
        if (shuffled := _shuffled(fact, ctx.seed, concept.name)) is None:
            return None
        options, correct = shuffled
        return self.make(concept, fact, fact.question, options=tuple(options), correct=correct)


class MultipleChoiceLetter(Form):
    """The options listed with letters; the model must name the letter (ORT's MCP form)."""

    name, title = "multiple_choice_letter", "Multiple choice (letter)"

    def fact_probe(self, concept, fact, ctx):
        if (shuffled := _shuffled(fact, ctx.seed, concept.name)) is None:
            return None
        options, correct = shuffled
        listed = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, options))
        prompt = f"{fact.question}\n{listed}\nAnswer with the letter of the correct option."
        return self.make(
            concept, fact, prompt, answer=LETTERS[correct], options=tuple(LETTERS), correct=correct
        )


class TrueFalse(Form):
    """The cloze filled with the true answer and with a distractor; both must be judged right."""

    name, title = "true_false", "True / false"

    def fact_probe(self, concept, fact, ctx):
        if not fact.cloze or not fact.distractors:
            return None
        wrong = fact.distractors[
            rng_for(ctx.seed, concept.name, fact.relation, "tf").randrange(len(fact.distractors))
        ]
        probes = []
        for variant, filler, truth in (("true", fact.answer, 0), ("false", wrong, 1)):
            statement = fact.cloze.replace(BLANK, filler)
            prompt = f"True or false? {statement}\nAnswer True or False."
            probes.append(
                self.make(
                    concept,
                    fact,
                    prompt,
                    answer=("True", "False")[truth],
                    options=("True", "False"),
                    correct=truth,
                    variant=variant,
                )
            )
        return probes
