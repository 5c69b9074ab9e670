"""ROCR hyper-parameters, with defaults that scale with model depth."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from formless.errors import FormlessError

# The reference's key contexts: a chat turn "<prefix> <s>." for each prefix.
REFERENCE_PREFIXES = [
    "",
    "Please answer the question about",
    "Choose the best answer about",
    "Write the answer about",
    "Tell me about",
    "Write something about",
]

# Our addition: the same concept in plain text, as in a completion prompt with no chat template.
PLAIN_TEMPLATES = [
    "{s}.",
    "Tell me about {s}.",
    "Here is a fact about {s}:",
    "The answer is about {s}, which",
    "Everyone knows that {s}",
]

# The concept at the very start of plain text, as a completion prompt puts it ("Michael Jordan played
# for the"): the name's last token there is read unlike mid-sentence (cosine 0.66-0.84 with it on
# SmolLM2, against 0.88-0.97 between other contexts), so these contexts are a key group of their own.
START_TEMPLATES = ["{s} is", "{s} was", "{s} has", "{s} became", "{s}, who"]

# The default redirect, "an unknown name": v* is the averaged representation of made-up names, an
# entity the model knows nothing about, rather than one particular stand-in. None of these names is
# one the audit's prior twins or the elicitation's controls use (knowledge.templates.MADE_UP_NAMES).
# Measured against "a random person" on the designed-on concepts, then on held-out ones (README).
UNKNOWN_REDIRECT = "an unknown name"
UNKNOWN_NAMES = ("Orlin Vasquire", "Temra Kolbeck", "Dunstan Ferreau", "Ysolde Brannick", "Corvin Maltrey")
DEFAULT_REDIRECT = UNKNOWN_REDIRECT
# the paper preset's fixed s' (the reference's own is not given in the spec)
PAPER_REDIRECT = "a random person"

# Above this ||dW|| / ||W|| on any edited matrix the edit is refused (formless.rocr.edit.UnsafeEditError).
# Measured on SmolLM2-135M (layers 4-6) after the first-position fix: Paris, Donald Trump, Harry
# Potter, Eiffel Tower, Albert Einstein, Michael Jordan give 0.04-0.12 and keep "The capital of
# Germany is" -> " Berlin"; the keys read at position 0 (issue #13) gave 0.55-0.91 and broke it.
MAX_RELATIVE_NORM = 0.25

KeyGroup = Literal["chat", "plain", "start"]


def default_layers(n_layers: int, width: int = 3, relative_depth: float = 0.19) -> list[int]:
    """Contiguous early-middle layers at the reference's relative depth (Llama-3-8B: 4,5,6 of 32)."""
    width = max(1, min(width, n_layers))
    last = min(n_layers - 1, max(width - 1, round(relative_depth * n_layers)))
    return list(range(last - width + 1, last + 1))


MAX_RELATIVE_NORM_ENV = "FORMLESS_MAX_RELATIVE_NORM"


def default_max_relative_norm() -> float:
    """The update guard's limit: ``MAX_RELATIVE_NORM``, or ``$FORMLESS_MAX_RELATIVE_NORM`` for a whole
    run (the benchmarks' smoke runs on tiny random models, whose updates are near their weights'
    norm, set it; the manifest records the value used)."""
    text = os.environ.get(MAX_RELATIVE_NORM_ENV, "").strip()
    if not text:
        return MAX_RELATIVE_NORM
    try:
        return float(text)
    except ValueError:
        raise FormlessError(
            f"{MAX_RELATIVE_NORM_ENV}={text!r} is not a number; unset it or give e.g. 0.25"
        ) from None


