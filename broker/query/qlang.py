"""The NGSI-LD query language, q (ETSI GS CIM 009 v1.9.1 clause 4.9), as pure functions.

    q        = term *( (";" / "|") term )   ; ";" (and) binds tighter than "|" (or)
    term     = "(" q ")" / "!" path / path [ op value ]
    op       = "==" / "!=" / ">=" / "<=" / ">" / "<" / "~=" / "!~="
    path     = name *( "[" key "]" )         ; name = attr ["." sub] ["." member]
    value    = item [ ".." item / 1*( "," item ) ]
    item     = number / '"' string '"' / true / false / date-time / date / time / uri

Dotted names. A name is a run of [A-Za-z0-9_:/#.%@-]. It is split at each "." into segments, and a
"." separates two parts of the path when the part before it is a term (has no ':'), or when the
segment after it is a member name (observedAt, createdAt, modifiedAt, unitCode, datasetId) or
starts an absolute IRI or compact IRI (`scheme:`). Otherwise the "." belongs to the IRI, so
`https://ex.org/ns.v1/temp.https://ex.org/acc` is attr `https://ex.org/ns.v1/temp` and
sub-attribute `https://ex.org/acc`. The last part is a member when it is a member name; one
sub-attribute level is supported.

Whitespace is not allowed anywhere outside quoted strings (the spec grammar has none).
Errors are QuerySyntaxError (a BadRequestData) carrying the 0-based position of the offending
character; the `;`/`|`/parentheses layer is broker/query/grammar.py's. `matches` is the
reference evaluator over the internal entity form (docs/internals.md).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

from broker.query.grammar import BooleanParser, PositionedSyntaxError

MAX_Q_LENGTH = 4096  # an URL query parameter beyond this is abuse, not a query
MAX_DEPTH = 32  # parenthesis nesting: bounds the parser's recursion
MAX_TERMS = 256  # terms per query: bounds evaluation and SQL size
MAX_PATTERN = 256  # ~= patterns: Python `re` backtracks, so bound their size (ReDoS)
MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})
OPERATORS = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")  # longest first
EQUALITY_OPS = frozenset({"==", "!="})
ORDER_OPS = frozenset({">", ">=", "<", "<="})
PATTERN_OPS = frozenset({"~=", "!~="})

_NAME_RE = re.compile(r"[A-Za-z0-9_:/#.%@-]+")
_KEY_RE = re.compile(r"[A-Za-z0-9_:/#.%@-]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BARE_RE = re.compile(r"(?:[^;|()\",\s.]|\.(?!\.))+")  # stops at '..' (a range)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TIME = r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[-+]\d{2}:?\d{2})?"
_DATE = r"\d{4}-\d{2}-\d{2}"
_DATETIME_RE = re.compile(_DATE + "T" + _TIME)
_DATE_RE = re.compile(_DATE)
_TIME_RE = re.compile(_TIME)
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>\\^`{|}]+")


class QuerySyntaxError(PositionedSyntaxError):
    """A q expression that does not parse; `position` is the 0-based offending index."""

    language = "q"


@dataclass(frozen=True)
class DateTime:
    """An unquoted date-time, date or time literal, kept as written."""

    text: str

    @property
    def kind(self) -> str:
        return "datetime" if "T" in self.text else "date" if "-" in self.text[:5] else "time"


@dataclass(frozen=True)
class Uri:
    """An unquoted URI, e.g. a relationship object."""

    text: str


Scalar = bool | int | float | str | DateTime | Uri


@dataclass(frozen=True)
class Range:
    """low..high, inclusive at both ends."""

    low: Scalar
    high: Scalar


@dataclass(frozen=True)
class ValueList:
    """a,b,c: equal to any of them (== and != only)."""

    values: tuple[Scalar, ...]


Value = Scalar | Range | ValueList


@dataclass(frozen=True)
class Path:
    attr: str
    sub: str | None = None
    keys: tuple[str, ...] = ()
    member: str | None = None


@dataclass(frozen=True)
class Exists:
    path: Path
    negated: ClassVar[bool] = False  # lets stores handle Exists and NotExists in one branch


@dataclass(frozen=True)
class NotExists(Exists):
    negated: ClassVar[bool] = True


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str
    value: Value  # for ~= and !~= the pattern, a str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = And | Or | Exists | NotExists | Compare


# --- parsing ---------------------------------------------------------------------------------


def _number(raw: str) -> int | float:
    if any(c in raw for c in ".eE"):
        number = float(raw)
        if number in (float("inf"), float("-inf")):
            raise ValueError("number out of range")
        return number
    return int(raw)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], DateTime]:
    def convert(raw: str) -> DateTime:
        parse(raw)  # ValueError for impossible dates such as 2026-02-30
        return DateTime(raw)

    return convert


# Bare literals, tried in order; each converter may raise ValueError.
_LITERALS: tuple[tuple[re.Pattern[str], Callable[[str], Scalar]], ...] = (
    (re.compile(r"true|false"), lambda raw: raw == "true"),
    (_NUMBER_RE, _number),
    (_DATETIME_RE, _checked(datetime.fromisoformat)),
    (_DATE_RE, _checked(date.fromisoformat)),
    (_TIME_RE, _checked(time.fromisoformat)),
    (_URI_RE, Uri),
)


def _scalar_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, DateTime):
        return value.kind
    return "uri" if isinstance(value, Uri) else "string"


ORDERABLE_KINDS = frozenset({"number", "string", "datetime", "date", "time"})


def _split_name(name: str, start: int) -> list[str]:
    """The parts of a dotted name (rule in the module docstring)."""
    parts: list[str] = []
    offset = start
    for index, segment in enumerate(name.split(".")):
        if not segment:
            raise QuerySyntaxError("empty name segment", offset)
        separates = (
            index == 0
            or ":" not in parts[-1]
            or segment in MEMBERS
            or _SCHEME_RE.match(segment) is not None
        )
        if separates:
            parts.append(segment)
        else:
            parts[-1] += "." + segment
        offset += len(segment) + 1
    return parts


class _Parser(BooleanParser[Node]):
    syntax_error = QuerySyntaxError
    max_depth = MAX_DEPTH
    max_terms = MAX_TERMS
    terms_name = "terms"
    names_whitespace = True  # whitespace is never allowed outside strings: say so

    def all_of(self, items: Sequence[Node]) -> Node:
        return And(tuple(items))

    def any_of(self, items: Sequence[Node]) -> Node:
        return Or(tuple(items))

    def atom(self) -> Node:
        if self.peek() == "!":
            self.pos += 1
            return NotExists(self.path())
        path = self.path()
        op = next((o for o in OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            return Exists(path)
        self.pos += len(op)
        if op in PATTERN_OPS:
            return Compare(path, op, self.pattern())
        return Compare(path, op, self.value(op))

    def path(self) -> Path:
        start = self.pos
        match = _NAME_RE.match(self.text, start)
        if match is None:
            raise self.expected("an attribute name")
        parts = _split_name(match.group(), start)
        self.pos = match.end()
        attr, rest = parts[0], parts[1:]
        member = rest.pop() if rest and rest[-1] in MEMBERS else None
        if len(rest) > 1 or (rest and rest[0] in MEMBERS):
            raise self.error("one sub-attribute level, then one member, at most", start)
        keys: list[str] = []
        while self.peek() == "[":
            self.pos += 1
            key = _KEY_RE.match(self.text, self.pos)
            if key is None:
                raise self.expected("a compound key")
            self.pos = key.end()
            if self.peek() != "]":
                raise self.expected("']'")
            self.pos += 1
            keys.append(key.group())
        if keys and member:
            raise self.error(f"{member} has no compound keys", start)
        return Path(attr, rest[0] if rest else None, tuple(keys), member)

    def quoted(self) -> str:
        """A '"' string; \\" and \\\\ are escapes, any other backslash is kept."""
        start = self.pos
        out: list[str] = []
        pos = start + 1
        while pos < len(self.text):
            char = self.text[pos]
            if char == "\\" and self.text[pos + 1:pos + 2] in ('"', "\\"):
                out.append(self.text[pos + 1])
                pos += 2
            elif char == '"':
                self.pos = pos + 1
                return "".join(out)
            else:
                out.append(char)
                pos += 1
        raise self.error("unterminated string", start)

    def item(self) -> Scalar:
        if self.peek() == '"':
            return self.quoted()
        start = self.pos
        match = _BARE_RE.match(self.text, start)
        if match is None:
            raise self.expected("a value")
        raw = match.group()
        for pattern, convert in _LITERALS:
            if pattern.fullmatch(raw):
                try:
                    value = convert(raw)
                except ValueError as exc:
                    raise self.error(f"invalid value {raw!r} ({exc})", start) from None
                self.pos = match.end()
                return value
        raise self.error(f'unquoted value {raw!r} (strings need "quotes")', start)

    def value(self, op: str) -> Value:
        start = self.pos
        first = self.item()
        value: Value = first
        if self.text.startswith("..", self.pos):
            self.pos += 2
            high = self.item()
            kinds = {_scalar_kind(first), _scalar_kind(high)}
            if len(kinds) != 1 or not kinds <= ORDERABLE_KINDS:
                raise self.error("a range needs two numbers, strings or date-times alike", start)
            value = Range(first, high)
        elif self.peek() == ",":
            values = [first]
            while self.peek() == ",":
                self.pos += 1
                values.append(self.item())
            value = ValueList(tuple(values))
        if op in ORDER_OPS and (
            isinstance(value, (Range, ValueList)) or _scalar_kind(value) not in ORDERABLE_KINDS
        ):
            raise self.error(f"{op} needs a number, string or date-time", start)
        return value

    def pattern(self) -> str:
        start = self.pos
        if self.peek() == '"':
            text = self.quoted()
        else:  # bare: up to ';', '|' or an unbalanced ')', skipping escaped characters
            depth, pos = 0, start
            while pos < len(self.text):
                char = self.text[pos]
                if char.isspace() or (depth == 0 and char in ";|)"):
                    break
                depth += {"(": 1, ")": -1}.get(char, 0)
                pos += 2 if char == "\\" else 1
            self.pos = min(pos, len(self.text))
            text = self.text[start:self.pos]
        if not text:
            raise self.error("expected a pattern", start)
        if len(text) > MAX_PATTERN:
            raise self.error(f"pattern longer than {MAX_PATTERN} characters", start)
        try:
            re.compile(text)
        except (re.error, RecursionError, OverflowError) as exc:
            raise self.error(f"invalid pattern ({exc})", start) from None
        return text


