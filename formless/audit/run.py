"""The audit, orchestrated: every probe scored on the reference (cached) and on the audited model,
the forget and retain tables, then each attack (quantized copies, relearning) looped alike.

The parts live apart: ``settings`` (what to do, checked up front), ``building`` (the probes),
``cached`` (scoring through the reference cache), ``tables`` (pure functions: results in, report
parts out), ``attacks`` (one object per attack, one loop) and ``report`` (the typed report)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from formless.audit.attacks import Attack, QuantizationAttack, RelearningAttack, attack_jobs
from formless.audit.building import ProbeSets, build_probes, general_probes
from formless.audit.cached import cached_scores, rounded
from formless.audit.engine import ProbeResult, score_probes_halved, scoring_jobs
from formless.audit.forms import FORMS
from formless.audit.metrics import known_facts, unit_key
from formless.audit.probes import Probe
from formless.audit.reference import ResultCache
from formless.audit.report import AuditReport, Fluency, Retain
from formless.audit.retain import (
    NEUTRAL_PROMPTS,
    divergence,
    fluency_generations,
    ngram_entropy,
    reference_distribution,
)
from formless.audit.settings import AuditSettings, quantization_attacks, validate
from formless.audit.tables import (
    EXPOSURES,
    counted_forms,
    exposure_tables,
    forget_tables,
    summarise_probes,
)
from formless.checkpoint import read_manifest, versions
from formless.concurrent import side_by_side
from formless.errors import FormlessError
from formless.knowledge import KnowledgeBase
from formless.models.loading import LoadedModel, load_model
from formless.progress import phase

__all__ = [
    "AUDIT_VERSION",
    "EXPOSURES",
    "AuditReport",
    "AuditSettings",
    "ProbeSets",
    "build_probes",
    "general_probes",
    "quantization_attacks",
    "reference_jobs",
    "run_audit",
]

AUDIT_VERSION = "1"
Say = Callable[[str], None]


def _model_info(loaded: LoadedModel) -> dict:
    return {
        "name": loaded.name,
        "path": loaded.path,
        "model_type": loaded.model_type,
        "weights_hash": loaded.weights_hash(),
    }


def _reference_name(manifest: dict | None, reference: str | None) -> str:
    if reference:
        return reference
    if manifest:
        base = manifest["base_model"]
        return base["name"] if base.get("source") == "builtin" else base["path"]
    raise FormlessError(
        "this model has no formless manifest, so the unedited reference is unknown; pass --reference "
        "with the model it was made from"
    )


def _subject_key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _known(kb: KnowledgeBase, name: str) -> bool:
    try:
        kb.concept(name)
    except FormlessError:
        return False
    return True


def _result_cache(loaded: LoadedModel, cache: str | Path | None) -> ResultCache | None:
    """The audited model's result cache, keyed by its weights hash; None where the weights cannot be
    read to hash them (layers offloaded to "meta"): such a model is always scored."""
    try:
        return ResultCache(loaded.weights_hash(), cache, role="audited")
    except (RuntimeError, NotImplementedError):
        return None


def _reference_fluency(reference: LoadedModel, settings: AuditSettings) -> dict:
    """The reference's free text on the neutral prompts and its next-token distribution over it."""
    gens = fluency_generations(reference, fast=settings.fast, engine=settings.engine)
    texts = [f"{p} {g}" for p, g in zip(NEUTRAL_PROMPTS, gens)]
    return {"generations": gens, "distribution": reference_distribution(reference, texts)}


