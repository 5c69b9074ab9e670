"""The registry of forms. A new form is one class (see base.Form) plus one line here."""

from __future__ import annotations

from formless.audit.forms.adversarial import (
    AffirmativeSuffix,
    BackgroundHint,
    FewShot,
    PrefixInjection,
    RolePlay,
    Synonym,
)
from formless.audit.forms.base import Form, FormContext
from formless.audit.forms.choice import MultipleChoice, MultipleChoiceLetter, TrueFalse
from formless.audit.forms.context import InContext
from formless.audit.forms.direct import Cloze, Completion, Paraphrase, Question
from formless.audit.forms.free import FreeGeneration
from formless.audit.forms.reach import CrossLingual, Indirect, MultiHop, Reverse, Spelled
from formless.errors import FormlessError

FORMS: dict[str, type[Form]] = {
    form.name: form
    for form in (
        Question,
        Paraphrase,
        Cloze,
        Completion,
        MultipleChoice,
        MultipleChoiceLetter,
        TrueFalse,
        Reverse,
        Indirect,
        MultiHop,
        CrossLingual,
        Spelled,
        PrefixInjection,
        AffirmativeSuffix,
        RolePlay,
        Synonym,
        BackgroundHint,
        FewShot,
        FreeGeneration,
        InContext,
    )
}
RETAIN_FORMS = ("question", "completion")  # how neighbour and general facts are asked


def select(names: list[str] | None = None) -> list[Form]:
    if not names:
        return [cls() for cls in FORMS.values()]
    unknown = [n for n in names if n not in FORMS]
    if unknown:
        raise FormlessError(f"unknown form(s) {unknown}; available: {', '.join(FORMS)}")
    return [FORMS[n]() for n in names]


__all__ = ["FORMS", "RETAIN_FORMS", "Form", "FormContext", "select"]
