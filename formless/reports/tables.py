"""The rows every report shows, computed once from the audit dict so all formats agree."""

from __future__ import annotations


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def interval(bounds: list[float] | None) -> str:
    """A 95% interval as '[lo–hi%]', or '' when there is none."""
    return "" if not bounds else f"[{100 * bounds[0]:.0f}–{100 * bounds[1]:.0f}%]"


def with_interval(stats: dict) -> str:
    """'12% [5–20%]', or 'not measurable' for a form the reference answers only at chance."""
    if not stats.get("measurable", True) and stats.get("chance"):
        return "not measurable"
    return f"{pct(stats.get('residual'))} {interval(stats.get('interval'))}".strip()


def chance_note(stats: dict) -> str:
    """Reference accuracy against chance for guessable forms ('' for generated answers)."""
    if not stats.get("chance"):
        return ""
    return (
        f"reference {pct(stats['reference_accuracy'])} vs chance {pct(stats['chance'])} "
        f"(p={stats['reference_p_value']:.2g})"
    )


def form_order(report: dict) -> list[str]:
    """Forms in registry order, those re-introducing knowledge in context last."""
    forms = report["forms"]
    present = report["forget"]["per_form"]
    names = [n for n in forms if n in present] + [n for n in present if n not in forms]
    return sorted(names, key=lambda n: forms.get(n, {}).get("group", "forget") == "context")


def title(report: dict, form: str) -> str:
    return report["forms"].get(form, {}).get("title", form)


def per_form_rows(report: dict) -> list[dict]:
    """One row per form: residual knowledge as edited and after each quantization."""
    quant = report.get("quantization", {})
    rows = []
    for form in form_order(report):
        s = report["forget"]["per_form"][form]
        row = {
            "form": form,
            "title": title(report, form),
            "group": report["forms"].get(form, {}).get("group", "forget"),
            "known": f"{s['known']}/{s['probes']}",
            "residual": s["residual"] if s.get("measurable", True) else None,
            "residual_text": with_interval(s),
            "measurable": s.get("measurable", True),
            "chance": chance_note(s),
            "probability_ratio": s["probability_ratio"],
        }
        for name, q in quant.items():
            row[name] = q["per_form"].get(form)
        rows.append(row)
    return rows


def retain_rows(report: dict) -> list[tuple[str, str, str]]:
    r = report["retain"]
    rows = []
    for key, label in (("neighbours", "Neighbour concepts' facts"), ("general", "General knowledge")):
        if key in r and r[key]["known"]:
            s = r[key]
            rows.append((label, f"{s['still_answered']}/{s['known']} kept", with_interval(s)))
    if "fluency" in r:
        f = r["fluency"]
        rows.append(
            ("Fluency (n-gram entropy, bits)", f"{f['entropy_before']:.2f} → {f['entropy_after']:.2f}", "")
        )
        rows.append(("KL from reference on neutral text (nats/token)", f"{f['kl_from_reference']:.4f}", ""))
    return rows


def headline(report: dict) -> list[str]:
    o = report["forget"]["overall"]
    bias = report["forget"]["form_dependent_bias"]
    lines = [
        f"Residual knowledge over all measurable forms: {with_interval(o)} ({o['still_answered']} of "
        f"{o['known']} known answers still given; answer probability x{o['probability_ratio']})",
    ]
    skipped = report["forget"].get("not_measurable") or []
    if skipped:
        lines.append(
            "Not measurable on this model (the reference is not above chance; left out of totals): "
            + ", ".join(title(report, f) for f in skipped)
        )
    if bias["std"] is not None:
        spread = bias.get("interval")
        ci = f" [{spread[0]:.3f}–{spread[1]:.3f}]" if spread else ""
        lines.append(
            f"Form-Dependent Bias: std {bias['std']:.3f}{ci}, range {pct(bias['range'])} "
            f"across {bias['forms']} forms with >= 10 known facts "
            f"(worst: {bias['worst_form']}; recognition forms above chance)"
        )
    lines += exposure_lines(report)
    for name, q in report.get("quantization", {}).items():
        line = f"After {name} quantization: {pct(q['overall']['residual'])} residual"
        if q["overall"].get("probability_ratio") is not None:
            line += f" (answer probability x{q['overall']['probability_ratio']})"
        own = q.get("over_quantized_reference", {}).get("overall")
        if own:  # older reports lack it
            line += f"; {pct(own['residual'])} of what the quantized reference still knows"
        lines.append(f"{line} (the quantized reference itself keeps {pct(q['reference_quantized_keeps'])})")
    if "relearning" in report:
        r = report["relearning"]
        lines.append(
            f"Relearning probe ({r['steps']} LoRA steps on half the facts): held-out facts "
            f"{pct(r['before']['residual'])} → {pct(r['after']['residual'])} residual"
        )
    return lines


def exposure_lines(report: dict) -> list[str]:
    """Residual on the facts a method trained on versus the facts held out from its training."""
    exposure = report["forget"].get("by_exposure")
    if not exposure or not exposure.get("groups"):
        return []
    g = exposure["groups"]

    def part(key: str) -> str:
        s = g.get(key)
        return f"{with_interval(s)} ({s['still_answered']}/{s['known']})" if s and s["known"] else "–"

    if not exposure["method_trained_on_facts"]:
        return [
            f"Held-out facts (the half a trained baseline never sees): {part('held_out_fact')}; "
            f"the other half: {part('trained_fact_other_wording')} (this model was not trained on facts)"
        ]
    wordings = ", ".join(exposure.get("trained_wordings") or []) or "–"
    return [
        f"Facts it was trained on: {part('trained_wording')} in the trained wordings ({wordings}), "
        f"{part('trained_fact_other_wording')} in the audit's other wordings; "
        f"held-out facts (never trained on): {part('held_out_fact')}"
    ]
