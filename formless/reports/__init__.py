"""Turning an audit (an AuditReport) into what people read: terminal table, Markdown, HTML, heatmap."""

from formless.reports.terminal import print_summary
from formless.reports.writer import write_report

__all__ = ["print_summary", "write_report"]
