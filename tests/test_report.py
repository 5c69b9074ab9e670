"""The typed audit report: a tiny-model audit round-trips through its JSON, a malformed report fails
with a clear error, and the attack loop treats any attack object alike."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError
from test_audit import KB

from formless.audit.attacks import AttackScores, quantization_entry
from formless.audit.report import AuditReport, Summary
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import build
from formless.models.loading import LoadedModel

FORMS = ["question", "multiple_choice", "true_false", "in_context"]


@pytest.fixture
def kb(tmp_path):
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(KB))
    return build([path])


@dataclass
class IdentityAttack:
    """An attack that changes nothing: its entry must read exactly as the plain audit."""

    name: str = "identity"
    section: ClassVar[str] = "quantization"
    run_on_reference: ClassVar[bool] = True
    seen: list[str] = field(default_factory=list)
    asked: list = field(default_factory=list)

    def transform(self, loaded: LoadedModel) -> tuple[LoadedModel, dict[str, Any]]:
        self.seen.append(loaded.path)
        return loaded, {"scheme": "identity", "method": "none", "parameters": 0}

    def announce(self) -> str:
        return "identity"

    def cache_key(self) -> str:
        return "identity"

    def select(self, probes):
        return list(range(len(probes)))

    def entry(self, scores: AttackScores):
        self.asked = list(scores.probes)
        return quantization_entry(scores)

    def timings(self, seconds: dict[str, float]) -> dict[str, float]:
        return {f"identity_{k}": v for k, v in seconds.items()}


def _audit(tiny_dir, kb, cache, **kw):
    settings = AuditSettings(**{"quantize": (8,), "forms": FORMS, "fluency": False, **kw})
    model = str(tiny_dir)
    return run_audit(model, kb=kb, concepts=["Harry Potter"], reference=model, settings=settings, cache=cache)


def test_tiny_audit_round_trips_and_malformed_reports_fail(tiny_dir, kb, cache, tmp_path):
    report = _audit(tiny_dir, kb, cache)
    assert isinstance(report, AuditReport)
    data = report.to_json()
    text = json.dumps(data)
    again = AuditReport.model_validate(json.loads(text))
    assert again == report and json.dumps(again.to_json()) == text  # dump -> validate -> dump
    assert list(data)[:3] == ["formless_audit", "model", "reference"] and list(data)[-1] == "run"
    # keys the old dict left out stay out; None values it kept stay in
    assert "relearning" not in data and "generated_knowledge" not in data and "fluency" not in data["retain"]
    mc = data["forget"]["per_form"]["multiple_choice"]
    assert "chance" in mc and "residual_above_chance" in mc
    assert "chance" not in data["forget"]["per_form"]["question"]
    assert data["settings"]["quantize"] == [8]

    missing = json.loads(text)
    del missing["forget"]["overall"]["residual"]
    with pytest.raises(ValidationError, match=r"forget\.overall\.residual\n  Field required"):
        AuditReport.model_validate(missing)
    unknown = json.loads(text)
    unknown["forget"]["per_form"]["question"]["residue"] = 0.5
    with pytest.raises(ValidationError, match=r"forget\.per_form\.question\.residue\n  Extra inputs"):
        AuditReport.model_validate(unknown)
    with pytest.raises(ValidationError, match=r"retain\n  Field required"):
        AuditReport.model_validate({k: v for k, v in json.loads(text).items() if k != "retain"})
    # a quantization entry keeps its scheme's own keys
    assert report.quantization["8bit"].details["parameters"] > 0


def test_summary_omits_chance_figures_only_when_there_is_no_chance():
    base = {
        "probes": 2,
        "known": 0,
        "coverage": 0.0,
        "still_answered": 0,
        "residual": None,
        "interval": None,
        "probability_before": None,
        "probability_after": None,
        "probability_ratio": None,
        "measurable": False,
    }
    assert Summary.model_validate(base).model_dump() == base
    guessable = {
        **base,
        "chance": 0.25,
        "reference_accuracy": 0.0,
        "reference_above_chance": -0.3333,
        "reference_p_value": 1.0,
        "residual_above_chance": None,
    }
    assert Summary.model_validate(guessable).model_dump() == guessable


def test_attack_loop_treats_any_attack_alike(tiny_dir, kb, cache):
    identity = IdentityAttack()
    settings = AuditSettings(quantize=(), forms=FORMS, fluency=False)
    model = str(tiny_dir)

    def audit(attack):
        return run_audit(
            model, kb=kb, concepts=["Harry Potter"], reference=model, settings=settings, cache=cache,
            attacks=[attack],
        )  # fmt: skip

    report = audit(identity)
    entry = report.quantization["identity"]
    assert identity.seen == [model, model]  # the audited model, then the reference (scores cached)
    assert entry.overall == report.forget.overall
    assert entry.per_form == {k: v.residual for k, v in report.forget.per_form.items()}
    assert entry.reference_quantized_keeps in (None, 1.0)
    assert entry.over_quantized_reference.overall.residual == report.forget.overall.residual
    # an attack that changes nothing changes nothing on the same facts
    own = entry.over_quantized_reference
    assert own.unquantized_kept == own.overall.still_answered
    assert own.shift == (0.0 if own.overall.known else None)
    assert entry.details == {"parameters": 0}
    # the prior twins of the recognition forms are not asked of an attacked copy
    assert any(p.key.endswith("~prior") for p in report.probes)
    assert identity.asked and not any(p.prior_twin for p in identity.asked)
    assert {"identity_quantize", "identity_score", "identity_reference", "quantized_identity"} <= set(
        report.run.seconds
    )
    again = IdentityAttack()
    audit(again)
    # neither copy is made again: the transformed reference's scores come from the reference's
    # cache, the audited copy's (and its details) from the audited model's
    assert again.seen == []
    assert audit(IdentityAttack()).quantization["identity"] == entry


def test_reports_show_the_residual_beyond_the_prior(tiny_dir, kb, cache):
    from io import StringIO

    from rich.console import Console

    from formless.reports.markdown import render_markdown
    from formless.reports.terminal import print_summary

    report = _audit(tiny_dir, kb, cache, quantize=())
    # the twins were asked: every multiple-choice probe of the tiny record names the concept
    assert any(p.key.endswith("~prior") for p in report.probes)
    mc = report.forget.per_form["multiple_choice"]
    assert mc.known_beyond_prior is not None or mc.known == 0
    figures = {"known_by_prior": 2, "known_beyond_prior": 2, "still_answered_beyond_prior": 1}
    figures |= {"residual_beyond_prior": 0.5, "interval_beyond_prior": [0.0, 1.0]}
    shown = mc.model_copy(update={"measurable": True, "known": 4, **figures})
    report.forget.per_form["multiple_choice"] = shown
    text = render_markdown(report, heatmap=None)
    assert "| Beyond the prior |" in text and "| 50% [0–100%] (1/2) |" in text
    out = StringIO()
    print_summary(report, Console(file=out, width=200))
    assert "Beyond the prior" in out.getvalue() and "50% [0–100%] (1/2)" in out.getvalue()
    # the residual above the prior, negative where the audited model keeps less than made-up names do
    above = {"prior_keeps": 0.6667, "residual_above_prior": -0.5, "interval_above_prior": [-1.62, -0.11]}
    report.forget.per_form["multiple_choice"] = shown.model_copy(update=above)
    text = render_markdown(report, heatmap=None)
    assert "| Above the prior | Beyond the prior |" in text
    assert "| −50% [−162% to −11%] (a made-up name keeps 67%) | 50% [0–100%] (1/2) |" in text
    out = StringIO()
    print_summary(report, Console(file=out, width=200))
    assert "Above the prior" in out.getvalue() and "−50% [−162% to −11%]" in out.getvalue()
    from formless.reports.html import render_html

    assert "above the prior: −50% [−162% to −11%] (a made-up name keeps 67%)" in render_html(report, None)
    # a prior twin both models answer is no leak; the probe it stands beside is one
    from formless.reports.markdown import leaks

    twin = next(i for i, p in enumerate(report.probes) if p.key.endswith("~prior"))
    stands_beside = report.probes[twin].key.removesuffix("~prior")
    named = next(i for i, p in enumerate(report.probes) if p.key == stands_beside)
    # a third name's twin (asked only about facts the reference knows: none on the tiny model)
    report.probes.append(report.probes[twin].model_copy(update={"key": stands_beside + "~prior2"}))
    third = len(report.probes) - 1
    for i in (twin, named, third):
        record = report.probes[i]
        hit = record.before.model_copy(update={"hit": True})
        report.probes[i] = record.model_copy(update={"before": hit, "after": hit})
    found = {p.key for p in leaks(report, limit=10_000)}
    assert report.probes[named].key in found
    assert report.probes[twin].key not in found and report.probes[third].key not in found


def test_reports_say_which_probes_were_not_asked_because_they_state_the_answer(tiny_dir, kb, cache):
    from io import StringIO

    from rich.console import Console

    from formless.audit.report import AuditReport
    from formless.reports.markdown import render_markdown
    from formless.reports.terminal import print_summary

    report = _audit(tiny_dir, kb, cache, quantize=())
    assert "given_away" not in report.to_json() or report.given_away
    told = report.model_copy(update={"given_away": {"indirect": 3, "background_hint": 2}})
    again = AuditReport.model_validate_json(told.dumps())
    assert again.given_away == {"indirect": 3, "background_hint": 2}
    line = "Not asked (the prompt states the answer"
    assert line in render_markdown(
        again, heatmap=None
    ) and f"{again.form_title('indirect')} 3" in render_markdown(again, heatmap=None)
    out = StringIO()
    print_summary(again, Console(file=out, width=300))
    assert line in out.getvalue() and f"{again.form_title('background_hint')} 2" in out.getvalue()
    assert line not in render_markdown(report.model_copy(update={"given_away": None}), heatmap=None)
    # neighbour probes whose answer is the forgotten concept: counted and said, never scored
    assert "answer_is_target" not in report.to_json() or report.answer_is_target
    reverse = AuditReport.model_validate_json(report.model_copy(update={"answer_is_target": 2}).dumps())
    assert reverse.answer_is_target == 2
    assert "Not counted as neighbours: 2 probes" in render_markdown(reverse, heatmap=None)


def test_a_quantization_entry_compares_the_same_facts_unquantized():
    """Over the facts the quantized reference still knows (b, c, d; it lost a), the quantized copy
    keeps b and c and the unquantized model only c: the paired shift is (2 − 1) / 3, while the
    unpaired figures compare 2/3 with the unquantized 1/4 over other facts."""
    from formless.audit.engine import ProbeResult
    from formless.audit.probes import Probe

    probes = [Probe("question", "X", item, f"What is {item} of X?") for item in "abcd"]
    hit, miss = ProbeResult(True, None), ProbeResult(False, None)
    scores = AttackScores(
        probes=probes,
        before=[hit, hit, hit, hit],
        after=[miss, miss, hit, miss],
        attacked=[hit, hit, hit, miss],
        reference_known=[miss, hit, hit, hit],
        details={"scheme": "s", "method": "m"},
    )
    entry = quantization_entry(scores)
    own = entry.over_quantized_reference
    assert (own.overall.known, own.overall.still_answered, own.unquantized_kept) == (3, 2, 1)
    assert own.shift == round(1 / 3, 4)
    lo, hi = own.shift_interval
    assert lo <= own.shift <= hi
    assert own.shift_facts == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]
    # every report's summary says it (markdown, HTML and terminal share these lines)
    from types import SimpleNamespace

    from formless.reports.tables import headline

    bias = SimpleNamespace(std=None)
    forget = SimpleNamespace(
        overall=entry.overall, not_measurable=[], form_dependent_bias=bias, by_exposure=None
    )
    report = SimpleNamespace(
        forget=forget, given_away=None, answer_is_target=None, quantization={"s": entry}, relearning=None
    )
    line = headline(report)[-1]
    assert line.startswith("After s quantization: ")
    assert f"1/3 of those unquantized: +33 points [+{100 * lo:.0f} to +{100 * hi:.0f}]" in line
    assert "bit for bit" not in line
    # a copy the quantizer left as it was (an edit kept on the model's own grid) says so
    same = type(entry).model_validate({**entry.model_dump(), "parameters": 10, "mean_abs_error": 0.0})
    report.quantization = {"s": same}
    assert headline(report)[-1].endswith(
        "the quantized copy is the audited model bit for bit, its weights on this grid)"
    )
