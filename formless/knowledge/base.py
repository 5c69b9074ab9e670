"""Loading the shipped knowledge base and users' own YAML/JSON files into one lookup."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from formless import DATA_DIR
from formless.errors import FormlessError
from formless.knowledge.schema import Concept, Fact, KnowledgeFile

BUILTIN_DIR = DATA_DIR / "knowledge"


class KnowledgeError(FormlessError):
    """A knowledge file that cannot be used; the message names the file and the entry."""


def _locate(data: object, loc: Sequence[int | str]) -> str:
    """Human path of a pydantic error location, with the concept/relation names where known."""
    parts, node = [], data
    for key in loc:
        try:
            node = node[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            parts.append(str(key))
            continue
        label = ""
        if isinstance(node, dict):
            label = node.get("name") or node.get("relation") or ""
        parts.append(f"{key} ({label})" if label else str(key))
    return " > ".join(parts)


def parse_file(path: Path) -> KnowledgeFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"cannot read knowledge file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise KnowledgeError(f"{path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise KnowledgeError(f"{path}: expected a mapping with 'concepts' and/or 'general' lists")
    try:
        return KnowledgeFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {_locate(data, e['loc'])}: {e['msg']}" for e in exc.errors()[:8]]
        more = exc.error_count() - len(lines)
        tail = [f"  ... and {more} more"] if more > 0 else []
        raise KnowledgeError("\n".join([f"{path} has invalid entries:", *lines, *tail])) from None


@dataclass(frozen=True)
class KnowledgeBase:
    concepts: dict[str, Concept]
    general: tuple[Fact, ...]

    def find(self, name: str) -> Concept | None:
        """The concept called ``name`` (or one of its other names, any case), or None."""
        return self.concepts.get(name) or next(
            (c for c in self.concepts.values() if name.lower() in (n.lower() for n in c.names)), None
        )

    def has(self, name: str) -> bool:
        return self.find(name) is not None

    def concept(self, name: str) -> Concept:
        found = self.find(name)
        if found is None:
            raise KnowledgeError(
                f"no facts known about {name!r}. Add it to a YAML/JSON knowledge file and pass it with "
                f"--knowledge FILE (format: formless/data/knowledge/*.yaml), or pick one of: "
                f"{', '.join(sorted(self.concepts)[:12])}, ..."
            )
        return found

    def neighbours(self, concept: Concept, exclude: Iterable[str] = ()) -> list[Concept]:
        skip = {concept.name, *exclude}
        return [self.concepts[n] for n in concept.neighbours if n in self.concepts and n not in skip]

    def merged(self, other: KnowledgeFile) -> KnowledgeBase:
        concepts = dict(self.concepts)
        concepts.update({c.name: c for c in other.concepts})
        return KnowledgeBase(concepts, self.general + other.general)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"})
    if not path.exists():
        raise KnowledgeError(f"knowledge file {path} does not exist")
    return [path]


def build(paths: Iterable[Path]) -> KnowledgeBase:
    base = KnowledgeBase({}, ())
    for path in paths:
        for file in _files(Path(path)):
            base = base.merged(parse_file(file))
    missing = sorted(
        f"{c.name} -> {n}" for c in base.concepts.values() for n in c.neighbours if n not in base.concepts
    )
    if missing:
        raise KnowledgeError(f"neighbours that are not concepts of the knowledge base: {', '.join(missing)}")
    return base


@functools.cache
def builtin() -> KnowledgeBase:
    return build([BUILTIN_DIR])


def load(extra: Iterable[Path] = ()) -> KnowledgeBase:
    """The shipped knowledge base plus the user's files (later files override same-named concepts)."""
    extra = list(extra)
    return builtin() if not extra else build([BUILTIN_DIR, *extra])