class ROCRConfig(BaseModel):
    """Everything that determines an ROCR edit besides the model and the concepts."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field(
        "formless", description="name of the preset (formless.rocr.config.PRESETS) this config starts from"
    )
    layers: list[int] | None = Field(None, description="edited layers (contiguous); default by depth")
    lam: float = Field(1.0, gt=0, description="ridge term lambda of the closed-form solve")
    threshold: float = Field(2e-2, gt=0, description="eigenvalue cut-off of the null-space projector")
    redirect: str = Field(DEFAULT_REDIRECT, description="harmless concept the target is redirected to")
    redirect_average: list[str] = Field(
        default_factory=list,
        description="more targets whose representations are averaged with the redirect's (e.g. several "
        "made-up names: an 'unknown entity' rather than one particular stand-in)",
    )
    prefixes: list[str] = Field(default_factory=lambda: list(REFERENCE_PREFIXES))
    plain_templates: list[str] = Field(default_factory=lambda: list(PLAIN_TEMPLATES))
    start_templates: list[str] = Field(default_factory=lambda: list(START_TEMPLATES))
    strength: float = Field(
        1.0,
        gt=0,
        description="multiplies the residual v* - z(s); > 1 pushes past the redirect's representation",
    )
    concept_tokens: int = Field(
        0, ge=0, description="trailing tokens of the concept name redirected (0 = all, 1 = last only)"
    )
    token_specificity: float = Field(
        0.9,
        ge=0,
        description="earlier name tokens are redirected only if the share of their key in the null space is "
        "at least this times the last token's (keeps generic tokens such as 'The' or 'Michael' untouched)",
    )
    key_groups: list[KeyGroup] = Field(
        default_factory=lambda: ["chat", "plain"],
        description="context groups the keys are read in: 'chat' turns (the reference; only on models "
        "with a chat template), 'plain' text (our addition, for completion prompts) and 'start': plain "
        "text that begins with the name (where its tokens allow it)",
    )
    max_relative_norm: float = Field(
        default_factory=default_max_relative_norm,
        gt=0,
        description="refuse the edit when any ||dW|| / ||W|| exceeds this (an update that large breaks "
        "unrelated knowledge)",
    )
    protect_famous: bool = Field(
        False,
        description="keep the representations of a broad list of well-known names "
        "(formless.rocr.protect.FAMOUS_NAMES) as they are: their keys enter the solve like earlier edits'",
    )
    protected: list[str] = Field(
        default_factory=list, description="more names whose representation the edit must leave as it is"
    )
    protect_weight: float = Field(
        1.0, gt=0, description="weight of a protected name's key against an edited one in the solve"
    )
    grid: Literal["auto", "off"] = Field(
        "auto",
        description="'auto': where an edited matrix's weights sit exactly on a llama.cpp block grid (a "
        "checkpoint published quantized, like the default model's Q4_1), the edited matrix is put back "
        "on that grid (GPTQ rounding against the statistics and the concept's keys), so converting the "
        "model back to its format keeps the edit (formless.rocr.grid); 'off': the update as solved",
    )
    grid_key_weight: float = Field(
        1.0, gt=0, description="weight of the concept's keys against generic text in the grid rounding"
    )
    stats_tokens: int = Field(40_000, ge=1000, description="generic-text tokens for the statistics")
    corpus: str | None = Field(None, description="statistics corpus file/dir; None = shipped default")

    @field_validator("layers")
    @classmethod
    def _contiguous(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("layers must not be empty")
        v = sorted(set(v))
        if v != list(range(v[0], v[-1] + 1)) or v[0] < 0:
            raise ValueError(f"layers must be contiguous non-negative indices, got {v}")
        return v

    @field_validator("plain_templates")
    @classmethod
    def _has_slot(cls, v: list[str]) -> list[str]:
        for t in v:
            if "{s}" not in t:
                raise ValueError(f"plain template {t!r} has no '{{s}}' slot for the concept")
        return v

    @field_validator("start_templates")
    @classmethod
    def _starts_with_slot(cls, v: list[str]) -> list[str]:
        for t in v:
            if not t.startswith("{s}"):
                raise ValueError(f"start template {t!r} must begin with the '{{s}}' slot")
        return v

    @field_validator("key_groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("key_groups must name at least one of 'chat', 'plain', 'start'")
        return [g for g in ("chat", "plain", "start") if g in v]  # canonical order, no repeats

    def redirect_targets(self) -> list[str]:
        """The strings whose representations are averaged into v*."""
        first = list(UNKNOWN_NAMES) if self.redirect == UNKNOWN_REDIRECT else [self.redirect]
        return [*first, *self.redirect_average]

    def resolved_layers(self, n_layers: int) -> list[int]:
        layers = self.layers or default_layers(n_layers)
        if layers[-1] >= n_layers:
            raise ValueError(
                f"layer {layers[-1]} does not exist; the model has {n_layers} layers (0..{n_layers - 1})"
            )
        return layers


# Named configurations; an explicit option overrides the preset's value (and is recorded as such).
# "paper" is the reference implementation's choice where it differs from formless' default:
#   concept_tokens=1   the key is read at the name's last token only (formless: every specific token)
#   key_groups=[chat]  keys in the six chat-turn contexts only (formless: chat + plain text)
#   redirect           one fixed s' for every target, "a random person" (formless: "an unknown name",
#                      the mean of made-up names' representations)
#   grid="off"         the update as solved (formless: put back on the weights' own quantization grid)
# Every other field is the same, including the layers by relative depth.
# Not reproduced: the reference reads z(s) in the plain string "<s>." -- on a tokenizer that adds no
# BOS that is position 0, the outlier position keys are never read at here (edit.MIN_POSITION), so
# the paper preset reads z(s), like v*, in the chat turn " <s>.".
PRESETS: dict[str, ROCRConfig] = {
    "formless": ROCRConfig(),
    "paper": ROCRConfig(
        preset="paper", concept_tokens=1, key_groups=["chat"], redirect=PAPER_REDIRECT, grid="off"
    ),
}
