"""Scoring probes on one model: greedy generations (deduplicated, batched), teacher-forced answer
probabilities, and option likelihoods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from formless.audit.probes import Probe
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


def _generations(engine: GenerationEngine, probes: Sequence[Probe]) -> dict[tuple, str]:
    wanted = {(p.prompt, p.chat, p.max_new_tokens) for p in probes if p.generates}
    done: dict[tuple, str] = {}
    for chat in (True, False):
        for budget in sorted({w[2] for w in wanted if w[1] == chat}):
            prompts = sorted({w[0] for w in wanted if w[1] == chat and w[2] == budget}, key=len)
            outputs = engine.generate(prompts, chat=chat, max_new_tokens=budget)
            done.update({(p, chat, budget): o for p, o in zip(prompts, outputs)})
    return done


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
    generations = _generations(runner, probes)
    pairs = [(p.prompt, p.answer, p.chat) for p in probes if p.answer is not None and not p.options]
    pairs += [(p.prompt, o, p.chat) for p in probes for o in p.options]
    probs = _probabilities(runner, pairs)
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
