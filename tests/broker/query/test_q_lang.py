"""The q language (clause 4.9): parsing, printing, name expansion and the reference evaluator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.qlang import (
    MAX_DEPTH,
    MAX_PATTERN,
    MAX_Q_LENGTH,
    MAX_TERMS,
    And,
    Compare,
    DateTime,
    Exists,
    NotExists,
    Or,
    Path,
    QuerySyntaxError,
    Range,
    Uri,
    ValueList,
    attribute_names,
    expand_names,
    matches,
    parse_q,
    unparse,
)

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def expand(name: str) -> str:
    return name if ":" in name else DEFAULT + name


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def entity(attrs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"id": "urn:ngsi-ld:Thing:1", "type": [DEFAULT + "Thing"],
            "attrs": {DEFAULT + k: v for k, v in attrs.items()}}


SENSOR = entity({
    "temperature": [
        prop(21.5, unitCode="CEL", observedAt="2026-11-23T10:00:00.000Z",
             **{DEFAULT + "accuracy": prop(0.5)}),
        prop(30, datasetId="urn:ngsi-ld:Dataset:raw"),
    ],
    "name": [prop("Streetlight Craiova")],
    "status": [prop("on")],
    "address": [prop({"city": "Craiova", "street": {"name": "Unirii", "number": 12}})],
    "owner": [{"type": "Relationship", "object": "urn:ngsi-ld:Group:1"}],
    "members": [{"type": "Relationship", "object": ["urn:ngsi-ld:P:1", "urn:ngsi-ld:P:2"]}],
    "readings": [{"type": "ListProperty", "valueList": [1, 2, 3]}],
    "tags": [prop(["red", "blue"])],
    "label": [{"type": "LanguageProperty", "languageMap": {"en": "Lamp", "ro": "Lampa"}}],
    "category": [{"type": "VocabProperty", "vocab": DEFAULT + "street"}],
    "enabled": [prop(True)],
    "installed": [prop("2025-06-01T08:30:00Z")],
    "day": [prop("2025-06-01")],
    "opens": [prop("08:00:00")],
})
EMPTY = entity({})
COLD = entity({"temperature": [prop(-3)], "name": [prop("cold")]})


# (q, SENSOR, EMPTY, COLD)
CASES = [
    ("temperature", True, False, True),
    ("!temperature", False, True, False),
    ("temperature==21.5", True, False, False),
    ("temperature==30", True, False, False),  # any instance (datasetId) is enough
    ("temperature>25", True, False, False),
    ("temperature<0", False, False, True),
    ("temperature>=-3", True, False, True),
    ("temperature<=-3", False, False, True),
    ("temperature==20..22", True, False, False),
    ("temperature==-5..0", False, False, True),
    ("temperature==-3..-3", False, False, True),  # inclusive
    ("temperature==1,30,99", True, False, False),
    ("temperature!=21.5", True, False, True),  # the raw instance (30) differs
    ("temperature!=-3", True, False, False),
    ("nothing!=1", False, False, False),  # != on a missing attribute
    ('temperature=="21.5"', False, False, False),  # different JSON types
    ("temperature>\"a\"", False, False, False),
    ('name=="Streetlight Craiova"', True, False, False),
    ('name~="Crai"', True, False, False),
    ("name~=^cold$", False, False, True),
    ('name~="(?i)streetLIGHT"', True, False, False),
    ('name!~="Crai"', False, False, True),
    ('nothing!~="x"', False, False, False),
    ('name>"S"', True, False, True),  # code-point order: "cold" > "S"
    ("status==\"on\",\"off\"", True, False, False),
    ("status!=\"on\",\"off\"", False, False, False),
    ("temperature.unitCode==\"CEL\"", True, False, False),
    ("temperature.observedAt>=2026-11-23T09:00:00Z", True, False, False),
    ("temperature.observedAt==2026-11-23T12:00:00+02:00", True, False, False),  # same instant
    ("temperature.observedAt<2026-11-23T09:00:00Z", False, False, False),
    ("temperature.observedAt==2026-11-23T00:00:00Z..2026-11-24T00:00:00Z", True, False, False),
    ("temperature.datasetId==urn:ngsi-ld:Dataset:raw", True, False, False),
    ("temperature.datasetId", True, False, False),
    ("temperature.accuracy==0.5", True, False, False),
    ("temperature.accuracy", True, False, False),
    ("temperature.accuracy<0.1", False, False, False),
    ("address[city]==\"Craiova\"", True, False, False),
    ("address[street][number]>10", True, False, False),
    ("address[street][name]", True, False, False),
    ("address[zip]", False, False, False),
    ("owner==urn:ngsi-ld:Group:1", True, False, False),
    ('owner=="urn:ngsi-ld:Group:1"', True, False, False),
    ("owner==urn:ngsi-ld:Group:2", False, False, False),
    ("members==urn:ngsi-ld:P:2", True, False, False),
    ("members==urn:ngsi-ld:P:9,urn:ngsi-ld:P:1", True, False, False),
    ("members!=urn:ngsi-ld:P:2", False, False, False),
    ("readings==2", True, False, False),
    ("readings==5", False, False, False),
    ("readings>2", True, False, False),
    ('tags=="blue"', True, False, False),
    ('label=="Lampa"', True, False, False),
    ('label[en]=="Lamp"', True, False, False),
    ('label[en]=="Lampa"', False, False, False),
    (f"category=={DEFAULT}street", True, False, False),
    ("enabled==true", True, False, False),
    ("enabled==false", False, False, False),
    ("enabled==1", False, False, False),  # a boolean is not a number
    ("installed>2025-01-01T00:00:00Z", True, False, False),
    ("installed<2025-06-01T08:30:01Z", True, False, False),
    ("installed==2025-06-01", True, False, False),
    ("day>=2025-05-31", True, False, False),
    ("opens<09:00:00", True, False, False),
    ("opens>09:00:00", False, False, False),
    ("name>2020-01-01T00:00:00Z", False, False, False),  # not a date-time: False, no error
    ("temperature>25;name", True, False, False),
    ("temperature>25|name==\"cold\"", True, False, True),
    ("temperature<0;name==\"cold\"|status", True, False, True),  # ; binds tighter
    ("temperature<0;(name==\"x\"|status)", False, False, False),
    ("((temperature))", True, False, True),
    (f"{DEFAULT}temperature==-3", False, False, True),  # full IRIs as names
]


@pytest.mark.parametrize(("q", "sensor", "empty", "cold"), CASES)
def test_evaluates_like_the_spec(q: str, sensor: bool, empty: bool, cold: bool) -> None:
    tree = expand_names(parse_q(q), expand)
    assert [matches(tree, e) for e in (SENSOR, EMPTY, COLD)] == [sensor, empty, cold]


@pytest.mark.parametrize("q", [q for q, *_ in CASES])
def test_round_trip(q: str) -> None:
    tree = parse_q(q)
    assert parse_q(unparse(tree)) == tree
    expanded = expand_names(tree, expand)
    assert parse_q(unparse(expanded)) == expanded


def test_tree_shapes() -> None:
    assert parse_q("a;b|c") == Or((And((Exists(Path("a")), Exists(Path("b")))), Exists(Path("c"))))
    assert parse_q("a|(b|c)") == Or((Exists(Path("a")), Or((Exists(Path("b")), Exists(Path("c"))))))
    assert parse_q("!a.b") == NotExists(Path("a", "b"))
    assert parse_q("a.b.observedAt<10:00:00") == Compare(
        Path("a", "b", (), "observedAt"), "<", DateTime("10:00:00"))
    assert parse_q("a[x][y]==1.5") == Compare(Path("a", None, ("x", "y")), "==", 1.5)
    assert parse_q("a==-1..2e3") == Compare(Path("a"), "==", Range(-1, 2000.0))
    assert parse_q('a!=true,"x\\"y",urn:a:b') == Compare(
        Path("a"), "!=", ValueList((True, 'x"y', Uri("urn:a:b"))))
    assert parse_q('a~="\\d+"') == Compare(Path("a"), "~=", "\\d+")
    assert parse_q("a==2026-11-23") == Compare(Path("a"), "==", DateTime("2026-11-23"))
    assert Exists(Path("a")) != NotExists(Path("a"))


def test_dotted_iri_names() -> None:
    iri = "https://ex.org/ns.v1/temp"
    assert parse_q(f"{iri}.https://ex.org/acc") == Exists(Path(iri, "https://ex.org/acc"))
    assert parse_q(f"{iri}.observedAt") == Exists(Path(iri, None, (), "observedAt"))
    assert parse_q("ex:temp.ex:acc") == Exists(Path("ex:temp", "ex:acc"))
    assert parse_q("temp.https://ex.org/a.b") == Exists(Path("temp", "https://ex.org/a.b"))


def test_names_and_expansion() -> None:
    tree = parse_q("a.b[k]>1;(c.observedAt==2026-11-23|!d)")
    assert attribute_names(tree) == {"a", "c", "d"}
    expanded = expand_names(tree, expand)
    assert attribute_names(expanded) == {DEFAULT + n for n in "acd"}
    first = expanded.items[0] if isinstance(expanded, And) else None
    assert isinstance(first, Compare)
    assert first.path == Path(DEFAULT + "a", DEFAULT + "b", ("k",), None)
    assert unparse(expanded).count(".observedAt") == 1


BAD = [
    ("", 0, "expected an attribute name"),
    ("a==1)", 4, "unexpected ')'"),
    ("(a==1", 5, "expected ')'"),
    ("a==", 3, "expected a value"),
    ("a== 1", 3, "whitespace"),
    ("a==1 ", 4, "whitespace"),
    ("a==foo", 3, "unquoted value"),
    ('a=="x', 3, "unterminated string"),
    ("a;;b", 2, "expected an attribute name"),
    ("a[k", 3, "expected ']'"),
    ("a..b==1", 2, "empty name segment"),
    ("a>1,2", 2, "needs a number"),
    ("a>true", 2, "needs a number"),
    ("a==1..\"x\"", 3, "range"),
    ("a~=(", 3, "invalid pattern"),
    ("a==2026-02-30", 3, "invalid value"),
    ("a.observedAt[k]", 0, "no compound keys"),
    ("a.b.c.d", 0, "sub-attribute level"),
    ("!(a)", 1, "expected an attribute name"),
    ("(a|b))", 5, "unexpected ')'"),
]


@pytest.mark.parametrize(("q", "position", "detail"), BAD)
def test_errors_point_at_the_problem(q: str, position: int, detail: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_q(q)
    assert info.value.position == position
    assert detail in info.value.detail
    assert info.value.detail.startswith("q: ")
    assert f"at position {position}" in info.value.detail
    assert isinstance(info.value, BadRequestData) and info.value.status == 400


def test_limits() -> None:
    with pytest.raises(QuerySyntaxError, match="longer than"):
        parse_q("a" * (MAX_Q_LENGTH + 1))
    parse_q("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(QuerySyntaxError, match="nested deeper"):
        parse_q("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    parse_q(";".join(["a"] * MAX_TERMS))
    with pytest.raises(QuerySyntaxError, match="more than"):
        parse_q(";".join(["a"] * (MAX_TERMS + 1)))
    parse_q('a~="' + "x" * MAX_PATTERN + '"')
    with pytest.raises(QuerySyntaxError, match="pattern longer"):
        parse_q('a~="' + "x" * (MAX_PATTERN + 1) + '"')


def test_bare_pattern_stops_at_unbalanced_paren_and_logic() -> None:
    assert parse_q("(n~=(?i)ab;x)") == And((Compare(Path("n"), "~=", "(?i)ab"), Exists(Path("x"))))
    assert parse_q("n~=(a|b)c|x") == Or((Compare(Path("n"), "~=", "(a|b)c"), Exists(Path("x"))))


Q_TOKENS = [*'ab.:/[]()!=<>~;|,"\\-0129TZ ', "..", "==", "urn:x:1", "2026-11-23", "10:00:00",
            "observedAt", "true"]
Q_ALPHABET = st.sampled_from(Q_TOKENS)


@settings(max_examples=400, deadline=None)
@given(st.lists(Q_ALPHABET, max_size=24).map("".join))
def test_random_text_only_raises_syntax_errors(text: str) -> None:
    try:
        tree = parse_q(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    assert parse_q(unparse(tree)) == tree
    for e in (SENSOR, EMPTY, COLD):
        matches(expand_names(tree, expand), e)