def reference_jobs(
    reference: LoadedModel,
    *,
    kb: KnowledgeBase,
    concepts: Sequence[str],
    settings: AuditSettings | None = None,
    cache: str | Path | None = None,
) -> tuple[list[Callable[[], object]], Callable[[Sequence[object]], None]]:
    """The reference's half of an audit of ``concepts`` (its scores on every probe and its fluency
    text, whatever is not cached yet) as independent jobs, and a function that saves their results
    (in the jobs' order) to the reference cache. An audit that follows finds them there: a caller can run
    these beside the edit itself (``formless demo`` runs them beside ``forget``)."""
    settings = settings or AuditSettings()
    validate(settings)
    sets = build_probes(kb, [kb.concept(n) for n in concepts], settings)
    store = ResultCache(reference.weights_hash(), cache)
    # the further made-up names' twins wait for the audit: they are asked only about known facts
    probes = [
        p
        for p in sets.all()
        if not p.extra_twin and store.get(f"{settings.precision}{p.fingerprint()}") is None
    ]
    jobs, merge = scoring_jobs(
        reference, probes, batch_size=settings.batch_size, fast=settings.fast, engine=settings.engine
    )
    fluency_key = _fluency_key(settings)
    wants_fluency = settings.fluency and store.get_raw(fluency_key) is None
    fluency = [lambda: _reference_fluency(reference, settings)] if wants_fluency else []

    def save(results: Sequence[object]) -> None:
        if probes:
            for p, r in zip(probes, merge(results[: len(jobs)])):  # type: ignore[arg-type]
                store.put(f"{settings.precision}{p.fingerprint()}", r)
        if wants_fluency:
            store.put(fluency_key, results[len(jobs)])
        store.save()

    return [*jobs, *fluency], save


def _fluency_key(settings: AuditSettings) -> str:
    return f"{settings.precision}fluency:" + hashlib.sha256(repr(NEUTRAL_PROMPTS).encode()).hexdigest()[:16]


