"""formless' own greedy loop (finished rows leave the batch) against ``transformers``' ``generate``:
the same tokens on every supported architecture, with rows ending at different steps."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import SUPPORTED, save_tiny_model

from formless.generation import _own_loop_applies, generate, greedy_new_tokens
from formless.models import load_model
from formless.models.prompts import add_special_tokens, render

pytestmark = pytest.mark.usefixtures("one_thread_module")

PROMPTS = ["Who wrote it?", "The capital of France is", "a b c d e f g h i j k", "Name a colour.", "x"]
STEPS = 10


def _hf(model, batch, pad: int) -> torch.Tensor:
    out = model.generate(
        **batch,
        max_new_tokens=STEPS,
        do_sample=False,
        pad_token_id=pad,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    return out[:, batch["input_ids"].shape[1] :]


@pytest.mark.parametrize("arch", SUPPORTED)
@pytest.mark.parametrize("chat", [True, False])
def test_own_loop_matches_generate(arch, chat, tmp_path):
    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    assert _own_loop_applies(model)
    tok.padding_side = "left"
    texts = [render(tok, p, chat=chat) for p in PROMPTS]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens(tok, chat))
    pad = tok.pad_token_id
    with torch.no_grad():
        model.generation_config.eos_token_id = None
        free = _hf(model, batch, pad)
        # EOS = tokens rows produce at different steps: those rows leave the batch early and the
        # others must not notice
        model.generation_config.eos_token_id = sorted({int(free[0, 2]), int(free[1, 5])})
        ref = _hf(model, batch, pad)
        own = greedy_new_tokens(
            model, batch["input_ids"], batch["attention_mask"], max_new_tokens=STEPS, pad_token_id=pad
        )
    assert torch.equal(own, ref)
    eos = torch.tensor(model.generation_config.eos_token_id)
    ended = [int(torch.isin(row, eos).nonzero()[0]) for row in ref if torch.isin(row, eos).any()]
    assert ended and min(ended) < ref.shape[1] - 1, "no row ended early: the test tests nothing"
    # and through generate(), strings and all, where the prompts are prefilled in batches of like
    # lengths and decoded together (other batches than model.generate's: float64, so that rounding
    # does not break the random model's near-ties; the shared prefix is tested on its own)
    model.double()
    kwargs = dict(chat=chat, max_new_tokens=STEPS, batch_size=2, fast=False)
    own_strings = generate(model, tok, PROMPTS, **kwargs, share_prefix=False)
    assert own_strings == generate(model, tok, PROMPTS, **kwargs, own_loop=False)


def test_processors_fall_back_to_generate(tiny):
    """A repetition penalty is not plain argmax: model.generate decodes, as before."""
    model = tiny.model
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not _own_loop_applies(model)
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert _own_loop_applies(model)


def hand_probability(loaded, prompt: str, answer: str, chat: bool) -> float:
    """ORT's metric by hand: one unbatched forward per answer token, softmax in float64."""
    from formless.models.prompts import answer_token_ids

    tok, model = loaded.tokenizer, loaded.model
    context = tok(render(tok, prompt, chat=chat), add_special_tokens=add_special_tokens(tok, chat))[
        "input_ids"
    ]
    target = answer_token_ids(tok, prompt, answer, chat=chat)
    log_p = 0.0
    for k, token in enumerate(target):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([list(context) + target[:k]])).logits[0, -1]
        log_p += float(torch.log_softmax(logits.double(), dim=-1)[token])
    return math.exp(log_p / len(target))


