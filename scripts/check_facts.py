"""Verify formless/data/facts.json against the default model (SmolLM2-135M-Instruct).

Every entry is asked in both forms, as a chat question (``chat=True``) and as a plain completion prompt
(``chat=False``); it passes when both greedy answers contain one of its aliases. The script also checks
the file's rules (concept names verbatim in prompts, no concept names in ``general``, no trailing space,
at least MIN_FACTS passing facts per concept).
Exits 1 when anything fails. ``--write-pruned PATH`` writes a copy that keeps only passing entries.
Run: FORMLESS_CACHE=/tmp/fcache python scripts/check_facts.py [--write-pruned PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from formless.generation import generate
from formless.matching import contains_answer, normalise
from formless.models import DEFAULT_MODEL, load_model

FACTS = Path(__file__).resolve().parents[1] / "formless" / "data" / "facts.json"
MIN_FACTS = 6  # per concept
Entry = dict[str, Any]


def rule_errors(data: dict[str, Any]) -> dict[int, str]:
    """Static rule violations, keyed by ``id`` of the offending entry."""
    names = [c["name"] for c in data["concepts"]]
    errors: dict[int, str] = {}
    for concept in data["concepts"]:
        for fact in concept["facts"]:
            missing = [k for k in ("question", "completion") if concept["name"] not in fact[k]]
            if missing:
                errors[id(fact)] = f"name {concept['name']!r} not verbatim in {missing}"
    for fact in data["general"]:
        text = normalise(" ".join([fact["question"], fact["completion"], *fact["aliases"]]))
        hits = [n for n in names if f" {normalise(n)} " in f" {text} "]
        if hits:
            errors[id(fact)] = f"mentions concept {hits}"
    for fact in [f for c in data["concepts"] for f in c["facts"]] + data["general"]:
        if fact["completion"] != fact["completion"].rstrip():
            errors[id(fact)] = "completion ends with whitespace"
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, default=FACTS)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--write-pruned", type=Path, metavar="PATH", help="write only passing entries here")
    args = parser.parse_args(argv)

    data = json.loads(args.facts.read_text())
    labelled: list[tuple[str, Entry]] = [(c["name"], f) for c in data["concepts"] for f in c["facts"]]
    labelled += [(f"general:{f['subject']}", f) for f in data["general"]]
    errors = rule_errors(data)

    loaded = load_model(args.model)
    answers: dict[str, list[str]] = {}
    for form, key, chat in (("chat", "question", True), ("completion", "completion", False)):
        prompts = [f[key] for _, f in labelled]
        answers[form] = generate(
            loaded.model,
            loaded.tokenizer,
            prompts,
            chat=chat,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
        )

    passed: set[int] = set()
    for i, (label, fact) in enumerate(labelled):
        ok_all = id(fact) not in errors
        if not ok_all:
            print(f"FAIL rule       {label}/{fact['relation']}: {errors[id(fact)]}")
        for form in ("chat", "completion"):
            answer = answers[form][i]
            ok = contains_answer(answer, fact["aliases"])
            ok_all &= ok
            flat = " ".join(answer.split())
            print(f"{'PASS' if ok else 'FAIL'} {form:<10} {label}/{fact['relation']}: {flat!r}")
        if ok_all:
            passed.add(id(fact))

    print("\nsummary:")
    too_few = 0
    for concept in data["concepts"]:
        n = sum(id(f) in passed for f in concept["facts"])
        too_few += n < MIN_FACTS
        note = f"  (fewer than {MIN_FACTS})" if n < MIN_FACTS else ""
        print(f"  {concept['name']:<20} {n}/{len(concept['facts'])}{note}")
    n = sum(id(f) in passed for f in data["general"])
    print(f"  {'general':<20} {n}/{len(data['general'])}")
    print(f"  total {len(passed)}/{len(labelled)} entries pass (both forms)")

    if args.write_pruned:
        for concept in data["concepts"]:
            concept["facts"] = [f for f in concept["facts"] if id(f) in passed]
        data["general"] = [f for f in data["general"] if id(f) in passed]
        args.write_pruned.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote pruned facts to {args.write_pruned}")
    return 0 if len(passed) == len(labelled) and not too_few else 1


if __name__ == "__main__":
    sys.exit(main())
