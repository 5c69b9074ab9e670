"""Any concept, no hand-written facts: a knowledge-base record built from what the model itself knows.

The reference model is asked about the concept in several forms at once (one batched greedy pass
per form): a free description ("Tell me about X.") and a "who or what is X?" answer (which also
decide the concept's kind), and for every relation of the concept's kind (8-18 relations) two chat
wordings of the question, a plain completion and a second plain wording (the cloze). Candidate
answers are spans of those generations (and of a teacher model's, when one is given); a fact is
kept only where one candidate is stated by at least two independent forms of the reference
(self-consistency, with the audit's own answer matching). The two chat wordings count as one form:
a chat answer tends to restate itself whatever the wording. The kept facts become a schema-valid
:class:`Concept`: question, completion, cloze, paraphrase, distractors (other concepts' answers of
the same relation, never an accepted answer), a reverse question for specific answers, a
description without the name for the indirect form, and multi-hop questions where an answer is
itself a concept of the knowledge base.

``formless probes`` writes the record as YAML for a person to review; ``formless audit`` and the
baseline methods build it on the fly for concepts the knowledge base does not know.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from formless.concurrent import side_by_side
from formless.errors import FormlessError
from formless.knowledge.base import KnowledgeBase, KnowledgeError
from formless.knowledge.schema import BLANK, Concept, Fact, Hop, KnowledgeFile, Translation
from formless.knowledge.templates import (
    CATEGORY_COMPLETION,
    DESCRIPTION_PROMPT,
    IDENTITY_PROMPT,
    KIND_NOUN,
    KIND_WORDS,
    KINDS,
    LANGUAGES,
    MADE_UP_NAMES,
    RELATIONS,
    Relation,
)
from formless.matching import contains_answer, normalise
from formless.models.cache import atomic_file, cache_dir

T = TypeVar("T")

ELICIT_VERSION = "3"  # 3: relations for rivers, planets, ships, bands, characters, recurring events
MIN_AGREEMENT = 2  # independent forms of the reference that must state the same answer
# with 8-18 relations asked in 4 forms, a made-up name gets one agreeing answer by chance (measured:
# "Zorblax Quentavian", spouse "Roman"); a record needs at least two facts
MIN_FACTS = 2
QUESTION_TOKENS = 24  # chat answers restate the question first: 16 cut "J.K. Rowling" to "J.K. Row"
COMPLETION_TOKENS = 8
DESCRIPTION_TOKENS = 32
MAX_SPAN_WORDS = 5
CHAT_FORMS = ("question", "paraphrase")  # two chat wordings of the relation's question
ASKED_FORMS = (*CHAT_FORMS, "completion", "cloze")
FORMS = (*ASKED_FORMS, "description")
# the model's own words about the concept, asked once and mined together as the "description" form
# (they also decide the concept's kind). Asking "Give me three facts about X." and "What is X
# famous for?" as well (48 tokens) added a few facts to thin records but not one well-covered concept
# (docs/elicit_validation_cpu_v4.json), and gave a made-up name ("Zorblax Quentavian") a second
# consistent "fact" (country "TV", from "a character from the TV series"): a record of nothing.
FREE_PROMPTS = (DESCRIPTION_PROMPT, IDENTITY_PROMPT)

Say = Callable[[str], None]


def _agreement(forms: Iterable[str]) -> int:
    """How many independent forms state an answer: the two chat wordings count once, because a
    chat answer tends to repeat itself whatever the wording ("The infamous author of ...")."""
    return len({"chat" if f in CHAT_FORMS else f for f in forms})


def _words(text: str) -> set[str]:
    return set(text.split())


_STOP = _words(
    "a an the of in on at to for and or nor by with from as is was are were be been being his her hers "
    "their its it he she they them him this that these those who whom whose which what where when why "
    "how also very most more best one some such has had have not no but s than into about after before "
    "over under during while so just only like other there here i you we my your our do does did can "
    "could would should will shall may might must all any each both either neither if then because "
    "since until up down out off again further once named called"
)
_GENERIC = _words(
    "famous popular renowned notable known great greatest important significant leading new old many "
    "most other various several own well global worldwide international major large small big good "
    "true real whole entire main key top highly widely particular same different first last early "
    "late modern ancient often always still now today time way part kind type lot number world"
)
_BARE = _words(
    "prize prizes award awards medal university college school institute academy museum company "
    "corporation church city country state team club band party"
)
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "jr",
    "sr",
    "inc",
    "co",
    "ltd",
    "mt",
    "vs",
    "no",
    "u.s",
    "d.c",
}
_PRONOUNS = re.compile(r"\b(?:he|she|his|her|him|himself|herself)\b", re.IGNORECASE)
_LIFE = re.compile(r"\b(?:was born|born (?:on|in)|died (?:on|in))\b", re.IGNORECASE)


# --------------------------------------------------------------------------- results


@dataclass
class RelationResult:
    """What the reference said for one relation, and whether it was kept."""

    relation: str
    prompts: dict[str, str]  # form -> prompt asked
    outputs: dict[str, str]  # form -> the reference's generation
    answer: str | None = None  # the best-supported candidate (kept or not)
    aliases: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()  # forms that state the answer
    probability: float | None = None  # teacher-forced probability of the answer after the completion
    kept: bool = False
    teacher: tuple[str, ...] = ()  # the teacher's candidates, if a teacher was asked

    @property
    def agreement(self) -> int:
        return _agreement(self.forms)

    @property
    def asked(self) -> int:
        return len(self.outputs)

    def to_json(self) -> dict:
        return {
            "relation": self.relation,
            "kept": self.kept,
            "answer": self.answer,
            "aliases": list(self.aliases),
            "agreement": self.agreement,
            "forms_asked": self.asked,
            "forms": list(self.forms),
            "probability": None if self.probability is None else round(self.probability, 4),
            "outputs": self.outputs,
        }


@dataclass
class ElicitReport:
    name: str
    kind: str
    kind_source: str  # "given", "description" or "name"
    model: str
    relations: list[RelationResult] = field(default_factory=list)
    description: str | None = None  # the concept's description (indirect form)
    other_descriptions: tuple[str, ...] = ()  # for the facts the description states
    free_text: str = ""  # the reference's own description of the concept
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    teacher: str | None = None

    @property
    def kept(self) -> list[RelationResult]:
        return [r for r in self.relations if r.kept]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "kind_source": self.kind_source,
            "model": self.model,
            "teacher": self.teacher,
            "elicit_version": ELICIT_VERSION,
            "description": self.description,
            "other_descriptions": list(self.other_descriptions),
            "free_text": self.free_text,
            "facts_kept": len(self.kept),
            "probes": len(self.relations),
            "relations": [r.to_json() for r in self.relations],
            "notes": self.notes,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------- text helpers


def _clauses(text: str) -> list[str]:
    """``text`` cut at clause punctuation; a full stop after an initial or abbreviation is kept."""
    out, start = [], 0
    for m in re.finditer(r"[,;:!?\n()\[\]\"“”]|\.(?=\s|$)| - | – | — ", text):
        if m.group() == ".":
            word = re.findall(r"[\w.]+$", text[start : m.start()])
            last = word[0].lower() if word else ""
            initials = re.fullmatch(r"(?:\w\.)+\w", last)  # "J.K. Rowling", "U.S. Army"
            if len(last.replace(".", "")) == 1 or last in _ABBREVIATIONS or initials:
                continue
        out.append(text[start : m.start()])
        start = m.end()
    out.append(text[start:])
    return [c.strip() for c in out if c.strip()]


def _tokens(clause: str) -> list[str]:
    words = []
    for raw in clause.split():
        word = raw.strip("'\"‘’“”*_`")
        if word.endswith(".") and len(word.replace(".", "")) > 1 and word.count(".") == 1:
            word = word[:-1]
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        if word:
            words.append(word)
    return words


# a kind word -> its kind ("city" -> place)
KIND_OF_WORD = {w: k for k, words in KIND_WORDS.items() for w in words}
_KIND_LOOKUP = set(KIND_OF_WORD)
_QUALIFIED = _words("universe world character characters fan fans books films movies novels")


def _name_words(name: str) -> set[str]:
    return set(normalise(name).split())


_CONNECTORS = {"of", "and", "the", "de", "von", "van", "da", "del", "la", "le", "du", "y"}


def _capitalised(word: str) -> bool:
    return word[:1].isupper() or word[:1].isdigit()


def _acceptable(span: str, name: str, prompt_words: set[str], relation: Relation | None = None) -> bool:
    """A plausible answer: no leading/trailing function word, no verb-like filler inside, no word
    of the question, not the concept's own name."""
    words = span.split()
    norm = [normalise(w) for w in words]
    if not all(norm) or norm[0] in _STOP or norm[-1] in _STOP:
        return False
    if any(w in _STOP and w not in _CONNECTORS for w in norm[1:-1]):
        return False
    if all(w in _GENERIC or w in _STOP for w in norm):
        return False
    # a lower-case word of the prompt ("city" in "In which city ...") restates the question
    if any(w in prompt_words and not _capitalised(raw) for w, raw in zip(norm, words)):
        return False
    if set(norm) <= _name_words(name):
        return False  # the concept itself, or part of its name
    if _name_words(name) & set(norm) and not all(
        _capitalised(w) or n in _CONNECTORS for w, n in zip(words, norm)
    ):
        return False  # "Swift was born": the name inside a phrase; "Tokyo Tower", "Jay Gatsby" are fine
    if relation is not None and relation.year and not re.search(r"\b\d{4}\b", span):
        return False
    if relation is not None and relation.pattern and not re.search(relation.pattern, span):
        return False
    if all(w in _GENERIC or w in _STOP or w in _NOT_CATEGORY for w in norm):
        return False  # "combination", "testament": no answer
    if all(w in _BARE or w in _STOP for w in norm):
        return False  # "Prize", "the University": the kind of answer, not which one
    return not (relation is not None and relation.proper and not any(w[:1].isupper() for w in words))


