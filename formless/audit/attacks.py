"""Attacks the audit re-runs the forget probes under: each is one object that makes a modified copy
of a model, and one loop (``attack_jobs``) treats them all alike.

An attack has a ``name`` (its report key), a ``section`` of the report it goes to, ``transform(loaded)
-> (copy, details)`` (a modified copy, the original untouched, and what was done to it) and
``run_on_reference``: whether the transformed reference is scored too (cached per ``cache_key``), so
that what the transformation itself loses is not counted as forgotten. ``select`` chooses the forget
probes it asks (after the audited model's transform, which may decide them) and ``entry`` turns the
scores into the report's entry. The copies are independent jobs and run side by side."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Protocol

import torch
from pydantic import BaseModel

from formless.attacks.quantizers import Quantizer
from formless.audit.cached import cached_scores, score_known
from formless.audit.engine import ProbeResult, score_probes
from formless.audit.metrics import paired_shift, shift_counts, units
from formless.audit.probes import Probe
from formless.audit.reference import ResultCache
from formless.audit.report import Quantization, QuantizedTables, Relearning
from formless.audit.settings import AuditSettings
from formless.audit.tables import (
    counted_forms,
    forget_tables,
    grouped,
    is_forget_form,
    residuals,
    summarise_probes,
)
from formless.engines import DEFAULT_ENGINE
from formless.knowledge import Concept, KnowledgeBase
from formless.models.loading import LoadedModel


@dataclass
class AttackScores:
    """What ``run_attack`` hands to ``Attack.entry``: the probes the attack asked and their results."""

    probes: list[Probe]
    before: list[ProbeResult]  # on the reference
    after: list[ProbeResult | None]  # on the audited model as it is
    attacked: list[ProbeResult | None]  # on the transformed audited model (known probes only)
    # on the transformed reference, over the probes the reference knows (run_on_reference only)
    reference_known: list[ProbeResult] | None
    details: dict[str, Any]
    seed: int = 0

    @property
    def known(self) -> list[int]:
        return [i for i, b in enumerate(self.before) if b.hit]


class Attack(Protocol):
    name: str
    section: ClassVar[str]  # "quantization" or "relearning"
    run_on_reference: ClassVar[bool]

    # a modified copy and what was done to it (the copy of the reference may be made side by side
    # with the audited model's, so nothing about one transform may be kept on the attack)
    def transform(self, loaded: LoadedModel) -> tuple[LoadedModel, dict[str, Any]]: ...

    def announce(self) -> str: ...

    def cache_key(self) -> str: ...

    # which forget probes to ask; it must not need a transform (a copy whose results are cached is
    # never made)
    def select(self, probes: Sequence[Probe]) -> list[int]: ...

    def entry(self, scores: AttackScores) -> BaseModel: ...

    def timings(self, seconds: dict[str, float]) -> dict[str, float]: ...


def _asked(attack: Attack, probes: Sequence[Probe]) -> list[int]:
    # prior twins (made-up names) only tell what the reference knows without the concept: the attack
    # tables report no figure from them, so no attacked copy is asked them
    return [i for i in attack.select(probes) if not probes[i].prior_twin]


def _on_audited(
    attack: Attack,
    audited: LoadedModel,
    probes: Sequence[Probe],
    before: Sequence[ProbeResult],
    settings: AuditSettings,
    results: ResultCache | None = None,
) -> tuple[list[int], list[ProbeResult | None] | None, dict[str, Any], dict[str, float], dict[str, Any]]:
    """The attacked copy's results over the probes it is asked (those the reference knew), and what
    to add to the audited model's result cache (``results``): a copy whose results and details are
    all there is neither made nor scored; a copy the transform left bit for bit as it was (an ROCR
    edit kept on the weights' own grid, re-quantized to that grid) is not scored either: its
    results come back None, for the caller to fill with what the audited model answered (this job
    may run beside the audited model's own scoring)."""
    started = time.perf_counter()
    idx = _asked(attack, probes)
    asked, asked_before = [probes[i] for i in idx], [before[i] for i in idx]
    prefix = f"{settings.precision}{attack.cache_key()}:"
    keys = [f"{prefix}{p.fingerprint()}" for p, b in zip(asked, asked_before) if b.hit]
    if results is not None and results.get_raw(prefix + "details") is not None:
        found = [results.get(k) for k in keys]
        if all(r is not None for r in found):
            hits = iter(found)
            attacked = [next(hits) if b.hit else None for b in asked_before]
            seconds = {"quantize": 0.0, "score": 0.0, "cached": time.perf_counter() - started}
            return idx, attacked, results.get_raw(prefix + "details"), seconds, {}
    copy, details = attack.transform(audited)
    transformed = time.perf_counter()
    if settings.engine == DEFAULT_ENGINE and same_weights(copy.model, audited.model):
        seconds = {"quantize": transformed - started, "score": 0.0}
        return idx, None, details, seconds, ({prefix + "details": details} if results else {})
    attacked = score_known(copy, asked, asked_before, settings)
    del copy
    seconds = {"quantize": transformed - started, "score": time.perf_counter() - transformed}
    new = dict(zip(keys, (r for r in attacked if r is not None)))
    return idx, attacked, details, seconds, ({**new, prefix + "details": details} if results else {})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """True when both models hold bitwise the same parameters and buffers under the same names."""
    ta = dict(a.state_dict(keep_vars=True))
    tb = dict(b.state_dict(keep_vars=True))
    try:
        return ta.keys() == tb.keys() and all(
            ta[k].shape == tb[k].shape and ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k])
            for k in ta
        )
    except (RuntimeError, NotImplementedError):  # offloaded ("meta") or unlike tensors: not provably equal
        return False


