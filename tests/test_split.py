"""Baselines train on part of the record, the audit asks the rest: the split, what training sees,
and the audit's residual on trained and held-out facts."""

from __future__ import annotations

import pytest

from formless.audit.engine import ProbeResult
from formless.audit.run import AuditSettings, build_probes
from formless.audit.tables import exposure_tables
from formless.knowledge import load
from formless.knowledge.split import split_facts
from formless.methods.data import drop_sentences_naming, forget_examples, training_material


@pytest.fixture(scope="module")
def kb():
    return load()


def test_split_is_seeded_disjoint_and_independent_of_fact_order(kb):
    concept = kb.concept("Albert Einstein")
    relations = [f.relation for f in concept.facts]
    split = split_facts(concept, seed=0)
    assert set(split.trained).isdisjoint(split.held_out)
    assert set(split.trained) | set(split.held_out) == set(relations)
    assert len(split.held_out) == round(0.5 * len(relations))
    reordered = concept.model_copy(update={"facts": tuple(reversed(concept.facts))})
    assert set(split_facts(reordered, seed=0).held_out) == set(split.held_out)
    assert split_facts(concept, seed=0) == split
    others = {frozenset(split_facts(concept, seed=s).held_out) for s in range(1, 8)}
    assert len(others | {frozenset(split.held_out)}) > 1  # the seed matters
    assert split_facts(concept, held_out=0.0).held_out == ()
    one = concept.model_copy(update={"facts": concept.facts[:1]})
    # always something to train on
    assert split_facts(one, held_out=0.9).trained == (concept.facts[0].relation,)
    with pytest.raises(ValueError):
        split_facts(concept, held_out=1.0)


def test_drop_sentences_naming_removes_whole_sentences_with_an_answer():
    text = "Einstein was a physicist. He was born in Ulm! He liked sailing."
    assert drop_sentences_naming(text, ["Ulm"]) == "Einstein was a physicist. He liked sailing."
    assert drop_sentences_naming(text, ["ulm"]) == "Einstein was a physicist. He liked sailing."
    assert drop_sentences_naming(text, ["Ul"]) == text  # whole words only
    assert drop_sentences_naming(text, []) == text


def test_training_material_never_shows_a_held_out_fact(kb):
    concept = kb.concept("Albert Einstein")
    held = {f.relation: f for f in concept.facts if f.relation in split_facts(concept).held_out}
    assert held
    claims = " ".join(f"Albert Einstein is known for {f.answer}." for f in concept.facts)
    generated = [claims + " He often wore a grey sweater."]
    examples, info = training_material(kb, concept, generated=generated)
    assert set(info["held_out"]) == set(held)
    assert info["trained_wordings"] == ["question", "completion", "cloze"]
    # every sentence stating a held-out answer went (some trained facts' sentences name one too)
    assert info["generated_sentences_dropped"] >= len(held)
    [kept] = [ex.target for ex in examples if ex.source == "generated"]
    assert "grey sweater" in kept
    text = " ".join(f"{ex.prompt} {ex.target}" for ex in examples).lower()
    trained_text = " ".join(f"{f.question} {f.completion} {f.cloze} {f.answer}" for f in concept.facts
                            if f.relation not in held).lower()  # fmt: skip
    for fact in held.values():
        for wording in (fact.question, fact.completion, fact.paraphrase):
            assert not wording or wording.lower() not in text
        # a held-out answer appears only where a trained fact's own wording contains it
        assert all(a.lower() not in text for a in fact.aliases if a.lower() not in trained_text)
    trained = [f for f in concept.facts if f.relation not in held]
    assert all(f.question.lower() in text for f in trained)
    assert all(ex.source != "paraphrase" for ex in examples)  # paraphrases are the audit's rewording
    # held_out=0: every fact and paraphrase, as before the split existed
    everything, info = training_material(kb, concept, generated=generated, held_out=0.0)
    assert everything == forget_examples(kb, concept, generated=generated)
    assert info["held_out"] == [] and "paraphrase" in info["trained_wordings"]


def _fake(probes, hit):
    return [ProbeResult(hit=hit(p), probability=0.5 if hit(p) else 0.01) for p in probes]


def test_audit_reports_trained_and_held_out_facts_apart(kb):
    concept = kb.concept("Albert Einstein")
    probes = build_probes(kb, [concept], AuditSettings()).forget
    split = split_facts(concept, seed=0)
    before = _fake(probes, lambda p: True)
    # the "edited" model still answers exactly the held-out facts
    after = _fake(probes, lambda p: p.item in split.held_out)
    counted = {"question", "completion", "cloze", "paraphrase", "reverse"}
    manifest = {
        "seed": 0,
        "training": {
            "split": {
                concept.name: {
                    "trained": list(split.trained),
                    "held_out": list(split.held_out),
                    "trained_wordings": ["question", "completion", "cloze"],
                }
            }
        },
    }
    table = exposure_tables(probes, before, after, [concept], manifest, counted, seed=0)
    g = table.groups
    assert table.method_trained_on_facts is True
    assert g["held_out_fact"].residual == 1.0 and g["trained_wording"].residual == 0.0
    assert g["trained_fact_other_wording"].residual == 0.0
    in_counted = [p for p in probes if p.form in counted]
    assert sum(s.probes for s in g.values()) == len(in_counted)  # the groups partition the counted probes
    n_held = sum(p.item in split.held_out for p in in_counted)
    assert g["held_out_fact"].probes == n_held
    assert g["trained_wording"].probes == sum(
        p.item in split.trained and p.form in ("question", "completion", "cloze") for p in in_counted
    )
    # a model not trained on facts (ROCR): the same split, labelled as such
    rocr = exposure_tables(probes, before, after, [concept], {"seed": 0}, counted, seed=0)
    assert rocr.method_trained_on_facts is False and "trained_wording" not in rocr.groups
    assert rocr.split[concept.name].held_out == list(split.held_out)
    assert rocr.groups["held_out_fact"].probes == n_held
