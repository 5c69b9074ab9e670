"""The audit's figures against hand computations: residual, true/false pairs, chance, bootstrap
intervals and the Form-Dependent Bias."""

from __future__ import annotations

import math

import numpy as np
import pytest

from formless.audit.engine import ProbeResult
from formless.audit.metrics import (
    Unit,
    binomial_sf,
    chance_corrected,
    form_dependent_bias,
    residual_interval,
    summarise,
    units,
)
from formless.audit.probes import Probe


def r(hit: bool, p: float | None = None) -> ProbeResult:
    return ProbeResult(hit, p)


def q(i: int, form: str = "question", **kw) -> Probe:
    return Probe(form, "C", f"fact{i}", f"prompt {i} {kw.get('variant', '')}", **kw)


def test_residual_over_known_probes_by_hand():
    probes = [q(0), q(1), q(2)]
    s = summarise(
        units(probes, [r(True, 0.5), r(True, 0.3), r(False, 0.2)], [r(False, 0.1), r(True, 0.3), None])
    )
    # known = the two the reference answered; one still answered -> 1/2; probabilities over known only
    assert (s["probes"], s["known"], s["still_answered"], s["residual"]) == (3, 2, 1, 0.5)
    assert s["coverage"] == round(2 / 3, 4)
    assert s["probability_ratio"] == round((0.1 + 0.3) / (0.5 + 0.3), 4)
    assert "chance" not in s and s["measurable"]


def _tf(i: int) -> list[Probe]:
    opts = ("True", "False")
    return [
        q(i, "true_false", options=opts, correct=0, variant="true"),
        q(i, "true_false", options=opts, correct=1, variant="false"),
    ]


def test_true_false_counts_a_fact_only_when_both_statements_are_right():
    probes = [p for i in range(3) for p in _tf(i)]
    # a model that says "True" to everything: right on every true statement, wrong on every false one
    yes_man = [r(p.variant == "true") for p in probes]
    collapsed = units(probes, yes_man, yes_man)
    assert len(collapsed) == 3 and not any(u.known for u in collapsed)
    assert all(u.chance == pytest.approx(0.25) for u in collapsed)  # two independent coin flips
    # fact 0 both right before and after; fact 1 both right before, false one wrong after; fact 2 unknown
    before = [r(True), r(True), r(True), r(True), r(True), r(False)]
    after = [r(True), r(True), r(True), r(False), None, None]
    s = summarise(units(probes, before, after))
    assert (s["probes"], s["known"], s["still_answered"]) == (3, 2, 1)
    assert s["chance"] == 0.25 and s["residual_above_chance"] == round((0.5 - 0.25) / 0.75, 4)


def test_binomial_tail_and_chance_correction_by_hand():
    assert binomial_sf(2, 3, 0.5) == pytest.approx(4 / 8)  # {2, 3} successes: 3 + 1 of 8 outcomes
    assert binomial_sf(0, 5, 0.3) == 1.0 and binomial_sf(1, 4, 0.0) == 0.0
    assert binomial_sf(10, 10, 0.25) == pytest.approx(0.25**10)
    assert chance_corrected(0.625, 0.25) == pytest.approx(0.5)
    assert chance_corrected(0.25, 0.25) == 0 and chance_corrected(0.4, 0.0) == 0.4


@pytest.mark.parametrize(("known", "measurable"), [(3, False), (5, False), (7, True), (10, True)])
def test_recognition_form_at_chance_is_not_measurable(known, measurable):
    options = ("a", "b", "c", "d")
    probes = [q(i, "multiple_choice", options=options, correct=0) for i in range(10)]
    before = [r(i < known) for i in range(10)]
    s = summarise(units(probes, before, before))
    # P(X >= k | n=10, p=1/4): k=5 -> 0.078, k=7 -> 0.0035
    expected_p = sum(math.comb(10, i) * 0.25**i * 0.75 ** (10 - i) for i in range(known, 11))
    assert s["reference_p_value"] == round(expected_p, 6)
    assert s["measurable"] is measurable
    assert s["reference_above_chance"] == round((known / 10 - 0.25) / 0.75, 4)


