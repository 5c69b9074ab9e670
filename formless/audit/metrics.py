"""The audit's figures as pure functions: residual knowledge, chance levels, bootstrap intervals and
the Form-Dependent Bias.

Why each piece exists:
- *Paired forms.* A true/false fact is two statements (the true one and one with a distractor); a
  model that says "True" to everything gets half the statements right and none of the facts, so a
  fact counts only when both are judged right (chance 1/4 for a coin-flipping model).
- *Chance.* Recognition forms are right by luck 1/k of the time. A form whose reference accuracy is
  not significantly above chance (one-sided exact binomial test, p < 0.05) measures nothing on
  this model: it is reported as "not measurable" and left out of totals and of the bias.
- *The prior.* A model that does not know the concept does not guess uniformly: some options are
  likelier whatever is asked, and a prompt can carry its answer's cue ("Michael Jordan played
  professional basketball in the" -> NBA). Each recognition probe that names the concept has a
  prior twin about a made-up name (``formless.audit.forms.base.prior_twin``), and with
  ``prior_twins="all"`` every probe of every form that names it; a known fact the twin also gets
  right is right without the knowledge, so beside the plain residual each such form reports the
  residual over the known facts its twin gets wrong (``residual_beyond_prior``). That figure has a
  floor above 0: a second made-up name gets 16-18% of the facts the first one misses right
  (measured on the default model's option-likelihood facts, ``benchmarks/recognition_prior.py``),
  and so would an edit that made the concept as unknown as a made-up name. So
  recognition probes have a twin per made-up name (``PRIOR_NAMES``), the share of them a fact's
  right answer wins is that fact's own chance ``q``, and the form's residual above the prior is
  ``(kept - sum q) / (known - sum q)`` over the known facts: 0 when the audited model keeps what a
  model without the concept would, 1 when it keeps every fact (the uniform chance correction is
  the same formula with ``q = 1/k``).
- *Cues.* Indirect reference never names the concept, so it has no made-up-name twin; its twins ask
  the question about each entity the description names instead ("In which country is Paris?" for
  "the tower on the Champ de Mars in Paris"). A fact the reference answers right about any of them
  is implied by the description, and its beyond-the-prior residual leaves it out
  (``formless.audit.forms.reach.Indirect``).
- *Intervals.* Residuals rest on a few dozen facts. Every figure carries a 95% percentile bootstrap
  interval, resampling facts (all probes of one fact move together, since they are not independent).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from formless.audit.engine import ProbeResult
from formless.audit.probes import Probe

PAIRED_FORMS = frozenset({"true_false"})  # every variant of a fact must be judged right
MIN_KNOWN_FOR_BIAS = 10  # forms with fewer known facts are too noisy to set the bias figure
ALPHA = 0.05  # significance of "the reference is above chance"
RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Unit:
    """One scored fact in one form: what the reference did and what the audited model did."""

    form: str
    fact: str  # "concept|item": the bootstrap resamples these
    known: bool  # the reference answered right
    kept: bool  # ... and so does the audited model
    chance: float  # probability of a right answer by guessing (0 for generated answers)
    p_before: float | None = None
    p_after: float | None = None
    # the reference also answers the fact's (first) prior twin (made-up name) right; None: no twin
    prior: bool | None = None
    # the share of the fact's prior twins (one per made-up name) the reference answers right
    prior_rate: float | None = None


def _product(values: Iterable[float | None]) -> float | None:
    out = 1.0
    for v in values:
        if v is None:
            return None
        out *= v
    return out


def unit_key(probe: Probe) -> tuple[str, str, str]:
    """The fact a probe counts toward in its form: a paired form's variants share one, and a prior
    twin shares the key of the probe it stands beside."""
    if probe.form in PAIRED_FORMS:
        return (probe.form, probe.concept, probe.item)
    return (probe.form, probe.concept, probe.fact_key)


def known_facts(probes: Sequence[Probe], before: Sequence[ProbeResult]) -> set[tuple[str, str, str]]:
    """The facts (``unit_key``) the reference knows: every probe of the fact that is not a twin right."""
    hits: dict[tuple[str, str, str], bool] = {}
    for p, b in zip(probes, before):
        if not p.prior_twin:
            hits[unit_key(p)] = hits.get(unit_key(p), True) and b.hit
    return {k for k, known in hits.items() if known}


def units(
    probes: Sequence[Probe], before: Sequence[ProbeResult], after: Sequence[ProbeResult | None]
) -> list[Unit]:
    """Probes → units; the variants of a paired form's fact collapse into one unit, and a prior
    twin joins the unit of the probe it stands beside (it sets ``prior`` and ``prior_rate``,
    nothing else; a paired fact's twin about one name is right when all its variants are)."""
    grouped: dict[tuple[str, str, str], list[tuple[Probe, ProbeResult, ProbeResult | None]]] = {}
    twins: dict[tuple[str, str, str], dict[int, list[ProbeResult]]] = defaultdict(lambda: defaultdict(list))
    cued: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    order: list[tuple[str, str, str]] = []
    for p, b, a in zip(probes, before, after):
        key = unit_key(p)
        if p.prior_twin and p.cue:
            cued[key].append(b.hit)
            continue
        if p.prior_twin:
            twins[key][p.twin].append(b)
            continue
        if key not in grouped:
            grouped[key] = []
            order.append(key)
        grouped[key].append((p, b, a))
    # a form whose twins ask about the description's entities: a fact whose description names none
    # has nothing that implies its answer
    cued_forms = {form for form, _, _ in cued}
    out = []
    for key in order:
        members = grouped[key]
        named = {k: all(b.hit for b in results) for k, results in twins[key].items()} if key in twins else {}
        prior = named.get(0) if named else None
        prior_rate = statistics.fmean(named.values()) if named else None
        if key[0] in cued_forms:  # right about any entity the description names: implied, not recalled
            prior = any(cued.get(key, ()))
        known = all(b.hit for _, b, _ in members)
        kept = known and all(a is not None and a.hit for _, _, a in members)
        chance = math.prod(1 / len(p.options) if p.options else 0.0 for p, _, _ in members)
        p_before = _product(b.probability for _, b, _ in members)
        p_after = _product(a.probability if a else None for _, _, a in members) if known else None
        first = members[0][0]
        fact = f"{first.concept}|{first.item}"
        out.append(Unit(first.form, fact, known, kept, chance, p_before, p_after, prior, prior_rate))
    return out


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def chance_corrected(accuracy: float | None, chance: float) -> float | None:
    """(acc − c) / (1 − c): 0 at guessing, 1 when always right."""
    if accuracy is None or chance <= 0:
        return accuracy
    return (accuracy - chance) / (1 - chance)


def _cluster_counts(
    items: Sequence[Unit], expected: Callable[[Unit], float] = lambda _: 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(known, kept, expected) sums per fact, the facts in first-seen order; ``expected``: what a
    model without the concept keeps of a known unit (0: the plain residual)."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for u in items:
        row = sums[u.fact]
        row[0] += u.known
        row[1] += u.kept
        row[2] += expected(u) if u.known else 0.0
    table = np.array(list(sums.values())).reshape(-1, 3)
    return table[:, 0], table[:, 1], table[:, 2]


def _ratio_interval(
    known: np.ndarray, kept: np.ndarray, expected: np.ndarray, seed: int, resamples: int
) -> list[float] | None:
    """95% percentile bootstrap interval of (kept − expected) / (known − expected), resampling facts
    (a resample with less than one fact above ``expected`` has no figure)."""
    if not len(known) or known.sum() == 0:
        return None
    idx = _draws(len(known), seed, resamples)
    k, s, e = known[idx].sum(axis=1), kept[idx].sum(axis=1), expected[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _percentiles(np.where(k - e >= 1, (s - e) / np.maximum(k - e, 1e-12), np.nan))


def _draws(n: int, seed: int, resamples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentiles(values: np.ndarray) -> list[float] | None:
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [round(float(lo), 4), round(float(hi), 4)]


def residual_interval(
    items: Sequence[Unit], *, seed: int = 0, resamples: int = RESAMPLES
) -> list[float] | None:
    """95% bootstrap interval of kept / known, resampling facts."""
    return _ratio_interval(*_cluster_counts(items), seed, resamples)


def own_chance(unit: Unit) -> float:
    """What a model without the concept keeps of this fact: the share of its prior twins it gets
    right, or uniform chance for a fact whose prompt never names the concept (no twin)."""
    return unit.chance if unit.prior_rate is None else unit.prior_rate


def above_prior(kept: float, known: float, expected: float) -> float | None:
    """(kept − Σq) / (known − Σq): the residual above what a model without the concept keeps (Σq:
    the facts' own chances summed). None when the prior keeps nearly everything (< 1 fact left)."""
    return None if known - expected < 1 else (kept - expected) / (known - expected)


def above_prior_interval(
    known_units: Sequence[Unit], *, seed: int = 0, resamples: int = RESAMPLES
) -> list[float] | None:
    """95% bootstrap interval of ``above_prior`` over known units, resampling facts."""
    return _ratio_interval(*_cluster_counts(known_units, own_chance), seed, resamples)


def shift_counts(quantized: Sequence[Unit], unquantized: Sequence[Unit]) -> list[list[int]]:
    """Per known fact, [known units, kept by the quantized copy, kept by the model unquantized]:
    the same units (built from the same probes and reference results) scored two ways."""
    if len(quantized) != len(unquantized) or any(
        (q.form, q.fact, q.known) != (u.form, u.fact, u.known) for q, u in zip(quantized, unquantized)
    ):
        raise ValueError("the two unit lists must hold the same facts in the same order")
    rows: dict[str, list[int]] = {}
    for q, u in zip(quantized, unquantized):
        if q.known:
            row = rows.setdefault(q.fact, [0, 0, 0])
            row[0] += 1
            row[1] += q.kept
            row[2] += u.kept
    return list(rows.values())


def paired_shift(rows: Sequence[Sequence[float]], *, seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """What quantizing changes in the residual over the *same* known facts: (kept quantized − kept
    unquantized) / known, with a 95% bootstrap interval resampling facts (``rows`` from
    ``shift_counts``). Comparing residuals over different fact sets (all the reference knows, and the
    share its quantized copy still knows) mixes in which facts each set holds."""
    table = np.array(rows, dtype=float).reshape(-1, 3)
    known, quantized, unquantized = table.sum(axis=0) if len(table) else (0.0, 0.0, 0.0)
    out = {"known": int(known), "kept_quantized": int(quantized), "kept_unquantized": int(unquantized)}
    if not known:
        return {**out, "shift": None, "interval": None}
    idx = _draws(len(table), seed, resamples)
    k = table[idx, 0].sum(axis=1)
    d = (table[idx, 1] - table[idx, 2]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(k > 0, d / np.maximum(k, 1e-12), np.nan)
    return {
        **out,
        "shift": round(float((quantized - unquantized) / known), 4),
        "interval": _percentiles(draws),
    }


def summarise(items: Sequence[Unit], *, seed: int = 0) -> dict:
    """Residual knowledge over what the reference knows (after / before), with its interval and,
    for guessable forms, the reference's accuracy against chance."""
    items = list(items)
    known = [u for u in items if u.known]
    kept = sum(u.kept for u in known)
    pb = [u.p_before for u in known if u.p_before is not None and u.p_after is not None]
    pa = [u.p_after for u in known if u.p_before is not None and u.p_after is not None]
    residual = kept / len(known) if known else None
    out = {
        "probes": len(items),
        "known": len(known),
        "coverage": round(len(known) / len(items), 4) if items else None,
        "still_answered": kept,
        "residual": None if residual is None else round(residual, 4),
        "interval": residual_interval(items, seed=seed),
        "probability_before": round(statistics.fmean(pb), 5) if pb else None,
        "probability_after": round(statistics.fmean(pa), 5) if pa else None,
        "probability_ratio": round(sum(pa) / sum(pb), 4) if pb and sum(pb) > 0 else None,
        "measurable": bool(known),
    }
    twinned = [u for u in known if u.prior is not None]
    if twinned:
        beyond = [u for u in twinned if not u.prior]
        kept_beyond = sum(u.kept for u in beyond)
        out.update(
            {
                "known_by_prior": len(twinned) - len(beyond),  # a made-up name gets these right too
                "known_beyond_prior": len(beyond),
                "still_answered_beyond_prior": kept_beyond,
                "residual_beyond_prior": round(kept_beyond / len(beyond), 4) if beyond else None,
                "interval_beyond_prior": residual_interval(beyond, seed=seed),
            }
        )
    if any(u.prior_rate is not None for u in known):
        expected = sum(map(own_chance, known))
        value = above_prior(kept, len(known), expected)
        out.update(
            {
                "prior_keeps": round(expected / len(known), 4),  # a model without the concept, expected
                "residual_above_prior": None if value is None else round(value, 4),
                "interval_above_prior": above_prior_interval(known, seed=seed),
            }
        )
    chance = statistics.fmean(u.chance for u in items) if items else 0.0
    if chance > 0:
        p_value = binomial_sf(len(known), len(items), chance)
        out.update(
            {
                "chance": round(chance, 4),
                "reference_accuracy": out["coverage"],
                "reference_above_chance": round(chance_corrected(len(known) / len(items), chance), 4),
                "reference_p_value": round(p_value, 6),
                "measurable": bool(known) and p_value < ALPHA,
                # a forgotten fact is still "kept" by luck 1/k of the time
                "residual_above_chance": None
                if residual is None
                else round(chance_corrected(residual, chance), 4),
            }
        )
    return out


def comparable_residual(stats: dict) -> float | None:
    """The figure forms are compared on: above the model's own prior where the form has prior twins,
    else above uniform chance where guessing can answer, else the residual."""
    if stats.get("residual_above_prior") is not None:
        return stats["residual_above_prior"]
    return stats.get("residual_above_chance", stats.get("residual"))


def bias_forms(per_form: dict[str, dict], include: Callable[[str], bool] = lambda _: True) -> list[str]:
    return [
        name
        for name, s in per_form.items()
        if include(name)
        and s.get("measurable", True)
        and comparable_residual(s) is not None
        and s["known"] >= MIN_KNOWN_FOR_BIAS
    ]


def _bias(values: Sequence[float]) -> tuple[float, float]:
    return statistics.pstdev(values), max(values) - min(values)


def form_dependent_bias(
    per_form: dict[str, dict],
    items: Sequence[Unit] = (),
    *,
    include: Callable[[str], bool] = lambda _: True,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> dict:
    """Spread of residual knowledge across measurable forms with enough known facts (0: every form
    keeps the same share), with a bootstrap interval of the std when the units are given."""
    names = bias_forms(per_form, include)
    if len(names) < 2:
        return {"std": None, "range": None, "forms": len(names), "interval": None}
    values = {n: comparable_residual(per_form[n]) for n in names}
    std, spread = _bias(list(values.values()))
    out = {
        "std": round(std, 4),
        "range": round(spread, 4),
        "forms": len(names),
        "worst_form": max(values, key=values.get),
        "interval": None,
    }
    chosen = [u for u in items if u.form in names]
    if chosen:
        facts = list(dict.fromkeys(u.fact for u in chosen))
        index = {f: i for i, f in enumerate(facts)}
        known = np.zeros((len(facts), len(names)))
        kept = np.zeros((len(facts), len(names)))
        # what a model without the concept keeps: the fact's own prior where the form compares
        # above it, else uniform chance (the same correction with q = 1/k), else nothing
        expected = np.zeros((len(facts), len(names)))
        chance = [per_form[n].get("chance", 0.0) or 0.0 for n in names]
        by_prior = [per_form[n].get("residual_above_prior") is not None for n in names]
        for u in chosen:
            j = names.index(u.form)
            known[index[u.fact], j] += u.known
            kept[index[u.fact], j] += u.kept
            if u.known:
                expected[index[u.fact], j] += own_chance(u) if by_prior[j] else chance[j]
        idx = _draws(len(facts), seed, resamples)
        # resamples x forms
        k, s, e = known[idx].sum(axis=1), kept[idx].sum(axis=1), expected[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            residual = np.where(k - e > 0, (s - e) / np.maximum(k - e, 1e-12), np.nan)
        stds = np.array([np.nan if np.isnan(r).any() else np.std(r) for r in residual])
        out["interval"] = _percentiles(stds)
    return out
