"""Recognition rather than recall: multiple choice (option likelihood, letters) and true/false.

Each probe that names the concept gets *prior twins*: the same prompt and options about each of a few
made-up names (``PRIOR_NAMES``). Uniform chance (1/4, 1/2) is not what a model without the
knowledge does: measured on the default model, a made-up name gets the right option for 55% of the
option-likelihood facts the reference knows and 81% of the letter ones
(``benchmarks/recognition_prior.py``). The share of the twins a fact's right answer wins is that
fact's own chance on this model; the audit reports the residual above it, and the residual over the
facts the first twin gets wrong, beside the plain one (``formless.audit.metrics``)."""

from __future__ import annotations

from formless.audit.forms.base import PRIOR_NAMES, Form, FormContext, prior_twin
from formless.audit.probes import Probe, rng_for
from formless.knowledge import BLANK, Concept

LETTERS = "ABCD"


class _Recognition(Form):
    """A recognition form: its probes, then their prior twins (one per made-up name)."""

    def probes(self, concept: Concept, ctx: FormContext) -> list[Probe]:
        named = super().probes(concept, ctx)
        return named + [
            t for k in range(len(PRIOR_NAMES)) for p in named if (t := prior_twin(p, concept, k)) is not None
        ]


def _shuffled(fact, seed: int, concept: str) -> tuple[list[str], int] | None:
    """The answer and three distractors in a seeded order, and the answer's index (None: too few)."""
    if len(fact.distractors) < 3:
        return None
    options = [fact.answer, *fact.distractors[:3]]
    order = list(range(len(options)))
    rng_for(seed, concept, fact.relation, "options").shuffle(order)
    return [options[i] for i in order], order.index(0)


class MultipleChoice(_Recognition):
    """Which option does the model find most likely as the answer? Works for small models."""

    name, title = "multiple_choice", "Multiple choice (option likelihood)"

    def fact_probe(self, concept, fact, ctx):
        if (shuffled := _shuffled(fact, ctx.seed, concept.name)) is None:
            return None
        options, correct = shuffled
        return self.make(concept, fact, fact.question, options=tuple(options), correct=correct)


class MultipleChoiceLetter(_Recognition):
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


class TrueFalse(_Recognition):
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
