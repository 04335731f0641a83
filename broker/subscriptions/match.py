"""Does a change fire a subscription, with which trigger, and what entity data goes out
(clauses 5.2.12, 5.11 and 4.5). Pure.

    change = Change(tenant, before, after, changed, now)   # entities in internal form
    hit = evaluate(sub, change, terms)                      # None, or Match(trigger, entity)

`before` is None for a creation, `after` None for a deletion; `changed` holds the expanded
names of the attributes the operation created, updated or deleted. The store's write path
builds one Change per entity it writes, in the transaction, and evaluates the tenant's
subscriptions on it to write outbox rows.

Triggers, as this broker reads clause 5.2.12:
- entityCreated / entityDeleted: the entity was created / deleted.
- entityUpdated: an existing entity had attributes created, updated or deleted, or its types
  or scopes changed (the latter only without watchedAttributes, which name attributes).
- attributeCreated / attributeUpdated / attributeDeleted: one of `changed` is new, was there
  before and still is, or is gone. Creating an entity creates each of its attributes, so the
  default triggers (attributeCreated, attributeUpdated) notify creations as NGSI-LD brokers
  always have; deleting an entity fires entityDeleted only.
watchedAttributes narrows every trigger to changes of the attributes it names. The filters
(entities, q, geoQ, scopeQ) are evaluated on the entity after the change, or on the entity as
it was for a deletion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from broker.entities.kinds import NULL, VALUE_MEMBER
from broker.entities.lang import pick_language
from broker.entities.parse import infer_kind
from broker.entities.render import RenderOptions, render_attribute, render_entity
from broker.ld.termmap import TermMap
from broker.query import scopeq
from broker.query.geo_eval import geo_matches
from broker.query.qlang import matches as q_matches
from broker.query.typeexpr import type_matches
from broker.subscriptions.subscription import EntitySelector, Subscription

Entity = dict[str, Any]
Instance = dict[str, Any]

# Clause 4.5 (notifications with showChanges): the member that carries an instance's previous
# value, by kind.
PREVIOUS_MEMBER = {
    "Property": "previousValue",
    "GeoProperty": "previousValue",
    "Relationship": "previousObject",
    "LanguageProperty": "previousLanguageMap",
    "VocabProperty": "previousVocab",
    "JsonProperty": "previousJson",
    "ListProperty": "previousValueList",
    "ListRelationship": "previousObjectList",
}
# Clause 5.2.1: how a deleted attribute reads in a notification.
DELETED_VALUE = {
    "LanguageProperty": {"@none": NULL},
    "ListProperty": [NULL],
    "ListRelationship": [NULL],
}
_SHOWS_DELETIONS = frozenset({"attributeDeleted", "entityUpdated"})
# Which trigger names a change when several apply: the most specific entity-level one first.
_ORDER = ("entityCreated", "entityDeleted", "entityUpdated", "attributeCreated",
          "attributeUpdated", "attributeDeleted")


@dataclass(frozen=True, slots=True)
class Change:
    tenant: str
    before: Entity | None
    after: Entity | None
    changed: frozenset[str]
    now: str

    @classmethod
    def between(cls, tenant: str, before: Entity | None, after: Entity | None, now: str
                ) -> Change:
        """The change from `before` to `after`, `changed` being every attribute whose
        instances differ (a rewrite with the same value differs in modifiedAt: an update)."""
        old = before["attrs"] if before is not None else {}
        new = after["attrs"] if after is not None else {}
        changed = frozenset(a for a in old.keys() | new.keys() if old.get(a) != new.get(a))
        return cls(tenant, before, after, changed, now)

    @property
    def current(self) -> Entity:
        """The entity the filters see: after the change, or as it was before a deletion."""
        entity = self.after if self.after is not None else self.before
        if entity is None:
            raise ValueError("A Change has an entity before or after it")
        return entity

    @property
    def retyped(self) -> bool:
        """Whether the entity's types or scopes changed (an update without attributes, e.g.
        an append that adds a type, clause 5.6.3)."""
        if self.before is None or self.after is None:
            return False
        return (self.before["type"] != self.after["type"]
                or self.before.get("scope") != self.after.get("scope"))

    def created_attrs(self) -> frozenset[str]:
        if self.after is None:
            return frozenset()
        before = self.before["attrs"] if self.before is not None else {}
        return frozenset(a for a in self.changed if a in self.after["attrs"] and a not in before)

    def updated_attrs(self) -> frozenset[str]:
        if self.before is None or self.after is None:
            return frozenset()
        return frozenset(a for a in self.changed
                         if a in self.before["attrs"] and a in self.after["attrs"])

    def deleted_attrs(self) -> frozenset[str]:
        if self.before is None or self.after is None:
            return frozenset()
        return frozenset(a for a in self.changed
                         if a in self.before["attrs"] and a not in self.after["attrs"])


@dataclass(frozen=True, slots=True)
class Match:
    trigger: str
    entity: dict[str, Any]  # one item of the notification's data, compacted


# -- does it fire ------------------------------------------------------------------------------

def _watched(sub: Subscription, names: Iterable[str]) -> bool:
    watched = sub.watched_attributes
    return watched is None or any(n in watched for n in names)


def _fired(sub: Subscription, change: Change) -> list[str]:
    """The triggers of `sub` this change sets off, watchedAttributes applied."""
    fired = set()
    if change.before is None and change.after is not None:
        everything = change.after["attrs"].keys()
        if _watched(sub, everything):
            fired.add("entityCreated")
        if change.after["attrs"] and _watched(sub, everything):
            fired.add("attributeCreated")
    elif change.after is None:
        if _watched(sub, change.current["attrs"].keys()):
            fired.add("entityDeleted")
    else:
        created, updated, deleted = (change.created_attrs(), change.updated_attrs(),
                                     change.deleted_attrs())
        touched = created | updated | deleted
        if (touched and _watched(sub, touched)) or (change.retyped
                                                    and sub.watched_attributes is None):
            fired.add("entityUpdated")
        for trigger, names in (("attributeCreated", created), ("attributeUpdated", updated),
                               ("attributeDeleted", deleted)):
            if names and _watched(sub, names):
                fired.add(trigger)
    return [t for t in _ORDER if t in fired and t in sub.triggers]


def _selected(selector: EntitySelector, entity: Entity) -> bool:
    if not type_matches(selector.types, entity["type"]):
        return False
    if selector.id is not None and entity["id"] != selector.id:
        return False
    # As the stores run idPattern (re.search, broker/store/sqlite.py _regexp).
    return selector.id_pattern is None or re.search(selector.id_pattern,
                                                    entity["id"]) is not None


def _geo_value(entity: Entity, geoproperty: str) -> Any:
    instances = entity["attrs"].get(geoproperty, [])
    inst = next((i for i in instances if "datasetId" not in i), instances[0] if instances else
                None)
    return inst.get("value") if inst is not None and inst.get("type") == "GeoProperty" else None


def selects(sub: Subscription, entity: Entity) -> bool:
    """Whether the entity passes the subscription's filters: entities, q, geoQ, scopeQ. Also
    the filter on a periodic subscription's query results."""
    if sub.entities and not any(_selected(s, entity) for s in sub.entities):
        return False
    if sub.q is not None and not q_matches(sub.q, entity):
        return False
    if sub.geo_q is not None and not geo_matches(sub.geo_q,
                                                 _geo_value(entity, sub.geo_q.geoproperty)):
        return False
    return sub.scope_q is None or scopeq.matches(sub.scope_q, entity.get("scope") or [])


