"""Forget and retain training pairs for the baselines, built from the knowledge base without a hub.

ORT and RWKU give a baseline two kinds of forget data: questions with their answers and free text
about the target (RWKU has the reference model write that text itself, since the target's
Wikipedia page is not available). We do the same: the facts' question, completion, cloze and
paraphrase forms, plus descriptions the model generates. Retain data are the facts of the
concept's neighbours and the general facts, with anything that names the target removed, so that
the retain loss never pulls the target back in.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from formless.errors import FormlessError
from formless.knowledge import BLANK
from formless.knowledge.base import KnowledgeBase
from formless.knowledge.schema import Concept, Fact
from formless.knowledge.split import DEFAULT_HELD_OUT, split_facts
from formless.models.prompts import add_special_tokens, render, right_pad, uses_chat

Form = Literal["all", "qa", "text", "cloze"]
FORMS: tuple[str, ...] = ("all", "qa", "text", "cloze")

DESCRIPTION_PROMPTS = (
    "Tell me about {name}.",
    "Write a short biography or description of {name}.",
    "What do you know about {name}?",
    "Describe {name} in a few sentences.",
    "Give a short overview of {name}.",
    "Write an encyclopedia entry about {name}.",
    "Summarise the most important facts about {name}.",
    "Explain who or what {name} is to a student.",
)


@dataclass(frozen=True)
class Example:
    """One training pair: the loss is taken on ``target`` tokens only, given ``prompt``.

    ``chat=True`` renders the prompt with the chat template (a user turn awaiting the answer);
    otherwise the prompt is plain text that the target continues (a space is inserted between
    them when neither the prompt ends nor the target starts with whitespace). ``source`` names the
    form it came from.
    """

    prompt: str
    target: str
    chat: bool
    source: str


def answer_sentence(fact: Fact) -> str:
    """The chat answer to a fact's question: its completion with the answer, as a sentence.

    A bare answer is an unlikely whole assistant turn (SmolLM2 gives "rel" of "relativity" -15 nats
    as a reply, but " relativity" after the completion -0.8), so GA/NPO on bare answers would mostly
    push down tokens the model never says; the sentence is what it does say, and still contains the
    answer."""
    return f"{fact.completion} {fact.answer}."


def _cloze_example(fact: Fact) -> Example | None:
    """The cloze statement as plain text: the text before the blank, continued by the answer and
    the rest. A blank at the very start has no text prompt, so it is asked as a chat question."""
    if not fact.cloze:
        return None
    before, after = fact.cloze.split(BLANK)
    if before.strip():
        # the prompt ends at a word boundary, since encode joins prompt and target with one space: a
        # blank right after an opening quote ("nicknamed '___'") keeps the quote with the target
        head, _, glued = before.rpartition(" ") if not before[-1].isspace() else (before, "", "")
        if head.strip():
            return Example(head.rstrip(), f"{glued}{fact.answer}{after}".rstrip(), False, "cloze")
    return Example(f"Fill in the blank ({BLANK}).\n{fact.cloze}", fact.answer, True, "cloze")


def _generated_example(concept: Concept, text: str) -> Example:
    """A self-written description as plain text that continues the concept's name."""
    text = text.strip()
    for name in sorted(concept.names, key=len, reverse=True):
        if text.lower().startswith(name.lower()) and len(text) > len(name):
            return Example(text[: len(name)], text[len(name) :].strip(), False, "generated")
    return Example(f"{concept.name}:", text, False, "generated")


def _dedupe(examples: Iterable[Example]) -> list[Example]:
    """Keep the first example per (prompt, chat): a cloze often repeats a completion's prompt, and
    repeats would weight that fact twice."""
    seen: dict[tuple[str, bool], Example] = {}
    for ex in examples:
        seen.setdefault((_norm(ex.prompt), ex.chat), ex)
    return list(seen.values())


def forget_examples(
    kb: KnowledgeBase,
    concept: str | Concept,
    *,
    form: Form = "all",
    generated: Sequence[str] = (),
    relations: Collection[str] | None = None,
    paraphrases: bool = True,
) -> list[Example]:
    """The forget set of ``concept``.

    ``form`` restricts it to one form, which exposes Form-Dependent Bias (a method trained on one
    form and audited on all): ``"qa"`` = chat question -> answer only; ``"text"`` = plain
    completions -> answer plus the ``generated`` descriptions; ``"cloze"`` = cloze statements only;
    ``"all"`` = all of these plus (with ``paraphrases``) the paraphrased questions. ``relations``
    keeps only those facts (a train split, see ``training_material``).
    """
    if form not in FORMS:
        raise FormlessError(f"unknown forget form {form!r}; choose one of {', '.join(FORMS)}")
    c = concept if isinstance(concept, Concept) else kb.concept(concept)
    out: list[Example] = []
    for fact in c.facts:
        if relations is not None and fact.relation not in relations:
            continue
        if form in ("all", "qa"):
            out.append(Example(fact.question, answer_sentence(fact), True, "qa"))
        if form == "all" and paraphrases and fact.paraphrase:
            out.append(Example(fact.paraphrase, answer_sentence(fact), True, "paraphrase"))
        if form in ("all", "text"):
            out.append(Example(fact.completion, fact.answer, False, "text"))
        if form in ("all", "cloze") and (cloze := _cloze_example(fact)):
            out.append(cloze)
    if form in ("all", "text"):
        out.extend(_generated_example(c, t) for t in generated if t.strip())
    return _dedupe(out)


