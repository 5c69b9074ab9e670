"""ROCR on a tiny model: the edit moves the concept's representation where the maths says."""

from __future__ import annotations

import pytest
import torch

from formless.api import make_config
from formless.models import load_model
from formless.rocr.activations import collect
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import _canonical as edit_canonical
from formless.rocr.edit import apply_rocr
from formless.rocr.stats import layer_statistics

# A wide null space on random tiny weights gives updates near the weights' norm: the tests of the
# maths lift the size guard, which has tests of its own below.
UNGUARDED = {"max_relative_norm": 1e9}
# every direction free (P = I), lambda -> 0, one context per group: z(s) lands on v*
UNCONSTRAINED = {"layers": [2], "lam": 1e-6, "threshold": 1e9, "prefixes": [""], "plain_templates": ["{s}."]}


def _canonical(loaded, concept, chat):
    return edit_canonical(loaded, concept, "chat" if chat else "plain")


def _representations(loaded, concept, layer):
    items = [_canonical(loaded, concept, True), _canonical(loaded, concept, False)]
    keys, outs = collect(loaded, items, key_layers=[layer], output_layers=[layer])
    return keys[layer], outs[layer]


@pytest.fixture
def setup(tiny_dir, corpus_file, cache):
    loaded = load_model(str(tiny_dir))
    stats, seconds = layer_statistics(
        loaded, [2], load_corpus(str(corpus_file)), max_tokens=1000, cache=cache
    )
    assert seconds > 0
    return loaded, stats


def test_redirect_reaches_target_representation_when_unconstrained(setup):
    """With every direction free (P = I) and lambda -> 0, z(s) lands exactly on v* = z(s')."""
    loaded, stats = setup
    config = make_config(redirect="a random person", **UNCONSTRAINED, **UNGUARDED)
    _, target = _representations(loaded, "a random person", 2)
    _, before = _representations(loaded, "Harry Potter", 2)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)
    assert (before - target).norm() > 1.0
    torch.testing.assert_close(after, target, atol=2e-3, rtol=2e-3)


def test_an_averaged_redirect_lands_on_the_mean_of_its_targets(setup):
    """``redirect_average``: v* is the mean of the targets' representations, per key group."""
    loaded, stats = setup
    others = ["Orlin Vasquire", "Temra Kolbeck"]
    config = make_config(redirect="a random person", redirect_average=others, **UNCONSTRAINED, **UNGUARDED)
    targets = [_representations(loaded, t, 2)[1] for t in ["a random person", *others]]
    mean = torch.stack(targets).mean(0)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)
    assert (targets[0] - mean).norm() > 1.0  # not the first target's alone
    torch.testing.assert_close(after, mean, atol=2e-3, rtol=2e-3)


def test_an_unknown_name_redirect_averages_the_made_up_names(setup):
    from formless.rocr.config import UNKNOWN_NAMES, UNKNOWN_REDIRECT

    loaded, stats = setup
    config = make_config(redirect=UNKNOWN_REDIRECT, **UNCONSTRAINED, **UNGUARDED)
    assert config.redirect_targets() == list(UNKNOWN_NAMES)
    mean = torch.stack([_representations(loaded, t, 2)[1] for t in UNKNOWN_NAMES]).mean(0)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    torch.testing.assert_close(_representations(loaded, "Harry Potter", 2)[1], mean, atol=2e-3, rtol=2e-3)
    # a made-up name of the redirect cannot be the concept edited
    from formless.errors import FormlessError

    with pytest.raises(FormlessError, match="is the concept itself"):
        apply_rocr(loaded, [UNKNOWN_NAMES[2]], config, stats)


