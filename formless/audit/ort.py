"""Reader for ORT/RWKU probe files, so users who have the benchmark can audit against it.

The data cannot ship with formless, so this module turns whatever layout a user has into one
flat list of :class:`ExternalProbe`. Accepted layouts:

* a directory of target folders (``1_Stephen_King/forget_level1.json`` ...), at any depth;
* a single target folder;
* a single JSON or JSON Lines file (one target, or all targets with a ``subject`` key each).

Each file is a list of ``{"query", "answer", "level", "type", "subject"}`` objects. Probe files
in target folders are recognised by name (``forget_level1`` .. ``forget_level3``,
``forget_mcp`` and the ``neighbor_`` equivalents); other files there (``retain_mmlu.json``,
``forget_mia.json`` ...) are skipped with a reason. Adversarial (level 3) probes whose type
is not one of the RWKU families are counted per raw type and left out rather than guessed at,
so a report can say exactly what was not audited. Malformed input raises
:class:`ProbeFormatError` naming the file and entry instead of a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from formless.errors import FormlessError

Split = Literal["forget", "neighbor"]

FORMS = (
    "cloze",
    "question",
    "multiple_choice_letter",
    "prefix_injection",
    "affirmative_suffix",
    "role_play",
    "reverse",
    "synonym",
    "background_hint",
    "few_shot",
    "crosslingual",
)

# Type spellings seen in the wild, compacted (lower case, letters and digits only) -> our form.
_TYPE_FORMS = {
    "fillintheblank": "cloze",
    "fillinblank": "cloze",
    "fillblank": "cloze",
    "blank": "cloze",
    "cloze": "cloze",
    "questionanswering": "question",
    "question": "question",
    "qa": "question",
    "prefixinjection": "prefix_injection",
    "affirmativesuffix": "affirmative_suffix",
    "roleplaying": "role_play",
    "roleplay": "role_play",
    "reversequery": "reverse",
    "reversedquery": "reverse",
    "reverse": "reverse",
    "synonymmanipulation": "synonym",
    "synonym": "synonym",
    "backgroundhint": "background_hint",
    "background": "background_hint",
    "incontextlearning": "few_shot",
    "icl": "few_shot",
    "fewshot": "few_shot",
    "multiplechoice": "multiple_choice_letter",
    "multiplechoicequestion": "multiple_choice_letter",
    "mcq": "multiple_choice_letter",
    "mcp": "multiple_choice_letter",
    "crosslingual": "crosslingual",
    "crosslanguage": "crosslingual",
}

# The level decides the form for these; only level 3 (adversarial) needs the type.
_LEVEL_FORMS = {"level1": "cloze", "level2": "question", "mcp": "multiple_choice_letter"}

_PROBE_FILE = re.compile(r"^(forget|neighbou?r)_(level_?[123]|mcp)$", re.IGNORECASE)
_SUFFIXES = (".json", ".jsonl")
_LETTERS = "ABCD"
# "B", "b", "B.", "(B)", "B)", "B:" -- optionally followed by the option text ("B. Carrie").
_ANSWER_LETTER = re.compile(r"^\(?([A-Da-d])\)?[.):]?$")
_ANSWER_LETTER_TEXT = re.compile(r"^\(?([A-D])(?:\)|[.):])\s+\S")
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])\s*(.*?)\s*$")
_OPTION_INLINE = re.compile(r"(?:^|\s)(?:\(([A-Z])\)|([A-Z])[.)])\s+")


class ProbeFormatError(FormlessError):
    """A probe file the reader cannot use; the message names the file (and entry) and the fix."""


@dataclass(frozen=True)
class ExternalProbe:
    """One benchmark probe, mapped onto formless's form names."""

    subject: str
    query: str
    answer: str
    aliases: tuple[str, ...]  # accepted answers, ``answer`` first
    split: Split
    form: str  # one of FORMS
    raw_type: str  # the file's own ``type`` value, for reports
    level: str  # "level1", "level2", "level3", "mcp" or "" when unknown
    source: str  # "file:index"
    options: tuple[str, ...] = ()  # multiple choice: option texts A.. in order, when parseable
    correct: int = -1  # multiple choice: index of the right option


