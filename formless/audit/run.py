"""The audit: every probe scored on the reference (cached) and on the audited model, before/after
ratios per form, the retain side, and the same forget probes after quantizing the audited model."""

from __future__ import annotations

import datetime as _dt
import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from formless.attacks.quantizers import DEFAULT_SCHEMES, Quantizer, get_quantizer
from formless.audit.engine import ProbeResult, score_probes
from formless.audit.forms import FORMS, RETAIN_FORMS, FormContext, select
from formless.audit.metrics import form_dependent_bias, summarise, units
from formless.audit.probes import Probe
from formless.audit.reference import ReferenceCache
from formless.audit.retain import (
    NEUTRAL_PROMPTS,
    divergence,
    fluency_generations,
    ngram_entropy,
    reference_distribution,
)
from formless.checkpoint import read_manifest, versions
from formless.errors import FormlessError
from formless.knowledge import Concept, Fact, KnowledgeBase
from formless.knowledge.split import split_facts
from formless.models.loading import LoadedModel, load_model

AUDIT_VERSION = "1"
Say = Callable[[str], None]


@dataclass
class AuditSettings:
    forms: list[str] | None = None  # None: all registered forms
    seed: int = 0
    # quantization attacks: scheme names (formless.attacks.quantizers.SCHEMES); a legacy bit width
    # 8 / 4 is RTN and keeps its old report key "8bit" / "4bit"
    quantize: tuple[str | int, ...] = DEFAULT_SCHEMES
    group_size: int = 128  # RTN only
    neighbours: bool = True
    general: bool = True
    fluency: bool = True
    batch_size: int = 32
    relearn_steps: int = 0  # > 0: fine-tune a copy on half the facts, ask the other half
    fast: bool = False  # bf16 where the CPU has it: ~1.4x faster, answers more sensitive to batch padding


@dataclass
class ProbeSets:
    forget: list[Probe] = field(default_factory=list)
    neighbour: list[Probe] = field(default_factory=list)
    general: list[Probe] = field(default_factory=list)

    def all(self) -> list[Probe]:
        return self.forget + self.neighbour + self.general


def general_probes(facts: Sequence[Fact]) -> list[Probe]:
    return [
        Probe(
            "question",
            "general",
            f"{i}:{f.subject}/{f.relation}",
            f.question,
            answer=f.answer,
            aliases=f.aliases,
        )
        for i, f in enumerate(facts)
    ]


def build_probes(kb: KnowledgeBase, concepts: Sequence[Concept], settings: AuditSettings) -> ProbeSets:
    ctx = FormContext(seed=settings.seed, few_shot=kb.general[-(6 if len(kb.general) >= 24 else 3) :])
    sets = ProbeSets()
    for form in select(settings.forms):
        for concept in concepts:
            sets.forget.extend(form.probes(concept, ctx))
    if settings.neighbours:
        targets = {c.name for c in concepts}
        seen: set[str] = set()
        for concept in concepts:
            for neighbour in kb.neighbours(concept, exclude=targets | seen):
                seen.add(neighbour.name)
                for name in RETAIN_FORMS:
                    sets.neighbour.extend(FORMS[name]().probes(neighbour, ctx))
    if settings.general:
        few_shot = {id(f) for f in ctx.few_shot}
        sets.general = general_probes([f for f in kb.general if id(f) not in few_shot])
    return sets


def _rounded(result: ProbeResult) -> ProbeResult:
    """Results go through their JSON form so fresh and cached numbers aggregate identically."""
    return ProbeResult(**result.to_json())


def _cached_scores(
    cache: ReferenceCache,
    prefix: str,
    probes: Sequence[Probe],
    score: Callable[[list[Probe]], list[ProbeResult]],
) -> list[ProbeResult]:
    keys = [f"{prefix}{p.fingerprint()}" for p in probes]
    missing = [p for p, k in zip(probes, keys) if cache.get(k) is None]
    if missing:
        for p, r in zip(missing, score(missing)):
            cache.put(f"{prefix}{p.fingerprint()}", r)
    return [cache.get(k) for k in keys]  # type: ignore[misc]


