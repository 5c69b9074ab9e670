"""The report's tables as pure functions, on hand-made probes and results (no model)."""

from __future__ import annotations

from types import SimpleNamespace

from formless.audit.engine import ProbeResult
from formless.audit.probes import Probe
from formless.audit.tables import counted_forms, exposure_tables, forget_tables, grouped, residuals

OPTIONS = ("a", "b", "c", "d")


def _probe(form: str, concept: str, i: int, **kw) -> Probe:
    return Probe(form, concept, f"fact{i}", f"{form} {concept} {i}", **kw)


def _case():
    """(probes, before, after): which facts the reference knows and which the audited model keeps."""
    rows = []  # (probe, known by the reference, kept by the audited model)
    rows += [(_probe("question", "A", i), i < 8, i < 2) for i in range(10)]  # 8 known, 2 kept
    rows += [(_probe("question", "B", i), True, True) for i in range(2)]  # 2 known, 2 kept
    # four options, the reference right on 2 of 8: not above chance, so not measurable
    rows += [(_probe("multiple_choice", "A", i, options=OPTIONS, correct=0), i < 2, i < 2) for i in range(8)]
    rows += [(_probe("in_context", "A", i), True, True) for i in range(4)]  # context: reported apart
    rows += [(_probe("ort_blank", "A", i), True, False) for i in range(2)]  # an external probe file's form
    probes = [p for p, _, _ in rows]
    before = [ProbeResult(known, 0.5 if known else 0.1) for _, known, _ in rows]
    after = [ProbeResult(kept, 0.4 if kept else 0.01) if known else None for _, known, kept in rows]
    return probes, before, after


def test_per_form_counts_and_totals_leave_out_context_and_unmeasurable_forms():
    probes, before, after = _case()
    forget = forget_tables(probes, before, after)
    assert list(forget.per_form) == ["question", "multiple_choice", "in_context", "ort_blank"]
    q = forget.per_form["question"]
    assert (q.probes, q.known, q.still_answered, q.residual) == (12, 10, 4, 0.4)
    assert q.chance is None and "chance" not in q.model_dump()  # free text: no chance figures
    mc = forget.per_form["multiple_choice"]
    assert mc.chance == 0.25 and not mc.measurable and mc.reference_accuracy == 0.25
    assert forget.not_measurable == ["multiple_choice"]
    assert forget.per_form["in_context"].residual == 1.0
    assert counted_forms(forget.per_form) == {"question", "ort_blank"}
    # totals: question and the external form only (no context form, no form at chance)
    o = forget.overall
    assert (o.probes, o.known, o.still_answered) == (14, 12, 4)
    assert o.residual == round(4 / 12, 4) and o.interval is not None
    assert o.interval[0] <= o.residual <= o.interval[1]
    assert set(forget.per_concept) == {"A", "B"}
    assert list(forget.per_concept["B"]) == ["question"] and forget.per_concept["B"]["question"].residual == 1
    assert forget.per_concept["A"]["question"].known == 8
    # one counted form with >= 10 known facts: no spread to report
    bias = forget.form_dependent_bias
    assert bias.std is None and bias.forms == 1 and "worst_form" not in bias.model_dump()
    assert forget.by_exposure is None  # filled in by the audit, from the model's manifest
    assert residuals(forget.per_form)["ort_blank"] == 0.0


def test_grouped_keeps_first_seen_order_and_partitions():
    probes, before, after = _case()
    by_concept = grouped(probes, before, after, lambda p: p.concept)
    assert list(by_concept) == ["A", "B"]
    assert sum(s.probes for s in by_concept.values()) == len(probes)


def test_exposure_groups_partition_the_counted_probes():
    probes, before, after = _case()
    forget = forget_tables(probes, before, after)
    counted = counted_forms(forget.per_form)
    split = {
        "A": {
            "trained": [f"fact{i}" for i in range(5)],
            "held_out": [f"fact{i}" for i in range(5, 10)],
            "trained_wordings": ["question"],
        },
        "B": {"trained": ["fact0"], "held_out": ["fact1"], "trained_wordings": ["question"]},
    }
    targets = [SimpleNamespace(name="A"), SimpleNamespace(name="B")]
    table = exposure_tables(probes, before, after, targets, {"training": {"split": split}}, counted, seed=0)
    g = table.groups
    assert table.method_trained_on_facts and table.trained_wordings == ["question"]
    assert list(g) == ["trained_wording", "trained_fact_other_wording", "held_out_fact"]
    assert sum(s.probes for s in g.values()) == sum(p.form in counted for p in probes) == 14
    assert (g["trained_wording"].probes, g["trained_fact_other_wording"].probes) == (6, 2)
    assert g["held_out_fact"].probes == 6
    # A's question facts 0-1 kept (trained), 5-7 known but gone (held out); B's both kept
    assert (g["trained_wording"].known, g["trained_wording"].still_answered) == (6, 3)
    assert (g["held_out_fact"].known, g["held_out_fact"].still_answered) == (4, 1)
    assert table.split["B"].held_out == ["fact1"]