def _spans(
    text: str, name: str, prompt_words: set[str], relation: Relation | None = None, *, clauses: int = 2
) -> list[str]:
    """Candidate answers in ``text``: word spans of its first clauses, in order of appearance."""
    out: list[str] = []
    for clause in _clauses(text)[:clauses]:
        words = _tokens(clause)[:12]
        for i in range(len(words)):
            for j in range(i + 1, min(i + MAX_SPAN_WORDS, len(words)) + 1):
                span = " ".join(words[i:j])
                if span not in out and _acceptable(span, name, prompt_words, relation):
                    out.append(span)
    return out


def _answer_zone(text: str, span: str) -> str:
    """Where a plain completion states its answer: the start of its first clause (an article or
    an adjective or two may come first)."""
    clauses = _clauses(text)
    if not clauses:
        return ""
    return " ".join(_tokens(clauses[0])[: len(span.split()) + 3])


def _strip_article(text: str) -> str:
    return re.sub(r"^(?:the|a|an)\s+", "", text.strip(), flags=re.IGNORECASE)


def _overlaps(a: str, b: str) -> bool:
    """True if either text contains the other as whole words (after normalisation)."""
    na, nb = normalise(_strip_article(a)), normalise(_strip_article(b))
    return bool(na and nb) and (na == nb or contains_answer(a, [b]) or contains_answer(b, [a]))


def _as_stated(result: RelationResult) -> str:
    """The answer with the article the reference puts before it ("the Eiffel Tower")."""
    answer = result.answer or ""
    if answer[:1].isupper() and any(
        re.search(rf"\bthe {re.escape(answer)}\b", text, re.IGNORECASE) for text in result.outputs.values()
    ):
        return f"the {answer}"
    return answer


def _is_specific(answer: str) -> bool:
    """A name, a title or a number (worth a reverse question), not a category word like 'actor'."""
    words = normalise(answer).split()
    if not words or all(w in _GENERIC for w in words):
        return False
    return bool(re.search(r"[A-Z0-9]", _strip_article(answer)))


def detect_kind(texts: Sequence[str], name: str) -> tuple[str, str, str | None]:
    """(kind, how it was found, category word) from the model's own "X is a ..." statements (the
    category completion first, then its description), else guessed from the name."""
    votes, category = kind_votes(texts)
    best = max(KINDS, key=lambda k: votes[k])
    if votes[best] > 0:
        return best, "description", category if category and KIND_OF_WORD[category] == best else None
    words = name.split()
    if words and words[0].lower() == "the":
        return "work", "name", None
    if (
        2 <= len(words) <= 4
        and all(w[:1].isupper() or w in _CONNECTORS for w in words[1:])
        and words[0][:1].isupper()
    ):
        return "person", "name", None
    return "thing", "name", None


def other_sense(texts: Sequence[str], kind: str) -> tuple[str, float, float] | None:
    """(the runner-up kind, its votes, the kept kind's votes) when the model's own answers also read
    the name as another kind of thing with at least half the votes ("Paris": a city, and a singer);
    None when the kept sense stands clear."""
    votes, _ = kind_votes(texts)
    rival = max((k for k in KINDS if k != kind), key=lambda k: votes[k])
    if votes[rival] > 0 and votes[rival] >= votes[kind] / 2:
        return rival, votes[rival], votes[kind]
    return None