def parse_q(text: str) -> Node:
    """The AST of a q expression, or QuerySyntaxError."""
    return _Parser.parse(text, MAX_Q_LENGTH)


# --- printing and rewriting ------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unparse_scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (DateTime, Uri)):
        return value.text
    return _quote(value)


def _unparse_value(value: Value) -> str:
    if isinstance(value, Range):
        return _unparse_scalar(value.low) + ".." + _unparse_scalar(value.high)
    if isinstance(value, ValueList):
        return ",".join(_unparse_scalar(v) for v in value.values)
    return _unparse_scalar(value)


def _unparse_path(path: Path) -> str:
    text = path.attr + "".join("." + p for p in (path.sub, path.member) if p)
    return text + "".join(f"[{key}]" for key in path.keys)


def _unparse_group(node: Node, parent: type) -> str:
    # Parentheses where the tree has a group the precedence alone would not rebuild.
    text = unparse(node)
    grouped = isinstance(node, (And, Or)) and isinstance(node, (parent, Or))
    return f"({text})" if grouped else text


def unparse(node: Node) -> str:
    """The q text of a tree; parse_q(unparse(t)) == t for every tree parse_q builds."""
    if isinstance(node, (And, Or)):
        joiner = ";" if isinstance(node, And) else "|"
        return joiner.join(_unparse_group(item, type(node)) for item in node.items)
    if isinstance(node, NotExists):
        return "!" + _unparse_path(node.path)
    if isinstance(node, Exists):
        return _unparse_path(node.path)
    value = _quote(node.value) if node.op in PATTERN_OPS and isinstance(node.value, str) \
        else _unparse_value(node.value)
    return _unparse_path(node.path) + node.op + value


