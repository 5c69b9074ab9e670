"""Scoring with the reference cache: the reference (and each transformed reference) is scored once
per probe and model hash; the audited model is asked only what the reference knows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from formless.audit.engine import ProbeResult, score_probes
from formless.audit.probes import Probe
from formless.audit.reference import ResultCache
from formless.audit.settings import AuditSettings
from formless.engines import DEFAULT_ENGINE
from formless.models.loading import LoadedModel


def rounded(result: ProbeResult) -> ProbeResult:
    """Results go through their JSON form so fresh and cached numbers aggregate identically."""
    return ProbeResult(**result.to_json())


def cached_scores(
    cache: ResultCache,
    prefix: str,
    probes: Sequence[Probe],
    score: Callable[[list[Probe]], list[ProbeResult]],
) -> list[ProbeResult]:
    """The cached results under ``prefix``; ``score`` is called once, on the probes not cached yet."""
    keys = [f"{prefix}{p.fingerprint()}" for p in probes]
    missing = [p for p, k in zip(probes, keys) if cache.get(k) is None]
    if missing:
        for p, r in zip(missing, score(missing)):
            cache.put(f"{prefix}{p.fingerprint()}", r)
    return [cache.get(k) for k in keys]  # type: ignore[misc]


def score_known(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    before: Sequence[ProbeResult],
    settings: AuditSettings,
    engine: str = DEFAULT_ENGINE,
) -> list[ProbeResult | None]:
    """Scores of the probes the reference answered right; None for the rest (they cannot count).
    ``engine``: transformers unless the caller passes ``settings.engine`` for a model read from disk
    (the attacks' in-memory copies stay on transformers, see formless.engines)."""
    known = [i for i, b in enumerate(before) if b.hit]
    scores = score_probes(
        loaded, [probes[i] for i in known], batch_size=settings.batch_size, fast=settings.fast, engine=engine
    )
    after: list[ProbeResult | None] = [None] * len(probes)
    for i, result in zip(known, scores):
        after[i] = rounded(result)
    return after