def _score_known(
    loaded: LoadedModel, probes: Sequence[Probe], before: Sequence[ProbeResult], settings: AuditSettings
) -> list[ProbeResult | None]:
    """Scores of the probes the reference answered right; None for the rest (they cannot count)."""
    known = [i for i, b in enumerate(before) if b.hit]
    scores = score_probes(
        loaded, [probes[i] for i in known], batch_size=settings.batch_size, fast=settings.fast
    )
    after: list[ProbeResult | None] = [None] * len(probes)
    for i, result in zip(known, scores):
        after[i] = _rounded(result)
    return after


def summarise_probes(probes, before, after, *, seed: int = 0) -> dict:
    """Residual, interval and chance figures of one set of probes (see ``metrics``)."""
    return summarise(units(probes, before, after), seed=seed)


def _grouped(probes, before, after, key, seed: int = 0) -> dict[str, dict]:
    groups: dict[str, list] = defaultdict(list)
    for p, b, a in zip(probes, before, after):
        groups[key(p)].append((p, b, a))
    return {k: summarise_probes(*zip(*v), seed=seed) for k, v in groups.items()}


def _is_forget_form(name: str) -> bool:
    return FORMS.get(name, FORMS["question"]).group == "forget"


def _forget_tables(probes, before, after, seed: int = 0) -> dict:
    per_form = _grouped(probes, before, after, lambda p: p.form, seed)
    # totals leave out context forms (reported apart) and forms at chance on this model
    counted = {n for n, s in per_form.items() if _is_forget_form(n) and s["measurable"]}
    forget_only = [(p, b, a) for p, b, a in zip(probes, before, after) if p.form in counted]
    forget_units = units(*zip(*forget_only)) if forget_only else []
    return {
        "overall": summarise(forget_units, seed=seed),
        "per_form": per_form,
        "not_measurable": sorted(
            n for n, s in per_form.items() if _is_forget_form(n) and not s["measurable"]
        ),
        "per_concept": {
            concept: _grouped(
                *zip(*[(p, b, a) for p, b, a in zip(probes, before, after) if p.concept == concept]),
                key=lambda p: p.form,
                seed=seed,
            )
            for concept in dict.fromkeys(p.concept for p in probes)
        },
        "form_dependent_bias": form_dependent_bias(
            per_form, forget_units, include=_is_forget_form, seed=seed
        ),
    }


def quantization_attacks(settings: AuditSettings) -> list[tuple[str, Quantizer]]:
    """(report key, scheme) per entry of ``settings.quantize``, each checked to run here."""
    attacks: dict[str, Quantizer] = {}
    for entry in settings.quantize:
        scheme = get_quantizer(entry, group_size=settings.group_size)
        scheme.check()
        legacy = isinstance(entry, int) and not isinstance(entry, bool)
        attacks.setdefault(f"{entry}bit" if legacy else scheme.name, scheme)
    return list(attacks.items())


