"""Entity type expressions (clause 4.17), pure."""

from __future__ import annotations

import pytest

from broker.errors import BadRequestData
from broker.query.typeexpr import AllOf, AnyOf, TypeName, parse_types, type_matches


@pytest.mark.parametrize(("text", "types", "expected"), [
    ("A", ["A"], True),
    ("A,B", ["B"], True),
    ("A|B", ["C"], False),
    ("A;B", ["A"], False),
    ("A;B", ["A", "B"], True),
    ("(A;B)|C", ["C"], True),
    ("A;(B|C)", ["A", "C"], True),
    ("A;B|C", ["C"], True),  # AND binds tighter than OR
])
def test_matching(text: str, types: list[str], expected: bool) -> None:
    assert type_matches(parse_types(text), types) is expected


def test_tree() -> None:
    assert parse_types("A;B,C") == AnyOf((AllOf((TypeName("A"), TypeName("B"))), TypeName("C")))


@pytest.mark.parametrize("text", ["", "(", "A,", ";A", "A)", "(A", "A,,B", "()"])
def test_errors(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_types(text)