def kind_votes(texts: Sequence[str]) -> tuple[dict[str, float], str | None]:
    """Votes per kind from the model's own statements about a name, and the first category word."""
    votes: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    lookup = KIND_OF_WORD
    category = None
    # the identity answer ("Who or what is X?") outweighs the description when the two disagree
    for weight, text in zip((3.0, 2.5, 2.0, 1.0), texts):
        m = re.search(r"\b(?:is|was|are|were)\s+(?:a|an|the|one of the)\s+(.*)", text, re.IGNORECASE)
        phrase = m.group(1) if m else text
        # the noun phrase ends at a clause or a prepositional phrase ("term coined by the author of
        # the book": the head is "term", not "author")
        phrase = re.split(r"[,.;:!?]| who | which | that | with | in | of | from | by | where ", phrase)[0]
        words, heads = [], []
        # "a singer and actress": the first noun; "a beloved and enduring franchise": the whole phrase
        for part in (phrase.split(" and ")[0], phrase):
            words = [w for piece in normalise(part).split() for w in piece.split("-")][:8]
            heads = [w for w in words if w in lookup]
            if heads:
                break
        if heads and any(w in _NOT_CATEGORY for w in words[words.index(heads[-1]) + 1 :]):
            heads = []  # "a classic example": the kind word only qualifies a non-category noun
        if heads:
            votes[lookup[heads[-1]]] += weight  # the head noun ends the phrase: "technology company"
            category = category or heads[-1]
    if any(_PRONOUNS.search(t) or _LIFE.search(t) for t in texts[1:3]):
        votes["person"] += 1.0  # "he", "born in 1452": only people are born and have pronouns
    if not any(votes.values()):
        # no "X is a <kind word>" anywhere: kind words used anywhere in the answers decide, weakly
        for text in texts[:3]:
            for w in normalise(text).split()[:24]:
                if w in lookup:
                    votes[lookup[w]] += 0.25
    return votes, category


# --------------------------------------------------------------------------- generation


def _generate(loaded, prompts: Sequence[str], *, chat: bool, max_new_tokens: int) -> dict[str, str]:
    """Greedy answers, one batched pass (prompts sorted by length, duplicates asked once)."""
    from formless.generation import generate

    unique = sorted(dict.fromkeys(prompts), key=len)
    if not unique:
        return {}
    outputs = generate(
        loaded.model,
        loaded.tokenizer,
        unique,
        chat=chat,
        max_new_tokens=max_new_tokens,
        batch_size=32,
        fast=False,
    )
    return dict(zip(unique, outputs))


def _ask(
    loaded,
    name: str,
    relations: Sequence[Relation],
    description: bool,
    known: dict[str, str] | None = None,
    subject: str | None = None,
) -> dict[str, str]:
    """Every prompt of ``relations`` (and the description) -> the model's answer; keys are prompts,
    chat ones prefixed with ``chat:``. Prompts in ``known`` are not asked again."""
    known = known or {}
    subject = subject or name
    chats = [
        _fill(q, subject)
        for r in relations
        for q in (r.question, r.paraphrase)
        if f"chat:{_fill(q, subject)}" not in known
    ]
    plains = [
        _fill(p, subject)
        for r in relations
        for p in (r.completion, r.cloze)
        if _fill(p, subject) not in known
    ]
    out = {
        f"chat:{p}": o for p, o in _generate(loaded, chats, chat=True, max_new_tokens=QUESTION_TOKENS).items()
    }
    out.update(_generate(loaded, plains, chat=False, max_new_tokens=COMPLETION_TOKENS))
    if description:
        free = [p.format(n=name) for p in FREE_PROMPTS]
        free = [p for p in free if f"chat:{p}" not in known]
        if free:
            said = _generate(loaded, free, chat=True, max_new_tokens=DESCRIPTION_TOKENS)
            out.update({f"chat:{p}": o for p, o in said.items()})
    return out


def _free_text(answers: dict[str, str], name: str) -> str:
    """The model's own words about the concept: its description and its "who or what is" answer,
    mined together as one form (two chat answers about the concept, not about one relation)."""
    parts = (answers.get(f"chat:{p.format(n=name)}", "") for p in FREE_PROMPTS)
    return "\n".join(p for p in parts if p)


def _fill(template: str, subject: str) -> str:
    """A template with the concept filled in, capitalised where it starts the sentence."""
    text = template.format(n=subject)
    return text[0].upper() + text[1:]


def subject_phrase(name: str, free_text: str) -> str:
    """How sentences name the concept: "the French Revolution" when the model's own description
    says so, else the name as given."""
    if name.lower().startswith("the "):
        return name
    for m in re.finditer(rf"\bthe {re.escape(name)}\b(?:\s+([\w-]+))?", free_text, re.I):
        following = (m.group(1) or "").lower()
        # "the Harry Potter series" names the series, not "the Harry Potter"
        if not {following, following.removesuffix("s")} & (_KIND_LOOKUP | _QUALIFIED):
            return f"the {name}"
    return name


def _mined(relation: Relation, free_text: str, name: str) -> list[str]:
    """The description's statements about ``relation``: the answers its patterns capture."""
    found = []
    for pattern in relation.mine:
        for m in re.finditer(pattern, free_text):
            text = m.group(1).strip()
            if text and not contains_answer(text, [name]):
                found.append(text)
    return found


# --------------------------------------------------------------------------- one relation


_NOT_CATEGORY = _words(
    "example member part piece form kind sort type variety range source symbol testament reminder result "
    "matter case combination mix blend collection lot bit one individual thing something someone "
    "expert master"
)
_IS_A_RE = re.compile(r"\b(?:is|was|are|were)\s+(?:a|an|the|one of the)\s+(.*)", re.IGNORECASE)
_PHRASE_END = re.compile(
    r"[.;:!?\n()\"]| who | which | that | with | in | of | from | for | where | whose "
    r"| to | on | by | at ",
)


def _category_phrase(text: str, plain: bool) -> str:
    """What follows "X is a" in ``text`` (all of a plain continuation of "X is a"), up to the end of
    its noun phrase."""
    if not plain:
        m = _IS_A_RE.search(text)
        if not m:
            return ""
        text = m.group(1)
    return _PHRASE_END.split(f"{text} ")[0].replace(",", " ").strip()


def _category_candidates(phrase: str, name: str) -> list[str]:
    """The head noun of a category phrase ("technology company" -> "company"), and with the word
    before it ("video game")."""
    lookup = {w for words in KIND_WORDS.values() for w in words}
    words = [w for w in _tokens(phrase) if re.fullmatch(r"[\w-]+", w)]
    known = [i for i, w in enumerate(words) if w.lower() in lookup or w.lower().split("-")[-1] in lookup]
    if known and any(w.lower() in _NOT_CATEGORY for w in words[known[-1] + 1 :]):
        return []  # "a classic example of": the kind word qualifies a noun that is no category
    if known:
        idx = known[-1]
    else:
        idx = next(
            (
                i
                for i in range(len(words) - 1, -1, -1)
                if not words[i].lower().endswith(("ly", "ed", "ing")) or words[i].lower() in lookup
            ),
            None,
        )
    if idx is None:
        return []
    head = words[idx]
    bad = _STOP | _GENERIC | _NOT_CATEGORY | _name_words(name)
    if head.lower() in bad or len(head) < 3 or not head[0].isalpha():
        return []
    out = [head]
    if idx > 0 and words[idx - 1].lower() not in bad and not words[idx - 1].lower().endswith("ly"):
        out.insert(0, f"{words[idx - 1]} {head}")
    return out


