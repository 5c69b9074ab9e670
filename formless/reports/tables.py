"""The rows every report shows, computed once from the audit report so all formats agree."""

from __future__ import annotations

from formless.audit.report import AuditReport, Summary


def pct(value: float | None) -> str:
    """'12%'; a negative figure (a residual above the prior can be) with a true minus sign: '−50%'."""
    return "–" if value is None else f"{100 * value:.0f}%".replace("-", "−")


def interval(bounds: list[float] | None) -> str:
    """A 95% interval as '[lo–hi%]', '[−162% to −11%]' where a bound is negative, or '' when there
    is none."""
    if not bounds:
        return ""
    lo, hi = (100 * b for b in bounds)
    if min(lo, hi) < 0:
        return f"[{pct(bounds[0])} to {pct(bounds[1])}]"
    return f"[{lo:.0f}–{hi:.0f}%]"


def with_interval(stats: Summary) -> str:
    """'12% [5–20%]', or 'not measurable' for a form the reference answers only at chance."""
    if not stats.measurable and stats.chance:
        return "not measurable"
    return f"{pct(stats.residual)} {interval(stats.interval)}".strip()


def beyond_prior(stats: Summary) -> str:
    """The residual over the known facts a made-up name does not also get ('' where no prior twin):
    '28% [15–46%] (8/29)'."""
    if stats.known_beyond_prior is None:
        return ""
    if not stats.known_beyond_prior:
        return f"– (0 of {stats.known} known facts need the concept)"
    return (
        f"{pct(stats.residual_beyond_prior)} {interval(stats.interval_beyond_prior)} "
        f"({stats.still_answered_beyond_prior}/{stats.known_beyond_prior})"
    )


def above_prior(stats: Summary) -> str:
    """The residual above what a model without the concept keeps, '' where no prior twin:
    '13% [0–35%] (a made-up name keeps 56%)'."""
    if stats.prior_keeps is None:
        return ""
    if stats.residual_above_prior is None:
        return f"– (a made-up name keeps {pct(stats.prior_keeps)}: nothing left to measure)"
    return (
        f"{pct(stats.residual_above_prior)} {interval(stats.interval_above_prior)} "
        f"(a made-up name keeps {pct(stats.prior_keeps)})"
    )


def chance_note(stats: Summary) -> str:
    """Reference accuracy against chance for guessable forms ('' for generated answers)."""
    if not stats.chance:
        return ""
    return (
        f"reference {pct(stats.reference_accuracy)} vs chance {pct(stats.chance)} "
        f"(p={stats.reference_p_value:.2g})"
    )


def form_order(report: AuditReport) -> list[str]:
    """Forms in registry order, those re-introducing knowledge in context last."""
    forms = report.forms
    present = report.forget.per_form
    names = [n for n in forms if n in present] + [n for n in present if n not in forms]
    return sorted(names, key=lambda n: report.form_group(n) == "context")


def title(report: AuditReport, form: str) -> str:
    return report.form_title(form)


def per_form_rows(report: AuditReport) -> list[dict]:
    """One row per form: residual knowledge as edited and after each quantization."""
    rows = []
    for form in form_order(report):
        s = report.forget.per_form[form]
        row = {
            "form": form,
            "title": title(report, form),
            "group": report.form_group(form),
            "known": f"{s.known}/{s.probes}",
            "residual": s.residual if s.measurable else None,
            "residual_text": with_interval(s),
            "measurable": s.measurable,
            "chance": chance_note(s),
            "beyond_prior": beyond_prior(s) if s.measurable else "",
            "above_prior": above_prior(s) if s.measurable else "",
            "probability_ratio": s.probability_ratio,
        }
        for name, q in report.quantization.items():
            row[name] = q.per_form.get(form)
        rows.append(row)
    return rows