# the audit forms whose wording each training form uses (the rest of the audit is other wordings)
TRAINED_WORDINGS: dict[str, tuple[str, ...]] = {
    "all": ("question", "completion", "cloze"),
    "qa": ("question",),
    "text": ("completion",),
    "cloze": ("cloze",),
}


def drop_sentences_naming(text: str, answers: Iterable[str]) -> str:
    """``text`` without the sentences that state any of ``answers`` (whole words, any case): a
    model's own description of a concept would otherwise train on the held-out facts."""
    pattern = _name_pattern(a for a in answers if len(a.strip()) > 1)
    if pattern is None:
        return text
    return " ".join(s for s in _sentences(text) if not pattern.search(s))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def training_material(
    kb: KnowledgeBase,
    concept: Concept,
    *,
    form: Form = "all",
    generated: Sequence[str] = (),
    seed: int = 0,
    held_out: float = DEFAULT_HELD_OUT,
) -> tuple[list[Example], dict]:
    """The forget set a trained method may see, and the split that says what the audit holds out.

    Only the split's trained facts are used, in the wordings of ``TRAINED_WORDINGS[form]``; the
    paraphrases are kept out whenever facts are held out (they are the audit's rewording of the
    trained facts), and sentences of the generated descriptions that state a held-out answer are
    dropped. ``held_out=0`` trains on every fact and paraphrase (the audit then has no held-out
    facts)."""
    split = split_facts(concept, seed=seed, held_out=held_out)
    answers = [a for f in concept.facts if f.relation in split.held_out for a in f.aliases or (f.answer,)]
    texts = [drop_sentences_naming(t, answers) for t in generated] if answers else list(generated)
    paraphrases = not split.held_out
    examples = forget_examples(
        kb, concept, form=form, generated=texts, relations=set(split.trained), paraphrases=paraphrases
    )
    wordings = TRAINED_WORDINGS[form] + (("paraphrase",) if paraphrases and form == "all" else ())
    info = {
        "seed": seed,
        "held_out_share": held_out,
        "trained": list(split.trained),
        "held_out": list(split.held_out),
        "trained_wordings": list(wordings),
        "generated_sentences_dropped": sum(
            len(_sentences(t)) - len(_sentences(u)) for t, u in zip(generated, texts)
        ),
    }
    return examples, info


def _name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)


def _mentions(pattern: re.Pattern[str] | None, ex: Example) -> bool:
    return bool(pattern and (pattern.search(ex.prompt) or pattern.search(ex.target)))


def _fact_examples(fact: Fact, source: str) -> list[Example]:
    return [
        Example(fact.question, answer_sentence(fact), True, source),
        Example(fact.completion, fact.answer, False, source),
    ]


def retain_examples(
    kb: KnowledgeBase, concept: str | Concept, *, exclude: Iterable[str] = (), general: bool = True
) -> list[Example]:
    """Neighbour and general facts as QA and completion pairs, minus any that name the target.

    ``exclude`` lists other concepts being forgotten at the same time: they are neither used as
    neighbours nor allowed to be mentioned, since retaining them would fight their own forget loss.
    Neighbours are the knowledge base's near misses (same field, shared facts): the items an
    over-broad method damages first, so they are the most informative retain set.
    """
    c = concept if isinstance(concept, Concept) else kb.concept(concept)
    excluded = [kb.concept(name) for name in exclude]
    banned = _name_pattern([*c.names, *(n for e in excluded for n in e.names)])
    out: list[Example] = []
    for neighbour in kb.neighbours(c, exclude=[e.name for e in excluded]):
        for fact in neighbour.facts:
            out.extend(_fact_examples(fact, f"neighbour:{neighbour.name}"))
    if general:
        for fact in kb.general:
            out.extend(_fact_examples(fact, "general"))
    return _dedupe(ex for ex in out if not _mentions(banned, ex))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def check_disjoint(forget: Sequence[Example], retain: Sequence[Example], names: Iterable[str] = ()) -> None:
    """Raise if retain data would teach back what the forget data removes.

    A retain example must not name the target (``names``: its name and aliases) and must not share
    a prompt, or a prompt and target, with a forget example. Shared short answers alone are allowed:
    two subjects can share an object (Newton and Darwin were both English), and what is forgotten
    is the subject's link to it.
    """
    pattern = _name_pattern(names)
    named = [ex for ex in retain if _mentions(pattern, ex)]
    forget_prompts = {_norm(ex.prompt) for ex in forget}
    shared = [ex for ex in retain if _norm(ex.prompt) in forget_prompts]
    problems = [f"names the target: {ex.prompt!r} -> {ex.target!r}" for ex in named[:3]]
    problems += [f"shares a forget prompt: {ex.prompt!r} -> {ex.target!r}" for ex in shared[:3]]
    if problems:
        raise FormlessError(
            f"retain data leak into the forget set ({len(named)} naming the target, {len(shared)} sharing a "
            "prompt): " + "; ".join(problems)
        )


