"""The README's main job: forget a concept from the default model with ROCR, then audit it in every
form (and after 8-/4-bit quantization) and write the report."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from formless.api import forget
from formless.attacks.quantizers import DEFAULT_SCHEMES
from formless.audit.report import AuditReport
from formless.audit.run import AuditSettings, reference_jobs, run_audit
from formless.concurrent import job_threads, side_by_side, torch_threads
from formless.knowledge import load
from formless.models.loading import load_model
from formless.reports import print_summary, write_report


def _short(text: str | None, limit: int = 70) -> str:
    """One line, cut at a word boundary: a table cell a person can scan."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _examples(
    report: AuditReport, forms=("question", "completion", "indirect", "crosslingual", "multihop")
) -> Table:
    table = Table(title="Examples (reference → edited)", show_lines=True)
    for col in ("form", "prompt", "before", "after"):
        table.add_column(col)
    for form in forms:
        probes = [p for p in report.probes if p.form == form and p.before.hit][:1]
        for p in probes:
            table.add_row(
                form,
                escape(_short(p.prompt, 60)),
                escape(_short(p.before.output)),
                escape(_short(p.after.output if p.after else None)),
            )
    return table


def run_demo(
    concept: str,
    *,
    model: str,
    out: Path,
    cache,
    console: Console,
    quantize: tuple[str, ...] = DEFAULT_SCHEMES,
    relearn_steps: int = 10,
) -> AuditReport:
    started = time.perf_counter()
    kb = load()
    if not kb.has(concept):
        # any concept: its record comes from the model itself; a concept it knows nothing about
        # stops here, before anything is written
        from formless.knowledge.elicit import resolve_names

        console.print(f"'{escape(concept)}' is not in the knowledge base: building its record from the model")
        resolve_names(kb, [concept], model, cache=cache)
    settings = AuditSettings(quantize=tuple(quantize), relearn_steps=relearn_steps)
    # the reference's answers do not depend on the edit: they are computed beside it (side by side
    # on the cores, formless.concurrent) and the audit below finds them in the reference cache
    reference = load_model(model, cache=cache)
    jobs, save_reference = reference_jobs(
        reference, kb=kb, concepts=[concept], settings=settings, cache=cache
    )
    job_seconds: list[float] = []

    def timed(job):
        def run():
            begun = time.perf_counter()
            result = job()
            job_seconds.append(time.perf_counter() - begun)
            return result

        return run

    threads = job_threads()

    def edit():
        # on the threads it gets beside the reference's jobs even when there are none (all cached):
        # float sums depend on the thread count, and the same checkpoint bit for bit is what lets
        # the audit find its results in its own cache on a second run
        with torch_threads(threads):
            return forget(concept, model=model, out=out / "model", force=True, cache=cache)

    with console.status("editing, and scoring the reference beside it (cached afterwards)"):
        outcome, *scored = side_by_side([edit] + [timed(job) for job in jobs])
    save_reference(scored)
    edited = time.perf_counter()
    del reference
    m = outcome.manifest
    console.print(
        f"ROCR: '{concept}' redirected to '{m['redirect']}' in layers {m['layers']}: "
        f"edit {m['seconds']['edit']:.2f}s "
        f"(statistics {m['seconds']['statistics']:.1f}s, 0 = cached); checkpoint in {out / 'model'}"
    )
    with console.status("auditing every form (reference results are cached after the first run)") as status:
        report = run_audit(
            out / "model",
            kb=kb,
            settings=settings,
            cache=cache,
            say=lambda text: status.update(text),
        )
    # the reference's scoring ran before the audit, beside the edit: its jobs' own seconds (0 when
    # everything was cached) go into the report's timings with the audit's phases
    report.run.seconds["reference_beside_edit"] = round(sum(job_seconds), 3)
    path = write_report(report, out / "report")
    console.print(_examples(report))
    print_summary(report, console)
    console.print(
        f"{time.perf_counter() - started:.0f}s in all (edit with the reference scored beside it "
        f"{edited - started:.0f}s, audit {report.run.seconds['total']:.0f}s); "
        f"report: {path / 'report.html'} (and report.md)"
    )
    return report