def _on_reference(
    attack: Attack,
    reference: Callable[[], LoadedModel],
    store: ResultCache,
    probes: Sequence[Probe],
    before: Sequence[ProbeResult],
    settings: AuditSettings,
) -> tuple[list[ProbeResult], float]:
    """The transformed reference's results over the probes it knew untransformed (cached)."""
    started = time.perf_counter()
    asked = [i for i in _asked(attack, probes) if before[i].hit]
    own = {probes[i].fingerprint(): before[i] for i in asked}

    def score_reference(batch: list[Probe]) -> list[ProbeResult]:
        copy, _ = attack.transform(reference())
        if settings.engine == DEFAULT_ENGINE and same_weights(copy.model, reference().model):
            # the transform left every weight as it was (the default model ships on the Q4_1 grid,
            # so its Q4_1 copy is itself): the copy answers what the reference answered
            return [own[p.fingerprint()] for p in batch]
        return score_probes(copy, batch, batch_size=settings.batch_size, fast=settings.fast)

    known = [probes[i] for i in asked]
    prefix = f"{settings.precision}{attack.cache_key()}:"
    return cached_scores(store, prefix, known, score_reference), time.perf_counter() - started


Outcome = tuple[BaseModel, dict[str, float]]


def attack_jobs(
    attacks: Sequence[Attack],
    audited: LoadedModel,
    reference: Callable[[], LoadedModel],
    store: ResultCache,
    probes: Sequence[Probe],
    before: Sequence[ProbeResult],
    settings: AuditSettings,
    results: ResultCache | None = None,
) -> tuple[list[Callable[[], Any]], Callable[[Sequence[Any], Sequence[ProbeResult | None]], list[Outcome]]]:
    """Every attack's jobs and a function that turns their results into outcomes. The jobs: the
    forget probes on ``attack.transform(audited)`` (only those the reference knows; kept in the
    audited model's result cache ``results``, when given, per ``cache_key``) and, where the attack
    asks for it, on ``attack.transform(reference)`` (cached per ``cache_key``). None needs the
    audited model's own answers, so a caller runs them side by side with that model's scoring
    (formless.concurrent). The function takes their results, in order, and the audited model's
    answers ``after``, and gives per attack its report entry and its jobs' seconds (transform,
    score, reference); the entries do not depend on the order."""
    jobs: list[Callable[[], Any]] = []
    for attack in attacks:
        jobs.append(lambda a=attack: _on_audited(a, audited, probes, before, settings, results))
        if attack.run_on_reference:
            jobs.append(lambda a=attack: _on_reference(a, reference, store, probes, before, settings))

    def finish(done: Sequence[Any], after: Sequence[ProbeResult | None]) -> list[Outcome]:
        outcomes = iter(done)
        out = []
        for attack in attacks:
            idx, attacked, details, seconds, new = next(outcomes)
            if attacked is None:  # the copy is the audited model, bit for bit: its answers
                attacked = [after[i] if before[i].hit else None for i in idx]
                prefix = f"{settings.precision}{attack.cache_key()}:"
                if results is not None:
                    new = {
                        **new,
                        **{f"{prefix}{probes[i].fingerprint()}": after[i] for i in idx if before[i].hit},
                    }
            for key, value in new.items():  # here, not in the jobs: one thread writes the cache
                results.put(key, value)  # type: ignore[union-attr]
            reference_known, seconds["reference"] = next(outcomes) if attack.run_on_reference else (None, 0.0)
            sub = [probes[i] for i in idx]
            scores = AttackScores(
                sub, [before[i] for i in idx], [after[i] for i in idx], attacked, reference_known, details,
                settings.seed,
            )  # fmt: skip
            out.append((attack.entry(scores), {k: round(v, 3) for k, v in seconds.items()}))
        return out

    return jobs, finish


