"""Every form renders probes from a concept and scores on a tiny model."""

from __future__ import annotations

import pytest

from formless.audit.engine import score_probes, spelled_hit
from formless.audit.forms import FORMS, FormContext, select
from formless.audit.forms.reach import describe
from formless.audit.probes import spell
from formless.knowledge import Concept
from formless.models import load_model

CONCEPT = Concept.model_validate(
    {
        "name": "Harry Potter",
        "kind": "work",
        "description": "the book series about a boy wizard with a lightning-shaped scar",
        "aliases": ["the Boy Who Lived books"],
        "neighbours": [],
        "multihop": [
            {"question": "Who wrote the books in which Hogwarts appears?", "answer": "J.K. Rowling"}
        ],
        "facts": [
            {
                "relation": "author",
                "question": "Who wrote Harry Potter?",
                "completion": "The Harry Potter books were written by",
                "answer": "J.K. Rowling",
                "aliases": ["Rowling"],
                "cloze": "Harry Potter was written by ___.",
                "paraphrase": "Which writer created Harry Potter?",
                "distractors": ["Roald Dahl", "C.S. Lewis", "J.R.R. Tolkien"],
                "reverse": "Which book series did J.K. Rowling write?",
                "translations": {"fr": {"question": "Qui a écrit Harry Potter ?"}},
            },
            {
                "relation": "villain",
                "question": "Who is the villain of Harry Potter's story?",
                "completion": "The main villain in Harry Potter is",
                "answer": "Voldemort",
                "cloze": "The main villain in Harry Potter is ___.",
                "distractors": ["Sauron", "Darth Vader", "Moriarty"],
            },
        ],
    }
)
GENERAL = Concept.model_validate(
    {
        "name": "France",
        "description": "a country in western Europe",
        "facts": [
            {"relation": r, "question": f"q{r}?", "completion": f"c{r}", "answer": a}
            for r, a in (("capital", "Paris"), ("currency", "euro"), ("language", "French"))
        ],
    }
)
CTX = FormContext(seed=3, few_shot=GENERAL.facts)


@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_renders_probes(name):
    probes = FORMS[name]().probes(CONCEPT, CTX)
    assert probes, f"{name} produced no probes"
    for p in probes:
        assert p.form == name and p.concept == "Harry Potter" and p.prompt
        assert p.answer is not None or p.generates
        if name in {"indirect", "multihop", "reverse"}:
            assert "Harry Potter" not in p.prompt
        if p.options:
            assert 0 <= p.correct < len(p.options)
    assert len({p.key for p in probes}) == len(probes)


def test_choice_forms_put_the_answer_among_the_options_once():
    (mc,) = [
        p for p in FORMS["multiple_choice"]().probes(CONCEPT, CTX) if p.item == "author" and not p.prior_twin
    ]
    assert sorted(mc.options) == sorted(["J.K. Rowling", "Roald Dahl", "C.S. Lewis", "J.R.R. Tolkien"])
    assert mc.options[mc.correct] == "J.K. Rowling"
    (letter,) = [
        p
        for p in FORMS["multiple_choice_letter"]().probes(CONCEPT, CTX)
        if p.item == "author" and not p.prior_twin
    ]
    assert letter.options == ("A", "B", "C", "D") and f"{letter.answer}. J.K. Rowling" in letter.prompt
    tf = [p for p in FORMS["true_false"]().probes(CONCEPT, CTX) if p.item == "author" and not p.prior_twin]
    assert [p.variant for p in tf] == ["true", "false"] and [p.correct for p in tf] == [0, 1]
    assert "written by J.K. Rowling." in tf[0].prompt and "J.K. Rowling" not in tf[1].prompt
    # the option order is a function of the seed
    orders = {FORMS["multiple_choice"]().probes(CONCEPT, FormContext(seed=s))[0].options for s in range(8)}
    assert len(orders) > 1
    assert FORMS["multiple_choice"]().probes(CONCEPT, CTX) == FORMS["multiple_choice"]().probes(CONCEPT, CTX)