def _judge(
    relation: Relation,
    name: str,
    subject: str,
    answers: dict[str, str],
    free_text: str,
    teacher_answers: dict[str, str] | None,
) -> RelationResult:
    prompts = {
        "question": _fill(relation.question, subject),
        "paraphrase": _fill(relation.paraphrase, subject),
        "completion": _fill(relation.completion, subject),
        "cloze": _fill(relation.cloze, subject),
    }
    outputs = {form: answers[f"chat:{prompts[form]}"] for form in CHAT_FORMS}
    outputs.update({form: answers[prompts[form]] for form in ("completion", "cloze")})
    mined = _mined(relation, free_text, name)
    if mined:
        prompts["description"] = DESCRIPTION_PROMPT.format(n=name)
        outputs["description"] = free_text
    prompt_words = set(normalise(" ".join([*prompts.values()][:4])).split()) - _name_words(name)
    if relation.category:
        phrases = {f: _category_phrase(outputs[f], f not in CHAT_FORMS) for f in ASKED_FORMS}
        mined = [_category_phrase(f"is a {t}", False) for t in mined]
        sources = [phrases[f] for f in ("completion", "cloze", *CHAT_FORMS)] + mined
        candidates = [c for text in sources for c in _category_candidates(text, name)]
    else:
        phrases = {}
        candidates = []
        for form in ("completion", "cloze", *CHAT_FORMS):
            clauses = 3 if form in CHAT_FORMS else 1
            candidates += _spans(outputs[form], name, prompt_words, relation, clauses=clauses)
        for text in mined:
            candidates += _spans(text, name, prompt_words, relation, clauses=1)
    teacher: list[str] = []
    if teacher_answers is not None:
        for form in ("completion", "cloze", "question"):
            key = prompts[form] if form != "question" else f"chat:{prompts[form]}"
            text = teacher_answers.get(key, "")
            if relation.category:
                teacher += _category_candidates(_category_phrase(text, form != "question"), name)
            else:
                teacher += _spans(text, name, prompt_words, relation, clauses=1)
        candidates += teacher
    candidates = list(dict.fromkeys(candidates))

    def support(span: str) -> tuple[str, ...]:
        forms = [f for f in CHAT_FORMS if contains_answer(outputs[f], [span])]
        forms += [
            f for f in ("completion", "cloze") if contains_answer(_answer_zone(outputs[f], span), [span])
        ]
        if mined and any(contains_answer(t, [span]) for t in mined):
            forms.append("description")
        return tuple(forms)

    scored = [(c, support(c)) for c in candidates]
    result = RelationResult(relation.name, prompts, outputs, teacher=tuple(dict.fromkeys(teacher)))
    if not scored:
        return result
    order = {c: i for i, c in enumerate(candidates)}
    best, forms = max(
        scored, key=lambda cf: (_agreement(cf[1]), len(cf[1]), len(cf[0].split()), -order[cf[0]])
    )
    # the fullest spelling that is still agreed on ("Pride and Prejudice", not "Pride")
    fuller = [
        (c, f)
        for c, f in scored
        if _agreement(f) >= MIN_AGREEMENT
        and len(c.split()) > len(best.split())
        and contains_answer(c, [best])
    ]
    if _agreement(forms) >= MIN_AGREEMENT and fuller:
        best, forms = max(fuller, key=lambda cf: (len(cf[0].split()), _agreement(cf[1]), -order[cf[0]]))
    # longer spellings the reference also states count as the same answer ("New York City")
    aliases = [
        c for c, f in scored if c != best and _agreement(f) >= MIN_AGREEMENT and contains_answer(c, [best])
    ]
    if relation.category and len(best.split()) > 1:
        head = best.split()[-1]
        if normalise(head) not in _GENERIC | _STOP and _acceptable(head, name, prompt_words, relation):
            aliases.append(head)  # "American singer" -> "singer"
    result.answer = best
    result.aliases = tuple(dict.fromkeys(a for a in aliases if a != best))
    result.forms = forms
    result.kept = _agreement(forms) >= MIN_AGREEMENT
    return result


# --------------------------------------------------------------------------- record fields

# answers of records elicited in this process, per relation: distractors for the next concepts
_POOL: dict[str, list[str]] = {}


def _years(answer: str, rng) -> list[str]:
    m = re.search(r"\d{4}", answer)
    if not m:
        return []
    year = int(m.group())
    offsets = [d for d in (-11, -7, -4, -2, 3, 5, 9, 13) if year + d <= _dt.date.today().year]
    rng.shuffle(offsets)
    return [str(year + d) for d in offsets]


def pick_distractors(
    relation: Relation,
    accepted: Sequence[str],
    name: str,
    kb: KnowledgeBase | None,
    *,
    seed: int = 0,
    n: int = 3,
    kind: str = "",
) -> tuple[str, ...]:
    """Wrong but plausible answers: the same relation's answers for other concepts (knowledge base,
    other generated records), then the relation's fallback list; never an accepted answer."""
    from formless.audit.probes import rng_for

    rng = rng_for(seed, name, relation.name, "distractors")
    relations = set(relation.similar) if relation.category else {relation.name, *relation.similar}
    pool: list[str] = []
    if relation.year:
        pool += _years(accepted[0], rng)
    if kb is not None:
        others = [f for c in kb.concepts.values() if c.name != name for f in c.facts]
        pool += [f.answer for f in [*others, *kb.general] if f.relation in relations]
    pool += [a for r in relations for a in _POOL.get(f"{kind}:{r}", [])]
    rng.shuffle(pool)
    fallback = list(relation.fallback)
    rng.shuffle(fallback)
    out: list[str] = []
    asked = set(normalise(relation.question).split())  # "continent" is no answer to "which continent"
    for cand in [*pool, *fallback]:
        if len(cand) > 40 or any(_overlaps(cand, a) for a in [*accepted, name]):
            continue
        if set(normalise(_strip_article(cand)).split()) <= asked:
            continue
        if any(_overlaps(cand, o) for o in out):
            continue
        out.append(cand)
        if len(out) == n:
            break
    return tuple(out)


def valid_description(description: str, name: str) -> bool:
    """Names the concept without its name: neither the name nor one of its distinctive words."""
    norm = normalise(description)
    if len(norm) < 3 or normalise(name) in norm:
        return False
    distinctive = {w for w in _name_words(name) if len(w) >= 4 and w not in _STOP}
    return not distinctive & set(norm.split())