def run_audit(
    model: str | Path,
    *,
    kb: KnowledgeBase,
    concepts: Sequence[str] | None = None,
    reference: str | None = None,
    settings: AuditSettings | None = None,
    cache: str | Path | None = None,
    external: ProbeSets | None = None,
    say: Say = lambda _: None,
    elicit_kind: str | None = None,
    teacher: str | Path | None = None,
    attacks: Sequence[Attack] = (),
) -> AuditReport:
    """Audit ``model`` against its reference; returns the report. A concept the knowledge base does
    not know is elicited from the reference (``elicit_kind``: its type; ``teacher``: a model
    directory proposing answers), see formless.knowledge.elicit. ``attacks`` run after those the
    settings ask for (quantization, relearning), each into its report section."""
    settings = settings or AuditSettings()
    schemes = validate(settings)  # unknown forms, unknown or uninstalled schemes fail before any work
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    manifest = read_manifest(model) if Path(str(model)).is_dir() else None
    names = list(concepts or (manifest or {}).get("concepts", []))
    if not names and external is None:
        raise FormlessError(
            "no concept to audit: pass --concept NAME (or --probes FILE), or audit a formless output"
        )
    # a name the probe files cover needs no knowledge-base record: its probes are the audit
    external_subjects = {_subject_key(p.concept) for p in external.forget} if external else set()
    wanted = [n for n in names if _known(kb, n) or _subject_key(n) not in external_subjects]
    ref_name = _reference_name(manifest, reference)
    ref_loaded: LoadedModel | None = None
    ref_lock = threading.Lock()  # jobs running side by side may ask for it at once: loaded once

    def ref() -> LoadedModel:
        nonlocal ref_loaded
        with ref_lock:
            if ref_loaded is None:
                say(f"loading reference model {ref_name}")
                ref_loaded = load_model(ref_name, cache=cache)
        return ref_loaded

    # a concept the knowledge base does not know: what the reference itself states about it
    from formless.knowledge.elicit import resolve_for_audit

    t = time.perf_counter()
    kb, generated = resolve_for_audit(kb, wanted, model, ref, kind=elicit_kind, teacher=teacher)
    if generated and generated.get("concepts"):
        lap("elicit", t)
    targets = [kb.concept(n) for n in wanted]
    sets = build_probes(kb, targets, settings)
    if external is not None:
        sets.forget += external.forget
        sets.neighbour += external.neighbour
    t = time.perf_counter()
    loaded = load_model(str(model), cache=cache)
    t = lap("load_model", t)
    ref_hash = manifest["base_model"]["weights_hash"] if manifest and not reference else None

    if ref_hash is None:
        ref_hash = ref().weights_hash()
    store = ResultCache(ref_hash, cache)
    probes = sets.all()
    say(f"{len(sets.forget)} forget, {len(sets.neighbour)} neighbour and {len(sets.general)} general probes")

    def score_ref(batch: list[Probe]) -> list[ProbeResult]:
        with phase(f"scoring {len(batch)} probes on the reference (cached afterwards)", say):
            return score_probes_halved(
                ref(), batch, batch_size=settings.batch_size, fast=settings.fast, engine=settings.engine
            )

    precision = settings.precision
    # first every probe but the further made-up names' twins; those only set a known fact's own
    # chance (metrics.own_chance), so they are asked, and reported, for the facts the reference knows
    first = [p for p in probes if not p.extra_twin]
    known_here = known_facts(first, cached_scores(store, precision, first, score_ref))
    sets.forget = [p for p in sets.forget if not p.extra_twin or unit_key(p) in known_here]
    probes = sets.all()
    before = cached_scores(store, precision, probes, score_ref)
    t = lap("reference", t)

    # residual knowledge is measured over what the reference knows, so only those probes are asked;
    # the fluency texts of both models are independent passes and run beside them
    # (a prior twin is asked on the reference only: it says whether a made-up name gets the fact too)
    known = [i for i, b in enumerate(before) if b.hit and not probes[i].prior_twin]
    # the audited model's own results are cached by its weights hash like the reference's: the
    # same checkpoint audited again (the demo run twice, another report of one edit) is not rescored
    own = _result_cache(loaded, cache)
    asked = [i for i in known if own is None or own.get(f"{precision}{probes[i].fingerprint()}") is None]
    jobs, merge = scoring_jobs(
        loaded, [probes[i] for i in asked], batch_size=settings.batch_size, fast=settings.fast,
        engine=settings.engine,
    )  # fmt: skip
    fluency_key = _fluency_key(settings)
    fluency_jobs: list[Callable[[], object]] = []
    wants_ref_fluency = settings.fluency and store.get_raw(fluency_key) is None
    wants_own_fluency = settings.fluency and (own is None or own.get_raw(fluency_key) is None)
    if wants_ref_fluency:
        fluency_jobs.append(lambda: _reference_fluency(ref(), settings))
    if wants_own_fluency:
        fluency_jobs.append(lambda: fluency_generations(loaded, fast=settings.fast, engine=settings.engine))
    # the attacked copies are asked the forget probes the reference knows, so their jobs need
    # nothing from the audited model's own scoring and run beside it: one pool, no barrier between
    n_forget, n_neigh = len(sets.forget), len(sets.neighbour)
    planned: list[Attack] = [QuantizationAttack(key, scheme) for key, scheme in schemes]
    if settings.relearn_steps and targets:
        planned.append(RelearningAttack(kb, targets, settings.relearn_steps, seed=settings.seed))
    planned += attacks
    copies, finish_attacks = attack_jobs(
        planned, loaded, ref, store, sets.forget, before[:n_forget], settings, results=own
    )
    cached_note = f" ({len(known) - len(asked)} cached)" if len(asked) < len(known) else ""
    doing = f"scoring {len(asked)} probes the reference knows on the audited model{cached_note}"
    if planned:
        doing += "; " + "; ".join(a.announce() for a in planned) + " (side by side)"
    with phase(doing, say):
        # the copies first: each is one long job, the scoring halves fill in beside them
        done = side_by_side([*copies, *jobs, *fluency_jobs])
    attacked, results = done[: len(copies)], done[len(copies) :]
    scored = dict(zip(asked, merge(results[: len(jobs)])))
    after: list[ProbeResult | None] = [None] * len(probes)
    for i in known:
        key = f"{precision}{probes[i].fingerprint()}"
        if i in scored:
            after[i] = rounded(scored[i])
            if own is not None:
                own.put(key, after[i])
        else:
            after[i] = own.get(key)  # type: ignore[union-attr]
    extra = iter(results[len(jobs) :])
    if wants_ref_fluency:
        store.put(fluency_key, next(extra))
    own_fluency = next(extra) if wants_own_fluency else (own.get_raw(fluency_key) if own else None)
    if wants_own_fluency and own is not None:
        own.put(fluency_key, own_fluency)
    t = lap("audited_model", t)  # and the attacked copies beside it
    f_before, f_after = before[:n_forget], after[:n_forget]
    forget = forget_tables(sets.forget, f_before, f_after, settings.seed)
    forget.by_exposure = exposure_tables(
        sets.forget, f_before, f_after, targets, manifest, counted_forms(forget.per_form), settings.seed
    )
    neighbours, general = slice(n_forget, n_forget + n_neigh), slice(n_forget + n_neigh, None)
    retain = Retain(
        neighbours=summarise_probes(
            probes[neighbours], before[neighbours], after[neighbours], seed=settings.seed
        ),
        general=summarise_probes(probes[general], before[general], after[general], seed=settings.seed),
    )
    if settings.fluency:
        ref_fluency = store.get_raw(fluency_key)
        gens: list[str] = own_fluency  # type: ignore[assignment]
        kl_key = f"{fluency_key}:kl-from:{ref_hash.split(':')[-1][:24]}"
        kl = own.get_raw(kl_key) if own is not None else None
        if kl is None:
            kl = round(divergence(loaded, ref_fluency["distribution"]), 5)
            if own is not None:
                own.put(kl_key, kl)
        retain.fluency = Fluency(
            entropy_before=round(statistics.fmean(map(ngram_entropy, ref_fluency["generations"])), 4),
            entropy_after=round(statistics.fmean(map(ngram_entropy, gens)), 4),
            kl_from_reference=kl,
            samples_after=gens[:2],
        )
        t = lap("fluency", t)

    sections: dict[str, dict] = {"quantization": {}, "relearning": {}}
    for attack, (entry, seconds) in zip(planned, finish_attacks(attacked, f_after)):
        sections[attack.section][attack.name] = entry
        timings.update(attack.timings(seconds))
        label = attack.name if attack.section == "relearning" else f"quantized_{attack.name}"
        timings[label] = round(sum(seconds.values()), 3)  # its jobs' own time, overlapping the others'
    store.save()
    if own is not None:
        own.save()

    timings["total"] = round(time.perf_counter() - started, 3)
    return AuditReport(
        formless_audit=AUDIT_VERSION,
        model=_model_info(loaded),
        reference={"name": ref_name, "weights_hash": ref_hash},
        edit={k: manifest.get(k) for k in ("method", "concepts", "redirect", "layers")} if manifest else None,
        concepts=names,
        forms={n: {"title": FORMS[n].title, "group": FORMS[n].group} for n in (settings.forms or FORMS)},
        settings=settings.recorded(),
        seed=settings.seed,
        versions=versions(),
        generated_knowledge=generated or None,
        given_away=sets.given_away_per_form() or None,
        answer_is_target=len(sets.answer_is_target) or None,
        forget=forget,
        retain=retain,
        quantization=sections["quantization"],
        relearning=sections["relearning"].get("relearning"),
        probes=[
            {
                "key": p.key,
                "form": p.form,
                "concept": p.concept,
                "prompt": p.prompt,
                "answer": p.answer,
                "before": b.to_json(),
                "after": a.to_json() if a else None,
                "cue": p.cue or None,
            }
            for p, b, a in zip(probes, before, after)
        ],
        run={
            "seconds": timings,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "reference_cache": str(store.path),
            **({"audited_cache": str(own.path)} if own is not None else {}),
        },
    )
