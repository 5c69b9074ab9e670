"""#13 direction "answer-side edits" with "verify and repeat", as an experiment on the design concepts.

After the default ROCR edit, the edited model is asked the facts the *reference itself* states about
the concept (``elicit_concept``: its own consistent answers, never the audit's curated facts). For
each fact it still answers (verify), a change ``delta`` of the block output of layer ``L`` (after
ROCR's layers) at the name's last token is optimised so the fact's answer becomes unlikely
(minimise ``-log(1 - p(answer))`` over the question and the completion wording, norm-clamped), and
written into layer L's MLP projection in closed form through the null-space projector (AlphaEdit
form, ``rocr_delta``). Repeated while facts are still answered, up to ``ROUNDS`` rounds. The result
is audited like dev_sweep.py.

    python docs/ablation/answer_side.py "<names>" OUT.json '<options JSON>' <forms>

options: layer (default: ROCR's last layer + 1), steps (25), lr (0.5), max_ratio (0.75: the
largest ||delta|| / ||h||), rounds (2), prior_twins ("recognition"; "all" reports every naming
form beyond the made-up-name prior, as the held-out table does).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _counts import audit_counts, sweep_args

from formless.api import forget, make_config
from formless.audit.run import AuditSettings, run_audit
from formless.audit.scoring import answer_probability
from formless.generation import generate
from formless.knowledge import load
from formless.knowledge.elicit import elicit_concept
from formless.matching import contains_answer
from formless.models import load_model
from formless.models.prompts import add_special_tokens, render, right_pad
from formless.rocr.activations import collect, locate
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import add_to_weight, stored_weight
from formless.rocr.stats import layer_statistics
from formless.rocr.update import rocr_delta


def still_answered(loaded, facts):
    """The facts the model still answers (alias in its greedy answer to the question or completion)
    or still recognises (the answer likelier after the question than each of its distractors)."""
    tok, model = loaded.tokenizer, loaded.model
    qs = generate(model, tok, [f.question for f in facts], chat=True, max_new_tokens=24)
    cs = generate(model, tok, [f.completion for f in facts], chat=False, max_new_tokens=12)
    options = [(f, o) for f in facts for o in (f.answer, *f.distractors)]
    probs = answer_probability(loaded, [f.question for f, _ in options], [o for _, o in options], fast=False)
    likely = {}
    for (f, _option), p in zip(options, probs):
        likely.setdefault(f.relation, []).append(p)
    left = []
    for f, q, c in zip(facts, qs, cs):
        said = any(contains_answer(text, f.aliases or (f.answer,)) for text in (q, c))
        scores = likely[f.relation]
        if said or scores[0] > max(scores[1:], default=0.0):
            left.append(f)
    return left


def rows_for(loaded, name, facts):
    """Per fact, its question (chat) and completion (plain): token ids with the answer appended, the
    name's last-token position, and the answer's token positions."""
    tok = loaded.tokenizer
    rows = []
    for j, f in enumerate(facts):
        for text, chat in ((f.question, True), (f.completion, False)):
            if name not in text:
                continue
            rendered = render(tok, text, chat=chat)
            located = locate(tok, rendered, name, add_special=add_special_tokens(tok, chat))
            answer_ids = tok((" " if not chat else "") + f.answer, add_special_tokens=False)["input_ids"]
            ids = located.input_ids + answer_ids
            rows.append((j, located, ids, list(range(len(located.input_ids), len(ids)))))
    return rows


def optimise_deltas(loaded, layer, rows, n_facts, steps, lr, max_ratio):
    """delta per fact at ``layer``'s block output (name's last token) making its answer unlikely."""
    model, adapter = loaded.model, loaded.adapter
    ids, mask = right_pad([r[2] for r in rows], loaded.tokenizer.pad_token_id or 0)
    fact_of = torch.tensor([r[0] for r in rows])
    pos = torch.tensor([r[1].position for r in rows])
    _, outs = collect(loaded, [r[1] for r in rows], output_layers=[layer])
    h_norm = torch.zeros(n_facts)
    for j in range(n_facts):
        h_norm[j] = outs[layer][fact_of == j].norm(dim=1).mean()
    delta = torch.zeros(n_facts, outs[layer].shape[1], requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)

    def hook(_m, _a, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[torch.arange(len(rows)), pos] += delta[fact_of].to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = adapter.layer(model, layer).register_forward_hook(hook)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad()
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            logp = torch.log_softmax(logits, -1)
            terms = []
            for i, (_, _, seq, answer_pos) in enumerate(rows):
                for t in answer_pos:
                    p = logp[i, t - 1, seq[t]].exp().clamp(max=1 - 1e-6)
                    terms.append(-torch.log1p(-p))
            loss = torch.stack(terms).mean()
            loss.backward()
            opt.step()
            with torch.no_grad():  # clamp ||delta_j|| <= max_ratio * ||h_j||
                limit = (max_ratio * h_norm).unsqueeze(1)
                norms = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
                delta.mul_(torch.minimum(torch.ones_like(norms), limit / norms))
    finally:
        handle.remove()
    return delta.detach(), float(loss.detach())


def answer_side_round(loaded, name, facts, layer, stats, opts):
    rows = rows_for(loaded, name, facts)
    if not rows:
        return None
    delta, loss = optimise_deltas(
        loaded,
        layer,
        rows,
        len(facts),
        opts.get("steps", 25),
        opts.get("lr", 0.5),
        opts.get("max_ratio", 0.75),
    )
    keys, _ = collect(loaded, [r[1] for r in rows], key_layers=[layer])
    fact_of = torch.tensor([r[0] for r in rows])
    cols = [j for j in range(len(facts)) if (fact_of == j).any()]
    K = torch.stack([keys[layer][fact_of == j].mean(0) for j in cols], 1)
    R = torch.stack([delta[j] for j in cols], 1)
    basis = stats[layer].basis(make_config().threshold)
    dW = rocr_delta(K, R, basis, make_config().lam)
    module = loaded.adapter.mlp_out_module(loaded.model, layer)
    relative = float(dW.norm() / stored_weight(module).detach().float().norm())
    if relative > make_config().max_relative_norm:
        return {"refused": relative, "loss": loss}
    add_to_weight(module, loaded.adapter.transposed, dW)
    return {"relative": relative, "loss": loss, "facts": len(cols)}


def main():
    names, out, opts, forms, done = sweep_args(sys.argv)
    kb = load()
    for name in names:
        if name in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            loaded = load_model("smollm2-135m-instruct")
            t = time.perf_counter()
            concept, report = elicit_concept(loaded, name, languages=())  # the reference's own facts
            t_elicit = time.perf_counter() - t
            outcome = forget(name, model=loaded, out=Path(tmp) / "m", method="rocr", config=make_config(None))
            layers = outcome.manifest["layers"]
            layer = opts.get("layer", layers[-1] + 1)
            stats, _ = layer_statistics(loaded, [layer], load_corpus(None))
            t = time.perf_counter()
            rounds = []
            facts = list(concept.facts)
            for _ in range(opts.get("rounds", 2)):
                left = still_answered(loaded, facts)
                rounds.append({"still_answered": len(left), "of": len(facts)})
                if not left:
                    break
                rounds[-1].update(answer_side_round(loaded, name, left, layer, stats, opts) or {})
                if "refused" in rounds[-1]:
                    break
            rounds.append({"still_answered_after": len(still_answered(loaded, facts))})
            t_answer = time.perf_counter() - t
            loaded.model.save_pretrained(Path(tmp) / "m", safe_serialization=True)
            report = run_audit(
                Path(tmp) / "m",
                kb=kb,
                settings=AuditSettings(
                    quantize=(), fast=True, forms=forms, prior_twins=opts.get("prior_twins", "recognition")
                ),
            )
        rec = {
            "elicit_s": round(t_elicit, 2),
            "answer_side_s": round(t_answer, 2),
            "elicited_facts": {f.relation: f.answer for f in concept.facts},
            "rounds": rounds,
            **audit_counts(report),
        }
        done[name] = rec
        out.write_text(json.dumps(done))
        summary = f"overall {rec['overall']} neigh {rec['neigh']} gen {rec['general']} kl {rec['kl']}"
        print(name, opts, rounds, summary, flush=True)


if __name__ == "__main__":
    main()