def attribute_names(node: Node) -> set[str]:
    """The attribute name of every path in the tree."""
    if isinstance(node, (And, Or)):
        return set().union(*(attribute_names(item) for item in node.items))
    return {node.path.attr}


def expand_names(node: Node, expand: Callable[[str], str]) -> Node:
    """The tree with attribute and sub-attribute names expanded; keys and members unchanged."""
    if isinstance(node, (And, Or)):
        return type(node)(tuple(expand_names(item, expand) for item in node.items))
    path = node.path
    expanded = replace(path, attr=expand(path.attr), sub=expand(path.sub) if path.sub else None)
    return replace(node, path=expanded)


# --- evaluation ------------------------------------------------------------------------------

VALUE_MEMBERS = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
_MISSING = object()


def _resolve(instance: dict[str, Any], path: Path) -> Any:
    target: Any = instance
    if path.sub is not None:
        target = instance.get(path.sub)
        if not isinstance(target, dict):
            return _MISSING
    if path.member is not None:
        return target.get(path.member, _MISSING)
    kind = target.get("type")
    value = target.get(VALUE_MEMBERS.get(kind, "value"), _MISSING)
    if kind != "JsonProperty" and isinstance(value, dict) and "@value" in value:
        value = value["@value"]  # a typed literal compares as its value (as rows store it)
    for key in path.keys:
        value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
    if kind == "LanguageProperty" and not path.keys and isinstance(value, dict):
        # Without a [lang] key, a LanguageProperty compares any of its strings.
        return [s for v in value.values() for s in (v if isinstance(v, list) else [v])]
    return value