def retain_rows(report: AuditReport) -> list[tuple[str, str, str]]:
    r = report.retain
    rows = []
    for s, label in ((r.neighbours, "Neighbour concepts' facts"), (r.general, "General knowledge")):
        if s.known:
            rows.append((label, f"{s.still_answered}/{s.known} kept", with_interval(s)))
    if r.fluency is not None:
        f = r.fluency
        rows.append(("Fluency (n-gram entropy, bits)", f"{f.entropy_before:.2f} → {f.entropy_after:.2f}", ""))
        rows.append(("KL from reference on neutral text (nats/token)", f"{f.kl_from_reference:.4f}", ""))
    return rows


def headline(report: AuditReport) -> list[str]:
    o = report.forget.overall
    bias = report.forget.form_dependent_bias
    lines = [
        f"Residual knowledge over all measurable forms: {with_interval(o)} ({o.still_answered} of "
        f"{o.known} known answers still given; answer probability x{o.probability_ratio})",
    ]
    skipped = report.forget.not_measurable
    if skipped:
        lines.append(
            "Not measurable on this model (the reference is not above chance; left out of totals): "
            + ", ".join(title(report, f) for f in skipped)
        )
    if report.given_away:
        lines.append(
            "Not asked (the prompt states the answer, so a hit would show reading, not memory): "
            + ", ".join(f"{title(report, f)} {n}" for f, n in report.given_away.items())
        )
    if report.answer_is_target:
        lines.append(
            f"Not counted as neighbours: {report.answer_is_target} probes whose answer is a forgotten "
            "concept (its own reverse fact)"
        )
    if bias.std is not None:
        spread = bias.interval
        ci = f" [{spread[0]:.3f}–{spread[1]:.3f}]" if spread else ""
        lines.append(
            f"Form-Dependent Bias: std {bias.std:.3f}{ci}, range {pct(bias.range)} "
            f"across {bias.forms} forms with >= 10 known facts "
            f"(worst: {bias.worst_form}; recognition forms above chance)"
        )
    lines += exposure_lines(report)
    for name, q in report.quantization.items():
        line = f"After {name} quantization: {pct(q.overall.residual)} residual"
        if q.overall.probability_ratio is not None:
            line += f" (answer probability x{q.overall.probability_ratio})"
        own = q.over_quantized_reference
        if own:  # older reports lack it
            line += f"; {pct(own.overall.residual)} of what the quantized reference still knows"
            if own.shift is not None:  # the same facts unquantized: what quantizing itself changed
                spread = own.shift_interval
                ci = f" [{100 * spread[0]:+.0f} to {100 * spread[1]:+.0f}]" if spread else ""
                line += (
                    f", {own.unquantized_kept}/{own.overall.known} of those unquantized: "
                    f"{100 * own.shift:+.0f} points{ci}"
                ).replace("-", "−")
        same = q.details.get("mean_abs_error") == 0 and q.details.get("parameters")
        note = (
            "; the quantized copy is the audited model bit for bit, its weights on this grid" if same else ""
        )
        lines.append(
            f"{line} (the quantized reference itself keeps {pct(q.reference_quantized_keeps)}{note})"
        )
    if report.relearning is not None:
        r = report.relearning
        lines.append(
            f"Relearning probe ({r.steps} LoRA steps on half the facts): held-out facts "
            f"{pct(r.before.residual)} → {pct(r.after.residual)} residual"
        )
    return lines


def exposure_lines(report: AuditReport) -> list[str]:
    """Residual on the facts a method trained on versus the facts held out from its training."""
    exposure = report.forget.by_exposure
    if not exposure or not exposure.groups:
        return []
    g = exposure.groups

    def part(key: str) -> str:
        s = g.get(key)
        return f"{with_interval(s)} ({s.still_answered}/{s.known})" if s and s.known else "–"

    if not exposure.method_trained_on_facts:
        return [
            f"Held-out facts (the half a trained baseline never sees): {part('held_out_fact')}; "
            f"the other half: {part('trained_fact_other_wording')} (this model was not trained on facts)"
        ]
    wordings = ", ".join(exposure.trained_wordings) or "–"
    return [
        f"Facts it was trained on: {part('trained_wording')} in the trained wordings ({wordings}), "
        f"{part('trained_fact_other_wording')} in the audit's other wordings; "
        f"held-out facts (never trained on): {part('held_out_fact')}"
    ]