def _facts(kept: list[bool], form: str = "question") -> list[Unit]:
    return [Unit(form, f"C|{i}", True, k, 0.0) for i, k in enumerate(kept)]


def test_bootstrap_interval_of_two_facts_is_the_binomial_percentiles():
    # resampling {kept, lost} twice: residual 0, 1/2, 1 with probability 1/4, 1/2, 1/4 -> [0, 1]
    assert residual_interval(_facts([True, False]), seed=3) == [0.0, 1.0]
    assert residual_interval(_facts([True] * 5)) == [1.0, 1.0]
    assert residual_interval([]) is None


def test_bootstrap_interval_matches_the_normal_approximation_on_many_facts():
    n, p = 400, 0.3
    items = _facts([i < p * n for i in range(n)])
    lo, hi = residual_interval(items, seed=0, resamples=4000)
    half = 1.96 * math.sqrt(p * (1 - p) / n)  # 0.0449
    assert lo == pytest.approx(p - half, abs=0.01) and hi == pytest.approx(p + half, abs=0.01)
    assert residual_interval(items, seed=0) == residual_interval(items, seed=0)  # seeded


def test_bootstrap_resamples_facts_not_probes():
    # one fact asked by ten probes (all kept) and one asked by ten (all lost): two facts, not twenty
    items = [Unit("question", "C|a", True, True, 0.0)] * 10 + [Unit("question", "C|b", True, False, 0.0)] * 10
    assert residual_interval(items, seed=1) == [0.0, 1.0]


def test_bias_uses_measurable_forms_with_enough_known_facts_above_chance():
    per_form = {
        "question": {"residual": 0.0, "known": 12},
        "cloze": {"residual": 0.5, "known": 10},
        "multiple_choice": {"residual": 0.7, "known": 20, "chance": 0.25, "residual_above_chance": 0.6},
        "multiple_choice_letter": {"residual": 1.0, "known": 30, "chance": 0.25, "measurable": False},
        "reverse": {"residual": 1.0, "known": 9},  # too few known facts to count
        "in_context": {"residual": 1.0, "known": 40},  # context forms are reported apart
    }
    bias = form_dependent_bias(per_form, include=lambda n: n != "in_context")
    values = [0.0, 0.5, 0.6]
    mean = sum(values) / 3
    assert bias["std"] == round(math.sqrt(sum((v - mean) ** 2 for v in values) / 3), 4)
    assert (bias["range"], bias["forms"], bias["worst_form"]) == (0.6, 3, "multiple_choice")
    assert bias["interval"] is None  # no units given


def test_bias_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    items = []
    for form, share in (("question", 0.1), ("cloze", 0.6)):
        items += [Unit(form, f"C|{i}", True, bool(rng.random() < share), 0.0) for i in range(40)]
    per_form = {f: summarise([u for u in items if u.form == f]) for f in ("question", "cloze")}
    bias = form_dependent_bias(per_form, items, seed=0)
    lo, hi = bias["interval"]
    assert lo <= bias["std"] <= hi and 0 < lo < hi


def test_prior_twins_set_the_residual_beyond_the_options_prior_by_hand():
    from dataclasses import replace

    opts = ("a", "b", "c", "d")
    named = [q(i, "multiple_choice", options=opts, correct=0) for i in range(4)]
    twins = [replace(p, prompt=p.prompt + " (made up)", prior_twin=True) for p in named[:3]]
    tf = [*_tf(9), *[replace(p, prior_twin=True) for p in _tf(9)]]
    probes = [*named, *twins, *tf]
    # facts 0-2 known and twinned; fact 0's twin right (prior), 1 and 2 need the concept; fact 3
    # known, no twin; the true/false fact known, its twins right on one statement only (not prior)
    before = [
        r(True),
        r(True),
        r(True),
        r(True),
        r(True),
        r(False),
        r(False),
        r(True),
        r(True),
        r(True),
        r(False),
    ]
    after = [r(True), r(True), r(False), r(True), None, None, None, r(True), r(True), None, None]
    found = units(probes, before, after)
    assert [(u.fact, u.prior) for u in found] == [
        ("C|fact0", True), ("C|fact1", False), ("C|fact2", False), ("C|fact3", None), ("C|fact9", False),
    ]  # fmt: skip
    mc = summarise([u for u in found if u.form == "multiple_choice"])
    # the plain figures ignore the twins: 4 facts, all known, 3 kept
    assert (mc["probes"], mc["known"], mc["still_answered"], mc["residual"]) == (4, 4, 3, 0.75)
    assert mc["chance"] == 0.25
    # beyond the prior: facts 1 and 2 (fact 0 a made-up name gets right; fact 3 has no twin): 1 kept
    assert (mc["known_by_prior"], mc["known_beyond_prior"], mc["still_answered_beyond_prior"]) == (1, 2, 1)
    assert mc["residual_beyond_prior"] == 0.5
    assert summarise([u for u in found if u.form == "true_false"])["residual_beyond_prior"] == 1.0
    assert "residual_beyond_prior" not in summarise(units([q(0)], [r(True)], [r(True)]))


