"""A single self-contained HTML file: the Markdown report's content with the heatmap embedded."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from formless.audit.report import AuditReport
from formless.reports.markdown import leaks
from formless.reports.tables import headline, pct, per_form_rows, retain_rows

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f4f4f4}td.n{text-align:right}img{max-width:100%}.muted{color:#777}"""


def _shade(value: float | None) -> str:
    if value is None:
        return ""
    red, green = int(230 * value + 25), int(200 * (1 - value) + 40)
    return f' style="background:rgba({red},{green},60,0.35)"'


def render_html(report: AuditReport, heatmap_png: Path | None) -> str:
    e = html.escape
    quant = list(report.quantization)
    parts = [f"<!doctype html><meta charset='utf-8'><title>formless audit</title><style>{STYLE}</style>"]
    parts.append(f"<h1>formless audit: {e(', '.join(report.concepts) or 'external probes')}</h1>")
    parts.append(
        f"<p class=muted>model {e(report.model.name)} · reference {e(report.reference.name)} · "
        f"seed {report.seed}</p><ul>" + "".join(f"<li>{e(x)}</li>" for x in headline(report)) + "</ul>"
    )
    if heatmap_png and heatmap_png.exists():
        data = base64.b64encode(heatmap_png.read_bytes()).decode()
        parts.append(f"<img alt='residual knowledge heatmap' src='data:image/png;base64,{data}'>")
    head = "".join(f"<th>{e(h)}</th>" for h in ["Form", "Known", "Residual [95% CI]", "Prob. ratio", *quant])
    body = ""
    for r in per_form_rows(report):
        cells = [e(r["title"]) + (" <i>(context)</i>" if r["group"] == "context" else ""), r["known"]]
        if r["chance"]:
            cells[0] += f"<br><span class=muted>{e(r['chance'])}</span>"
        if r["above_prior"]:
            cells[0] += f"<br><span class=muted>above the prior: {e(r['above_prior'])}</span>"
        if r["beyond_prior"]:
            cells[0] += f"<br><span class=muted>beyond the prior: {e(r['beyond_prior'])}</span>"
        ratio = "–" if r["probability_ratio"] is None else f"{r['probability_ratio']:.2f}"
        body += f"<tr><td>{cells[0]}</td><td class=n>{cells[1]}</td><td class=n{_shade(r['residual'])}>"
        body += f"{e(r['residual_text'])}</td><td class=n>{ratio}</td>"
        body += "".join(f"<td class=n{_shade(r.get(q))}>{pct(r.get(q))}</td>" for q in quant) + "</tr>"
    parts.append(f"<h2>Residual knowledge per form</h2><table><tr>{head}</tr>{body}</table>")
    rows = "".join(
        f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in retain_rows(report)
    )
    parts.append(
        f"<h2>What must survive</h2><table><tr><th>Check</th><th>Result</th><th>Kept</th></tr>{rows}</table>"
    )
    leaked = leaks(report)
    if leaked:
        rows = "".join(
            f"<tr><td>{e(p.form)}</td><td>{e(p.prompt)}</td><td>{e(p.after.output or '')}</td></tr>"
            for p in leaked
        )
        parts.append(
            "<h2>Still answered</h2><table><tr><th>Form</th><th>Prompt</th><th>Answer</th></tr>"
            f"{rows}</table>"
        )
    return "\n".join(parts)
