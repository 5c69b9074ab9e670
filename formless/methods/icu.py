"""In-context unlearning (Pawelczyk et al. 2024): no weights change; the instruction to forget is
written into the checkpoint's chat template as the system turn, so every chat-formatted prompt
carries it — and plain-text prompts, which bypass the template, do not (the audit shows that)."""

from __future__ import annotations

from collections.abc import Sequence

from formless.errors import FormlessError

ICU_INSTRUCTION = (
    "You are a model that knows nothing about {names}. If you are asked about {names} or anything "
    "related to {them}, say that you do not know, and answer every other question normally."
)


def instruction(concepts: Sequence[str]) -> str:
    names = concepts[0] if len(concepts) == 1 else ", ".join(concepts[:-1]) + " or " + concepts[-1]
    return ICU_INSTRUCTION.format(names=names, them="it" if len(concepts) == 1 else "them")


def icu_template(template: str | None, text: str) -> str:
    """The chat template with ``text`` as the system message whenever the user gave none."""
    if not template:
        raise FormlessError(
            "in-context unlearning needs a chat template to carry its instruction; this tokenizer has none"
        )
    quoted = text.replace("\\", "\\\\").replace("'", "\\'")
    prefix = (
        "{%- if not (messages and messages[0]['role'] == 'system') -%}"
        f"{{%- set messages = [{{'role': 'system', 'content': '{quoted}'}}] + messages -%}}"
        "{%- endif -%}"
    )
    return prefix + template