def test_several_prior_twins_give_each_fact_its_own_chance_and_the_residual_above_it_by_hand():
    from dataclasses import replace

    from formless.audit.metrics import above_prior

    opts = ("a", "b", "c", "d")
    named = [q(i, "multiple_choice", options=opts, correct=0) for i in range(5)]
    twin_hits = [(1, 1, 1), (1, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0)]  # per fact, per made-up name
    twins = [replace(p, prompt=f"{p.prompt} ({k})", prior_twin=True, twin=k) for k in range(3) for p in named]
    tf = _tf(9)
    # the true/false fact's twins per name: both statements right, one wrong, both right
    tf_twins = [replace(p, prompt=f"{p.prompt} ({k})", prior_twin=True, twin=k) for k in range(3) for p in tf]
    probes = [*named, *twins, *tf, *tf_twins]
    before = (
        [r(True)] * 5
        + [r(bool(twin_hits[i][k])) for k in range(3) for i in range(5)]
        + [r(True), r(True)]
        + [r(True), r(True), r(True), r(False), r(True), r(True)]
    )
    kept = [True, True, False, True, False]
    after = [r(k) for k in kept] + [None] * 15 + [r(True), r(False)] + [None] * 6
    found = units(probes, before, after)
    mc = [u for u in found if u.form == "multiple_choice"]
    assert [u.prior_rate for u in mc] == pytest.approx([1, 1 / 3, 0, 1 / 3, 0])
    assert [u.prior for u in mc] == [True, True, False, False, False]  # the first name's twin alone
    (tf_unit,) = [u for u in found if u.form == "true_false"]
    assert tf_unit.prior_rate == pytest.approx(2 / 3) and tf_unit.prior is True and not tf_unit.kept
    s = summarise(mc)
    expected = 1 + 1 / 3 + 0 + 1 / 3 + 0  # what a model without the concept keeps of the 5 known facts
    assert s["prior_keeps"] == round(expected / 5, 4)
    assert s["residual_above_prior"] == round((3 - expected) / (5 - expected), 4) == 0.4
    lo, hi = s["interval_above_prior"]
    assert lo <= 0.4 <= hi
    # beyond the (first) prior: facts 2-4 need the concept for the first name; fact 3 kept
    assert (s["known_beyond_prior"], s["still_answered_beyond_prior"]) == (3, 1)
    # uniform chance is the same correction with q = 1/k
    assert above_prior(3, 5, 5 * 0.25) == pytest.approx(chance_corrected(3 / 5, 0.25))
    # a prior that keeps (nearly) every fact leaves nothing to measure
    assert above_prior(5, 5, 4.5) is None
    # the forms are compared (and the bias computed) on the residual above the prior
    per_form = {"multiple_choice": s, "question": {**summarise([]), "known": 10, "residual": 0.1}}
    from formless.audit.metrics import comparable_residual

    assert comparable_residual(s) == 0.4 and comparable_residual(per_form["question"]) == 0.1