def test_residual_moves_by_dense_solution(setup):
    """With the real null space, the output change at each key equals X^T k from a dense float64 solve."""
    loaded, stats = setup
    threshold = float(stats[2].eigenvalues.median())
    config = make_config(
        layers=[2],
        lam=1.0,
        threshold=threshold,
        prefixes=[""],
        plain_templates=["{s}."],
        concept_tokens=1,
        redirect="a random person",
        **UNGUARDED,
    )
    keys, before = _representations(loaded, "Harry Potter", 2)
    _, target = _representations(loaded, config.redirect, 2)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)

    k = keys.T.double()  # d_ff x 2 (chat, plain)
    r = (target - before).T.double()
    basis = stats[2].basis(threshold).double()
    p = basis @ basis.T
    x = torch.linalg.solve(p @ k @ k.T + torch.eye(k.shape[0], dtype=torch.float64), p @ k @ r.T)
    torch.testing.assert_close((after - before).double(), (x.T @ k).T, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(result.layer_edits[0].delta.double(), x.T, atol=1e-5, rtol=1e-4)
    moved = (after - before).norm(dim=1) / r.norm(dim=0)
    assert (moved > 0.05).all() and (moved < 1.0001).all()


def test_name_tokens_chosen_by_null_space_share(setup):
    """Token 0 (the last) is always edited; earlier ones only when their key is as specific."""
    from formless.rocr.edit import _specific_offsets

    loaded, stats = setup
    located = _canonical(loaded, "Harry Potter", False)
    n = located.n_concept_tokens
    assert n >= 2
    tokens = loaded.tokenizer.convert_ids_to_tokens(located.input_ids[located.first : located.position + 1])
    assert "".join(tokens).replace("Ġ", " ").strip() == "Harry Potter"
    threshold = float(stats[2].eigenvalues.median())
    for ratio, expected in ((0.0, list(range(n))), (1e6, [0])):
        config = make_config(layers=[2], token_specificity=ratio, threshold=threshold, **UNGUARDED)
        assert _specific_offsets(loaded, located, n, stats, [2], config) == expected
    config = make_config(layers=[2], token_specificity=0.0, threshold=threshold, **UNGUARDED)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    assert result.layer_edits[0].keys.shape[1] > 2  # more than the last token of each context group


def test_post_mlp_norm_architecture_moves_toward_target(tmp_path, corpus_file):
    """Gemma 2/3 add norm(W a) to the residual; the edit goes through that norm toward the target."""
    from tiny import save_tiny_model

    loaded = load_model(str(save_tiny_model("gemma3_text", tmp_path / "g")))
    assert loaded.adapter.post_mlp_norm_module(loaded.model, 2) is not None
    stats, _ = layer_statistics(
        loaded, [2], load_corpus(str(corpus_file)), max_tokens=1000, cache=tmp_path / "c"
    )
    config = make_config(
        layers=[2],
        lam=1e-6,
        threshold=1e9,
        prefixes=[""],
        plain_templates=["{s}."],
        concept_tokens=1,
        redirect="a random person",
        **UNGUARDED,
    )
    _, target = _representations(loaded, config.redirect, 2)
    _, before = _representations(loaded, "Harry Potter", 2)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)
    gap_before = (before - target).norm(dim=1)
    gap_after = (after - target).norm(dim=1)
    # a norm's output has a fixed size, so only the closest point of that surface is reachable (its
    # optimality is pinned in test_architectures.py): on these equal gains, ~0.6x of the gap
    assert (gap_after < 0.75 * gap_before).all(), (gap_before, gap_after)


def test_keys_and_representations_are_never_read_at_the_first_positions(setup, monkeypatch):
    """Every position the edit reads (keys, z(s), v*, earlier name tokens) is >= 2 in the chat and
    plain groups, although the plain template "{s}." puts the name at position 0 with this BOS-less
    tokenizer; the optional start group (the name starting the text) reads from position 1, never
    the sink."""
    import formless.rocr.edit as edit

    loaded, stats = setup
    assert locate_first(loaded, "Harry Potter", "{s}.") == 0  # the case the fix is about
    read: list[int] = []
    real_collect = edit.collect

    def recording(loaded_, items, **kwargs):
        read.extend(it.position for it in items)
        return real_collect(loaded_, items, **kwargs)

    monkeypatch.setattr(edit, "collect", recording)
    threshold = float(stats[2].eigenvalues.median())
    for groups, lowest in ((["chat", "plain"], edit.MIN_POSITION), (["chat", "plain", "start"], 1)):
        read.clear()
        config = make_config(
            layers=[2], threshold=threshold, token_specificity=0.0, key_groups=groups, **UNGUARDED
        )
        result = apply_rocr(loaded, ["Harry Potter"], config, stats)
        assert result.layer_edits[0].keys.shape[1] > len(groups)  # earlier name tokens were read too
        assert read and min(read) >= lowest, sorted(read)[:5]
    assert edit.MIN_POSITION == 2 and edit.MIN_START_POSITION == 1