@pytest.mark.parametrize("arch", SUPPORTED)
def test_answers_scored_on_the_prefill_change_no_token_and_match_the_metric(arch, tmp_path):
    """generate(answers=...) returns the very tokens of a run without answers, and each answer's
    probability equals ORT's metric computed by hand (float64 model: to rounding); where the cache
    cannot be rewound (sliding-window layers) it scores nothing and says so with None."""
    from formless.generation import can_rewind, prefill

    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu", dtype=torch.float64)
    model, tok = loaded.model, loaded.tokenizer
    answers = ["Paris", None, "b c", "red and blue", "y"]
    for chat in (True, False):
        plain = generate(model, tok, PROMPTS, chat=chat, max_new_tokens=STEPS, batch_size=4, fast=False)
        outputs, probs = generate(
            model, tok, PROMPTS, chat=chat, max_new_tokens=STEPS, batch_size=4, fast=False, answers=answers
        )
        assert outputs == plain
        ids, mask = tok([render(tok, "x", chat=chat)], return_tensors="pt").values()
        if not can_rewind(prefill(model, ids, mask)[1]):
            assert probs == [None] * len(PROMPTS)
            continue
        assert probs[1] is None
        for prompt, answer, got in zip(PROMPTS, answers, probs):
            if answer is not None:
                assert got == pytest.approx(hand_probability(loaded, prompt, answer, chat), rel=1e-9)


@pytest.mark.parametrize("arch", SUPPORTED)
def test_the_shared_prefix_is_computed_once_and_changes_nothing(arch, tmp_path):
    """The chat template's common leading tokens are computed once and put in front of every
    batch's cache: in float64 the tokens are those of the plain left-padded run, rows ending at
    different steps included; models whose cache cannot hold it apart (sliding windows) skip it."""
    from formless.generation import shared_prefix

    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu", dtype=torch.float64)
    model, tok = loaded.model, loaded.tokenizer
    sequences = [tok(render(tok, p, chat=True), add_special_tokens=False)["input_ids"] for p in PROMPTS]
    prefix = shared_prefix(model, sequences)
    common = 0
    while all(len(s) > common + 1 and s[common] == sequences[0][common] for s in sequences):
        common += 1
    assert prefix is None or prefix.length == common
    plain = generate(model, tok, PROMPTS, chat=True, max_new_tokens=STEPS, batch_size=4, share_prefix=False)
    eos = sorted({tok.convert_tokens_to_ids(tok.tokenize(o)[:1])[0] for o in plain if o})[:2]
    model.generation_config.eos_token_id = eos  # rows leave the batch at different steps
    for chat in (True, False):
        kwargs = dict(chat=chat, max_new_tokens=STEPS, batch_size=4, fast=False)
        assert generate(model, tok, PROMPTS, **kwargs) == generate(
            model, tok, PROMPTS, **kwargs, share_prefix=False
        )


def test_an_answer_is_settled_only_once_the_word_has_ended():
    from formless.generation import answer_settled

    assert answer_settled("The capital is Paris.", [("Paris",)])
    assert answer_settled("The capital is Paris and", [("Paris",)])
    assert not answer_settled("The capital is Paris", [("Paris",)])  # could become "Parisian"
    assert not answer_settled("The capital is Parisian", [("Paris",)])
    assert not answer_settled("It is Paris\ufffd", [("Paris",)])  # half of "Parisé"
    assert not answer_settled("Paris, not Rome", [("Paris",), ("Lyon",)])  # every probe must be settled
    assert answer_settled("Paris, not Lyon.", [("Paris",), ("Lyon", "Lugdunum")])


def test_generation_stops_once_the_answer_is_settled(tiny):
    """A row whose answer is settled stops there: its text is the prefix of the full generation
    up to that point, and a row whose answer never comes runs the whole budget, as before."""
    model, tok = tiny.model, tiny.tokenizer
    full = generate(model, tok, PROMPTS, chat=True, max_new_tokens=STEPS, batch_size=5, fast=False)
    words = [o.split() for o in full]
    # an "alias" the random model did write, closed by the word after it; and one it never wrote
    target = next(i for i, w in enumerate(words) if len(w) >= 3)
    alias = words[target][0]
    stop_at = [[(alias,)] if i == target else [("zzzz-never",)] for i in range(len(PROMPTS))]
    cut = generate(
        model, tok, PROMPTS, chat=True, max_new_tokens=STEPS, batch_size=5, fast=False, stop_at=stop_at
    )
    assert full[target].startswith(cut[target]) and len(cut[target]) < len(full[target])
    assert answer_settled_in(cut[target], alias)
    assert [c for i, c in enumerate(cut) if i != target] == [f for i, f in enumerate(full) if i != target]


