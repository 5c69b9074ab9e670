"""One probe = one prompt asking one fact in one form, with what counts as the right answer."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

Match = Literal["alias", "spelled"]
PRIOR_SUFFIX = "~prior"


@dataclass(frozen=True)
class Probe:
    form: str
    concept: str
    item: str  # the fact asked (its relation), shared by every form of that fact
    prompt: str
    chat: bool = True  # rendered with the chat template (else plain text continued)
    answer: str | None = None  # gold text, scored by teacher-forced probability
    aliases: tuple[str, ...] = ()  # a greedy generation containing one of them is a hit
    options: tuple[str, ...] = ()  # scored by likelihood instead: hit = the right option wins
    correct: int = -1
    max_new_tokens: int = 24
    match: Match = "alias"
    variant: str = ""  # e.g. the language, or "true"/"false"
    # the same probe about a made-up name: what the reference picks without knowing the concept
    # (the options' own prior); asked of the reference, never counted as a fact itself
    prior_twin: bool = False
    twin: int = 0  # which made-up name (formless.audit.forms.base.PRIOR_NAMES) a prior twin uses
    # a twin of a probe that never names the concept (indirect reference): the question asked about
    # an entity its description mentions instead ("In which country is Paris?" for "... the tower on
    # the Champ de Mars in Paris"); right about any one, the answer needs no knowledge of the concept
    cue: str = ""

    @property
    def key(self) -> str:
        if not self.prior_twin:
            return self.fact_key
        return self.fact_key + PRIOR_SUFFIX + (str(self.twin) if self.twin else "")

    @property
    def extra_twin(self) -> bool:
        """A prior twin about a second or later made-up name: its answer only sets a known fact's own
        chance, so the reference is asked it only where it knows the fact (the first twin always)."""
        return self.prior_twin and self.twin > 0

    @property
    def fact_key(self) -> str:
        """The key of the probe a prior twin stands beside (its own key otherwise)."""
        return f"{self.concept}|{self.form}|{self.item}|{self.variant}"

    @property
    def generates(self) -> bool:
        return not self.options and bool(self.aliases)

    def fingerprint(self) -> str:
        """Changes whenever anything that affects the probe's score changes (reference cache key)."""
        text = repr(
            (
                self.key,
                self.prompt,
                self.chat,
                self.answer,
                self.aliases,
                self.options,
                self.correct,
                self.max_new_tokens,
                self.match,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_for(seed: int, *parts: str) -> random.Random:
    """A generator per (seed, concept, fact): adding a concept never reshuffles the others."""
    digest = hashlib.sha256("|".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def spell(text: str) -> str:
    """ORT's sub-token form: one character per line (spaces dropped)."""
    return "\n".join(c for c in text if not c.isspace())
