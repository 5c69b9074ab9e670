"""Scoring probes on one model: greedy generations (deduplicated, batched), teacher-forced answer
probabilities, and option likelihoods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from formless.audit.probes import Probe
from formless.concurrent import halves, side_by_side
from formless.engines import DEFAULT_ENGINE, GenerationEngine, make_engine
from formless.matching import contains_answer, normalise
from formless.models.loading import LoadedModel


@dataclass(frozen=True)
class ProbeResult:
    hit: bool  # the model answers right: alias in its generation, or the right option most likely
    probability: float | None  # teacher-forced probability of the gold answer (or the right option)
    output: str | None = None  # the generation, or the chosen option
    chosen: int | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        if data["probability"] is not None:
            data["probability"] = round(data["probability"], 6)
        return data


def spelled_hit(generation: str, aliases: Sequence[str]) -> bool:
    """A one-character-per-line answer, joined back up, contains an alias (spaces ignored)."""
    joined = normalise(generation).replace(" ", "")
    return any(normalise(a).replace(" ", "") in joined for a in aliases if normalise(a))


def _generations(engine: GenerationEngine, probes: Sequence[Probe]) -> tuple[dict[tuple, str], dict]:
    """({(prompt, chat, budget): generation}, {(prompt, answer, chat): probability}): each prompt is
    generated once, and the engine scores one gold answer per prompt on the same pass where it can
    (``generate_scored``: the prompt is then computed once for both)."""
    wanted = {(p.prompt, p.chat, p.max_new_tokens) for p in probes if p.generates}
    # a generation may stop once every probe asking it has its answer settled (not for spelled-out
    # answers, which are judged on the whole text joined up)
    stops: dict[tuple, list[tuple[str, ...]] | None] = {}
    for p in probes:
        if p.generates:
            key = (p.prompt, p.chat, p.max_new_tokens)
            if p.match == "alias" and stops.get(key, []) is not None:
                stops.setdefault(key, []).append(tuple(p.aliases))
            else:
                stops[key] = None
    gold: dict[tuple[str, bool], str] = {}
    for p in probes:
        if p.generates and p.answer is not None and not p.options:
            gold.setdefault((p.prompt, p.chat), p.answer)
    done: dict[tuple, str] = {}
    scored: dict[tuple[str, str, bool], float] = {}
    # an engine that takes a budget per prompt gets every budget of a template in one call: a
    # 96-token free generation then rides in a batch with the 24-token answers instead of running
    # alone (on a CPU each decoding step costs about the same for 1 row as for 20)
    mixed = getattr(engine, "mixed_budgets", False)
    for chat in (True, False):
        budgets = sorted({w[2] for w in wanted if w[1] == chat})
        for group in [budgets] if mixed and budgets else [[b] for b in budgets]:
            # by budget, then length: rows of one budget (and similar answer lengths: the spelled-out
            # answers are long) share batches, and a batch's padding stays small
            asked = sorted(
                (w for w in wanted if w[1] == chat and w[2] in group), key=lambda w: (w[2], len(w[0]), w)
            )
            prompts = [w[0] for w in asked]
            answers = [gold.pop((p, chat), None) for p in prompts]  # scored with its first budget only
            stop_at = [stops[w] for w in asked]
            outputs, probs = engine.generate_scored(
                prompts, answers, chat=chat,
                max_new_tokens=[w[2] for w in asked] if mixed else group[0], stop_at=stop_at,
            )  # fmt: skip
            done.update({w: o for w, o in zip(asked, outputs)})
            scored.update({(p, a, chat): v for p, a, v in zip(prompts, answers, probs) if v is not None})
    return done, scored


def _probabilities(engine: GenerationEngine, pairs: Sequence[tuple[str, str, bool]]) -> dict:
    unique = sorted(set(pairs), key=lambda t: (t[2], len(t[0]) + len(t[1])))
    scores: dict[tuple[str, str, bool], float] = {}
    for chat in (True, False):
        group = [u for u in unique if u[2] == chat]
        if group:
            values = engine.answer_probability([g[0] for g in group], [g[1] for g in group], chat=chat)
            scores.update(zip(group, values))
    return scores


def score_probes(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    *,
    batch_size: int = 32,
    fast: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> list[ProbeResult]:
    """One result per probe, in order. Identical prompts are generated once. ``fast`` runs the
    model in bf16 where the CPU has it: quicker, but answers then depend more on batch padding.
    ``engine`` (formless.engines) generates and scores; only the default suits an in-memory copy."""
    runner = make_engine(engine, loaded, batch_size=batch_size, fast=fast)
    generations, probs = _generations(runner, probes)
    pairs = [(p.prompt, p.answer, p.chat) for p in probes if p.answer is not None and not p.options]
    pairs += [(p.prompt, o, p.chat) for p in probes for o in p.options]
    probs.update(_probabilities(runner, [pair for pair in pairs if pair not in probs]))
    results = []
    for p in probes:
        if p.options:
            option_probs = [probs[(p.prompt, o, p.chat)] for o in p.options]
            chosen = max(range(len(option_probs)), key=option_probs.__getitem__)
            results.append(
                ProbeResult(chosen == p.correct, option_probs[p.correct], p.options[chosen], chosen)
            )
            continue
        output = generations.get((p.prompt, p.chat, p.max_new_tokens))
        if output is None:
            hit = False
        elif p.match == "spelled":
            hit = spelled_hit(output, p.aliases)
        else:
            hit = contains_answer(output, p.aliases)
        prob = probs[(p.prompt, p.answer, p.chat)] if p.answer is not None else None
        results.append(ProbeResult(hit, prob, output))
    return results


Scores = list[ProbeResult]


def scoring_jobs(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    *,
    batch_size: int = 32,
    fast: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> tuple[list[Callable[[], Scores]], Callable[[Sequence[Scores]], Scores]]:
    """``score_probes`` as independent jobs for ``formless.concurrent.side_by_side`` (two halves of
    the probes for a CPU model: ~1.4x faster on 2 cores; one job for another engine or device) and
    the function that merges their results back into probe order. The split is by prompt and fixed,
    so the results do not depend on how many jobs run at once."""
    parts = (
        [list(range(len(probes)))]
        if engine != DEFAULT_ENGINE or loaded.device.type != "cpu"
        else [part for part in halves([p.prompt for p in probes]) if part]
    )
    jobs = [
        lambda part=part: score_probes(
            loaded, [probes[i] for i in part], batch_size=batch_size, fast=fast, engine=engine
        )
        for part in parts
    ]

    def merge(results: Sequence[Scores]) -> Scores:
        merged: list[ProbeResult | None] = [None] * len(probes)
        for part, scored in zip(parts, results):
            for i, result in zip(part, scored):
                merged[i] = result
        return merged  # type: ignore[return-value]

    return jobs, merge


def score_probes_halved(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    *,
    batch_size: int = 32,
    fast: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> Scores:
    """``score_probes`` with its ``scoring_jobs`` run side by side."""
    jobs, merge = scoring_jobs(loaded, probes, batch_size=batch_size, fast=fast, engine=engine)
    return merge(side_by_side(jobs))