def locate_first(loaded, concept: str, template: str) -> int:
    from formless.models.prompts import add_special_tokens
    from formless.rocr.activations import locate

    tok = loaded.tokenizer
    return locate(tok, template.format(s=concept), concept, add_special=add_special_tokens(tok, False)).first


def test_oversized_update_is_refused_and_leaves_the_model_unchanged(setup):
    """With every direction free and lambda ~ 0 the tiny model's update is ~1x its weight's norm:
    refused with an actionable error, the model untouched; under a raised limit it goes through."""
    from formless.rocr.edit import UnsafeEditError

    loaded, stats = setup
    before = loaded.weights_hash(refresh=True)
    config = make_config(layers=[2], lam=1e-6, threshold=1e9, prefixes=[""], plain_templates=["{s}."])
    with pytest.raises(UnsafeEditError, match=r"cannot be edited safely.*unchanged.*--redirect"):
        apply_rocr(loaded, ["Harry Potter"], config, stats)
    assert loaded.weights_hash(refresh=True) == before
    result = apply_rocr(loaded, ["Harry Potter"], config.model_copy(update={"max_relative_norm": 1e9}), stats)
    assert result.layer_edits[0].relative_norm > config.max_relative_norm
    assert loaded.weights_hash(refresh=True) != before


def test_refusal_at_a_later_layer_puts_back_the_earlier_layers(tiny_dir, corpus_file, cache, monkeypatch):
    """Layers are edited one by one: a refusal at the second undoes the first, bit for bit."""
    import itertools

    import formless.rocr.edit as edit

    loaded = load_model(str(tiny_dir))
    stats, _ = layer_statistics(loaded, [1, 2], load_corpus(str(corpus_file)), max_tokens=1000, cache=cache)
    before = loaded.weights_hash(refresh=True)
    # relative size of the fake update at layer 1, then layer 2 (again for the last-token fallback)
    sizes = itertools.cycle([1e-3, 10.0])
    real_delta = edit.rocr_delta

    def scaled(keys, residuals, basis, lam, previous=None):
        delta = real_delta(keys, residuals, basis, lam, previous)
        return delta / delta.norm() * next(sizes) * loaded.adapter.weight(loaded.model, 1).detach().norm()

    monkeypatch.setattr(edit, "rocr_delta", scaled)
    with pytest.raises(edit.UnsafeEditError, match="layer 2"):
        apply_rocr(loaded, ["Harry Potter"], make_config(layers=[1, 2], threshold=0.5), stats)
    assert loaded.weights_hash(refresh=True) == before


def test_statistics_carry_their_second_moment_into_the_cache_and_back(tiny_dir, corpus_file, cache):
    """The moment the grid rounding starts from is V diag(max(lambda, 0)) V^T of the stored
    eigendecomposition, written with it, read back bit for bit; an entry written before the moment
    was stored loads and builds the same matrix."""
    from safetensors.torch import save_file

    from formless.models.cache import read_tensors

    loaded = load_model(str(tiny_dir))
    corpus = load_corpus(str(corpus_file))
    computed, _ = layer_statistics(loaded, [1], corpus, max_tokens=1000, cache=cache)
    st = computed[1]
    v, lam = st.eigenvectors.double(), st.eigenvalues.double().clamp_min(0)
    dense = (v * lam) @ v.T
    moment = st.second_moment()
    assert moment.dtype == torch.float32
    torch.testing.assert_close(moment.double(), dense, rtol=0, atol=1e-5 * float(lam.max()))
    again, seconds = layer_statistics(loaded, [1], corpus, max_tokens=1000, cache=cache)
    assert seconds == 0 and again[1].moment is not None  # read from the cache, not rebuilt
    assert torch.equal(again[1].moment, moment)
    (entry,) = cache.glob("stats/*/*/layer_1.safetensors")
    tensors, meta = read_tensors(entry)
    assert torch.equal(tensors["second_moment"], moment)
    del tensors["second_moment"], meta["moment_checksum"]
    save_file(tensors, str(entry), metadata=meta)  # the entry as earlier versions wrote it
    old, seconds = layer_statistics(loaded, [1], corpus, max_tokens=1000, cache=cache)
    assert seconds == 0 and old[1].moment is None
    assert torch.equal(old[1].second_moment(), moment)