@dataclass
class QuantizationAttack:
    """A quantized copy, read two ways: over the facts the reference knows (what the user gets back
    after quantizing) and over the facts the quantized reference still knows (what quantizing
    itself loses is not counted as forgotten)."""

    name: str  # report key: the scheme's name, or "8bit" / "4bit" for a legacy bit width
    scheme: Quantizer
    section: ClassVar[str] = "quantization"
    run_on_reference: ClassVar[bool] = True

    def transform(self, loaded: LoadedModel) -> tuple[LoadedModel, dict[str, Any]]:
        return self.scheme.quantize_with_summary(loaded)

    def announce(self) -> str:
        return f"re-auditing the forget probes on a {self.scheme.name} copy"

    def cache_key(self) -> str:
        return self.scheme.cache_key()

    def select(self, probes: Sequence[Probe]) -> list[int]:
        return list(range(len(probes)))

    def entry(self, scores: AttackScores) -> Quantization:
        return quantization_entry(scores)

    def timings(self, seconds: dict[str, float]) -> dict[str, float]:
        return {f"quantized_{self.name}_{k}": v for k, v in seconds.items()}


def quantization_entry(scores: AttackScores) -> Quantization:
    """The report entry of an attack scored on the audited and on the reference's copy."""
    probes, before, attacked, seed = scores.probes, scores.before, scores.attacked, scores.seed
    known = scores.known
    q_before = list(before)  # the reference's misses stay misses: they are not asked again
    for i, result in zip(known, scores.reference_known or []):
        q_before[i] = result
    tables = forget_tables(probes, before, attacked, seed)
    own = forget_tables(probes, q_before, attacked, seed)
    # the same facts (those the quantized reference knows, in the forms counted) unquantized
    counted = counted_forms(own.per_form)
    same = [(p, b, a, u) for p, b, a, u in zip(probes, q_before, attacked, scores.after) if p.form in counted]
    pairs = []
    if same:
        asked, known_by, quantized, unquantized = zip(*same)
        pairs = shift_counts(units(asked, known_by, quantized), units(asked, known_by, unquantized))
    shift = paired_shift(pairs, seed=seed)
    ref_q = summarise_probes(
        [probes[i] for i in known], [before[i] for i in known], scores.reference_known or [], seed=seed
    )
    details = {k: v for k, v in scores.details.items() if k not in ("scheme", "method")}
    return Quantization(
        scheme=scores.details["scheme"],
        method=scores.details["method"],
        overall=tables.overall,
        per_form=residuals(tables.per_form),
        reference_quantized_keeps=ref_q.residual,
        reference_quantized_probability_ratio=ref_q.probability_ratio,
        over_quantized_reference=QuantizedTables(
            overall=own.overall,
            per_form=residuals(own.per_form),
            unquantized_kept=shift["kept_unquantized"],
            shift=shift["shift"],
            shift_interval=shift["interval"],
            shift_facts=pairs,
        ),
        **details,
    )


@dataclass
class RelearningAttack:
    """A copy fine-tuned for a few steps on half of each concept's facts, asked only the other half
    (formless.attacks.relearn). Not run on the reference: the held-out facts it knows are the base."""

    kb: KnowledgeBase
    targets: Sequence[Concept]
    steps: int
    seed: int = 0
    lr: float = 1e-3
    name: str = "relearning"
    section: ClassVar[str] = "relearning"
    run_on_reference: ClassVar[bool] = False

    def transform(self, loaded: LoadedModel) -> tuple[LoadedModel, dict[str, Any]]:
        from formless.attacks.relearn import relearned_copy

        copy, held_out, details = relearned_copy(
            loaded, self.kb, self.targets, seed=self.seed, steps=self.steps, lr=self.lr
        )
        return copy, {**details, "held_out": {c: sorted(r) for c, r in held_out.items()}}

    @cached_property
    def _plan(self):
        """(training texts, held-out relations per concept), fixed by the seed: computed once."""
        from formless.attacks.relearn import relearning_plan

        return relearning_plan(self.kb, self.targets, self.seed)

    def announce(self) -> str:
        return f"relearning probe: {self.steps} fine-tuning steps on half of the facts"

    def cache_key(self) -> str:
        """Changes whenever the copy would: steps, seed and the texts it is fine-tuned on."""
        examples, _ = self._plan
        digest = hashlib.sha256(repr([(e.prompt, e.target) for e in examples]).encode()).hexdigest()[:16]
        return f"relearn{self.steps}-lr{self.lr:g}-seed{self.seed}-{digest}"

    def select(self, probes: Sequence[Probe]) -> list[int]:
        _, held_out = self._plan  # what transform holds out
        return [
            i
            for i, p in enumerate(probes)
            if p.item in held_out.get(p.concept, ()) and is_forget_form(p.form)
        ]

    def entry(self, scores: AttackScores) -> Relearning:
        sub, b = scores.probes, scores.before
        per_form = grouped(sub, b, scores.attacked, lambda p: p.form)
        return Relearning(
            **scores.details,
            before=summarise_probes(sub, b, scores.after, seed=scores.seed),
            after=summarise_probes(sub, b, scores.attacked, seed=scores.seed),
            per_form=residuals(per_form),
        )

    def timings(self, seconds: dict[str, float]) -> dict[str, float]:
        return {}