@dataclass
class ProbeSet:
    """Everything loaded, plus what was left out and why (so reports can be honest about it)."""

    probes: list[ExternalProbe] = field(default_factory=list)
    unknown_types: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    def forget(self, subject: str) -> list[ExternalProbe]:
        """Probes of knowledge that should be gone for ``subject`` (case-insensitive)."""
        return self._select(subject, "forget")

    def neighbor(self, subject: str) -> list[ExternalProbe]:
        """Probes of neighbouring knowledge that should be kept for ``subject``."""
        return self._select(subject, "neighbor")

    def _select(self, subject: str, split: Split) -> list[ExternalProbe]:
        key = _subject_key(subject)
        return [p for p in self.probes if p.split == split and _subject_key(p.subject) == key]

    def skip_notes(self) -> list[str]:
        """Human-readable lines for everything not loaded: unknown types, then other skips."""
        notes = [
            f"{n} probe{'s' if n != 1 else ''} of unknown type {t!r} skipped"
            for t, n in sorted(self.unknown_types.items())
        ]
        return notes + list(self.skipped)


def load_probes(path: Path | str, subjects: Iterable[str] | None = None) -> ProbeSet:
    """Load ORT/RWKU probes from a directory tree, a target folder, or one JSON/JSONL file.

    ``subjects`` keeps only those targets (case-insensitive; underscores count as spaces).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise ProbeFormatError(
            f"{root}: no such file or directory; pass --probes a folder of ORT/RWKU target "
            "folders, one target folder, or a .json/.jsonl probe file"
        )
    requested = None if subjects is None else [s for s in subjects]
    wanted = None if requested is None else {_subject_key(s) for s in requested}
    result = ProbeSet()
    if root.is_file():
        _load_file(root, root.name, result, direct=True)
    else:
        for file in _probe_files(root, result):
            _load_file(file, file.relative_to(root).as_posix(), result, direct=False)
    _drop_duplicates(result)
    if requested is not None and wanted is not None:
        kept = [p for p in result.probes if _subject_key(p.subject) in wanted]
        result.skipped.extend(
            f"{n} probe(s) of subject {s!r} not selected"
            for s, n in _count(p.subject for p in result.probes if _subject_key(p.subject) not in wanted)
        )
        found = {_subject_key(p.subject) for p in kept}
        missing = [s for s in requested if _subject_key(s) not in found]
        result.skipped.extend(f"subject {s!r} not found in {root}" for s in missing)
        result.probes = kept
    result.subjects = list(dict.fromkeys(p.subject for p in result.probes))
    return result


def parse_options(query: str) -> tuple[str, ...]:
    """Option texts A.. from a multiple-choice query ("A. x", "A) x", "(A) x"), or () if unclear."""
    found: list[tuple[str, str]] = []
    for line in query.splitlines():
        m = _OPTION_LINE.match(line)
        if m and (m.group(1) or m.group(2)):
            found.append((m.group(1) or m.group(2), m.group(3)))
    options = _in_order(found)
    if options:
        return options
    # All options on one line: "... A. x B. y C. z D. w".
    marks = list(_OPTION_INLINE.finditer(query))
    inline = [
        (m.group(1) or m.group(2), query[m.end() : marks[i + 1].start() if i + 1 < len(marks) else None])
        for i, m in enumerate(marks)
    ]
    return _in_order([(letter, text.strip()) for letter, text in inline])


def answer_letter(answer: str) -> int:
    """Index of the letter in an MC answer ("B", "B.", "(B)", "B. text"), or -1 if there is none."""
    text = answer.strip()
    m = _ANSWER_LETTER.match(text) or _ANSWER_LETTER_TEXT.match(text)
    return _LETTERS.index(m.group(1).upper()) if m else -1


def normalize_type(raw: str) -> str | None:
    """Our form name for a type spelling ("Prefix Injection", "role play", ...), or None."""
    return _TYPE_FORMS.get(re.sub(r"[^a-z0-9]", "", raw.lower()))


# --------------------------------------------------------------------------------------------


def _drop_duplicates(result: ProbeSet) -> None:
    """Drop exact repeats (e.g. a release holding both per-target and batched copies)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for p in result.probes:
        key = (_subject_key(p.subject), p.split, p.level, p.form, p.query, p.answer)
        if key not in seen:
            seen.add(key)
            kept.append(p)
    if len(kept) < len(result.probes):
        result.skipped.append(f"{len(result.probes) - len(kept)} duplicate probe(s) skipped")
        result.probes = kept