def test_paper_preset_differs_from_the_default_exactly_where_documented():
    """The reference's choices (config.PRESETS): last name token only, chat keys only; the same
    fixed redirect "a random person" (formless: "an unknown name"); the update as solved (formless:
    kept on the weights' own quantization grid); the same contexts, layers rule
    and update settings as formless' default."""
    from formless.errors import FormlessError
    from formless.rocr.config import (
        DEFAULT_REDIRECT,
        PAPER_REDIRECT,
        PRESETS,
        REFERENCE_PREFIXES,
        UNKNOWN_REDIRECT,
        ROCRConfig,
    )

    default, paper = make_config().model_dump(), make_config(preset="paper").model_dump()
    changed = {k: (default[k], paper[k]) for k in default if default[k] != paper[k]}
    assert changed == {
        "preset": ("formless", "paper"),
        "concept_tokens": (0, 1),
        "key_groups": (["chat", "plain"], ["chat"]),
        "redirect": (DEFAULT_REDIRECT, PAPER_REDIRECT),
        "grid": ("auto", "off"),
    }
    assert DEFAULT_REDIRECT == UNKNOWN_REDIRECT and PAPER_REDIRECT == "a random person"
    assert paper["prefixes"] == REFERENCE_PREFIXES
    assert make_config() == ROCRConfig() == PRESETS["formless"]
    # an explicit option overrides the preset, and the preset's name stays
    custom = make_config(preset="paper", redirect="a random place")
    assert custom.redirect == "a random place" and custom.preset == "paper" and custom.concept_tokens == 1
    with pytest.raises(FormlessError, match="unknown preset 'ppr'; choose one of: formless, paper"):
        make_config(preset="ppr")


def test_the_guard_limit_comes_from_the_environment_when_set(monkeypatch):
    from formless.api import make_config
    from formless.errors import FormlessError
    from formless.rocr.config import MAX_RELATIVE_NORM, MAX_RELATIVE_NORM_ENV

    monkeypatch.delenv(MAX_RELATIVE_NORM_ENV, raising=False)
    assert make_config().max_relative_norm == MAX_RELATIVE_NORM
    monkeypatch.setenv(MAX_RELATIVE_NORM_ENV, "0.5")
    assert make_config().max_relative_norm == 0.5
    assert make_config(preset="paper").max_relative_norm == 0.5  # presets do not freeze it
    assert make_config(max_relative_norm=0.1).max_relative_norm == 0.1  # an explicit option wins
    monkeypatch.setenv(MAX_RELATIVE_NORM_ENV, "big")
    with pytest.raises(FormlessError, match="FORMLESS_MAX_RELATIVE_NORM='big' is not a number"):
        make_config()