def test_bias_bootstrap_corrects_each_form_as_its_figure_does():
    # a form compared above its prior: the bootstrap's centre must sit on that figure, not the raw one
    rng = np.random.default_rng(1)
    items = [
        Unit("multiple_choice", f"C|{i}", True, bool(rng.random() < 0.7), 0.25, prior_rate=0.5)
        for i in range(60)
    ]
    items += [Unit("question", f"C|{i}", True, bool(rng.random() < 0.1), 0.0) for i in range(60)]
    per_form = {f: summarise([u for u in items if u.form == f]) for f in ("multiple_choice", "question")}
    mc = per_form["multiple_choice"]
    kept = sum(u.kept for u in items if u.form == "multiple_choice")
    assert mc["residual_above_prior"] == round((kept - 30) / (60 - 30), 4)
    bias = form_dependent_bias(per_form, items, seed=0)
    values = [mc["residual_above_prior"], per_form["question"]["residual"]]
    assert bias["std"] == round(float(np.std(values)), 4)
    lo, hi = bias["interval"]
    assert lo <= bias["std"] <= hi


def test_the_paired_shift_compares_the_same_facts_by_hand():
    """Three facts the quantized reference knows (one a true/false pair: two units of one fact);
    the quantized copy keeps fact a and one unit of c, the unquantized model only fact c's two:
    (2 − 2) / 4 = 0; a fourth unknown fact counts nowhere."""
    from formless.audit.metrics import Unit, paired_shift, shift_counts

    def unit(fact, known, kept):
        return Unit("question", fact, known, kept, 0.0)

    facts, known = ["a", "b", "c", "c", "d"], [True, True, True, True, False]
    quantized = [unit(f, k, kept) for f, k, kept in zip(facts, known, [1, 0, 1, 0, 0])]
    unquantized = [unit(f, k, kept) for f, k, kept in zip(facts, known, [0, 0, 1, 1, 0])]
    rows = shift_counts(quantized, unquantized)
    assert rows == [[1, 1, 0], [1, 0, 0], [2, 1, 2]]
    out = paired_shift(rows, seed=0)
    assert out["known"] == 4 and out["kept_quantized"] == 2 and out["kept_unquantized"] == 2
    assert out["shift"] == 0.0
    lo, hi = out["interval"]
    assert -1 <= lo <= 0 <= hi <= 1 and lo < hi  # fact a pulls up, fact c down: resamples spread
    # one more fact the quantized copy keeps and the model did not: (3 − 2) / 5
    assert paired_shift([*rows, [1, 1, 0]], seed=0)["shift"] == 0.2
    assert paired_shift([], seed=0)["shift"] is None
    with pytest.raises(ValueError):
        shift_counts(quantized, unquantized[:-1])


def test_a_description_cue_right_about_any_entity_sets_an_indirect_fact_apart_by_hand():
    """Indirect reference has no made-up-name twin; its twins ask about the entities the description
    names. A fact right about any one of them is implied by the description: it leaves the
    beyond-the-prior residual, and no own chance (above the prior) is made of it."""
    from dataclasses import replace

    facts = [q(i, "indirect") for i in range(3)]
    cues = [
        replace(facts[0], prompt="about Paris", prior_twin=True, twin=0, cue="Paris"),
        replace(facts[0], prompt="about Champ de Mars", prior_twin=True, twin=1, cue="Champ de Mars"),
        replace(facts[1], prompt="about Paris", prior_twin=True, twin=0, cue="Paris"),
        replace(facts[1], prompt="about 1889", prior_twin=True, twin=1, cue="1889"),
    ]
    # fact 0: its second cue right (implied); fact 1: both cues wrong; fact 2: its description names
    # no entity, so nothing implies its answer
    before = [r(True), r(True), r(True), r(False), r(True), r(False), r(False)]
    after = [r(True), r(True), r(False), None, None, None, None]
    found = units([*facts, *cues], before, after)
    assert [(u.fact, u.prior, u.prior_rate) for u in found] == [
        ("C|fact0", True, None), ("C|fact1", False, None), ("C|fact2", False, None),
    ]  # fmt: skip
    s = summarise(found)
    assert (s["known"], s["still_answered"]) == (3, 2)
    assert (s["known_by_prior"], s["known_beyond_prior"], s["still_answered_beyond_prior"]) == (1, 2, 1)
    assert s["residual_beyond_prior"] == 0.5 and "residual_above_prior" not in s
    # without cue twins (prior twins not asked) the form has no beyond-the-prior figure
    assert "residual_beyond_prior" not in summarise(units(facts, before[:3], after[:3]))