def fires(sub: Subscription, change: Change) -> str | None:
    """The trigger this change fires `sub` with, or None. Status (isActive, expiresAt) is
    checked here; throttling is the outbox's (schedule.throttle_due), as it needs the time of
    the last notification."""
    if change.tenant != sub.tenant or sub.periodic or not sub.is_active:
        return None
    if sub.expires_at is not None and sub.expires_at <= change.now:
        return None
    triggers = _fired(sub, change)
    if not triggers or not selects(sub, change.current):
        return None
    return triggers[0]


# -- what goes out -----------------------------------------------------------------------------

def render_options(sub: Subscription) -> RenderOptions:
    params = sub.notification
    return RenderOptions(
        format=params.format,
        sys_attrs=params.sys_attrs,
        attrs=frozenset(params.attributes) if params.attributes is not None else None,
        lang=sub.lang,
    )


def _previous(inst: Instance, terms: TermMap, lang: str | None) -> tuple[str, Any]:
    kind = inst["type"]
    value = inst[VALUE_MEMBER[kind]]
    if kind == "LanguageProperty" and lang:
        return "previousValue", pick_language(value, lang)[1]  # rendered as a Property
    if kind == "VocabProperty":
        value = [terms.compact(v) for v in value] if isinstance(value, list) \
            else terms.compact(value)
    return PREVIOUS_MEMBER[kind], value