def test_recognition_probes_that_name_the_concept_get_a_prior_twin_per_made_up_name():
    from formless.audit.forms.base import PRIOR_NAME, PRIOR_NAMES, prior_twin
    from formless.rocr.config import UNKNOWN_NAMES

    assert PRIOR_NAMES[0] == PRIOR_NAME and len(set(PRIOR_NAMES)) == len(PRIOR_NAMES) >= 3
    # ROCR's default redirect averages its own made-up names: a twin that shared one would make the
    # edited model match the prior by construction
    assert not set(PRIOR_NAMES) & set(UNKNOWN_NAMES)
    for form in ("multiple_choice", "multiple_choice_letter", "true_false"):
        probes = FORMS[form]().probes(CONCEPT, CTX)
        named = [p for p in probes if not p.prior_twin]
        twins = {(p.fact_key, p.twin): p for p in probes if p.prior_twin}
        # every prompt here names the concept: one twin per made-up name, nothing else
        assert named and set(twins) == {(p.key, k) for p in named for k in range(len(PRIOR_NAMES))}
        assert len(twins) == len(probes) - len(named)
        for p in named:
            keys = {p.key} | {twins[p.key, k].key for k in range(len(PRIOR_NAMES))}
            prints = {p.fingerprint()} | {twins[p.key, k].fingerprint() for k in range(len(PRIOR_NAMES))}
            assert len(keys) == len(prints) == 1 + len(PRIOR_NAMES)
            # the first twin keeps the key it had when there was one (the reference cache's results stay)
            assert twins[p.key, 0].key == p.key + "~prior"
            for k, made_up in enumerate(PRIOR_NAMES):
                twin = twins[p.key, k]
                assert "harry potter" not in twin.prompt.lower() and made_up in twin.prompt
                assert twin.prompt == p.prompt.replace("Harry Potter", made_up)
                assert (twin.options, twin.correct, twin.answer) == (p.options, p.correct, p.answer)
    # a prompt that never names the concept has none; an alias is replaced like the name, whole words only
    plain = FORMS["multiple_choice"]().probes(CONCEPT, CTX)[0]
    from dataclasses import replace

    assert prior_twin(replace(plain, prompt="Who is Harry's best friend?"), CONCEPT) is None
    assert prior_twin(replace(plain, prompt="Who wrote THE BOY WHO LIVED BOOKS?"), CONCEPT).prompt == (
        f"Who wrote {PRIOR_NAME}?"
    )
    assert prior_twin(replace(plain, prompt="Who wrote Harry Potterish tales?"), CONCEPT) is None
    # forms that generate their answer get no twin
    assert not any(p.prior_twin for p in FORMS["question"]().probes(CONCEPT, CTX))


def test_indirect_replaces_the_name_and_its_possessive():
    text = describe(
        "Who is the villain of Harry Potter's story?", "Harry Potter", "book series about wizards"
    )
    assert text == "Who is the villain of the book series about wizards's story?"
    assert describe("Who wrote it?", "Harry Potter", "x") is None
    # the name's own article is replaced with it, not doubled
    assert describe("What surrounds the Amazon River?", "Amazon River", "the largest river") == (
        "What surrounds the largest river?"
    )
    assert (
        describe("The Moon orbits what?", "Moon", "the only satellite") == "The only satellite orbits what?"
    )


def test_spelled_form_and_matching():
    assert spell("J.K. Rowling") == "J\n.\nK\n.\nR\no\nw\nl\ni\nn\ng"
    assert spelled_hit("R\no\nw\nl\ni\nn\ng", ["Rowling"])
    assert spelled_hit("r o w l i n g", ["Rowling"])
    assert not spelled_hit("R\no\nw", ["Rowling"])


