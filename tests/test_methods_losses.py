"""The baselines' maths against independent hand computations on fixed tensors and a tiny model."""

from __future__ import annotations

import copy
import functools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from formless.methods.data import Example, collate
from formless.methods.losses import Reference, nll, npo_loss, sequence_logps, simnpo_loss, token_logps
from formless.methods.registry import METHODS, LossInputs, Method, make_method

FORGET = [
    Example("Tell me about Harry Potter.", "Harry Potter is a wizard who studies at Hogwarts.", True, "qa"),
    Example("Harry Potter studies at", "Hogwarts with Ron and Hermione.", False, "text"),
    Example("Who is Harry Potter?", "A wizard.", True, "qa"),
]
RETAIN = [
    Example("Tell me about Albert Einstein.", "He developed the theory of relativity.", True, "qa"),
    Example("The Eiffel Tower stands in", "Paris, the capital of France.", False, "text"),
]


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: 1 thread is ~50x faster

# Tolerances. An identity that is exact in real arithmetic is checked in float64, where rounding
# is ~1e-16 relative and a tolerance of 1e-9 relative to the magnitudes involved can never be
# reached by rounding, yet any wrong factor or term (relative error >= 1e-3 here) still fails.
# Where float32 itself is being tested, the tolerance is derived from the float32 epsilon times
# the magnitude of what was summed, never a bare absolute number.
EPS32 = torch.finfo(torch.float32).eps  # 1.19e-7
EXACT = 1e-9  # relative tolerance of an exact identity evaluated in float64


def _rms_norm_float64(norm, hidden_states: torch.Tensor) -> torch.Tensor:
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return norm.weight * (hidden_states * torch.rsqrt(variance + norm.variance_epsilon))


def _double(model):
    """A float64 copy of the model that really computes in float64: transformers' RMSNorm casts its
    input to float32 (and its gradient back through float32), which would round every layer to
    float32 precision and make batched-vs-unbatched or GA-vs-NPO differ by ~1e-7 relative."""
    model = copy.deepcopy(model).double()
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    assert norms, "expected the tiny Llama to have RMSNorm layers"
    for norm in norms:
        norm.forward = functools.partial(_rms_norm_float64, norm)
    return model


def _batches(tok):
    return collate(tok, FORGET, key="f"), collate(tok, RETAIN, key="r")


def _hand_sequence_logps(model, tok, examples) -> list[float]:
    """Token by token, one prefix at a time, no batching or padding: log p of each target token."""
    from formless.methods.data import encode

    out = []
    for ex in examples:
        ids, labels = encode(tok, ex)
        total = 0.0
        for t in range(1, len(ids)):
            if labels[t] == -100:
                continue
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
            total += float(torch.log_softmax(logits.double(), -1)[ids[t]])
        out.append(total)
    return out


def test_sequence_logps_match_token_by_token_loop(tiny):
    """Batched and padded vs one unpadded prefix at a time: equal in exact arithmetic, so compared
    in float64 (padding changes the order of the attention sums, i.e. only the rounding)."""
    fb, _ = _batches(tiny.tokenizer)
    model = _double(tiny.model)
    with torch.no_grad():
        logits = model(input_ids=fb.input_ids, attention_mask=fb.attention_mask).logits
    assert logits.dtype == torch.float64
    ours = sequence_logps(logits, fb.labels)
    assert ours.dtype == torch.float64  # not rounded to float32 on the way
    hand = torch.tensor(_hand_sequence_logps(model, tiny.tokenizer, FORGET), dtype=torch.float64)
    torch.testing.assert_close(ours, hand, rtol=EXACT, atol=0)
    assert (ours < 0).all()  # log-probabilities, never raw logits
    lengths = fb.target_mask.sum(-1)
    torch.testing.assert_close(sequence_logps(logits, fb.labels, average=True), ours / lengths)