def test_a_name_that_starts_the_text_is_redirected_too(setup):
    """The 'start' key group: the name at the very start of plain text (a completion prompt) has keys
    of its own; unconstrained, its representation there lands on the redirect's representation there,
    while the chat and plain ones still land on theirs (three columns, one exact solve)."""
    from formless.rocr.edit import MIN_START_POSITION

    loaded, stats = setup
    config = make_config(
        redirect="a random person",
        key_groups=["chat", "plain", "start"],
        start_templates=["{s} is"],
        concept_tokens=1,
        **UNCONSTRAINED,
        **UNGUARDED,
    )

    def at_start(concept):
        located = edit_canonical(loaded, concept, "start")
        assert located.position >= MIN_START_POSITION
        return collect(loaded, [located], output_layers=[2])[1][2][0]

    target, before = at_start("a random person"), at_start("Harry Potter")
    _, chat_plain_target = _representations(loaded, "a random person", 2)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    assert result.layer_edits[0].keys.shape[1] == 3  # chat, plain, start
    assert (before - target).norm() > 1.0
    torch.testing.assert_close(at_start("Harry Potter"), target, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(
        _representations(loaded, "Harry Potter", 2)[1], chat_plain_target, atol=2e-3, rtol=2e-3
    )


def test_an_oversized_several_token_edit_falls_back_to_the_last_token(setup, monkeypatch):
    """When redirecting every specific name token needs too large an update but the last token alone
    does not (SmolLM2's "The Lord of the Rings": 1.08 vs 0.05), the edit redirects the last token
    only, records it in its config and says why in its notes; the model holds that edit."""
    import formless.rocr.edit as edit

    loaded, stats = setup
    before = loaded.weights_hash(refresh=True)
    real_delta = edit.rocr_delta
    columns_seen = []

    def sized(keys, residuals, basis, lam, previous=None):  # too large with the earlier tokens' columns
        columns_seen.append(keys.shape[1])
        delta = real_delta(keys, residuals, basis, lam, previous)
        size = 10.0 if keys.shape[1] == columns_seen[0] else 1e-3
        weight = loaded.adapter.mlp_out_module(loaded.model, 2).weight.detach()
        return delta / delta.norm() * size * weight.norm()

    monkeypatch.setattr(edit, "rocr_delta", sized)
    config = make_config(token_specificity=0.0, **UNCONSTRAINED)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    groups = 2 if loaded.has_chat_template else 1
    # every name token per group first, then the last token alone
    assert columns_seen == [columns_seen[0], groups] and columns_seen[0] > groups
    assert result.config.concept_tokens == 1 and config.concept_tokens == 0
    assert result.layer_edits[0].keys.shape[1] == groups and result.layer_edits[0].relative_norm < 0.01
    [note] = result.notes
    assert "layer 2 by 10.00 of its weight's norm (limit 0.25)" in note and "last token only" in note
    assert loaded.weights_hash(refresh=True) != before


def test_an_update_that_is_not_finite_is_refused(setup, monkeypatch):
    """A NaN update compares False against any limit: the guard must refuse it, not let it through."""
    import formless.rocr.edit as edit

    loaded, stats = setup
    before = loaded.weights_hash(refresh=True)
    nan = float("nan")
    monkeypatch.setattr(edit, "rocr_delta", lambda keys, res, *a: torch.full_like(res @ keys.T, nan))
    with pytest.raises(edit.UnsafeEditError, match="not finite"):
        apply_rocr(loaded, ["Harry Potter"], make_config(**UNCONSTRAINED), stats)
    assert loaded.weights_hash(refresh=True) == before


def _name_token_keys(loaded, name, layer):
    """Keys of every token of ``name`` in its bare chat and plain contexts (d_ff x n)."""
    items = []
    for chat in (True, False):
        located = _canonical(loaded, name, chat)
        items += [located.back(o) for o in range(located.n_concept_tokens)]
    keys, _ = collect(loaded, items, key_layers=[layer])
    return keys[layer].T


def test_a_protected_name_enters_the_solve_like_an_earlier_edit(setup):
    """``protected``: the update is the dense float64 solve of (P (K K^T + w K_p K_p^T) + I) X = P K R^T,
    with K_p the keys of every token of the protected name in each key group."""
    loaded, stats = setup
    threshold = float(stats[2].eigenvalues.median())
    options = dict(layers=[2], threshold=threshold, prefixes=[""], plain_templates=["{s}."], concept_tokens=1)
    config = make_config(
        redirect="a random person", protected=["Albert Einstein"], protect_weight=2.5, **options, **UNGUARDED
    )
    keys, before = _representations(loaded, "Harry Potter", 2)
    _, target = _representations(loaded, config.redirect, 2)
    kept = _name_token_keys(loaded, "Albert Einstein", 2).double()
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)

    k, r = keys.T.double(), (target - before).T.double()
    basis = stats[2].basis(threshold).double()
    p = basis @ basis.T
    lhs = p @ (k @ k.T + 2.5 * kept @ kept.T) + torch.eye(k.shape[0], dtype=torch.float64)
    x = torch.linalg.solve(lhs, p @ k @ r.T)
    torch.testing.assert_close(result.layer_edits[0].delta.double(), x.T, atol=1e-5, rtol=1e-4)
    assert result.layer_edits[0].keys.shape[1] == 2  # the protected keys are not the edit's own