def test_every_form_scores_on_a_tiny_model(tiny_dir):
    loaded = load_model(str(tiny_dir))
    probes = [p for form in select() for p in form.probes(CONCEPT, CTX)]
    results = score_probes(loaded, probes, batch_size=8)
    assert len(results) == len(probes)
    for p, r in zip(probes, results):
        if p.options:
            assert r.chosen is not None and r.hit == (r.chosen == p.correct)
            assert 0 < r.probability < 1
        elif p.answer is not None:
            assert 0 < r.probability < 1 and isinstance(r.output, str)
        else:
            assert r.probability is None and isinstance(r.output, str)
    # probes sharing a prompt (free generation) share one generation
    free = [r.output for p, r in zip(probes, results) if p.form == "free_generation"]
    assert len(set(free)) == 1


def test_a_probe_whose_prompt_states_its_answer_is_not_asked():
    """The description "the wizard from the boy-wizard books by J.K. Rowling" gives the author away in
    every form that shows it (indirect reference, background hint): those probes are set aside and
    counted, the other facts' probes and every choice probe are asked as before."""
    from formless.audit.building import build_probes
    from formless.audit.forms.base import gives_away
    from formless.audit.settings import AuditSettings
    from formless.knowledge.base import KnowledgeBase

    telling = CONCEPT.model_copy(update={"description": "the boy-wizard books by J.K. Rowling"})
    kb = KnowledgeBase(concepts={telling.name: telling}, general=tuple(GENERAL.facts))
    settings = AuditSettings(forms=["indirect", "background_hint", "question", "multiple_choice"])
    sets = build_probes(kb, [telling], settings)
    assert sets.given_away_per_form() == {"indirect": 1, "background_hint": 1}
    assert {(p.form, p.item) for p in sets.given_away} == {
        ("indirect", "author"),
        ("background_hint", "author"),
    }
    asked = {(p.form, p.item) for p in sets.forget if not p.prior_twin}
    assert ("indirect", "villain") in asked and ("background_hint", "villain") in asked
    assert {
        ("question", "author"),
        ("multiple_choice", "author"),
    } <= asked  # options hold the answer by design
    # with the original description nothing is set aside
    plain = build_probes(
        KnowledgeBase(concepts={CONCEPT.name: CONCEPT}, general=tuple(GENERAL.facts)), [CONCEPT], settings
    )
    assert plain.given_away == [] and len(plain.forget) == len(sets.forget) + 2
    # the context form states the fact on purpose
    in_context = FORMS["in_context"]().probes(CONCEPT, CTX)[0]
    assert in_context.answer in in_context.prompt and not gives_away(in_context, "context")


def test_few_shot_examples_never_hold_the_facts_answer():
    shots = [
        *GENERAL.facts,
        GENERAL.facts[0].model_copy(
            update={"question": "Who wrote the Cormoran Strike novels?", "answer": "J.K. Rowling"}
        ),
    ]
    for seed in range(20):
        probes = FORMS["few_shot"]().probes(CONCEPT, FormContext(seed=seed, few_shot=tuple(shots)))
        author = next(p for p in probes if p.item == "author")
        assert "Rowling" not in author.prompt
    # fewer than three clean examples: no few-shot probe for that fact
    assert [p.item for p in FORMS["few_shot"]().probes(CONCEPT, FormContext(few_shot=tuple(shots[1:])))] == [
        "villain"
    ]


