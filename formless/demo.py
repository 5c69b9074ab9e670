"""The README's main job: forget a concept from the default model and show, side by side, what the
model answered before and after, about the concept and about unrelated facts."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from formless.api import forget
from formless.generation import generate
from formless.knowledge import Fact, load_facts
from formless.matching import contains_answer
from formless.models import load_model


def _probe_sets(concept: str) -> tuple[list[Fact], list[Fact]]:
    concepts, general = load_facts()
    if concept in concepts:
        target = list(concepts[concept].facts)
    else:  # unknown concept: generic prompts, judged by the concept's own name appearing
        target = [
            Fact(concept, "about", f"Tell me about {concept}.", f"{concept} is", concept, (concept,)),
            Fact(
                concept,
                "who",
                f"Who or what is {concept}?",
                f"Everyone knows {concept} because",
                concept,
                (concept,),
            ),
        ]
    return target, list(general[:: max(1, len(general) // 8)])[:8]  # a spread of subjects


def _short(text: str, limit: int = 90) -> str:
    """One line, cut at a word boundary: a table cell a person can scan."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def run_demo(concept: str, *, model: str, out: Path, cache, console: Console) -> dict:
    loaded = load_model(model, cache=cache)
    console.print(f"model [bold]{model}[/bold] loaded in {loaded.load_seconds:.1f}s from {loaded.path}")
    target, unrelated = _probe_sets(concept)
    rows = [(f, "chat") for f in target] + [(f, "plain") for f in target] + [(f, "chat") for f in unrelated]

    def ask() -> list[str]:
        chat = [f.question for f, form in rows if form == "chat"]
        plain = [f.completion for f, form in rows if form == "plain"]
        answers_chat = iter(generate(loaded.model, loaded.tokenizer, chat, max_new_tokens=32))
        answers_plain = iter(generate(loaded.model, loaded.tokenizer, plain, chat=False, max_new_tokens=16))
        return [next(answers_chat) if form == "chat" else next(answers_plain) for _, form in rows]

    start = time.perf_counter()
    before = ask()
    console.print(f"asked {len(rows)} prompts before the edit ({time.perf_counter() - start:.0f}s)")
    outcome = forget(concept, model=loaded, out=out, force=True, cache=cache)
    m = outcome.manifest
    console.print(
        f"ROCR edit of layers {m['layers']}: {m['seconds']['edit']:.2f}s "
        f"(statistics {m['seconds']['statistics']:.1f}s, 0 = cached); checkpoint saved to {out}"
    )
    after = ask()
    table = Table(title=f"'{concept}' redirected to '{m['redirect']}'", show_lines=True)
    for col in ("form", "prompt", "before", "after", "true answer\nafter?"):
        table.add_column(col)
    counts: dict[str, list[int]] = {}
    for (fact, form), b, a in zip(rows, before, after):
        group = f"{'concept' if fact in target else 'unrelated'} {form}"
        known, kept = contains_answer(b, fact.aliases), contains_answer(a, fact.aliases)
        counts.setdefault(group, [0, 0, 0])
        counts[group][0] += 1
        counts[group][1] += known
        counts[group][2] += known and kept
        mark = "[red]yes[/red]" if kept and fact in target else ("yes" if kept else "no")
        prompt = fact.question if form == "chat" else fact.completion + " …"
        table.add_row(form, escape(prompt), escape(_short(b)), escape(_short(a)), mark)
    console.print(table)
    for group, (n, known, kept) in counts.items():
        console.print(f"{group:>16}: true answer before {known}/{n}, still there after {kept}/{known}")
    return counts