def test_a_protected_name_keeps_its_representation_when_the_edit_is_free(setup):
    """Every direction free and lambda -> 0: the concept lands on v* while the protected name's keys
    get no change, so its representation stays where it was; unprotected, the same edit moves it."""
    loaded, stats = setup
    _, target = _representations(loaded, "a random person", 2)
    _, other_before = _representations(loaded, "Albert Einstein", 2)
    moved = {}
    for protected in ([], ["Albert Einstein"]):
        model = load_model(loaded.path)
        config = make_config(redirect="a random person", protected=protected, **UNCONSTRAINED, **UNGUARDED)
        apply_rocr(model, ["Harry Potter"], config, stats)
        _, after = _representations(model, "Harry Potter", 2)
        torch.testing.assert_close(after, target, atol=2e-3, rtol=2e-3)
        _, other_after = _representations(model, "Albert Einstein", 2)
        moved[bool(protected)] = float((other_after - other_before).norm() / other_before.norm())
    assert moved[False] > 1e-2
    assert moved[True] < 1e-3 * moved[False]


def test_protected_names_leave_out_any_that_share_a_word_with_the_concept_or_redirect():
    from formless.rocr.protect import protected_names

    names = ["Michael Jackson", "Nikola Tesla", "Mount Fuji", "the Nile", "Orlin Fields", "nikola  tesla"]
    kept = protected_names(names, ["Michael Jordan", "Mount Everest", "The Moon"], ["Orlin Vasquire"])
    # "Mount" is shared, "the" is not; a repeat (up to case and spaces) is asked once
    assert kept == ["Nikola Tesla", "the Nile"]


def test_the_famous_list_holds_no_concept_the_audit_asks_and_no_made_up_name():
    """Neighbours kept thanks to the list must be kept by generalisation: it holds none of the shipped
    concepts (the audit's neighbours are those), none measured outside the knowledge base, and no
    made-up name (the redirect's or the prior twins')."""
    from formless.audit.forms.base import PRIOR_NAMES
    from formless.knowledge import load
    from formless.matching import normalise
    from formless.rocr.config import UNKNOWN_NAMES
    from formless.rocr.protect import FAMOUS_NAMES, protected_names

    kb = load()
    outside = ["Paris", "London", "Tokyo", "Barack Obama", "Elon Musk", "Cristiano Ronaldo", "Microsoft",
               "Google", "The Great Gatsby", "Pride and Prejudice", "French Revolution",
               "Bitcoin"]  # fmt: skip
    asked = [*kb.concepts, *outside, *UNKNOWN_NAMES, *PRIOR_NAMES]
    assert len(set(map(normalise, FAMOUS_NAMES))) == len(FAMOUS_NAMES) >= 100
    assert protected_names(FAMOUS_NAMES, asked) == list(FAMOUS_NAMES)


def test_reading_shared_prompts_once_gives_each_item_its_own_rows(setup):
    """``collect`` (shared prompts, its default) reads every token of one context from one forward pass and
    gives back the rows in the items' order, equal (to float rounding) to one pass per item."""
    loaded, _ = setup
    items = []
    for name in ("Harry Potter", "Albert Einstein"):
        for chat in (True, False):
            located = _canonical(loaded, name, chat)
            items += [located.back(o) for o in range(located.n_concept_tokens)]
    items = items[1::2] + items[::2]  # the same prompt's tokens far apart
    calls = []
    handle = loaded.model.register_forward_pre_hook(lambda _m, _a, kw: calls.append(1), with_kwargs=True)
    try:
        each = collect(
            loaded, items, key_layers=[1, 2], output_layers=[2], batch_size=2, shared_prompts=False
        )
        n_each = len(calls)
        shared = collect(
            loaded, items, key_layers=[1, 2], output_layers=[2], batch_size=2, shared_prompts=True
        )
    finally:
        handle.remove()
    assert len(calls) - n_each < n_each  # fewer passes
    for got, want in ((shared[0][1], each[0][1]), (shared[0][2], each[0][2]), (shared[1][2], each[1][2])):
        assert got.shape == want.shape == (len(items), want.shape[1])
        scale = float(want.abs().max())
        torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-5)


