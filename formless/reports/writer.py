"""Writing a report directory atomically: audit.json, report.md, report.html, heatmap.png."""

from __future__ import annotations

from pathlib import Path

from formless.audit.report import AuditReport
from formless.models.cache import atomic_directory
from formless.reports.heatmap import draw_heatmap
from formless.reports.html import render_html
from formless.reports.markdown import render_markdown


def write_report(report: AuditReport, out: str | Path) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        from formless.errors import FormlessError

        raise FormlessError(f"report path '{out}' is a file; choose a directory")
    with atomic_directory(out, replace=True) as tmp:
        (tmp / "audit.json").write_text(report.dumps(), encoding="utf-8")
        draw_heatmap(report, tmp / "heatmap.png")
        (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(report, tmp / "heatmap.png"), encoding="utf-8")
    return out
