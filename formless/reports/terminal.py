"""The terminal view: a rich table of residual knowledge per form and the retain side."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from formless.audit.report import AuditReport
from formless.reports.tables import headline, pct, per_form_rows, retain_rows


def _colour(value: float | None, text: str | None = None) -> str:
    if value is None:
        return text or "–"
    colour = "green" if value <= 0.2 else "yellow" if value <= 0.5 else "red"
    return f"[{colour}]{text or pct(value)}[/{colour}]"


def print_summary(report: AuditReport, console: Console) -> None:
    quant = list(report.quantization)
    rows = per_form_rows(report)
    table = Table(title="Residual knowledge per form (after / before, over facts the reference knows)")
    for column in ["Form", "Known", "Residual [95% CI]", "Prob. ratio", *quant]:
        table.add_column(column, justify="left" if column == "Form" else "right")
    for r in rows:
        ratio = "–" if r["probability_ratio"] is None else f"{r['probability_ratio']:.2f}"
        name = r["title"] + (" (context)" if r["group"] == "context" else "")
        residual = _colour(r["residual"], r["residual_text"])
        table.add_row(name, r["known"], residual, ratio, *[_colour(r.get(q)) for q in quant])
    console.print(table)
    # a line, not a column: the table already fills a terminal's 80 characters
    above = [f"{r['title']} {r['above_prior']}" for r in rows if r["above_prior"]]
    if above:
        console.print(
            "Above the prior (0% = keeps what a model that never knew the concept keeps): " + "; ".join(above)
        )
    beyond = [f"{r['title']} {r['beyond_prior']}" for r in rows if r["beyond_prior"]]
    if beyond:
        console.print(
            "Beyond the prior (over the known facts a made-up name does not also get right): "
            + "; ".join(beyond)
        )
    retain = Table(title="What must survive")
    for column in ("Check", "Result", "Kept"):
        retain.add_column(column)
    for row in retain_rows(report):
        retain.add_row(*row)
    console.print(retain)
    for line in headline(report):
        console.print(line)