def _quantization_attack(
    scheme: Quantizer,
    loaded: LoadedModel,
    ref: Callable[[], LoadedModel],
    store: ReferenceCache,
    probes: Sequence[Probe],
    before: Sequence[ProbeResult],
    settings: AuditSettings,
) -> tuple[dict, dict[str, float]]:
    """The forget probes on a quantized copy of the audited model, read two ways: over the facts the
    reference knows (what the user gets back after quantizing) and over the facts the quantized
    reference still knows (what quantizing itself loses is not counted as forgotten). The quantized
    reference's scores are cached per scheme, like the reference's. Returns the report entry and
    its timings (seconds to quantize, to score, for the quantized reference: ~0 once cached)."""
    started = time.perf_counter()
    q_loaded, summary = scheme.quantize_with_summary(loaded)
    quantized = time.perf_counter()
    after = _score_known(q_loaded, probes, before, settings)
    del q_loaded
    scored = time.perf_counter()

    def score_ref_q(batch: list[Probe]) -> list[ProbeResult]:
        q_ref = scheme.quantize(ref())
        return score_probes(q_ref, batch, batch_size=settings.batch_size, fast=settings.fast)

    known = [i for i, b in enumerate(before) if b.hit]
    precision = "bf16:" if settings.fast else ""
    prefix = f"{precision}{scheme.cache_key()}:"
    q_known = _cached_scores(store, prefix, [probes[i] for i in known], score_ref_q)
    q_before = list(before)  # the reference's misses stay misses: they are not asked again
    for i, result in zip(known, q_known):
        q_before[i] = result
    tables = _forget_tables(probes, before, after, settings.seed)
    own = _forget_tables(probes, q_before, after, settings.seed)
    ref_q = summarise_probes(
        [probes[i] for i in known], [before[i] for i in known], q_known, seed=settings.seed
    )
    entry = {k: v for k, v in summary.items() if k not in ("scheme", "method")}
    seconds = {
        "quantize": round(quantized - started, 3),
        "score": round(scored - quantized, 3),
        "reference": round(time.perf_counter() - scored, 3),
    }
    return {
        "scheme": scheme.name,
        "method": summary["method"],
        "overall": tables["overall"],
        "per_form": {k: v["residual"] for k, v in tables["per_form"].items()},
        "reference_quantized_keeps": ref_q["residual"],
        "reference_quantized_probability_ratio": ref_q["probability_ratio"],
        "over_quantized_reference": {
            "overall": own["overall"],
            "per_form": {k: v["residual"] for k, v in own["per_form"].items()},
        },
        **entry,
    }, seconds


EXPOSURES = ("trained_wording", "trained_fact_other_wording", "held_out_fact")


def _exposure_tables(probes, before, after, targets, manifest: dict | None, counted: set[str], seed: int):
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
    return {
        "method_trained_on_facts": bool(recorded),
        "split": {c: {"trained": i["trained"], "held_out": i["held_out"]} for c, i in splits.items()},
        "trained_wordings": sorted(set().union(*wordings.values())) if wordings else [],
        "groups": {k: summarise_probes(*zip(*groups[k]), seed=seed) for k in EXPOSURES if groups.get(k)},
    }


