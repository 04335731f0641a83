"""Which subscriptions can a change concern at all: an index, so a write evaluates only those,
not every subscription of the city. Pure.

    index = SubscriptionIndex(subscriptions)       # rebuilt when subscriptions change
    for sub in index.candidates(change): ...       # a superset of those that fire

Keys are necessary conditions of `match.fires`, never sufficient ones:
- a subscription with entity selectors fires only for an entity one of its type expressions
  matches, so it is filed under one type name of each selector (for A;B, the entity has A) and
  found through the types the entity has before or after the change; when every selector
  names an entity id, it is filed under those ids instead (a dashboard watching its own
  entities is then no candidate for the rest of the city's writes);
- one with watchedAttributes only fires when a watched attribute is among the entity's or the
  change's attributes, so it is filed under those names;
- periodic, inactive and other tenants' subscriptions never fire on a change: left out.
The exact check (`match.evaluate`) then runs on the candidates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from broker.query.typeexpr import AllOf, NoneOf, TypeExpr, TypeName, Within
from broker.subscriptions.match import Change
from broker.subscriptions.subscription import Subscription


def _keys(expr: TypeExpr) -> set[str]:
    """Type names such that an entity matching `expr` has at least one of them."""
    if isinstance(expr, TypeName):
        return {expr.name}
    if isinstance(expr, AllOf):
        return _keys(expr.items[0])  # every item holds, so the first one's keys do
    if isinstance(expr, NoneOf | Within):
        raise TypeError("a subscription's types have no NoneOf (the query language has none)")
    return set().union(*(_keys(item) for item in expr.items))


class SubscriptionIndex:
    """Subscriptions filed by tenant, then entity type or watched attribute. Immutable."""

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self._by_type: dict[tuple[str, str], list[Subscription]] = defaultdict(list)
        self._by_attr: dict[tuple[str, str], list[Subscription]] = defaultdict(list)
        self._by_id: dict[tuple[str, str], list[Subscription]] = defaultdict(list)
        # Ids are unique within a tenant only: every key holds the tenant.
        self._order: dict[tuple[str, str], int] = {}
        for position, sub in enumerate(subscriptions):
            if sub.periodic or not sub.is_active:
                continue
            self._order[sub.tenant, sub.id] = position
            if sub.entities and all(s.id is not None for s in sub.entities):
                for entity_id in {s.id for s in sub.entities if s.id is not None}:
                    self._by_id[sub.tenant, entity_id].append(sub)
            elif sub.entities:
                for name in set().union(*(_keys(s.types) for s in sub.entities)):
                    self._by_type[sub.tenant, name].append(sub)
            else:  # parse_subscription guarantees watchedAttributes then
                for attr in sub.watched_attributes or ():
                    self._by_attr[sub.tenant, attr].append(sub)

    def position(self, sub: Subscription) -> int:
        """Where the subscription came in the iterable the index was built from."""
        return self._order[sub.tenant, sub.id]

    def __len__(self) -> int:
        return len(self._order)

    def candidates(self, change: Change) -> Iterator[Subscription]:
        """The subscriptions `change` may fire, each once, in the order they were given."""
        types: set[str] = set()
        attrs: set[str] = set(change.changed)
        for entity in (change.before, change.after):
            if entity is not None:
                types.update(entity["type"])
                attrs.update(entity["attrs"])
        found: dict[str, Subscription] = {}  # one tenant's: ids are unique here
        for entity in (change.before, change.after):
            if entity is not None:
                for sub in self._by_id.get((change.tenant, entity["id"]), ()):
                    found.setdefault(sub.id, sub)
        for name in types:
            for sub in self._by_type.get((change.tenant, name), ()):
                found.setdefault(sub.id, sub)
        for attr in attrs:
            for sub in self._by_attr.get((change.tenant, attr), ()):
                found.setdefault(sub.id, sub)
        yield from sorted(found.values(), key=self.position)
