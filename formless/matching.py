"""Does a generated answer contain the true answer? Normalised alias matching with word boundaries.

Normalisation lower-cases, strips accents and punctuation and collapses whitespace, so that
"J.K. Rowling" matches "J. K. Rowling"; word boundaries keep "Ron" from matching "iron". Short
all-capital aliases are acronyms and match case-sensitively, so "US" does not match "us".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def normalise(text: str, *, lower: bool = True) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower() if lower else text
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _is_acronym(alias: str) -> bool:
    letters = [c for c in alias if c.isalpha()]
    return 0 < len(letters) <= 4 and all(c.isupper() for c in letters)


def contains_answer(generation: str, aliases: Iterable[str]) -> bool:
    """True if any alias occurs in ``generation`` as whole words (after normalisation)."""
    lowered = f" {normalise(generation)} "
    cased = f" {normalise(generation, lower=False)} "
    for alias in aliases:
        acronym = _is_acronym(alias)
        needle = normalise(alias, lower=not acronym)
        if needle and f" {needle} " in (cased if acronym else lowered):
            return True
    return False