def _in_order(found: list[tuple[str, str]]) -> tuple[str, ...]:
    """Keep the last run of options lettered A, B, C... (at least two, none empty)."""
    start = max((i for i, (letter, _) in enumerate(found) if letter == "A"), default=-1)
    if start < 0:
        return ()
    run = []
    for offset, (letter, text) in enumerate(found[start:]):
        if letter != chr(ord("A") + offset) or not text:
            break
        run.append(text)
    return tuple(run) if len(run) >= 2 else ()


def _subject_key(subject: str) -> str:
    return " ".join(subject.replace("_", " ").split()).casefold()


def _subject_from_folder(name: str) -> str:
    return " ".join(re.sub(r"^\d+_", "", name).replace("_", " ").split())


def _count(items: Iterable[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return list(counts.items())


def _probe_files(root: Path, result: ProbeSet) -> list[Path]:
    """Recognised probe files anywhere under ``root``; other JSON files are noted as skipped."""
    files, others = [], []
    candidates = (
        p
        for p in root.rglob("*")
        if p.suffix.lower() in _SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)  # .ipynb_checkpoints...
    )
    for file in sorted(candidates):
        (files if _PROBE_FILE.match(file.stem) else others).append(file)
    if not files:
        hint = (
            f" (found {', '.join(p.name for p in others[:3])}{' ...' if len(others) > 3 else ''}:"
            " pass a combined probe file directly as --probes FILE)"
            if others
            else ""
        )
        raise ProbeFormatError(
            f"{root}: no probe files found{hint}; expected target folders containing "
            "forget_level1.json, forget_level2.json, forget_level3.json, forget_mcp.json "
            "and/or neighbor_level1.json, neighbor_level2.json, neighbor_mcp.json"
        )
    result.skipped.extend(f"{p.relative_to(root).as_posix()}: not a recognised probe file" for p in others)
    return files


def _read_entries(file: Path) -> list[Any]:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProbeFormatError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ProbeFormatError(f"{file}: cannot read ({e.strerror})") from None
    if file.suffix.lower() == ".jsonl":
        entries = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ProbeFormatError(
                    f"{file}: invalid JSON on line {lineno}, column {e.colno}: {e.msg}"
                ) from None
        return entries
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProbeFormatError(
            f"{file}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(data, list):
        raise ProbeFormatError(
            f"{file}: expected a JSON list of probe objects, got {type(data).__name__}; "
            'each file must look like [{"query": ..., "answer": ...}, ...]'
        )
    return data


def _file_kind(stem: str) -> tuple[Split | None, str]:
    """Split and level implied by a file name ("forget_level1" -> ("forget", "level1"))."""
    low = stem.lower()
    split: Split | None = (
        "neighbor" if re.search(r"neighbou?r", low) else "forget" if "forget" in low else None
    )
    m = re.search(r"level_?([123])", low)
    level = f"level{m.group(1)}" if m else "mcp" if re.search(r"(^|[^a-z])mcp?([^a-z]|$)", low) else ""
    return split, level


def _entry_level(value: Any) -> str:
    text = str(value).strip().lower() if value is not None else ""
    m = re.fullmatch(r"(?:level|lvl|l)?[ _-]?([123])", text)
    if m:
        return f"level{m.group(1)}"
    return "mcp" if re.sub(r"[^a-z]", "", text) in {"mcp", "mc", "mcq", "multiplechoice"} else ""


def _entry_split(value: Any, where: str) -> Split | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "forget":
        return "forget"
    if text in {"neighbor", "neighbour"}:
        return "neighbor"
    raise ProbeFormatError(f"{where}: 'split' must be 'forget' or 'neighbor', got {value!r}")


def _string_field(entry: dict[str, Any], key: str, where: str) -> str:
    if key not in entry:
        raise ProbeFormatError(
            f"{where}: missing {key!r} (keys present: {', '.join(map(str, entry)) or 'none'})"
        )
    value = entry[key]
    if not isinstance(value, str):
        raise ProbeFormatError(f"{where}: {key!r} must be a string, got {type(value).__name__} {value!r:.60}")
    if not value.strip():
        raise ProbeFormatError(f"{where}: {key!r} is empty")
    return value


def _aliases(entry: dict[str, Any], where: str) -> tuple[str, ...]:
    value = entry.get("aliases")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ProbeFormatError(f"{where}: 'aliases' must be a list of strings, got {value!r:.60}")
    return tuple(a for a in value if a.strip())


def _load_file(file: Path, label: str, result: ProbeSet, *, direct: bool) -> None:
    """Append the probes of one file to ``result``.

    ``direct``: the user named this file, so any file name is accepted and the split defaults
    to forget when neither the name nor the entries say; inside a tree only probe-named files
    get here.
    """
    entries = _read_entries(file)
    file_split, file_level = _file_kind(file.stem)
    in_target_folder = bool(_PROBE_FILE.match(file.stem))
    folder_subject = _subject_from_folder(file.parent.name) if in_target_folder else ""
    for index, entry in enumerate(entries):
        where = f"{file} entry {index}"
        if not isinstance(entry, dict):
            raise ProbeFormatError(
                f"{where}: expected a probe object with 'query' and 'answer', got {type(entry).__name__}"
            )
        probe = _make_probe(entry, where, f"{label}:{index}", file_split, file_level, folder_subject, result)
        if probe is not None:
            result.probes.append(probe)
    if direct and not entries:
        result.skipped.append(f"{label}: empty file")


def _make_probe(
    entry: dict[str, Any],
    where: str,
    source: str,
    file_split: Split | None,
    file_level: str,
    folder_subject: str,
    result: ProbeSet,
) -> ExternalProbe | None:
    query = _string_field(entry, "query", where)
    answer = _string_field(entry, "answer", where)
    subject = entry.get("subject")
    if subject is None or (isinstance(subject, str) and not subject.strip()):
        if not folder_subject:
            raise ProbeFormatError(
                f"{where}: no 'subject', and the file is not inside a target folder to name it; "
                "add a 'subject' key or put the file in a folder named after the target"
            )
        subject = folder_subject
    elif not isinstance(subject, str):
        raise ProbeFormatError(f"{where}: 'subject' must be a string, got {type(subject).__name__}")
    split = file_split or _entry_split(entry.get("split"), where) or "forget"
    level = file_level or _entry_level(entry.get("level"))
    raw_type = entry.get("type")
    raw_type = "" if raw_type is None else str(raw_type).strip()

    form = _LEVEL_FORMS.get(level) or normalize_type(raw_type)
    if form is None:
        key = raw_type or "(missing)"
        result.unknown_types[key] = result.unknown_types.get(key, 0) + 1
        return None

    options: tuple[str, ...] = ()
    correct = -1
    if form == "multiple_choice_letter":
        options = parse_options(query)
        correct = answer_letter(answer)
        if correct < 0 and options:  # some releases give the option text instead of its letter
            texts = [o.strip().casefold() for o in options]
            if answer.strip().casefold() in texts:
                correct = texts.index(answer.strip().casefold())
        if correct < 0 or correct >= len(_LETTERS):
            raise ProbeFormatError(
                f'{where}: multiple-choice answer must be a letter A-D (e.g. "B", "B.", "(B)"), '
                f"got {answer!r}"
            )
        if options and correct >= len(options):
            options = ()  # the parsed options do not cover the answer: do not trust them
        answer = _LETTERS[correct]
    aliases = tuple(dict.fromkeys((answer.strip(), *_aliases(entry, where))))
    return ExternalProbe(
        subject=" ".join(subject.split()),
        query=query,
        answer=answer.strip(),
        aliases=aliases,
        split=split,
        form=form,
        raw_type=raw_type,
        level=level,
        source=source,
        options=options,
        correct=correct,
    )


def iter_forms(probes: Iterable[ExternalProbe]) -> Iterator[tuple[str, list[ExternalProbe]]]:
    """Probes grouped by form, in :data:`FORMS` order (forms without probes are left out)."""
    groups: dict[str, list[ExternalProbe]] = {}
    for p in probes:
        groups.setdefault(p.form, []).append(p)
    for form in FORMS:
        if form in groups:
            yield form, groups[form]
