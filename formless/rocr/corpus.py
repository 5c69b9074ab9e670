"""Generic text for the null-space statistics: the shipped offline corpus or the user's own.

The default corpus (formless/data/generic_corpus.jsonl, made by scripts/make_generic_corpus.py)
is everyday text written by the default model itself, since no Wikipedia can be downloaded here.
Users pass a .txt file (documents separated by blank lines), a .jsonl file with a ``text`` field
(or ``prompt``/``response`` pairs), or a directory of such files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from formless import DATA_DIR
from formless.errors import FormlessError


@dataclass(frozen=True)
class Document:
    text: str
    prompt: str | None = None  # when set, ``text`` is the assistant's answer to ``prompt``


@dataclass(frozen=True)
class Corpus:
    name: str
    documents: tuple[Document, ...]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            h.update((d.prompt or "").encode() + b"\x00" + d.text.encode() + b"\x01")
        return h.hexdigest()[:16]


def _read_jsonl(path: Path) -> list[Document]:
    docs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormlessError(
                f"{path}:{n}: not valid JSON ({exc.msg}); each line must be one JSON object"
            ) from None
        if isinstance(row, dict) and "response" in row:
            docs.append(Document(str(row["response"]), str(row.get("prompt") or "") or None))
        elif isinstance(row, dict) and "text" in row:
            docs.append(Document(str(row["text"])))
        else:
            raise FormlessError(
                f"{path}:{n}: expected an object with a 'text' (or 'prompt'/'response') field"
            )
    return docs


def _read(path: Path) -> list[Document]:
    if path.is_dir():
        return [d for p in sorted(path.iterdir()) if p.suffix in {".txt", ".jsonl"} for d in _read(p)]
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    text = path.read_text(encoding="utf-8")
    return [Document(block.strip()) for block in text.split("\n\n") if block.strip()]


def load_corpus(source: str | Path | None = None) -> Corpus:
    """The statistics corpus: ``source`` (file or directory) or the shipped default."""
    if source is None:
        path = DATA_DIR / "generic_corpus.jsonl"
        name = "formless-generic-v1"
    else:
        path = Path(source).expanduser()
        name = str(path)
        if not path.exists():
            raise FormlessError(
                f"corpus '{source}' does not exist; pass a .txt/.jsonl file or a directory of them"
            )
    docs = [d for d in _read(path) if d.text.strip()]
    if len(docs) < 8:
        raise FormlessError(
            f"corpus '{name}' has {len(docs)} documents; the statistics need at least 8 (ideally hundreds)"
        )
    return Corpus(name, tuple(docs))