def test_log_probs_ignore_any_per_position_logit_shift():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    shift = 7.5 + torch.randn(2, 6, 1, generator=g, dtype=torch.float64) * 100
    shifted = logits + shift
    truth = sequence_logps(logits, labels)
    # exact in real arithmetic, so checked in float64 first
    torch.testing.assert_close(sequence_logps(shifted, labels), truth, rtol=EXACT, atol=0)
    torch.testing.assert_close(nll(shifted, labels), nll(logits, labels), rtol=EXACT, atol=0)
    # float32: rounding a logit of size up to M costs eps*M/2, so a token's log-prob (its logit minus
    # the max minus a log-sum-exp of O(1)) is off by about eps*M at most; a sequence sums n of them
    m, n = float(shifted.abs().max()), int((labels != -100).sum(-1).max())
    bound = 4 * EPS32 * m * n
    ours32 = sequence_logps(shifted.float(), labels)
    assert ours32.dtype == torch.float32
    torch.testing.assert_close(ours32.double(), truth, atol=bound, rtol=0)
    torch.testing.assert_close(
        nll(shifted.float(), labels).double(), nll(logits, labels), atol=4 * EPS32 * m, rtol=0
    )
    # still meaningful: using raw logits would be off by the summed shifts, far beyond the bound
    target_shift = (shift[:, :-1, 0] * (labels[:, 1:] != -100)).sum(-1)
    assert float(target_shift.abs().min()) > 100 * bound