def _with_previous(instances: list[Instance], old: list[Instance], terms: TermMap,
                   opts: RenderOptions) -> Any:
    """An attribute rendered as objects (never bare values), each instance carrying the value
    its datasetId had before."""
    rendered = render_attribute(instances, terms, replace(opts, format="normalized"))
    items = rendered if isinstance(rendered, list) else [rendered]
    before = {i.get("datasetId"): i for i in old}
    for inst, item in zip(instances, items, strict=True):
        prior = before.get(inst.get("datasetId"))
        if prior is not None:
            member, value = _previous(prior, terms, opts.lang)
            item[member] = value
        if opts.format == "concise":
            _concise(item)
    return items if isinstance(rendered, list) else items[0]


def _concise(item: dict[str, Any]) -> dict[str, Any]:
    """Concise form of an object: "type" only where the value member does not name the kind
    (clause 4.5.2.3)."""
    if infer_kind({k: v for k, v in item.items() if k != "type"}) == item["type"]:
        del item["type"]
    return item


def _deleted(old: list[Instance], terms: TermMap, opts: RenderOptions, now: str,
             show: bool) -> Any:
    """A deleted attribute as clause 5.2.1 writes it: its null value (urn:ngsi-ld:null), with
    sysAttrs its deletedAt, with showChanges the value it had."""
    items: list[Any] = []
    for inst in old:
        kind = inst["type"]
        null = DELETED_VALUE.get(kind, NULL)
        if opts.format == "keyValues":
            items.append(null)
            continue
        item: dict[str, Any] = {"type": kind, VALUE_MEMBER[kind]: null}
        if "datasetId" in inst:
            item["datasetId"] = inst["datasetId"]
        if opts.sys_attrs:  # deletedAt is a system member, like createdAt and modifiedAt
            item.update((m, inst[m]) for m in ("createdAt", "modifiedAt") if m in inst)
            item["deletedAt"] = now
        if show:
            member, value = _previous(inst, terms, None)
            item[member] = value
        items.append(_concise(item) if opts.format == "concise" else item)
    return items[0] if len(items) == 1 else items


def _deleted_entity(sub: Subscription, entity: Entity, terms: TermMap, opts: RenderOptions,
                    now: str) -> dict[str, Any]:
    """A deleted entity: id, type, deletedAt, and each attribute (as notification.attributes
    selects them) with its null value."""
    shell = render_entity({**entity, "attrs": {}}, terms, opts)
    shell["deletedAt"] = now
    for iri, instances in entity["attrs"].items():
        kept = opts.instances(instances) if opts.keeps_attribute(iri) else []
        if kept:
            shell[terms.compact(iri)] = _deleted(kept, terms, opts, now,
                                                 sub.notification.show_changes)
    return shell


def notification_entity(sub: Subscription, change: Change, trigger: str, terms: TermMap
                        ) -> dict[str, Any]:
    """The entity as the notification carries it: notification.attributes, format, sysAttrs,
    lang, and with showChanges the previous values of what this change touched."""
    opts = render_options(sub)
    if trigger == "entityDeleted":
        return _deleted_entity(sub, change.current, terms, opts, change.now)
    after = change.after
    assert after is not None
    out: dict[str, Any] = render_entity(after, terms, opts)
    show = sub.notification.show_changes and change.before is not None
    if show:
        assert change.before is not None
        for iri in change.updated_attrs():
            if opts.keeps_attribute(iri):
                instances = opts.instances(after["attrs"][iri])
                if instances:
                    out[terms.compact(iri)] = _with_previous(
                        instances, change.before["attrs"][iri], terms, opts)
    # The deletions go out whenever the subscriber asked for them, even when the write also
    # updated or created attributes and so was recorded under that (earlier) trigger.
    wants_deletions = trigger in _SHOWS_DELETIONS or any(t in _SHOWS_DELETIONS
                                                         for t in sub.triggers)
    if wants_deletions and change.before is not None:
        for iri in change.deleted_attrs():
            if opts.keeps_attribute(iri):
                out[terms.compact(iri)] = _deleted(change.before["attrs"][iri], terms, opts,
                                                   change.now, show)
    return out


def evaluate(sub: Subscription, change: Change, terms: TermMap) -> Match | None:
    """The notification data this change owes `sub`, or None. `terms` is the TermMap of the
    subscription's notification @context (Subscription.notification_context)."""
    trigger = fires(sub, change)
    if trigger is None:
        return None
    return Match(trigger, notification_entity(sub, change, trigger, terms))
