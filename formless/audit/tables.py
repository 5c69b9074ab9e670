"""The report's tables as pure functions: probes and their results on the reference (``before``) and
on the audited model (``after``, None where not asked) in, typed summaries out. No model, no cache."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from formless.audit.engine import ProbeResult
from formless.audit.forms import FORMS
from formless.audit.metrics import form_dependent_bias, summarise, units
from formless.audit.probes import Probe
from formless.audit.report import Exposure, FactSplit, Forget, FormDependentBias, Summary
from formless.knowledge import Concept
from formless.knowledge.split import split_facts

Before = Sequence[ProbeResult]
After = Sequence[ProbeResult | None]
EXPOSURES = ("trained_wording", "trained_fact_other_wording", "held_out_fact")


def summarise_probes(probes: Sequence[Probe], before: Before, after: After, *, seed: int = 0) -> Summary:
    """Residual, interval and chance figures of one set of probes (see ``metrics``)."""
    return Summary.model_validate(summarise(units(probes, before, after), seed=seed))


def grouped(
    probes: Sequence[Probe], before: Before, after: After, key: Callable[[Probe], str], seed: int = 0
) -> dict[str, Summary]:
    """One summary per value of ``key``, in first-seen order."""
    groups: dict[str, list] = defaultdict(list)
    for p, b, a in zip(probes, before, after):
        groups[key(p)].append((p, b, a))
    return {k: summarise_probes(*zip(*v), seed=seed) for k, v in groups.items()}


def is_forget_form(name: str) -> bool:
    """A form that asks for the fact (not one that re-introduces it in context); unknown names
    (external probe files) count as forget forms."""
    return FORMS.get(name, FORMS["question"]).group == "forget"


def counted_forms(per_form: dict[str, Summary]) -> set[str]:
    """The forms the totals count: forget forms measurable on this model."""
    return {n for n, s in per_form.items() if is_forget_form(n) and s.measurable}


def forget_tables(probes: Sequence[Probe], before: Before, after: After, seed: int = 0) -> Forget:
    """Overall, per form, per concept and the Form-Dependent Bias (``by_exposure`` is left empty:
    see ``exposure_tables``)."""
    per_form = grouped(probes, before, after, lambda p: p.form, seed)
    # totals leave out context forms (reported apart) and forms at chance on this model
    counted = counted_forms(per_form)
    forget_only = [(p, b, a) for p, b, a in zip(probes, before, after) if p.form in counted]
    forget_units = units(*zip(*forget_only)) if forget_only else []
    bias = form_dependent_bias(
        {k: v.model_dump() for k, v in per_form.items()}, forget_units, include=is_forget_form, seed=seed
    )
    return Forget(
        overall=Summary.model_validate(summarise(forget_units, seed=seed)),
        per_form=per_form,
        not_measurable=sorted(n for n, s in per_form.items() if is_forget_form(n) and not s.measurable),
        per_concept={
            concept: grouped(
                *zip(*[(p, b, a) for p, b, a in zip(probes, before, after) if p.concept == concept]),
                key=lambda p: p.form,
                seed=seed,
            )
            for concept in dict.fromkeys(p.concept for p in probes)
        },
        form_dependent_bias=FormDependentBias.model_validate(bias),
    )


def exposure_tables(
    probes: Sequence[Probe],
    before: Before,
    after: After,
    targets: Sequence[Concept],
    manifest: dict | None,
    counted: set[str],
    seed: int,
) -> Exposure:
    """Residual on the facts a trained method saw (in its own wordings, and in the audit's others)
    and on the facts held out from its training (formless.knowledge.split). For a model that was
    not trained on facts (ROCR, ICU, any other checkpoint) the same split is applied, so its
    held-out figure compares with a baseline's over the same facts."""
    training = (manifest or {}).get("training") or {}
    recorded = training.get("split") or {}
    seed_used = (manifest or {}).get("seed", 0)
    splits, wordings = {}, {}
    for concept in targets:
        info = recorded.get(concept.name)
        if info is None:
            split = split_facts(concept, seed=seed_used)
            info = {"trained": list(split.trained), "held_out": list(split.held_out), "trained_wordings": []}
        splits[concept.name] = info
        wordings[concept.name] = set(info.get("trained_wordings", []))

    def exposure(p: Probe) -> str | None:
        info = splits.get(p.concept)
        if info is None or p.form not in counted:
            return None
        if p.item in info["held_out"]:
            return "held_out_fact"
        if p.item in info["trained"]:
            return "trained_wording" if p.form in wordings[p.concept] else "trained_fact_other_wording"
        return None

    groups: dict[str, list] = defaultdict(list)
    for p, b, a in zip(probes, before, after):
        if (key := exposure(p)) is not None:
            groups[key].append((p, b, a))
    return Exposure(
        method_trained_on_facts=bool(recorded),
        split={c: FactSplit(trained=i["trained"], held_out=i["held_out"]) for c, i in splits.items()},
        trained_wordings=sorted(set().union(*wordings.values())) if wordings else [],
        groups={k: summarise_probes(*zip(*groups[k]), seed=seed) for k in EXPOSURES if groups.get(k)},
    )


def residuals(per_form: dict[str, Summary]) -> dict[str, float | None]:
    """form -> residual: the per-form figure an attack's entry keeps."""
    return {k: v.residual for k, v in per_form.items()}