class _Shifted(torch.nn.Module):
    """The model with every logit moved by a per-position constant: the same distribution."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **kwargs):
        out = self.model(**kwargs)
        bump = 50.0 + torch.arange(out.logits.shape[1], dtype=out.logits.dtype)[None, :, None]
        return SimpleNamespace(logits=out.logits + bump, hidden_states=out.hidden_states)


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"rmu"}))
def test_every_logit_based_loss_is_invariant_to_logit_shifts(tiny, name):
    fb, rb = _batches(tiny.tokenizer)
    method = make_method(name)
    base = _double(tiny.model)
    torch.manual_seed(0)
    perturbed = copy.deepcopy(base)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ref = Reference(base)
    plain, _ = method.loss(LossInputs(perturbed, fb, rb, ref))
    shifted, _ = method.loss(LossInputs(_Shifted(perturbed), fb, rb, Reference(_Shifted(base))))
    assert plain.dtype == torch.float64
    # exact identity in float64; the loss's own terms are O(1-100), so 1e-9 of its size is rounding
    torch.testing.assert_close(shifted, plain, rtol=EXACT, atol=EXACT)


def test_npo_and_simnpo_formulas_by_hand():
    f64 = dict(dtype=torch.float64)
    ours = npo_loss(torch.tensor([-2.0], **f64), torch.tensor([-1.5], **f64), beta=0.1)
    beta, delta = 0.1, -2.0 - (-1.5)
    hand = -(2 / beta) * math.log(1 / (1 + math.exp(beta * delta)))  # log sigmoid(-beta delta)
    assert float(ours) == pytest.approx(hand, rel=EXACT)
    assert hand == pytest.approx(20 * math.log1p(math.exp(-0.05)), rel=EXACT)
    ours = simnpo_loss(torch.tensor([-2.0], **f64), beta=2.5, gamma=0.5)
    hand = -(2 / 2.5) * math.log(1 / (1 + math.exp(-(2.5 * 2.0 - 0.5))))
    assert float(ours) == pytest.approx(hand, rel=EXACT)


def test_method_losses_equal_hand_computations(tiny):
    fb, rb = _batches(tiny.tokenizer)
    ref_model = _double(tiny.model)  # exact identities: float64 throughout, compared at rel=EXACT
    torch.manual_seed(1)
    model = copy.deepcopy(ref_model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    inputs = LossInputs(model, fb, rb, Reference(ref_model))

    def logits(m, b):
        with torch.no_grad():
            return m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits

    def hand_nll(m, b):
        logp = torch.log_softmax(logits(m, b)[:, :-1], -1)
        tgt = b.labels[:, 1:]
        mask = tgt != -100
        return float(-(logp.gather(-1, tgt.clamp_min(0)[..., None])[..., 0] * mask).sum() / mask.sum())

    def hand_seq(m, b):
        logp = torch.log_softmax(logits(m, b)[:, :-1], -1)
        tgt = b.labels[:, 1:]
        mask = tgt != -100
        return (logp.gather(-1, tgt.clamp_min(0)[..., None])[..., 0] * mask).sum(-1), mask.sum(-1)

    nf, nr = hand_nll(model, fb), hand_nll(model, rb)

    def loss(name, **options) -> float:
        return float(make_method(name, **options).loss(inputs)[0].detach())

    assert loss("ga") == pytest.approx(-nf, rel=EXACT)
    assert loss("gd", retain_weight=0.5) == pytest.approx(-nf + 0.5 * nr, rel=EXACT)

    lp, ln = hand_seq(model, fb)
    ln = ln.double()  # 0.25 / (an int64 tensor) would be float32
    ref_lp, _ = hand_seq(ref_model, fb)
    npo = -(2 / 0.1) * F.logsigmoid(-0.1 * (lp - ref_lp)).mean()
    assert loss("npo", beta=0.1, retain_weight=2.0) == pytest.approx(float(npo) + 2.0 * nr, rel=EXACT)
    sim = -(2 / 2.5) * F.logsigmoid(-(2.5 / ln) * lp - 0.3).mean()
    assert loss("simnpo", gamma=0.3) == pytest.approx(float(sim) + nr, rel=EXACT)
    # a forget weight as in the official recipes (npo_coeff 0.125); beta small enough that the forget
    # term is not ~0 on this random model (its per-token log-prob is about -log(vocab) = -6)
    sim = -(2 / 0.25) * F.logsigmoid(-(0.25 / ln) * lp - 0.3).mean()
    got = loss("simnpo", beta=0.25, gamma=0.3, forget_weight=0.125, retain_weight=0.5)
    assert float(sim) > 1 and got == pytest.approx(0.125 * float(sim) + 0.5 * nr, rel=EXACT)

    p_log = torch.log_softmax(logits(ref_model, rb), -1)
    q_log = torch.log_softmax(logits(model, rb), -1)
    kl = F.kl_div(q_log, p_log, log_target=True, reduction="none").sum(-1)  # KL(p_ref || p_theta)
    mask = rb.attention_mask.bool()
    assert loss("kl") == pytest.approx(-nf + float(kl[mask].mean()), rel=EXACT)


def _grads(model, loss) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_npo_gradient_equals_ga_at_reference_and_as_beta_goes_to_zero(tiny):
    """d/dtheta -(2/b) log s(-b D) = 2 s(b D) dD; at D = 0 that is dD = the sequence-level GA gradient
    for every b, i.e. (tokens / sequences) x our token-mean GA gradient."""
    fb, _ = _batches(tiny.tokenizer)
    model = _double(tiny.model)  # an exact identity: float64, so only ~1e-16 rounding remains
    ref = Reference(copy.deepcopy(model))
    ga = _grads(model, make_method("ga").loss(LossInputs(model, fb))[0])
    npo = _grads(
        model, make_method("npo", beta=0.1, retain_weight=0).loss(LossInputs(model, fb, None, ref))[0]
    )
    assert npo.dtype == torch.float64
    scale = float(fb.target_mask.sum()) / fb.input_ids.shape[0]
    # rounding is relative to the largest gradient entries (many entries are ~0, where a per-entry
    # rtol is meaningless), so the absolute tolerance scales with max |g|
    torch.testing.assert_close(npo, scale * ga, rtol=EXACT, atol=EXACT * float(npo.abs().max()))

    torch.manual_seed(2)
    with torch.no_grad():  # away from the reference: only the beta -> 0 limit is GA
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ga = _grads(model, make_method("ga").loss(LossInputs(model, fb))[0])
    for beta, close in ((1e-4, True), (5.0, False)):
        loss = make_method("npo", beta=beta, retain_weight=0).loss(LossInputs(model, fb, None, ref))[0]
        cos = float(F.cosine_similarity(_grads(model, loss), ga, dim=0))
        assert (cos > 0.999) == close, (beta, cos)


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, **kwargs):
        return SimpleNamespace(logits=self.logits[: input_ids.shape[0], : input_ids.shape[1]])


def test_simnpo_is_length_normalised_and_npo_is_not():
    """Every target token has the same log-prob; doubling the answer doubles log pi but not its mean."""
    vocab, width = 5, 9
    logits = torch.zeros(2, width, vocab, dtype=torch.float64)  # exact claims: float64
    logits[..., 0] = 1.3
    ids = torch.zeros(2, width, dtype=torch.long)
    short = torch.tensor([[-100, 0, 0, 0, 0, -100, -100, -100, -100]])
    long = torch.tensor([[-100, 0, 0, 0, 0, 0, 0, 0, 0]])
    model = _FixedLogits(logits)

    def loss(name, labels, **kw):
        from formless.methods.data import Batch

        b = Batch(ids[:1], torch.ones_like(ids[:1]), labels)
        ref = SimpleNamespace(sequence_logps=lambda batch: torch.tensor([-1.0]))
        return float(make_method(name, retain_weight=0, **kw).loss(LossInputs(model, b, None, ref))[0])

    assert loss("simnpo", short) == pytest.approx(loss("simnpo", long), rel=EXACT)
    assert loss("npo", short) != pytest.approx(loss("npo", long), rel=1e-3)
    per_token = math.log(math.exp(1.3) / (math.exp(1.3) + 4))
    hand = -(2 / 2.5) * math.log(1 / (1 + math.exp(2.5 * per_token)))
    assert loss("simnpo", short) == pytest.approx(hand, rel=EXACT)


def test_token_logps_mask_excludes_prompt_and_padding():
    labels = torch.tensor([[-100, -100, 1, 2, -100]])
    _, mask = token_logps(torch.zeros(1, 5, 4), labels)
    assert mask.tolist() == [[False, True, True, False]]


def test_registry_rejects_unknown_names_and_options():
    from formless.errors import FormlessError

    with pytest.raises(FormlessError, match="unknown unlearning method"):
        make_method("nope")
    with pytest.raises(FormlessError, match="no option"):
        make_method("npo", gamma=1.0)
    assert make_method("npo").beta == 0.1 and make_method("simnpo").beta == 2.5
    assert make_method("simnpo").forget_weight == 1.0  # the plain formula; see SimNPO's docstring
    with pytest.raises(FormlessError, match="no option"):
        make_method("npo", forget_weight=0.5)  # SimNPO's option only
    assert make_method("ga").uses_retain is False and make_method("npo").uses_retain is True
    assert make_method("npo", retain_weight=0).uses_retain is False
    assert all(isinstance(make_method(name), Method) for name in METHODS)


def test_a_minus_inf_logit_at_a_masked_position_changes_nothing():
    """Masked positions are selected away, not multiplied by 0: a -inf logit there (a banned token,
    or padding) used to turn every log-prob helper, loss and gradient into NaN."""
    from formless.methods.data import Batch
    from formless.methods.losses import kl_to_reference

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    clean = logits.clone()
    logits[0, 0, 0] = -math.inf  # position 0 of row 0 predicts a prompt token; index 0 is what gather reads
    logits[0, 4, :6] = -math.inf  # so does position 4 (it predicts padding), with more -inf logits
    logits[1, 2, 7] = -math.inf  # a target position may have -inf on a token that is not its target
    clean[1, 2, 7] = -math.inf
    logits.requires_grad_(True)
    logp, _ = token_logps(logits, labels)
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(logp, token_logps(clean, labels)[0], rtol=EXACT, atol=0)
    torch.testing.assert_close(nll(logits, labels), nll(clean, labels), rtol=EXACT, atol=0)
    grad = torch.autograd.grad(sequence_logps(logits, labels).sum(), logits)[0]
    assert torch.isfinite(grad).all() and float(grad[0, [0, 4]].abs().max()) == 0.0

    # KL(p_ref || p_theta): -inf in both at a padding position, and a token the reference rules out.
    # (A row of logits that is -inf everywhere is no distribution at all; log_softmax itself is NaN.)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    ref = torch.randn(2, 6, 11, generator=g, dtype=torch.float64)
    ref[0, 5, :6] = -math.inf  # at padding, -inf in both (policy[0, 5] is logits[0, 5])
    logits.data[0, 5, :6] = -math.inf
    ref[1, 3, 2] = -math.inf  # p_ref = 0 there: contributes 0 log 0 = 0, whatever the policy says
    policy = logits.detach().clone()
    policy[1, 3, 2] = -math.inf
    policy.requires_grad_(True)
    kl = kl_to_reference(policy, ref, mask)
    p, q = torch.log_softmax(ref, -1), torch.log_softmax(policy.detach(), -1)
    hand = [
        sum(float(p[b, t, v].exp() * (p[b, t, v] - q[b, t, v])) for v in range(11) if p[b, t, v] > -math.inf)
        for b in range(2)
        for t in range(6)
        if mask[b, t]
    ]
    assert float(kl.detach()) == pytest.approx(sum(hand) / len(hand), rel=EXACT)
    assert torch.isfinite(torch.autograd.grad(kl, policy)[0]).all()

    # and the methods' losses on top of them
    model = _FixedLogits(logits.detach())
    batch = Batch(torch.zeros(2, 6, dtype=torch.long), torch.ones(2, 6, dtype=torch.long), labels)
    reference = SimpleNamespace(sequence_logps=lambda b: torch.tensor([-3.0, -4.0], dtype=torch.float64))
    for name in ("ga", "npo", "simnpo"):
        options = {} if name == "ga" else {"retain_weight": 0}
        value, _ = make_method(name, **options).loss(LossInputs(model, batch, None, reference))
        assert torch.isfinite(value), name
