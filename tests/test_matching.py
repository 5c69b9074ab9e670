"""Alias matching edge cases."""

from __future__ import annotations

import pytest

from formless.matching import contains_answer


@pytest.mark.parametrize(
    ("text", "aliases", "expected"),
    [
        ("Harry's friend is Ron Weasley.", ["Ron"], True),
        ("It is made of iron.", ["Ron"], False),  # word boundary
        ("Written by J. K. Rowling in 1997", ["J.K. Rowling"], True),  # punctuation and spacing
        ("written by j.k. rowling", ["J.K. Rowling"], True),  # case
        ("He moved to Zürich", ["Zurich"], True),  # accents
        ("Let us go to the US.", ["US"], True),
        ("Let us go home.", ["US"], False),  # acronyms are case-sensitive
        ("The answer is Paris, France.", ["Lyon", "Paris"], True),
        ("Parisian cafés", ["Paris"], False),
        ("", ["Paris"], False),
        ("anything", [""], False),  # an empty alias never matches
        ("E=mc² is famous", ["E=mc²"], True),
    ],
)
def test_contains_answer(text, aliases, expected):
    assert contains_answer(text, aliases) is expected
