"""The audit counts every ablation script records, in the one shape dev_compare.py reads."""


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
