"""Markdown report: the headline, the per-form table, the retain side, what leaked."""

from __future__ import annotations

from formless.audit.probes import PRIOR_SUFFIX
from formless.audit.report import AuditReport, ProbeRecord
from formless.reports.tables import headline, pct, per_form_rows, retain_rows


def leaks(report: AuditReport, limit: int = 12) -> list[ProbeRecord]:
    """Probes the reference knew and the audited model still answers (the evidence to look at)."""
    out = [
        p
        for p in report.probes
        if p.before.hit
        and p.after
        and p.after.hit
        and p.concept in report.forget.per_concept
        and PRIOR_SUFFIX not in p.key  # a made-up name's answer (any of them) is no leak
    ]
    return out[:limit]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:140]


def render_markdown(report: AuditReport, heatmap: str | None = "heatmap.png") -> str:
    model, ref = report.model, report.reference
    quant = list(report.quantization)
    lines = [
        f"# formless audit: {', '.join(report.concepts) or 'external probes'}",
        "",
        f"Model `{model.name}` (`{model.weights_hash[:19]}…`) against reference `{ref.name}` "
        f"(`{ref.weights_hash[:19]}…`), seed {report.seed}.",
        "",
        *[f"- {line}" for line in headline(report)],
        "",
    ]
    if heatmap:
        lines += [f"![residual knowledge per form]({heatmap})", ""]
    rows = per_form_rows(report)
    prior = any(r["beyond_prior"] for r in rows)
    header = ["Form", "Known (reference)", "Residual [95% CI]"]
    header += [*(["Above the prior", "Beyond the prior"] if prior else []), "Answer prob. ratio", *quant]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = r["title"] + (" *(context, reported apart)*" if r["group"] == "context" else "")
        ratio = "–" if r["probability_ratio"] is None else f"{r['probability_ratio']:.2f}"
        extra = f"{r['above_prior'] or '–'} | {r['beyond_prior'] or '–'} | " if prior else ""
        lines.append(
            f"| {name} | {r['known']} | {r['residual_text']} | {extra}{ratio} | "
            + " | ".join(pct(r.get(q)) for q in quant)
            + " |"
        )
    lines += [
        "",
        "Residual = share of the answers the reference gave that the audited model still gives; "
        "95% bootstrap intervals over facts. True/false counts a fact when both its true and its false "
        "statement are judged right; a recognition form whose reference accuracy is not significantly "
        "above chance is not measurable on this model. Above the prior: the residual corrected for "
        "what a model without the concept keeps, each fact's chance being the share of made-up "
        "names the same prompt gets right (0 = as forgotten as a name it never knew). Beyond the "
        "prior: the residual over the known facts that the same prompt about the first made-up "
        "name does not also get right (facts right without knowing the concept cannot show it "
        "forgotten or kept). Asked for the choice forms, and for every form with --prior-twins all.",
        "",
    ]
    lines += ["## What must survive", "", "| Check | Result | Kept |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in retain_rows(report)]
    leaked = leaks(report)
    if leaked:
        lines += ["", "## Still answered (first examples)", "", "| Form | Prompt | Answer |", "|---|---|---|"]
        lines += [f"| {p.form} | {_cell(p.prompt)} | {_cell(p.after.output or '')} |" for p in leaked]
    v = report.versions
    lines += ["", f"formless {v['formless']}, torch {v['torch']}, transformers {v['transformers']}.", ""]
    return "\n".join(lines)
