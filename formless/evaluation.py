"""Asking facts in a form and judging the answers: shared by the demo and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from formless.generation import generate
from formless.knowledge import Fact
from formless.matching import contains_answer
from formless.models.loading import LoadedModel

Form = Literal["chat", "plain"]
MAX_NEW_TOKENS: dict[str, int] = {"chat": 32, "plain": 16}


def ask(loaded: LoadedModel, facts: Sequence[Fact], form: Form) -> list[str]:
    """Greedy answers: the question as a chat turn, or the completion prompt as plain text."""
    prompts = [f.question if form == "chat" else f.completion for f in facts]
    return generate(
        loaded.model, loaded.tokenizer, prompts, chat=form == "chat", max_new_tokens=MAX_NEW_TOKENS[form]
    )


def correct(facts: Sequence[Fact], answers: Sequence[str]) -> list[bool]:
    return [contains_answer(a, f.aliases) for f, a in zip(facts, answers)]