def test_a_neighbour_fact_whose_answer_is_the_forgotten_concept_is_not_counted_as_retain():
    """Forgetting Leonardo da Vinci, "Who painted the Mona Lisa?" is da Vinci's own reverse fact, not
    neighbouring knowledge to keep: its probes are set aside and counted. The Mona Lisa's other facts
    stay neighbours, and so does a fact that would merely *accept* the concept among other answers."""
    from formless.audit.building import build_probes
    from formless.audit.settings import AuditSettings
    from formless.knowledge.base import KnowledgeBase

    painter = Concept.model_validate(
        {
            "name": "Leonardo da Vinci",
            "kind": "person",
            "description": "the Renaissance painter of The Last Supper",
            "aliases": ["da Vinci"],
            "neighbours": ["Mona Lisa"],
            "facts": [
                {"relation": "born", "question": "In which country was Leonardo da Vinci born?",
                 "completion": "Leonardo da Vinci was born in", "answer": "Italy"},
            ],
        }
    )  # fmt: skip
    painting = Concept.model_validate(
        {
            "name": "Mona Lisa",
            "kind": "work",
            "description": "the portrait of Lisa Gherardini",
            "neighbours": ["Leonardo da Vinci"],
            "facts": [
                {"relation": "painter", "question": "Who painted the Mona Lisa?",
                 "completion": "The Mona Lisa was painted by", "answer": "Leonardo da Vinci",
                 "aliases": ["Leonardo da Vinci", "da Vinci"]},
                {"relation": "museum", "question": "In which museum is the Mona Lisa?",
                 "completion": "The Mona Lisa hangs in the", "answer": "Louvre"},
                {"relation": "famous_painter", "question": "Name a famous Renaissance painter.",
                 "completion": "A famous Renaissance painter is", "answer": "Raphael",
                 "aliases": ["Raphael", "da Vinci"]},
            ],
        }
    )  # fmt: skip
    kb = KnowledgeBase(
        concepts={painter.name: painter, painting.name: painting}, general=tuple(GENERAL.facts)
    )
    sets = build_probes(kb, [painter], AuditSettings(forms=["question"]))
    assert {(p.item, p.form) for p in sets.answer_is_target} == {
        ("painter", "question"),
        ("painter", "completion"),
    }
    assert {p.item for p in sets.neighbour} == {"museum", "famous_painter"}
    assert all(p.concept == "Mona Lisa" for p in sets.neighbour)
    # forgetting the painting instead, its own facts are the target's: nothing is set aside
    other = build_probes(kb, [painting], AuditSettings(forms=["question"]))
    assert other.answer_is_target == [] and {p.item for p in other.neighbour} == {"born"}


def test_an_indirect_probe_is_twinned_by_the_entities_its_description_names():
    """The question asked about each named entity or year of the description instead of the concept
    (at most three, none naming the concept), only when every form's twins are asked."""
    from formless.audit.building import build_probes
    from formless.audit.forms.reach import description_cues
    from formless.audit.settings import AuditSettings
    from formless.knowledge.base import KnowledgeBase

    tower = Concept.model_validate(
        {
            "name": "Eiffel Tower",
            "kind": "place",
            "description": "the wrought-iron lattice tower on the Champ de Mars in Paris",
            "facts": [
                {"relation": "country", "question": "In which country is the Eiffel Tower?",
                 "completion": "The Eiffel Tower is in", "answer": "France"},
            ],
        }
    )  # fmt: skip
    assert description_cues(tower.description, tower) == ["Champ de Mars", "Paris"]
    assert description_cues("the Tower by Eiffel's company, opened in 1889 in Paris", tower) == [
        "1889",
        "Paris",
    ]
    assert description_cues(
        "the Last Supper's painter, of the Italian Renaissance, in Florence, Milan and Rome", tower
    ) == [
        "Last Supper",
        "Italian Renaissance",
        "Florence",
    ]  # at most three
    kb = KnowledgeBase(concepts={tower.name: tower}, general=tuple(GENERAL.facts))
    plain = build_probes(kb, [tower], AuditSettings(forms=["indirect"]))
    assert [p.prior_twin for p in plain.forget] == [False]
    sets = build_probes(kb, [tower], AuditSettings(forms=["indirect"], prior_twins="all"))
    probe, *twins = sets.forget
    assert probe.prompt == "In which country is the wrought-iron lattice tower on the Champ de Mars in Paris?"
    assert [(t.prompt, t.cue, t.twin, t.key) for t in twins] == [
        ("In which country is Champ de Mars?", "Champ de Mars", 0, probe.key + "~prior"),
        ("In which country is Paris?", "Paris", 1, probe.key + "~prior1"),
    ]
    assert all(t.prior_twin and t.answer == probe.answer for t in twins)