def test_protected_keys_are_read_once_per_model_and_kept_in_the_cache(setup, tmp_path, monkeypatch):
    """The keys of the whole protected list are cached per model; each edit selects the names it
    keeps from them without a forward pass, and a damaged entry is read afresh."""
    import formless.rocr.protect as protect

    loaded, _ = setup
    folder = tmp_path / "keys"
    names = ["Albert Einstein", "Nikola Tesla", "Eiffel Tower"]

    def place(name, group):
        return edit_canonical(loaded, name, group)

    reads = []
    real_collect = protect.collect
    monkeypatch.setattr(protect, "collect", lambda *a, **k: reads.append(1) or real_collect(*a, **k))
    fresh = protect.protected_keys(loaded, names, names, ["chat", "plain"], [1, 2], place, cache=folder)
    assert len(reads) == 1 and list(folder.rglob("*.safetensors"))
    again = protect.protected_keys(loaded, names, names, ["chat", "plain"], [1, 2], place, cache=folder)
    assert len(reads) == 1
    for layer in (1, 2):
        assert torch.equal(fresh[layer], again[layer])
    tesla = protect.protected_keys(
        loaded, names, ["Nikola Tesla"], ["chat", "plain"], [1, 2], place, cache=folder
    )
    alone = protect.protected_keys(
        loaded, ["Nikola Tesla"], ["Nikola Tesla"], ["chat", "plain"], [1, 2], place
    )
    assert len(reads) == 2  # the uncached call only
    torch.testing.assert_close(tesla[2], alone[2], atol=1e-5 * float(alone[2].abs().max()), rtol=1e-5)
    assert protect.protected_keys(loaded, names, [], ["chat", "plain"], [1, 2], place, cache=folder) == {}
    entry = next(folder.rglob("*.safetensors"))
    entry.write_bytes(b"not a safetensors file")
    repaired = protect.protected_keys(loaded, names, names, ["chat", "plain"], [1, 2], place, cache=folder)
    assert len(reads) == 3
    assert torch.equal(repaired[2], fresh[2])


def test_every_name_token_of_a_context_is_read_from_one_pass(setup, monkeypatch):
    """The edit reads the keys of all the name tokens of one context from one forward pass of it; the
    update equals (to float rounding) the one read a pass per token, with fewer passes."""
    import formless.rocr.edit as edit

    loaded, stats = setup
    threshold = float(stats[2].eigenvalues.median())
    config = make_config(layers=[2], token_specificity=0.0, threshold=threshold, grid="off", **UNGUARDED)
    weight = loaded.adapter.weight(loaded.model, 2)
    original = weight.detach().clone()
    calls: list[int] = []
    handle = loaded.model.register_forward_pre_hook(lambda _m, _a, kw: calls.append(1), with_kwargs=True)
    try:
        shared = apply_rocr(loaded, ["Harry Potter"], config, stats)
        n_shared = len(calls)
        with torch.no_grad():
            weight.copy_(original)
        monkeypatch.setattr(edit, "collect", lambda *a, **kw: collect(*a, **{**kw, "shared_prompts": False}))
        each = apply_rocr(loaded, ["Harry Potter"], config, stats)
    finally:
        handle.remove()
    assert shared.layer_edits[0].keys.shape[1] > 2  # several tokens per context group
    assert n_shared < len(calls) - n_shared
    for got, want in (
        (shared.layer_edits[0].keys, each.layer_edits[0].keys),
        (shared.layer_edits[0].delta, each.layer_edits[0].delta),
    ):
        scale = float(want.abs().max())
        torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-5)
