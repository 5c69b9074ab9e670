"""The picture: residual knowledge per concept and form (green = gone, red = still known), with
the quantized copies underneath."""

from __future__ import annotations

import math
from pathlib import Path

from formless.audit.report import AuditReport, Summary
from formless.reports.tables import form_order, title


def _matrix(report: AuditReport, forms: list[str]) -> tuple[list[str], list[list[float]], list[list[str]]]:
    rows, values, labels = [], [], []
    per_concept = report.forget.per_concept
    series = [(c, per_concept[c]) for c in per_concept]
    series.append(("all concepts", report.forget.per_form))
    for name, stats in series:
        rows.append(name)
        values.append([_residual(stats.get(f)) for f in forms])
        labels.append([_label(stats.get(f)) for f in forms])
    for name, q in report.quantization.items():
        rows.append(f"all, {name}")
        values.append([math.nan if q.per_form.get(f) is None else q.per_form[f] for f in forms])
        labels.append(["" if q.per_form.get(f) is None else f"{100 * q.per_form[f]:.0f}" for f in forms])
    return rows, values, labels


def _residual(stats: Summary | None) -> float:
    if not stats or stats.residual is None or not stats.measurable:
        return math.nan  # unknown, or a recognition form at chance on this model: nothing to show
    return stats.residual


def _label(stats: Summary | None) -> str:
    return "" if not stats or not stats.known else f"{stats.still_answered}/{stats.known}"


def draw_heatmap(report: AuditReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    forms = form_order(report)
    rows, values, labels = _matrix(report, forms)
    data = np.ma.masked_invalid(np.array(values, dtype=float))
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(forms), 1.6 + 0.36 * len(rows)), dpi=110)
    cmap = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad="#e8e8e8")
    image = ax.imshow(data, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(forms)), [title(report, f) for f in forms], rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, row in enumerate(labels):
        for j, text in enumerate(row):
            if text:
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="black")
    n_concepts = len(report.forget.per_concept)
    ax.axhline(n_concepts - 0.5, color="white", linewidth=2)
    ax.axhline(n_concepts + 0.5, color="white", linewidth=2)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="residual (after / before)")
    ax.set_title(
        "Still known, per form (cell: still answered / known; grey: none known)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