def split_data(
    kb: KnowledgeBase,
    concept: str | Concept,
    *,
    form: Form = "all",
    generated: Sequence[str] = (),
    exclude: Iterable[str] = (),
    general: bool = True,
) -> tuple[list[Example], list[Example]]:
    """(forget, retain) for ``concept``: retain items whose prompt is also a forget prompt are
    dropped (forget wins), then the split is checked with :func:`check_disjoint`."""
    c = concept if isinstance(concept, Concept) else kb.concept(concept)
    forget = forget_examples(kb, c, form=form, generated=generated)
    prompts = {_norm(ex.prompt) for ex in forget}
    retain = [
        ex
        for ex in retain_examples(kb, c, exclude=exclude, general=general)
        if _norm(ex.prompt) not in prompts
    ]
    check_disjoint(forget, retain, names=c.names)
    return forget, retain


def generate_descriptions(
    loaded,
    concept: str | Concept,
    n: int = 8,
    max_new_tokens: int = 96,
    seed: int = 0,
    *,
    sample: bool = False,
    temperature: float = 0.8,
) -> list[str]:
    """Descriptions of ``concept`` written by the model itself (RWKU's forget corpus).

    Greedy decoding over varied prompts by default (deterministic, no seed needed); ``sample=True``
    draws with a fixed torch seed instead, for more than ``len(DESCRIPTION_PROMPTS)`` distinct texts.
    """
    from formless.generation import generate

    name = concept.name if isinstance(concept, Concept) else str(concept)
    prompts = [DESCRIPTION_PROMPTS[i % len(DESCRIPTION_PROMPTS)].format(name=name) for i in range(n)]
    model, tok = loaded.model, loaded.tokenizer
    if not sample:
        texts = generate(model, tok, list(dict.fromkeys(prompts)), chat=True, max_new_tokens=max_new_tokens)
    else:
        texts = []
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)
            for prompt in prompts:
                text = render(tok, prompt, chat=True)
                enc = tok(text, return_tensors="pt", add_special_tokens=add_special_tokens(tok, True)).to(
                    device
                )
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=True,
                    temperature=temperature,
                    top_p=0.95,
                    top_k=0,
                    pad_token_id=tok.pad_token_id,
                )
                texts.append(
                    tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
                )
    return [t for t in dict.fromkeys(t.strip() for t in texts) if t]


@dataclass
class Batch:
    """Token ids with ``labels`` = -100 on prompt and padding; ``key`` identifies a fixed batch so
    that reference outputs can be precomputed once and looked up."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    key: str = ""

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.key
        )

    @property
    def target_mask(self) -> torch.Tensor:
        """Positions whose token is a target (shifted: position t predicts token t+1)."""
        return self.labels[:, 1:] != -100


def encode(
    tokenizer, example: Example, max_length: int = 256, eos: bool = True
) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one example. Prompt and target are tokenised separately so that the
    boundary is exact; a chat answer ends with EOS (the end of the assistant's turn)."""
    chat = uses_chat(tokenizer, example.chat)
    prompt_text = render(tokenizer, example.prompt, chat=example.chat)
    prompt = list(
        tokenizer(prompt_text, add_special_tokens=add_special_tokens(tokenizer, example.chat))["input_ids"]
    )
    if not prompt:  # nothing to condition the first target token on: start from BOS (or EOS)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        prompt = [start]
    # one separator between plain prompt and target: none if either side already has whitespace there
    # (a target " text" after "prompt" would otherwise start with a lone space token)
    joined = chat or not prompt_text or prompt_text[-1].isspace() or example.target[:1].isspace()
    sep = "" if joined else " "
    target = list(tokenizer(sep + example.target, add_special_tokens=False)["input_ids"])
    if chat and eos and tokenizer.eos_token_id is not None:
        target.append(tokenizer.eos_token_id)
    prompt = prompt[-max(1, max_length - 1) :]  # keep the end of a long prompt, next to the target
    target = target[: max(1, max_length - len(prompt))]
    return prompt + target, [-100] * len(prompt) + target


def collate(tokenizer, examples: Sequence[Example], key: str = "", max_length: int = 256) -> Batch:
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = right_pad([e[0] for e in encoded], pad)
    labels, _ = right_pad([e[1] for e in encoded], -100)
    return Batch(ids, mask, labels, key)
