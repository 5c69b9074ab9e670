"""Does a generated answer contain the true answer? Normalised alias matching with word boundaries.

Normalisation lower-cases, strips accents and punctuation and collapses whitespace, so that
"J.K. Rowling" matches "J. K. Rowling"; word boundaries keep "Ron" from matching "iron".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def contains_answer(generation: str, aliases: Iterable[str]) -> bool:
    """True if any alias occurs in ``generation`` as whole words (after normalisation)."""
    haystack = f" {normalise(generation)} "
    for alias in aliases:
        needle = normalise(alias)
        if needle and f" {needle} " in haystack:
            return True
    return False
