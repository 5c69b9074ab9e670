"""The baselines' maths against independent hand computations on fixed tensors and a tiny model."""

from __future__ import annotations

import copy
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
    fb, _ = _batches(tiny.tokenizer)
    with torch.no_grad():
        logits = tiny.model(input_ids=fb.input_ids, attention_mask=fb.attention_mask).logits
    ours = sequence_logps(logits, fb.labels)
    hand = torch.tensor(_hand_sequence_logps(tiny.model, tiny.tokenizer, FORGET), dtype=torch.float32)
    torch.testing.assert_close(ours, hand, rtol=1e-4, atol=1e-4)
    assert (ours < 0).all()  # log-probabilities, never raw logits
    lengths = fb.target_mask.sum(-1)
    torch.testing.assert_close(sequence_logps(logits, fb.labels, average=True), ours / lengths)


def test_log_probs_ignore_any_per_position_logit_shift():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    shifted = logits + 7.5 + torch.randn(2, 6, 1, generator=g) * 100
    torch.testing.assert_close(
        sequence_logps(shifted, labels), sequence_logps(logits, labels), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(nll(shifted, labels), nll(logits, labels), atol=1e-5, rtol=0)


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
    torch.manual_seed(0)
    perturbed = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ref = Reference(tiny.model)
    plain, _ = method.loss(LossInputs(perturbed, fb, rb, ref))
    shifted, _ = method.loss(LossInputs(_Shifted(perturbed), fb, rb, Reference(_Shifted(tiny.model))))
    torch.testing.assert_close(shifted, plain, atol=1e-4, rtol=1e-5)


def test_npo_and_simnpo_formulas_by_hand():
    ours = npo_loss(torch.tensor([-2.0]), torch.tensor([-1.5]), beta=0.1)
    beta, delta = 0.1, -2.0 - (-1.5)
    hand = -(2 / beta) * math.log(1 / (1 + math.exp(beta * delta)))  # log sigmoid(-beta delta)
    assert float(ours) == pytest.approx(hand, rel=1e-6)
    assert hand == pytest.approx(20 * math.log1p(math.exp(-0.05)))
    ours = simnpo_loss(torch.tensor([-2.0]), beta=2.5, gamma=0.5)
    hand = -(2 / 2.5) * math.log(1 / (1 + math.exp(-(2.5 * 2.0 - 0.5))))
    assert float(ours) == pytest.approx(hand, rel=1e-6)


def test_method_losses_equal_hand_computations(tiny):
    fb, rb = _batches(tiny.tokenizer)
    torch.manual_seed(1)
    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ref_model = tiny.model
    inputs = LossInputs(model, fb, rb, Reference(ref_model))

    def logits(m, b):
        with torch.no_grad():
            return m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.double()

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
    assert float(make_method("ga").loss(inputs)[0]) == pytest.approx(-nf, rel=1e-4)
    assert float(make_method("gd", retain_weight=0.5).loss(inputs)[0]) == pytest.approx(
        -nf + 0.5 * nr, rel=1e-4
    )

    lp, ln = hand_seq(model, fb)
    ref_lp, _ = hand_seq(ref_model, fb)
    npo = -(2 / 0.1) * F.logsigmoid(-0.1 * (lp - ref_lp)).mean()
    got = make_method("npo", beta=0.1, retain_weight=2.0).loss(inputs)[0]
    assert float(got) == pytest.approx(float(npo) + 2.0 * nr, rel=1e-4)
    sim = -(2 / 2.5) * F.logsigmoid(-(2.5 / ln) * lp - 0.3).mean()
    got = make_method("simnpo", gamma=0.3).loss(inputs)[0]
    assert float(got) == pytest.approx(float(sim) + nr, rel=1e-4)

    p_log = torch.log_softmax(logits(ref_model, rb), -1)
    q_log = torch.log_softmax(logits(model, rb), -1)
    kl = F.kl_div(q_log, p_log, log_target=True, reduction="none").sum(-1)  # KL(p_ref || p_theta)
    mask = rb.attention_mask.bool()
    got = make_method("kl").loss(inputs)[0]
    assert float(got) == pytest.approx(-nf + float(kl[mask].mean()), rel=1e-4)


def _grads(model, loss) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_npo_gradient_equals_ga_at_reference_and_as_beta_goes_to_zero(tiny):
    """d/dtheta -(2/b) log s(-b D) = 2 s(b D) dD; at D = 0 that is dD = the sequence-level GA gradient
    for every b, i.e. (tokens / sequences) x our token-mean GA gradient."""
    fb, _ = _batches(tiny.tokenizer)
    model = tiny.model
    ref = Reference(copy.deepcopy(model))
    ga = _grads(model, make_method("ga").loss(LossInputs(model, fb))[0])
    npo = _grads(
        model, make_method("npo", beta=0.1, retain_weight=0).loss(LossInputs(model, fb, None, ref))[0]
    )
    scale = float(fb.target_mask.sum()) / fb.input_ids.shape[0]
    torch.testing.assert_close(npo, scale * ga, rtol=1e-4, atol=1e-6)

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
    logits = torch.zeros(2, width, vocab)
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

    assert loss("simnpo", short) == pytest.approx(loss("simnpo", long), rel=1e-6)
    assert loss("npo", short) != pytest.approx(loss("npo", long), rel=1e-3)
    per_token = math.log(math.exp(1.3) / (math.exp(1.3) + 4))
    assert loss("simnpo", short) == pytest.approx(-(2 / 2.5) * math.log(1 / (1 + math.exp(2.5 * per_token))))


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
    assert make_method("ga").uses_retain is False and make_method("npo").uses_retain is True
    assert make_method("npo", retain_weight=0).uses_retain is False
    assert all(isinstance(make_method(name), Method) for name in METHODS)