def _targets(entity: dict[str, Any], path: Path) -> Iterator[Any]:
    """The value the path reaches in each instance where it reaches one."""
    for instance in entity.get("attrs", {}).get(path.attr, []):
        value = _resolve(instance, path)
        if value is not _MISSING:
            yield value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _seconds(moment: time) -> float:
    offset = moment.utcoffset()
    base = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    return base - (offset.total_seconds() if offset else 0.0)


def _as_time(text: str) -> float:
    if "T" in text:
        return _seconds(_utc(datetime.fromisoformat(text)).astimezone(UTC).timetz())
    return _seconds(time.fromisoformat(text))


def _as_date(text: str) -> date:
    return date.fromisoformat(text) if len(text) == 10 else \
        _utc(datetime.fromisoformat(text)).astimezone(UTC).date()


# Date-time literals compare as instants against strings that parse as such.
_TEMPORAL: dict[str, Callable[[str], Any]] = {
    "datetime": lambda text: _utc(datetime.fromisoformat(text)),
    "date": _as_date,
    "time": _as_time,
}


def temporal_key(kind: str, text: Any) -> str | float | None:
    """`text` read as a date-time, date or time (`kind`, as DateTime.kind) and turned into a key
    that sorts as the moments do; None if it is not one. Stores compare q's date-time literals
    with it (the SQL function q_temporal), so they agree with `matches`."""
    if not isinstance(text, str):
        return None
    try:
        key = _TEMPORAL[kind](text)
        if isinstance(key, datetime):  # UTC, fixed width: string order is time order
            key = key.astimezone(UTC)
            return (f"{key.year:04d}-{key.month:02d}-{key.day:02d}T{key.hour:02d}:"
                    f"{key.minute:02d}:{key.second:02d}.{key.microsecond:06d}")
    except (ValueError, TypeError, OverflowError, KeyError):
        return None
    return key.isoformat() if isinstance(key, date) else key


