"""The audit counts every ablation script records, in the one shape dev_compare.py reads, and the
command line they share."""


def sweep_args(argv: list[str]):
    """``"<names>" OUT.json ['<options JSON>' [<forms>]]`` -> (names, output path, options, forms or
    None for every form, the results already in the output: a rerun resumes after them)."""
    import json
    from pathlib import Path

    names = argv[1].split(",")
    out = Path(argv[2])
    opts = json.loads(argv[3]) if len(argv) > 3 else {}
    forms = argv[4].split(",") if len(argv) > 4 and argv[4] else None
    done = json.loads(out.read_text()) if out.exists() else {}
    return names, out, opts, forms, done


def audit_counts(report) -> dict:
    """[known, still answered] overall, for neighbours and general facts, the KL, and per form
    [known, still, known beyond the prior, still beyond the prior]."""
    return {
        "overall": [report.forget.overall.known, report.forget.overall.still_answered],
        "neigh": [report.retain.neighbours.known, report.retain.neighbours.still_answered],
        "general": [report.retain.general.known, report.retain.general.still_answered],
        "kl": report.retain.fluency.kl_from_reference if report.retain.fluency else None,
        "per_form": {
            f: [s.known, s.still_answered, s.known_beyond_prior, s.still_answered_beyond_prior]
            for f, s in report.forget.per_form.items()
        },
    }


def forget_and_audit(name: str, options: dict, forms, *, kb, fast: bool):
    """One concept forgotten with ROCR ``options`` on the default model and audited in ``forms``
    (no quantization), in a temporary folder: (the forget outcome, the report, forget seconds)."""
    import tempfile
    import time
    from pathlib import Path

    from formless.api import forget, make_config
    from formless.audit.run import AuditSettings, run_audit
    from formless.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        loaded = load_model("smollm2-135m-instruct")
        config = make_config(None, **options)
        outcome = forget(name, model=loaded, out=Path(tmp) / "m", method="rocr", config=config)
        seconds = time.perf_counter() - started
        settings = AuditSettings(quantize=(), fast=fast, forms=forms)
        report = run_audit(Path(tmp) / "m", kb=kb, settings=settings)
    return outcome, report, seconds


def summary_line(name: str, label, rec: dict) -> str:
    """The line each ablation script prints per concept."""
    return f"{name} {label} overall {rec['overall']} neigh {rec['neigh']} gen {rec['general']} kl {rec['kl']}"