def _relearning(loaded, kb, targets, probes, before, after, settings: AuditSettings) -> dict:
    from formless.attacks.relearn import relearned_copy

    clone, held_out, summary = relearned_copy(
        loaded, kb, targets, seed=settings.seed, steps=settings.relearn_steps
    )
    idx = [
        i
        for i, p in enumerate(probes)
        if p.item in held_out.get(p.concept, ()) and FORMS.get(p.form, FORMS["question"]).group == "forget"
    ]
    sub, b = [probes[i] for i in idx], [before[i] for i in idx]
    relearned = _score_known(clone, sub, b, settings)
    del clone
    per_form = _grouped(sub, b, relearned, lambda p: p.form)
    return {
        **summary,
        "held_out": {c: sorted(r) for c, r in held_out.items()},
        "before": summarise_probes(sub, b, [after[i] for i in idx], seed=settings.seed),
        "after": summarise_probes(sub, b, relearned, seed=settings.seed),
        "per_form": {k: v["residual"] for k, v in per_form.items()},
    }


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
) -> dict:
    """Audit ``model`` against its reference; returns the report as a JSON-ready dict. A concept the
    knowledge base does not know is elicited from the reference (``elicit_kind``: its type;
    ``teacher``: a model directory proposing answers), see formless.knowledge.elicit."""
    settings = settings or AuditSettings()
    select(settings.forms)  # unknown form names fail now, not after minutes of scoring
    attacks = quantization_attacks(settings)  # unknown or uninstalled schemes fail before any work
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

    def ref() -> LoadedModel:
        nonlocal ref_loaded
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
    store = ReferenceCache(ref_hash, cache)
    probes = sets.all()
    say(f"{len(sets.forget)} forget, {len(sets.neighbour)} neighbour and {len(sets.general)} general probes")

    def score_ref(batch: list[Probe]) -> list[ProbeResult]:
        say(f"scoring {len(batch)} probes on the reference (cached afterwards)")
        return score_probes(ref(), batch, batch_size=settings.batch_size, fast=settings.fast)

    precision = "bf16:" if settings.fast else ""
    before = _cached_scores(store, precision, probes, score_ref)
    fluency_key = f"{precision}fluency:" + hashlib.sha256(repr(NEUTRAL_PROMPTS).encode()).hexdigest()[:16]
    if settings.fluency and store.get_raw(fluency_key) is None:
        gens = fluency_generations(ref(), fast=settings.fast)
        texts = [f"{p} {g}" for p, g in zip(NEUTRAL_PROMPTS, gens)]
        store.put(fluency_key, {"generations": gens, "distribution": reference_distribution(ref(), texts)})
    t = lap("reference", t)

    # residual knowledge is measured over what the reference knows, so only those probes are asked
    say(f"scoring {sum(b.hit for b in before)} probes the reference knows on the audited model")
    after = _score_known(loaded, probes, before, settings)
    t = lap("audited_model", t)
    n_forget, n_neigh = len(sets.forget), len(sets.neighbour)
    forget_tables = _forget_tables(sets.forget, before[:n_forget], after[:n_forget], settings.seed)
    counted = {n for n, st in forget_tables["per_form"].items() if _is_forget_form(n) and st["measurable"]}
    forget_tables["by_exposure"] = _exposure_tables(
        sets.forget, before[:n_forget], after[:n_forget], targets, manifest, counted, settings.seed
    )
    report: dict = {
        "forget": forget_tables,
        "retain": {
            "neighbours": summarise_probes(
                probes[n_forget : n_forget + n_neigh],
                before[n_forget : n_forget + n_neigh],
                after[n_forget : n_forget + n_neigh],
                seed=settings.seed,
            ),
            "general": summarise_probes(
                probes[n_forget + n_neigh :],
                before[n_forget + n_neigh :],
                after[n_forget + n_neigh :],
                seed=settings.seed,
            ),
        },
    }
    if settings.fluency:
        ref_fluency = store.get_raw(fluency_key)
        gens = fluency_generations(loaded, fast=settings.fast)
        report["retain"]["fluency"] = {
            "entropy_before": round(statistics.fmean(map(ngram_entropy, ref_fluency["generations"])), 4),
            "entropy_after": round(statistics.fmean(map(ngram_entropy, gens)), 4),
            "kl_from_reference": round(divergence(loaded, ref_fluency["distribution"]), 5),
            "samples_after": gens[:2],
        }
        t = lap("fluency", t)

    quant: dict = {}
    for key, scheme in attacks:
        say(f"re-auditing the forget probes on a {scheme.name} copy")
        quant[key], seconds = _quantization_attack(
            scheme, loaded, ref, store, sets.forget, before[:n_forget], settings
        )
        timings.update({f"quantized_{key}_{k}": v for k, v in seconds.items()})
        t = lap(f"quantized_{key}", t)
    report["quantization"] = quant
    if settings.relearn_steps and targets:
        say(f"relearning probe: {settings.relearn_steps} fine-tuning steps on half of the facts")
        report["relearning"] = _relearning(
            loaded, kb, targets, sets.forget, before[:n_forget], after[:n_forget], settings
        )
        t = lap("relearning", t)
    store.save()

    report["probes"] = [
        {
            "key": p.key,
            "form": p.form,
            "concept": p.concept,
            "prompt": p.prompt,
            "answer": p.answer,
            "before": b.to_json(),
            "after": a.to_json() if a else None,
        }
        for p, b, a in zip(probes, before, after)
    ]
    header = {
        "formless_audit": AUDIT_VERSION,
        "model": _model_info(loaded),
        "reference": {"name": ref_name, "weights_hash": ref_hash},
        "edit": {k: manifest.get(k) for k in ("method", "concepts", "redirect", "layers")}
        if manifest
        else None,
        "concepts": names,
        "forms": {n: {"title": FORMS[n].title, "group": FORMS[n].group} for n in (settings.forms or FORMS)},
        "settings": {k: v for k, v in vars(settings).items() if k != "batch_size"},
        "seed": settings.seed,
        "versions": versions(),
    }
    if generated:
        header["generated_knowledge"] = generated
    timings["total"] = round(time.perf_counter() - started, 3)
    run = {
        "seconds": timings,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "reference_cache": str(store.path),
    }
    return {**header, **report, "run": run}
