"""The shipped knowledge base's promises, and clear errors for users' own files."""

from __future__ import annotations

import pytest

from formless.knowledge import KnowledgeError, builtin, load, parse_file
from formless.matching import contains_answer

VALID = """
concepts:
  - name: Zorblax
    kind: person
    description: the inventor of the glimmer engine
    aliases: [Zorb]
    neighbours: [Harry Potter]
    facts:
      - relation: invention
        question: What did Zorblax invent?
        completion: Zorblax is famous for inventing the
        answer: glimmer engine
        cloze: Zorblax invented the ___.
        distractors: [steam engine, printing press, telescope]
"""


def test_builtin_knowledge_base_is_big_and_complete():
    kb = builtin()
    assert len(kb.concepts) >= 40
    assert len(kb.general) >= 100
    names = set(kb.concepts)
    for concept in kb.concepts.values():
        assert len(concept.facts) >= 8, concept.name
        assert concept.neighbours and set(concept.neighbours) <= names, concept.name
        assert len(concept.multihop) >= 1, concept.name
        for fact in concept.facts:
            assert fact.cloze and len(fact.distractors) == 3 and fact.paraphrase, (
                concept.name,
                fact.relation,
            )
            assert len(fact.translations) >= 2, (concept.name, fact.relation)
            # the indirect and background-hint forms ask it through a description without its answer
            assert concept.description_for(fact.aliases) is not None, (concept.name, fact.relation)
    for fact in kb.general:  # the retain set must not be about any concept that can be forgotten
        assert not contains_answer(f"{fact.question} {fact.answer}", names), fact.question


def test_user_file_merges_with_builtin(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(VALID)
    kb = load([path])
    zorb = kb.concept("zorb")  # found by alias, case-insensitive
    assert zorb.name == "Zorblax" and zorb.facts[0].aliases[0] == "glimmer engine"
    assert zorb.facts[0].subject == "Zorblax"
    assert "Harry Potter" in kb.concepts and kb.neighbours(zorb)[0].name == "Harry Potter"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("        answer: glimmer engine\n", ""),
            "0 (Zorblax) > facts > 0 (invention) > answer: Field required",
        ),
        (("cloze: Zorblax invented the ___.", "cloze: Zorblax invented it."), "blank"),
        (("[steam engine,", "[glimmer engine,"), "distractor is also an accepted answer"),
        (
            ("description: the inventor", "description: Zorblax, the inventor"),
            "must not contain the concept's name",
        ),
        (
            (
                "description: the inventor of the glimmer engine",
                "description: the inventor\n    other_descriptions: [Zorblax's maker]",
            ),
            "must not contain the concept's name",
        ),
        (("neighbours: [Harry Potter]", "neighbours: [Nobody Known]"), "Zorblax -> Nobody Known"),
        (
            ("    kind: person\n", "    kind: person\n    colour: blue\n"),
            "colour: Extra inputs are not permitted",
        ),
        (("facts:", "facts: [\n"), "is not valid YAML"),
    ],
)
def test_invalid_user_files_name_the_entry(tmp_path, change, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace(*change))
    with pytest.raises(KnowledgeError) as info:
        load([path])
    assert expected in str(info.value)
    assert "bad.yaml" in str(info.value) or "Nobody" in str(info.value)


def test_unknown_concept_and_missing_file(tmp_path):
    with pytest.raises(KnowledgeError, match="--knowledge FILE"):
        builtin().concept("Definitely Not A Concept")
    with pytest.raises(KnowledgeError, match="does not exist"):
        load([tmp_path / "missing.yaml"])
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(KnowledgeError, match="expected a mapping"):
        parse_file(tmp_path / "list.json")