def answer_settled_in(text: str, alias: str) -> bool:
    from formless.generation import answer_settled

    return answer_settled(text + " ", [(alias,)])


@pytest.mark.parametrize("arch", SUPPORTED)
def test_prompts_with_their_own_budgets_share_a_batch_and_read_as_with_one_budget(arch, tmp_path):
    """A budget per prompt: each row stops after its own number of tokens; its text and answer
    probability are those the same batch gives with that budget for every row (float64: to
    rounding). The same through ``model.generate`` (one call per budget there)."""
    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu", dtype=torch.float64)
    model, tok = loaded.model, loaded.tokenizer
    budgets = [2, STEPS, 1, 5, 3]  # one per prompt of PROMPTS
    answers = ["Paris", None, "b c", "red and blue", "y"]
    for own_loop in (True, False):
        kwargs = dict(chat=True, batch_size=len(PROMPTS), fast=False, own_loop=own_loop, answers=answers)
        texts, probs = generate(model, tok, PROMPTS, max_new_tokens=budgets, **kwargs)
        for budget in set(budgets):
            rows = [i for i, b in enumerate(budgets) if b == budget]
            if own_loop:  # the same batch, every row with this budget
                one_texts, one_probs = generate(model, tok, PROMPTS, max_new_tokens=budget, **kwargs)
            else:  # model.generate: the prompts with this budget in a call of their own
                kwargs["answers"] = [answers[i] for i in rows]
                got = generate(model, tok, [PROMPTS[i] for i in rows], max_new_tokens=budget, **kwargs)
                one_texts, one_probs = ({i: x for i, x in zip(rows, part)} for part in got)
                kwargs["answers"] = answers
            for i in rows:
                assert texts[i] == one_texts[i]
                assert (probs[i] is None) == (one_probs[i] is None)
                if probs[i] is not None:
                    assert probs[i] == pytest.approx(one_probs[i], rel=1e-9)
    with pytest.raises(ValueError, match="one token budget per prompt"):
        generate(model, tok, PROMPTS, max_new_tokens=[1, 2])


def test_answer_length_groups_are_the_cheapest_split_and_cover_every_answer_once():
    """length_groups against every split of the length-sorted rows into contiguous runs (cost: rows
    x longest answer, plus the per-group overhead); rows without an answer are in no group."""
    import itertools
    import random

    from formless.generation import GROUP_OVERHEAD_TOKENS, length_groups

    def cost(groups, lengths):
        return sum(len(g) * max(lengths[i] for i in g) + GROUP_OVERHEAD_TOKENS for g in groups)

    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.choice([0, 1, 1, 2, 3, 5, 9, 14, 40]) for _ in range(rng.randint(0, 8))]
        groups = length_groups(lengths)
        assert sorted(i for g in groups for i in g) == [i for i, n in enumerate(lengths) if n > 0]
        order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: lengths[i])
        best = min(
            (
                cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))], lengths)
                for k in range(len(order))
                for cuts in itertools.combinations(range(1, len(order)), k)
            ),
            default=0,
        )
        assert cost(groups, lengths) == best
    assert length_groups([1, 1, 1, 1]) == [[0, 1, 2, 3]]  # alike: one pass
    assert length_groups([1] * 30 + [40] * 30) == [list(range(30)), list(range(30, 60))]


