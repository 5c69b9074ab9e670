"""Check knowledge files against a model: which facts the model knows, as a chat question and as a
plain completion (greedy answer contains an alias).

The audit elicits facts itself (a fact counts only where the reference model knows it in the form
asked), so unknown facts are not errors; this script helps authors pick facts a small model knows.
Run: FORMLESS_CACHE=/tmp/fcache python scripts/check_facts.py formless/data/knowledge/people.yaml
Exits 1 when a file is invalid or a concept has fewer than --min-known facts known in some form.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from formless.generation import generate
from formless.knowledge import KnowledgeError, parse_file
from formless.matching import contains_answer
from formless.models import DEFAULT_MODEL, load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--concept", action="append", help="only these concepts")
    parser.add_argument("--min-known", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        parsed = [parse_file(f) for f in args.files]
    except KnowledgeError as exc:
        print(f"INVALID {exc}")
        return 1
    rows = [(c.name, f) for p in parsed for c in p.concepts for f in c.facts]
    rows += [(f"general:{f.subject}", f) for p in parsed for f in p.general]
    if args.concept:
        rows = [r for r in rows if r[0] in args.concept]
    loaded = load_model(args.model)
    tok = loaded.tokenizer
    chat = generate(loaded.model, tok, [f.question for _, f in rows], chat=True, max_new_tokens=24)
    plain = generate(loaded.model, tok, [f.completion for _, f in rows], chat=False, max_new_tokens=16)
    known: dict[str, int] = {}
    for (label, fact), a_chat, a_plain in zip(rows, chat, plain):
        ok_chat, ok_plain = contains_answer(a_chat, fact.aliases), contains_answer(a_plain, fact.aliases)
        known[label] = known.get(label, 0) + (ok_chat or ok_plain)
        mark = f"{'Q' if ok_chat else '-'}{'C' if ok_plain else '-'}"
        print(f"{mark} {label} / {fact.relation}: Q→ {a_chat[:70]!r} | C→ {a_plain[:50]!r}")
    low = {k: v for k, v in known.items() if not k.startswith("general:") and v < args.min_known}
    print(f"known (question or completion) per concept: {known if len(known) < 60 else len(known)}")
    if low:
        print(f"FEWER THAN {args.min_known} KNOWN: {low}")
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main())