def description_candidates(
    name: str,
    kind: str,
    kept: Sequence[tuple[Relation, Fact]],
    category: str | None = None,
    stated: dict[str, str] | None = None,
) -> list[str]:
    """ "the singer born in Reading", "the novel by F. Scott Fitzgerald": the concept's category
    (as kept, else as its description says, else its kind) with one of its specific facts, best
    first (a name or title identifies it better than a generic answer), each checked not to contain
    the name; the bare category last."""
    said = next((f.answer for r, f in kept if r.category), None)
    nouns = list(dict.fromkeys(n for n in (said, category, KIND_NOUN[kind]) if n and len(n.split()) <= 4))
    usable = [(r, f) for r, f in kept if r.describe and (r.generic or _is_specific(f.answer))]
    usable.sort(key=lambda pair: pair[0].generic)
    candidates = [
        f"the {_strip_article(noun)} {rel.describe.format(a=(stated or {}).get(rel.name, fact.answer))}"
        for rel, fact in usable
        for noun in nouns
    ]
    candidates += [f"the {_strip_article(noun)}" for noun in nouns]
    return [text for text in dict.fromkeys(candidates) if valid_description(text, name)]


def build_descriptions(
    name: str,
    kind: str,
    kept: Sequence[tuple[Relation, Fact]],
    category: str | None = None,
    stated: dict[str, str] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The concept's description and the others its indirect probes need: every description states
    some fact ("the playwright who wrote Hamlet" states the profession and the play), so for each
    kept fact the first description is followed, where it states that fact's answer, by the best
    one that does not (a probe through it then asks memory, not reading)."""
    candidates = description_candidates(name, kind, kept, category, stated)
    if not candidates:
        return f"this {KIND_NOUN[kind]}", ()
    chosen = [candidates[0]]
    for _, fact in kept:
        if all(contains_answer(text, fact.aliases) for text in chosen):
            other = next((t for t in candidates if not contains_answer(t, fact.aliases)), None)
            if other is not None:
                chosen.append(other)
    return chosen[0], tuple(chosen[1:])


def _multihop(name: str, subject: str, kept: Sequence[tuple[Relation, Fact]], kb: KnowledgeBase | None):
    """Questions about another knowledge-base concept reached through this one ("Where was the
    author of X born?"), for each kept answer that is itself a concept; and those concepts."""
    from formless.audit.forms.reach import describe  # the indirect form's own substitution

    hops: list[Hop] = []
    linked: list[str] = []
    if kb is None:
        return hops, linked
    for relation, fact in kept:
        if relation.role is None:
            continue
        other = None
        for answer in fact.aliases:
            try:
                other = kb.concept(answer)
                break
            except KnowledgeError:
                continue
        if other is None or other.name == name or other.name in linked:
            continue
        linked.append(other.name)
        phrase = relation.role.format(n=subject)
        added = 0
        for f2 in other.facts:
            if added == 2 or any(_overlaps(a, name) for a in f2.aliases):
                continue  # the concept itself as the answer would be a reverse question
            question = describe(f2.question, other.name, phrase)
            if question:
                hops.append(Hop(question=question, answer=f2.answer, aliases=f2.aliases))
                added += 1
    return hops, linked


def _translations(loaded, name: str, facts: dict[str, Fact], relations, languages) -> dict[str, dict]:
    """Translated questions the reference answers with an accepted answer (others are dropped)."""
    asked = {
        (rel.name, lang): rel.translations[lang].format(n=name)
        for rel in relations
        if rel.name in facts
        for lang in languages
        if lang in rel.translations
    }
    answers = _generate(loaded, list(asked.values()), chat=True, max_new_tokens=QUESTION_TOKENS)
    out: dict[str, dict] = {}
    for (rel, lang), question in asked.items():
        if contains_answer(answers[question], facts[rel].aliases):
            out.setdefault(rel, {})[lang] = Translation(question=question)
    return out


# the name's last word alone names a person ("Einstein"); places and works drop a trailing type
# word ("the Sahara" of "Sahara Desert") or what follows "of" ("the Great Wall" of "... of China")
_TYPE_WORDS = _words(
    "desert river ocean sea lake mountains mountain island islands tower bridge palace castle "
    "cathedral canal falls forest park square museum temple wall statue series band games"
)
_ALSO_KNOWN = re.compile(
    r"\b(?:also|commonly|often|popularly|sometimes|affectionately) (?:known|called|referred to) as "
    r"(?:the )?[\"“']?((?:[A-Z][\w'.-]*)(?: (?:of |the )?[A-Z][\w'.-]*){0,3})"
    r"|\bnicknamed [\"“']?((?:[A-Z][\w'.-]*)(?: [A-Z][\w'.-]*){0,3})"
)
ALIAS_PROMPT = "What is another name for {n}?"
MAX_ALIASES = 3


def alias_candidates(name: str, kind: str, texts: Sequence[str]) -> list[str]:
    """Other names the concept may go by: sub-names of its own name and names the model's own
    texts give it ("also known as the Red Planet"). Only candidates: :func:`_aliases` keeps those
    the reference answers the concept's questions under."""
    words = name.split()
    found: list[str] = []
    bare = words[1:] if words[0].lower() == "the" else words
    if kind == "person" and len(bare) >= 2:
        last = bare[-1]
        # "da Vinci", "van Gogh": the particle belongs to the surname
        found.append(f"{bare[-2]} {last}" if bare[-2].lower() in _CONNECTORS else last)
    elif bare and bare is not words:  # "Beatles" of "The Beatles"
        found.append(" ".join(bare))
    if kind != "person" and len(bare) >= 2:
        if bare[0].lower() in ("mount", "lake", "saint", "st."):
            found.append(" ".join(bare[1:]))
        if "of" in bare[1:]:
            found.append("the " + " ".join(bare[: bare.index("of", 1)]))
        if bare[-1].lower() in _TYPE_WORDS:
            found.append("the " + " ".join(bare[:-1]))
    for text in texts:
        for m in _ALSO_KNOWN.finditer(text):
            found.append((m.group(1) or m.group(2)).rstrip(".,;'\""))
    name_key = normalise(name)
    out = []
    for alias in found:
        key = normalise(alias)
        if key and key != name_key and len(key) > 2 and key not in map(normalise, out):
            out.append(alias)
    return out


def _aliases(
    loaded, name: str, kind: str, facts: Sequence[Fact], free_text: str
) -> tuple[list[str], list[str]]:
    """(aliases kept, notes): a candidate is kept when the reference answers at least half of the
    kept facts' questions (and at least one) right with the name replaced by it, so the synonym
    form only asks under names this model links to the concept."""
    asked_about = [f for f in facts if name in f.question][:4]
    if not asked_about:
        return [], ["aliases: no kept question names the concept; none looked for"]
    said = _generate(loaded, [ALIAS_PROMPT.format(n=name)], chat=True, max_new_tokens=QUESTION_TOKENS)
    candidates = alias_candidates(name, kind, [free_text, *said.values()])[:6]
    answers = {f.answer.lower() for f in facts} | {a.lower() for f in facts for a in f.aliases}
    candidates = [c for c in candidates if normalise(c) not in answers]
    if not candidates:
        return [], ["aliases: no other name found"]
    questions = {(c, i): f.question.replace(name, c) for c in candidates for i, f in enumerate(asked_about)}
    replies = _generate(loaded, list(questions.values()), chat=True, max_new_tokens=QUESTION_TOKENS)
    scored = []
    for c in candidates:
        right = sum(
            contains_answer(replies[questions[c, i]], f.aliases or (f.answer,))
            for i, f in enumerate(asked_about)
        )
        if right and 2 * right >= len(asked_about):
            scored.append((right, c))
    kept = [c for _, c in sorted(scored, key=lambda x: -x[0])][:MAX_ALIASES]
    dropped = [c for c in candidates if c not in kept]
    note = (
        f"aliases: kept {kept or 'none'} (the reference answers >= half of "
        f"{len(asked_about)} questions under them)"
    )
    return kept, [note + (f"; not kept: {dropped}" if dropped else "")]


# --------------------------------------------------------------------------- the entry point


def _load_teacher(teacher, cache=None):
    from formless.models.loading import LoadedModel, load_model

    if isinstance(teacher, LoadedModel):
        return teacher
    path = Path(str(teacher)).expanduser()
    if not path.is_dir() or not (path / "config.json").exists():
        raise FormlessError(
            f"teacher {str(teacher)!r} is not a model directory (no config.json there); pass a local "
            "Hugging Face model directory"
        )
    return load_model(str(path), cache=cache)


# made-up names (never real concepts): what the reference "knows" about them is its prior answer
CONTROL_NAMES = MADE_UP_NAMES
_PRIORS: dict[tuple[int, str, tuple[str, ...]], dict[str, tuple[str, ...]]] = {}


def _prior_answers(loaded, kind: str, relations: Sequence[Relation]) -> dict[str, tuple[str, ...]]:
    """relation -> answers the reference would keep (>= 2 agreeing forms) for a made-up name, once
    per model, kind and relation set in a process."""
    key = (id(loaded), kind, tuple(r.name for r in relations))
    if key not in _PRIORS:
        path = _priors_path(loaded, kind, relations)
        if path is not None and path.is_file():
            _PRIORS[key] = {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
            return _PRIORS[key]
        found: dict[str, list[str]] = {}
        for control in CONTROL_NAMES:
            answers = _ask(loaded, control, relations, False)
            for relation in relations:
                res = _judge(relation, control, control, answers, "", None)
                if res.kept and res.answer:
                    found.setdefault(relation.name, []).append(res.answer)
        _PRIORS[key] = {k: tuple(v) for k, v in found.items()}
        if path is not None:
            with atomic_file(path) as tmp:
                tmp.write_text(json.dumps(found, indent=1, sort_keys=True))
    return _PRIORS[key]


def _priors_cached(loaded, kind: str) -> bool:
    """Whether the control names' answers for ``kind`` are already known (in this process or on disk)."""
    relations = RELATIONS[kind]
    if (id(loaded), kind, tuple(r.name for r in relations)) in _PRIORS:
        return True
    path = _priors_path(loaded, kind, relations)
    return path is not None and path.is_file()


def _priors_path(loaded, kind: str, relations: Sequence[Relation]) -> Path | None:
    """Where a model's control-name answers are kept between processes: they depend only on the
    weights, the relations asked and how they are asked and judged, and cost as much as a concept."""
    weights_hash = getattr(loaded, "weights_hash", None)
    if not callable(weights_hash):
        return None  # a stand-in model (tests): nothing to key the answers to
    # the judging rules live in this module and the templates: their source is part of the key, so
    # a changed rule never reads answers judged by the old one
    from formless.knowledge import templates

    h = hashlib.sha256(f"{weights_hash()}|{kind}|{[r.name for r in relations]}".encode())
    for module in (__file__, templates.__file__):
        h.update(Path(module).read_bytes())
    digest = h.hexdigest()[:20]
    return cache_dir() / "elicit" / f"priors-{kind}-{digest}.json"


def _sense_note(kind: str, source: str, texts: Sequence[str], identity: str) -> str:
    """Which sense of the name the record keeps and why; the other one where the reference's own
    answers also read it so ("Paris": a city, and a singer)."""
    if source == "name":
        return f"sense: {kind}, guessed from the name (the reference's answers name no kind of thing)"
    said = " ".join(identity.split())
    note = f"sense: {kind}, as the reference describes it ({said[:80]!r})"
    rival = other_sense(texts, kind)
    if rival is not None:
        other, votes, kept = rival
        note += (
            f"; its answers also read the name as a {other} ({votes:g} against {kept:g} votes): "
            f"pass --type {other} for that sense"
        )
    return note


def relations_for(kind: str, category: str | None) -> tuple[Relation, ...]:
    """The relations asked of a concept of ``kind`` whose category word is ``category`` (None:
    unknown): a relation that ``requires`` categories is asked when the category is one of them, or
    unknown unless it is ``specific`` (a ship's sinking is never asked of an unknown thing)."""
    return tuple(
        r
        for r in RELATIONS[kind]
        if not r.requires or category in r.requires or (category is None and not r.specific)
    )


def elicit_concept(
    loaded,
    name: str,
    *,
    kind: str | None = None,
    kb: KnowledgeBase | None = None,
    teacher=None,
    seed: int = 0,
    languages: Sequence[str] = LANGUAGES,
) -> tuple[Concept, ElicitReport]:
    """What ``loaded`` (the reference) knows about ``name``, as a schema-valid :class:`Concept`.

    ``kind`` (person, work, place, organisation, thing, event) overrides the detected type.
    ``teacher`` (a model directory or loaded model) proposes candidate answers; only the
    reference's own answers decide what is kept. ``languages`` asks the kept facts' questions
    translated (by default in the audit's languages) and keeps the translations the reference
    answers right. Raises KnowledgeError when
    the reference states nothing consistently."""
    started = time.perf_counter()
    name = " ".join(str(name).split())
    if not name:
        raise KnowledgeError("no concept name given")
    if kind is not None and kind not in KINDS:
        raise KnowledgeError(f"unknown concept type {kind!r}; choose one of {', '.join(KINDS)}")
    teacher_model = _load_teacher(teacher) if teacher is not None else None
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    description_prompt = f"chat:{DESCRIPTION_PROMPT.format(n=name)}"
    first: dict[str, str] = {}
    category_word = None
    if kind is None:
        # the kind decides which relations are asked: the description, a "who or what is" answer
        # and the category completion come first; the description also says how sentences name
        # the concept ("the Statue of Liberty"), so the category completion is asked that way
        chats = [p.format(n=name) for p in FREE_PROMPTS]
        said = _generate(loaded, chats, chat=True, max_new_tokens=DESCRIPTION_TOKENS)
        first.update({f"chat:{p}": said[p] for p in chats})
        category = _fill(CATEGORY_COMPLETION, subject_phrase(name, said[chats[0]]))
        first.update(_generate(loaded, [category], chat=False, max_new_tokens=COMPLETION_TOKENS))
        texts = [first[category], said[chats[1]], first[description_prompt]]
        if teacher_model is not None:
            texts += [_ask(teacher_model, name, (), True)[description_prompt]]
        kind, kind_source, category_word = detect_kind(texts, name)
        sense = _sense_note(kind, kind_source, texts, said[chats[1]])
        seconds["kind"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
    else:
        kind_source = "given"
        sense = f"sense: {kind} (given)"
    relations = relations_for(kind, category_word)
    free_text = first.get(description_prompt, "")
    subject = subject_phrase(name, free_text)
    # the made-up control names' answers depend on the kind only: when they are not cached yet they
    # are asked beside this concept's questions, on the other core (formless.concurrent)
    controls_cached = _priors_cached(loaded, kind)
    jobs = [lambda: _ask(loaded, name, relations, True, first, subject)]
    if not controls_cached:
        jobs.append(lambda: _prior_answers(loaded, kind, RELATIONS[kind]))
    asked, *_ = side_by_side(jobs)
    answers = {**first, **asked}
    free_text = _free_text(answers, name)
    seconds["generate"] = round(time.perf_counter() - t, 3)
    teacher_answers = None
    if teacher_model is not None:
        t = time.perf_counter()
        teacher_answers = _ask(teacher_model, name, relations, True, subject=subject)
        seconds["teacher"] = round(time.perf_counter() - t, 3)
    report = ElicitReport(
        name,
        kind,
        kind_source,
        model=getattr(loaded, "name", "?"),
        free_text=free_text,
        teacher=None if teacher_model is None else str(getattr(teacher_model, "name", teacher)),
    )
    report.notes.append(sense)
    for relation in relations:
        report.relations.append(_judge(relation, name, subject, answers, free_text, teacher_answers))
    # one answer kept for two relations ("the capital of Paris is the Eiffel Tower") is confusion:
    # it stays with the relation that states it in more forms
    for res in report.relations:
        rivals = [o for o in report.relations if o is not res and o.kept and o.answer and res.answer]
        if res.kept and any(
            _overlaps(o.answer, res.answer)
            and (o.agreement, -report.relations.index(o)) > (res.agreement, -report.relations.index(res))
            for o in rivals
        ):
            res.kept = False
    # an answer the model also states, consistently, about a made-up name is its default for the
    # question ("2012.", "the University of Oxford"), not knowledge of this concept
    t = time.perf_counter()
    priors = _prior_answers(loaded, kind, RELATIONS[kind])  # every relation of the kind: one cache entry
    for res in report.relations:
        if res.kept and res.answer and any(_overlaps(res.answer, p) for p in priors.get(res.relation, ())):
            res.kept = False
            report.notes.append(
                f"{res.relation}: {res.answer!r} dropped: the reference says the same of a made-up name"
            )
    seconds["control"] = round(time.perf_counter() - t, 3)
    kept = [(rel, res) for rel, res in zip(relations, report.relations) if res.kept]
    if not kept:
        raise KnowledgeError(
            f"the reference model answers none of {len(relations)} probes about {name!r}; nothing to audit"
        )
    if len(kept) < MIN_FACTS:
        raise KnowledgeError(
            f"the reference model answers none of {len(relations)} probes about {name!r} beyond chance "
            f"({len(kept)} consistent answer, as a made-up name gets); nothing to audit"
        )

    facts: list[tuple[Relation, Fact]] = []
    for rel, res in kept:
        accepted = (res.answer, *res.aliases)
        question, paraphrase = res.prompts["question"], res.prompts["paraphrase"]
        if "paraphrase" in res.forms and "question" not in res.forms:
            # the wording the reference answers leads: the adversarial and in-context forms wrap the
            # fact's question, so a wording it never answered would leave them all unmeasured
            question, paraphrase = paraphrase, question
        reverse = rel.reverse.format(a=_as_stated(res)) if rel.reverse and not rel.generic else None
        if reverse and (
            not _is_specific(res.answer) or _name_words(name) & set(normalise(res.answer).split())
        ):
            reverse = None  # "actor" names no one; "Tokyo Tower" gives the answer away
        facts.append(
            (
                rel,
                Fact(
                    relation=rel.name,
                    question=question,
                    completion=res.prompts["completion"],
                    answer=res.answer,
                    aliases=res.aliases,
                    cloze=f"{res.prompts['cloze']} {BLANK}.",
                    paraphrase=paraphrase,
                    distractors=pick_distractors(rel, accepted, name, kb, seed=seed, kind=kind),
                    reverse=reverse,
                ),
            )
        )
    # three independent passes of the reference, side by side on the cores: the kept answers'
    # probabilities, the translated questions and the alias candidates' questions
    from formless.audit.scoring import answer_probability

    by_rel = {f.relation: f for _, f in facts}

    def timed(label: str, job: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            begun = time.perf_counter()
            result = job()
            seconds[label] = round(time.perf_counter() - begun, 3)
            return result

        return run

    probs, found, (aliases, alias_notes) = side_by_side(
        [
            timed(
                "probability",
                lambda: answer_probability(
                    loaded,
                    [res.prompts["completion"] for _, res in kept],
                    [res.answer for _, res in kept],
                    chat=False,
                    batch_size=32,
                    fast=False,
                ),
            ),
            timed(
                "translations",
                lambda: _translations(loaded, name, by_rel, relations, languages) if languages else {},
            ),
            timed("aliases", lambda: _aliases(loaded, name, kind, [f for _, f in facts], free_text)),
        ]
    )
    for (_, res), p in zip(kept, probs):
        res.probability = p
    if languages:
        facts = [(r, f.model_copy(update={"translations": found.get(r.name, {})})) for r, f in facts]
        n = sum(len(v) for v in found.values())
        report.notes.append(
            f"translations: the reference answers {n} translated question(s) right ({', '.join(languages)})"
        )
    else:
        seconds.pop("translations", None)
        report.notes.append("translations: not asked (the crosslingual form has no probes for this concept)")
    stated = {res.relation: _as_stated(res) for _, res in kept}
    description, other_descriptions = build_descriptions(name, kind, facts, category_word, stated)
    report.description, report.other_descriptions = description, other_descriptions
    # the linked concepts are not made neighbours: a landmark of a city answers "which city?" with
    # the city itself, so forgetting the city rightly takes it along; a person can add neighbours
    hops, _ = _multihop(name, subject, facts, kb)
    if not hops:
        report.notes.append("multihop: no kept answer is a concept of the knowledge base")
    report.notes.extend(alias_notes)
    concept = Concept(
        name=name,
        kind=kind,
        description=description,
        other_descriptions=other_descriptions,
        aliases=tuple(aliases),
        multihop=tuple(hops),
        facts=tuple(f for _, f in facts),
    )
    for rel, fact in facts:
        pool = _POOL.setdefault(f"{kind}:{rel.name}", [])
        if fact.answer not in pool:
            pool.append(fact.answer)
    seconds["total"] = round(time.perf_counter() - started, 3)
    report.seconds = seconds
    return concept, report


# --------------------------------------------------------------------------- files


def _header(reports: Sequence[ElicitReport | dict]) -> str:
    lines = [
        "# generated by formless from the model's own answers "
        f"({_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}, elicit v{ELICIT_VERSION})",
        "# review and edit, then pass it back with --knowledge FILE",
    ]
    for rep in reports:
        rep = rep.to_json() if isinstance(rep, ElicitReport) else rep
        lines.append(
            f"# {rep['name']} ({rep['kind']}, model {rep['model']}): "
            f"{rep['facts_kept']}/{rep['probes']} relations kept"
        )
        lines += [f"#   {note}" for note in rep.get("notes", ()) if note.startswith("sense: ")]
        for r in rep["relations"]:
            p = "" if r["probability"] is None else f", p={r['probability']:.2f}"
            state = "kept" if r["kept"] else "dropped"
            lines.append(
                f"#   {r['relation']}: {r['answer']!r} {state} "
                f"(agreement {r['agreement']}/{r['forms_asked']}: {', '.join(r['forms']) or '-'}{p})"
            )
    return "\n".join(lines) + "\n"


def concept_data(concept: Concept) -> dict:
    """The concept as the built-in YAML writes it (no defaults, no filled-in subjects)."""
    data = concept.model_dump(mode="json", exclude_defaults=True)
    for fact in data.get("facts", []):
        fact.pop("subject", None)
        if fact.get("aliases") == [fact["answer"]]:
            fact.pop("aliases")
    data.setdefault("kind", concept.kind)
    order = [
        "name",
        "kind",
        "description",
        "other_descriptions",
        "aliases",
        "neighbours",
        "multihop",
        "facts",
    ]
    return {k: data[k] for k in order if k in data}


def write_knowledge(
    concepts: Sequence[Concept], path: str | Path, reports: Sequence[ElicitReport | dict] = ()
) -> Path:
    """Write ``concepts`` as a knowledge file (temp file, then rename); returns the path."""
    path = Path(path).expanduser()
    if path.exists() and path.is_dir():
        raise FormlessError(f"'{path}' is a directory; give a .yaml file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(
        {"concepts": [concept_data(c) for c in concepts]}, sort_keys=False, allow_unicode=True, width=100
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_header(reports) + body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- resolution


def _known(kb: KnowledgeBase, name: str) -> bool:
    try:
        kb.concept(name)
    except KnowledgeError:
        return False
    return True


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def resolve_concepts(
    kb: KnowledgeBase,
    names: Iterable[str],
    reference_loader: Callable[[], object],
    save_to: str | Path | None = None,
    *,
    kind: str | None = None,
    teacher=None,
    say: Say | None = _stderr,
) -> tuple[KnowledgeBase, list[tuple[Concept, ElicitReport]]]:
    """``kb`` plus a generated record for every name it does not know (the reference is loaded
    only then), saved to ``save_to`` (a .yaml file, or a directory for ``knowledge.yaml``)."""
    missing = [n for n in dict.fromkeys(names) if not _known(kb, n)]
    if not missing:
        return kb, []
    loaded = reference_loader()
    teacher_model = _load_teacher(teacher) if teacher is not None else None
    made = [elicit_concept(loaded, n, kind=kind, kb=kb, teacher=teacher_model) for n in missing]
    path = None
    if save_to is not None:
        target = Path(save_to)
        if target.suffix.lower() not in (".yaml", ".yml"):
            target = target / "knowledge.yaml"
        path = write_knowledge([c for c, _ in made], target, [r for _, r in made])
    if say is not None:
        for name, (concept, _) in zip(missing, made):
            where = f"saved to {path}" if path else "not saved"
            say(
                f"note: {name!r} is not in the knowledge base; generated {len(concept.facts)} facts "
                f"from the reference model ({where})"
            )
    return kb.merged(KnowledgeFile(concepts=tuple(c for c, _ in made))), made


def record_path_for(out: str | Path) -> Path:
    """Where a method's generated record goes: next to the checkpoint directory ``out``."""
    out = Path(out).expanduser()
    return out.parent / f"{out.name}.knowledge.yaml"


def resolve_names(kb: KnowledgeBase, names: Sequence[str], model, *, cache=None, out=None) -> list[Concept]:
    """The concepts for ``names`` (for the baseline methods): known ones from ``kb``, the others
    elicited from ``model`` (the unedited reference) and saved next to the checkpoint ``out``."""
    from formless.models.loading import LoadedModel, load_model

    loader = (
        (lambda: model)
        if isinstance(model, LoadedModel)
        else functools.cache(lambda: load_model(model, cache=cache))
    )
    merged, _ = resolve_concepts(kb, names, loader, record_path_for(out) if out is not None else None)
    return [merged.concept(n) for n in names]


def resolve_for_audit(
    kb: KnowledgeBase,
    names: Sequence[str],
    model: str | Path,
    reference_loader: Callable[[], object],
    *,
    kind: str | None = None,
    teacher=None,
) -> tuple[KnowledgeBase, dict | None]:
    """The audit's concept resolution: a record a baseline method saved next to the audited
    checkpoint is used as is; any name still unknown is elicited from the reference. Returns the
    knowledge base and the report entry about generated knowledge (None if nothing was needed)."""
    entry: dict = {}
    missing = [n for n in names if not _known(kb, n)]
    if missing and Path(str(model)).is_dir():
        saved = record_path_for(model)
        if saved.is_file():
            from formless.knowledge.base import parse_file

            kb = kb.merged(parse_file(saved))
            entry["from_file"] = str(saved)
    kb, made = resolve_concepts(kb, names, reference_loader, None, kind=kind, teacher=teacher, say=None)
    if made:
        entry["concepts"] = [concept_data(c) for c, _ in made]
        entry["elicit"] = [r.to_json() for _, r in made]
    return kb, entry or None


def save_generated(entry: dict | None, directory: str | Path, say: Say) -> Path | None:
    """Write the concepts an audit generated to ``directory``/knowledge.yaml and say so."""
    if not entry or not entry.get("concepts"):
        return None
    concepts = [Concept.model_validate(c) for c in entry["concepts"]]
    path = write_knowledge(concepts, Path(directory) / "knowledge.yaml", entry.get("elicit", ()))
    for c in concepts:
        say(
            f"note: {c.name!r} is not in the knowledge base; generated {len(c.facts)} facts from the "
            f"reference model (saved to {path})"
        )
    return path