def test_prompt_buckets_are_the_cheapest_split_and_cover_every_prompt_once():
    """prompt_buckets against every split of the length-sorted prompts into contiguous runs of at
    most batch_size (cost: rows x longest prompt, plus the per-batch overhead)."""
    import itertools
    import random

    from formless.generation import BUCKET_OVERHEAD_TOKENS, prompt_buckets

    def cost(buckets, lengths):
        return sum(len(b) * max(lengths[i] for i in b) + BUCKET_OVERHEAD_TOKENS for b in buckets)

    rng = random.Random(1)
    for _ in range(200):
        lengths = [rng.choice([1, 3, 5, 9, 20, 40, 90]) for _ in range(rng.randint(1, 8))]
        size = rng.randint(1, 5)
        buckets = prompt_buckets(lengths, size)
        assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
        assert all(len(b) <= size for b in buckets)
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        best = math.inf
        for cuts in itertools.product([False, True], repeat=len(order) - 1):
            runs, run = [], [order[0]]
            for i, cut in zip(order[1:], cuts):
                if cut:
                    runs.append(run)
                    run = []
                run.append(i)
            runs.append(run)
            if all(len(r) <= size for r in runs):
                best = min(best, cost(runs, lengths))
        assert cost(buckets, lengths) == best


@pytest.mark.parametrize("arch", SUPPORTED)
def test_batches_of_like_lengths_decoded_together_read_as_each_prompt_alone(arch, tmp_path, monkeypatch):
    """Prompts of very different lengths are prefilled in separate batches and decoded from one
    merged cache (widened with masked zeros): every text is the one its prompt gives alone through
    model.generate, and every answer probability ORT's metric by hand (float64: to rounding);
    sliding-window models keep the caller's batches (and model.generate's texts)."""
    from formless import generation
    from formless.generation import can_rewind, prefill

    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu", dtype=torch.float64)
    model, tok = loaded.model, loaded.tokenizer
    prompts = [*PROMPTS, "one two three four five six seven eight nine ten eleven twelve thirteen"]
    answers = ["Paris", None, "b c", "red and blue", "y", "fourteen"]
    merged: list[int] = []
    real = generation.merge_prefills
    monkeypatch.setattr(
        generation, "merge_prefills", lambda m, parts, n: merged.append(len(parts)) or real(m, parts, n)
    )
    kwargs = dict(chat=True, max_new_tokens=STEPS, fast=False)
    texts, probs = generate(model, tok, prompts, **kwargs, batch_size=2, answers=answers)
    ids, mask = tok([render(tok, "x", chat=True)], return_tensors="pt").values()
    if can_rewind(prefill(model, ids, mask)[1]):
        alone = [generate(model, tok, [p], **kwargs, batch_size=1, own_loop=False)[0] for p in prompts]
        assert texts == alone
        assert merged and merged[0] >= 3, "the batches were not merged: the test tests nothing"
        for prompt, answer, got in zip(prompts, answers, probs):
            if answer is not None:
                assert got == pytest.approx(hand_probability(loaded, prompt, answer, True), rel=1e-9)
    else:  # the caller's batches, as model.generate makes them (gemma2 reads padded rows apart)
        assert not merged
        assert texts == generate(model, tok, prompts, **kwargs, batch_size=2, own_loop=False)


def test_rows_decoded_together_are_bounded_by_their_cache_bytes():
    """decode_rows: all DECODE_ROWS for a small model, fewer for a 7B-shaped one (its keys and
    values per row counted by hand), never fewer than a prefill batch; an unknown layout decodes a
    prefill batch at a time."""
    from transformers import LlamaConfig

    from formless.generation import DECODE_CACHE_BYTES, DECODE_ROWS, decode_rows

    class Shaped(torch.nn.Module):
        def __init__(self, config, dtype=torch.float32):
            super().__init__()
            self.config = config
            self.weight = torch.nn.Parameter(torch.zeros(1, dtype=dtype))

    small = LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    assert decode_rows(Shaped(small), 200, 64) == DECODE_ROWS
    big = LlamaConfig(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    per_row = 2 * 32 * 8 * 128 * 4 * 200  # keys and values, layers, kv heads, head dim, float32, positions
    assert decode_rows(Shaped(big), 200, 16) == DECODE_CACHE_BYTES // per_row < DECODE_ROWS
    assert decode_rows(Shaped(big, torch.bfloat16), 200, 16) == DECODE_CACHE_BYTES // (per_row // 2)
    assert decode_rows(Shaped(big), 200_000, 16) == 16  # never below a prefill batch
    shapeless = Shaped(small)
    shapeless.config = object()
    assert decode_rows(shapeless, 200, 16) == 16