def _json_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else None


def _keys(actual: Any, expected: Scalar) -> tuple[Any, Any] | None:
    """actual and expected as two comparable keys, or None when their types differ."""
    if isinstance(expected, DateTime):
        if not isinstance(actual, str):
            return None
        convert = _TEMPORAL[expected.kind]
        try:
            return convert(actual), convert(expected.text)
        except (ValueError, TypeError):
            return None
    if isinstance(expected, Uri):
        return (actual, expected.text) if isinstance(actual, str) else None
    kind = _json_kind(actual)
    return (actual, expected) if kind is not None and kind == _json_kind(expected) else None


def _compare(op: Callable[[Any, Any], bool], actual: Any, expected: Scalar) -> bool:
    pair = _keys(actual, expected)
    if pair is None:
        return False
    try:
        return op(*pair)
    except TypeError:  # e.g. aware and naive times: different types, so False
        return False


def _equal(actual: Any, expected: Value) -> bool:
    if isinstance(expected, ValueList):
        return any(_compare(operator.eq, actual, v) for v in expected.values)
    if isinstance(expected, Range):
        return (_compare(operator.ge, actual, expected.low)
                and _compare(operator.le, actual, expected.high))
    return _compare(operator.eq, actual, expected)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _search(actual: Any, pattern: Value) -> bool:
    # Python `re`, not ECMA 262; patterns were size-checked at parse time (MAX_PATTERN), which
    # bounds but does not remove catastrophic backtracking (ReDoS) on hostile patterns.
    return isinstance(actual, str) and isinstance(pattern, str) and \
        _compiled(pattern).search(actual) is not None


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Value], bool]:
    def test(actual: Any, expected: Value) -> bool:
        return not isinstance(expected, (Range, ValueList)) and _compare(op, actual, expected)

    return test


# op -> (positive test on one element, negated?). != and !~= are the negation of == and ~= on an
# instance that has the value, so they are False where the attribute is missing.
_TESTS: dict[str, tuple[Callable[[Any, Value], bool], bool]] = {
    "==": (_equal, False),
    "!=": (_equal, True),
    ">": (_ordered(operator.gt), False),
    ">=": (_ordered(operator.ge), False),
    "<": (_ordered(operator.lt), False),
    "<=": (_ordered(operator.le), False),
    "~=": (_search, False),
    "!~=": (_search, True),
}


def _matches_compare(node: Compare, entity: dict[str, Any]) -> bool:
    test, negated = _TESTS[node.op]
    for value in _targets(entity, node.path):
        # A list (valueList, JSON array, several relationship objects) matches if any element does.
        elements = value if isinstance(value, list) else [value]
        if any(test(element, node.value) for element in elements) != negated:
            return True  # clause 4.9: one matching instance (datasetId) is enough
    return False


def _matches_exists(node: Exists, entity: dict[str, Any]) -> bool:
    return next(_targets(entity, node.path), _MISSING) is not _MISSING


_EVALUATORS: dict[type, Callable[[Any, dict[str, Any]], bool]] = {
    And: lambda node, entity: all(matches(item, entity) for item in node.items),
    Or: lambda node, entity: any(matches(item, entity) for item in node.items),
    Exists: _matches_exists,
    NotExists: lambda node, entity: not _matches_exists(node, entity),
    Compare: _matches_compare,
}


def matches(node: Node, entity: dict[str, Any]) -> bool:
    """Whether an entity in internal form (names expanded) satisfies the query."""
    return _EVALUATORS[type(node)](node, entity)
