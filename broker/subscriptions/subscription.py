"""Subscriptions (ETSI GS CIM 009 v1.9.1 clause 5.2.12, NotificationParams 5.2.14, update 5.8.2):
parse and validate a payload into an immutable internal form, render it back compacted. Pure.

    sub = parse_subscription(body, terms, now, context=request_context, tenant=tenant)
    render_subscription(sub, terms, now=now, state=state)    # GET /subscriptions/{id}
    sub = patch_subscription(sub, fragment, terms, now)      # PATCH /subscriptions/{id}
    record = to_record(sub); sub = from_record(record, tenant)  # what a store keeps

Names (entity types, attributes, q and geoQ paths) are expanded with the requester's TermMap on
the way in and compacted with the reader's on the way out, like entities (docs/internals.md).
Every member is read by one entry of a table (`_MEMBERS`); a member the table does not know is
refused, so a typo such as "watchedAttribute" never yields a subscription that silently does
something else. The read-only members (status, timesSent, ...; clause 5.2.2: provided ones are
ignored) live in `DeliveryState`, kept by the outbox, not here.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from broker.entities.clock import normalize_datetime
from broker.entities.kinds import NULL
from broker.entities.lang import language_ranges
from broker.entities.values import check_name, check_term, require_uri
from broker.errors import BadRequestData
from broker.ld.termmap import CORE_TERMS, TermMap
from broker.query.geo_parse import GeoQuery, geo_query_from_json
from broker.query.qlang import Node, expand_names, parse_q, unparse
from broker.query.scopeq import ScopeNode, parse_scopeq
from broker.query.scopeq import unparse as unparse_scopeq
from broker.query.typeexpr import (
    AllOf,
    AnyOf,
    NoneOf,
    TypeExpr,
    TypeName,
    Within,
    expand_types,
    parse_types,
)
from broker.subscriptions.endpoint import Endpoint, parse_endpoint, render_endpoint

SUBSCRIPTION = "Subscription"
ID_PREFIX = "urn:ngsi-ld:Subscription:"

# Clause 5.2.12, notificationTrigger; the default when absent is the two attribute triggers.
TRIGGERS = ("entityCreated", "entityUpdated", "entityDeleted", "attributeCreated",
            "attributeUpdated", "attributeDeleted")
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
FORMATS = ("normalized", "concise", "keyValues")
STATUSES = ("active", "paused", "expired")

MAX_SELECTORS = 100  # entities[]: each one is evaluated on every change of the tenant
MAX_NAMES = 256  # watchedAttributes, notification.attributes
MAX_ID_PATTERN = 256  # as for queries: Python `re` backtracks, keep patterns short (ReDoS)
MAX_TEXT = 1024  # subscriptionName, description
MAX_SECONDS = 366 * 24 * 3600  # timeInterval and throttling: a year at most

# Read-only members (clause 5.2.2, 5.2.12, 5.2.14): produced by the broker, ignored on input.
READ_ONLY = frozenset({"status", "createdAt", "modifiedAt", "deletedAt"})
NOTIFICATION_READ_ONLY = frozenset({"status", "timesSent", "timesFailed", "lastNotification",
                                    "lastSuccess", "lastFailure"})
# Members of clause 5.2.12 this broker does not implement yet: refused rather than ignored.
UNSUPPORTED = frozenset({"csf", "temporalQ", "datasetId", "jsonKeys", "expandValues"})


@dataclass(frozen=True, slots=True)
class EntitySelector:
    """Clause 5.2.33: type (a type expression, expanded), and optionally id or idPattern."""

    types: TypeExpr
    id: str | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationParams:
    endpoint: Endpoint
    attributes: tuple[str, ...] | None = None  # expanded; None: every attribute
    format: str = "normalized"
    show_changes: bool = False
    sys_attrs: bool = False


@dataclass(frozen=True, slots=True)
class Subscription:
    """A validated subscription, names expanded. Build it with parse_subscription."""

    id: str
    notification: NotificationParams
    entities: tuple[EntitySelector, ...] = ()
    watched_attributes: tuple[str, ...] | None = None
    triggers: tuple[str, ...] = DEFAULT_TRIGGERS
    q: Node | None = None
    geo_q: GeoQuery | None = None
    scope_q: ScopeNode | None = None
    lang: str | None = None
    time_interval: float | None = None  # seconds: a periodic subscription
    throttling: float | None = None  # seconds between two notifications at least
    expires_at: str | None = None
    is_active: bool = True
    name: str | None = None
    description: str | None = None
    jsonld_context: str | None = None  # clause 5.2.12: the @context notifications refer to
    context: Any = None  # the @context the subscription was made with (None: core only)
    tenant: str = ""
    created_at: str | None = None
    modified_at: str | None = None
    # Cetate's `purpose` member (issue 8): the purpose of processing its notifications are
    # decided with, fixed at creation (PATCH may not change it).
    purpose: str | None = None

    @property
    def periodic(self) -> bool:
        return self.time_interval is not None

    @property
    def notification_context(self) -> Any:
        """The @context notifications are compacted with and refer to."""
        return self.jsonld_context if self.jsonld_context is not None else self.context


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """The read-only members of NotificationParams (clause 5.2.14), kept by the outbox."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None

    @property
    def status(self) -> str | None:
        """"ok" or "failed" (clause 5.2.14): how the last attempt went; None before any."""
        if self.last_notification is None:
            return None
        if self.last_failure is not None and (self.last_success is None
                                              or self.last_failure > self.last_success):
            return "failed"
        return "ok"


# -- reading members -----------------------------------------------------------------------------

def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestData(f"{what} must be true or false")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise BadRequestData(f"{what} must be a number of seconds above 0 (at most "
                             f"{MAX_SECONDS})")
    return float(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequestData(f"{what} must be a string of at most {MAX_TEXT} characters")
    return value


def _names(value: Any, what: str, terms: TermMap) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_NAMES:
        raise BadRequestData(f"{what} must be a non-empty list of at most {MAX_NAMES} "
                             "attribute names")
    names = [check_term(n, f"{what} entry") if isinstance(n, str) and ":" in n
             else check_name(n, f"{what} attribute") for n in value]
    return tuple(dict.fromkeys(terms.expand(n) for n in names))


def _pattern(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_PATTERN:
        raise BadRequestData(f"entities[].idPattern must be a regular expression of at most "
                             f"{MAX_ID_PATTERN} characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise BadRequestData(f"entities[].idPattern is not a regular expression: {exc}") \
            from None
    return value


def _selector(raw: Any, terms: TermMap) -> EntitySelector:
    if not isinstance(raw, dict):
        raise BadRequestData("entities[] entries are objects with type, and id or idPattern")
    unknown = set(raw) - {"type", "id", "idPattern"}
    if unknown:
        raise BadRequestData(f"entities[]: unknown member(s) {', '.join(sorted(unknown))}")
    if "type" not in raw or not isinstance(raw["type"], str):
        raise BadRequestData("entities[].type is mandatory: an entity type or type expression")
    if "id" in raw and "idPattern" in raw:
        raise BadRequestData("entities[]: id and idPattern exclude each other")
    try:
        types = parse_types(raw["type"])
    except BadRequestData as exc:
        raise BadRequestData(f"entities[].type: {exc.detail}") from None
    return EntitySelector(
        types=expand_types(types, terms.expand),
        id=require_uri(raw["id"], "entities[].id") if "id" in raw else None,
        id_pattern=_pattern(raw["idPattern"]) if "idPattern" in raw else None,
    )


def _entities(value: Any, terms: TermMap) -> tuple[EntitySelector, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_SELECTORS:
        raise BadRequestData(f"entities must be a non-empty list of at most {MAX_SELECTORS} "
                             "entity selectors")
    return tuple(_selector(item, terms) for item in value)


def _triggers(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"notificationTrigger must be a non-empty list of "
                             f"{', '.join(TRIGGERS)}")
    for item in value:
        if item not in TRIGGERS:
            raise BadRequestData(f"notificationTrigger: {item!r} is not one of "
                                 f"{', '.join(TRIGGERS)}")
    if len(set(value)) != len(value):
        raise BadRequestData("notificationTrigger lists a trigger twice")
    return tuple(value)


def _q(value: Any, terms: TermMap) -> Node:
    if not isinstance(value, str) or not value:
        raise BadRequestData("q must be a non-empty query string (clause 4.9)")
    # The q grammar is written for URLs, and clients (the ETSI conformance suite among them)
    # put it in a subscription percent-encoded as in a URL: name=="Eiffel%20Tower".
    return expand_names(parse_q(unquote(value)), terms.expand)


def _geo_q(value: Any, terms: TermMap) -> GeoQuery:
    try:
        geo = geo_query_from_json(value)
    except BadRequestData as exc:
        raise BadRequestData(f"geoQ: {exc.detail}") from None
    assert geo is not None  # geo_query_from_json(None) is the only None, handled by the caller
    if isinstance(value, dict) and set(value) - {"georel", "geometry", "coordinates",
                                                 "geoproperty"}:
        unknown = set(value) - {"georel", "geometry", "coordinates", "geoproperty"}
        raise BadRequestData(f"geoQ: unknown member(s) {', '.join(sorted(unknown))}")
    return replace(geo, geoproperty=terms.expand(geo.geoproperty))


def _scope_q(value: Any) -> ScopeNode:
    if not isinstance(value, str) or not value:
        raise BadRequestData("scopeQ must be a non-empty scope query (clause 4.19)")
    return parse_scopeq(value)


def _lang(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT \
            or not language_ranges(value):
        raise BadRequestData("lang must be a language range list such as \"ro,en;q=0.5\"")
    return value


def _notification(raw: Any, terms: TermMap) -> NotificationParams:
    if not isinstance(raw, dict):
        raise BadRequestData("notification must be an object with an endpoint")
    known = {"attributes", "format", "showChanges", "sysAttrs", "endpoint"}
    unknown = set(raw) - known - NOTIFICATION_READ_ONLY
    if unknown:
        raise BadRequestData(f"notification: unknown or unsupported member(s) "
                             f"{', '.join(sorted(unknown))}")
    if "endpoint" not in raw:
        raise BadRequestData("notification.endpoint is mandatory")
    fmt = raw.get("format", "normalized")
    if fmt not in FORMATS:
        raise BadRequestData(f"notification.format is one of {', '.join(FORMATS)}, "
                             f"not {fmt!r}")
    show = _bool(raw.get("showChanges", False), "notification.showChanges")
    if show and fmt == "keyValues":
        # Clause 5.2.14: previous values have no place in the simplified representation.
        raise BadRequestData("notification.showChanges cannot be true with format keyValues")
    return NotificationParams(
        endpoint=parse_endpoint(raw["endpoint"]),
        attributes=_names(raw["attributes"], "notification.attributes", terms)
        if "attributes" in raw else None,
        format=fmt,
        show_changes=show,
        sys_attrs=_bool(raw.get("sysAttrs", False), "notification.sysAttrs"),
    )


# member -> (Subscription field, reader). Readers get (value, terms).
_Reader = Callable[[Any, TermMap], Any]
_MEMBERS: dict[str, tuple[str, _Reader]] = {
    "entities": ("entities", _entities),
    "watchedAttributes": ("watched_attributes",
                          lambda v, t: _names(v, "watchedAttributes", t)),
    "notificationTrigger": ("triggers", lambda v, t: _triggers(v)),
    "q": ("q", _q),
    "geoQ": ("geo_q", _geo_q),
    "scopeQ": ("scope_q", lambda v, t: _scope_q(v)),
    "lang": ("lang", lambda v, t: _lang(v)),
    "timeInterval": ("time_interval", lambda v, t: _seconds(v, "timeInterval")),
    "throttling": ("throttling", lambda v, t: _seconds(v, "throttling")),
    "expiresAt": ("expires_at", lambda v, t: normalize_datetime(v, "expiresAt")),
    "isActive": ("is_active", lambda v, t: _bool(v, "isActive")),
    "notification": ("notification", _notification),
    "subscriptionName": ("name", lambda v, t: _text(v, "subscriptionName")),
    "description": ("description", lambda v, t: _text(v, "description")),
    "jsonldContext": ("jsonld_context", lambda v, t: require_uri(v, "jsonldContext")),
    "purpose": ("purpose", lambda v, t: _text(v, "purpose")),
}


def _check_combination(values: Mapping[str, Any]) -> None:
    """Clause 5.2.12's rules between members."""
    periodic = values.get("time_interval") is not None
    if periodic and values.get("watched_attributes") is not None:
        raise BadRequestData("timeInterval and watchedAttributes exclude each other: a "
                             "subscription is either periodic or triggered by changes")
    if periodic and values.get("throttling") is not None:
        raise BadRequestData("throttling applies to change-triggered subscriptions, not to "
                             "periodic ones (timeInterval)")
    if not values.get("entities") and values.get("watched_attributes") is None:
        raise BadRequestData("A subscription needs entities or watchedAttributes (or both)")


def new_subscription_id() -> str:
    return ID_PREFIX + str(uuid.uuid4())


def parse_subscription(body: Any, terms: TermMap, now: str, *, context: Any = None,
                       tenant: str = "", new_id: Callable[[], str] = new_subscription_id,
                       check_expiry: bool = True) -> Subscription:
    """A Subscription from a request body; BadRequestData naming the member at fault.

    `now` stamps createdAt/modifiedAt and, with `check_expiry`, refuses an expiresAt that has
    already passed (clause 5.8.1). `context` is the request's @context, kept so notifications
    are compacted with it."""
    if not isinstance(body, dict):
        raise BadRequestData("A subscription is a JSON object")
    members = {k: v for k, v in body.items() if k != "@context"}
    if members.get("type") != SUBSCRIPTION:
        raise BadRequestData('A subscription has "type": "Subscription"')
    unsupported = set(members) & UNSUPPORTED
    if unsupported:
        raise BadRequestData(f"Subscription member(s) {', '.join(sorted(unsupported))} are not "
                             "supported by this broker yet")
    unknown = set(members) - set(_MEMBERS) - READ_ONLY - {"id", "type"}
    if unknown:
        raise BadRequestData(f"Unknown Subscription member(s): {', '.join(sorted(unknown))}")
    if "notification" not in members:
        raise BadRequestData("notification is mandatory in a subscription")
    values: dict[str, Any] = {}
    for member, raw in members.items():
        entry = _MEMBERS.get(member)
        if entry is not None and raw is None:
            # Clause 5.2.1: no member admits null (JSON-LD would drop it); say so, not guess.
            raise BadRequestData(f"{member} is null: leave the member out instead")
        if entry is not None:
            name, read = entry
            values[name] = read(raw, terms)
    _check_combination(values)
    expires = values.get("expires_at")
    if check_expiry and expires is not None and expires <= now:
        raise BadRequestData(f"expiresAt {expires} has already passed")
    sub_id = require_uri(members["id"], "id") if "id" in members else new_id()
    return Subscription(id=sub_id, context=context, tenant=tenant, created_at=now,
                        modified_at=now, **values)


# -- rendering -----------------------------------------------------------------------------------

def _unparse_types(expr: TypeExpr, compact: Callable[[str], str], parent: type | None = None
                   ) -> str:
    if isinstance(expr, TypeName):
        return compact(expr.name)
    if isinstance(expr, NoneOf | Within):
        raise TypeError("NoneOf has no text in the query language")
    joiner = ";" if isinstance(expr, AllOf) else ","
    text = joiner.join(_unparse_types(item, compact, type(expr)) for item in expr.items)
    # ";" binds tighter than ",": an AnyOf inside an AllOf (or any group in a group of its own
    # kind, which the parser flattens anyway) keeps its parentheses.
    return f"({text})" if parent is not None and isinstance(expr, AnyOf) \
        and parent is AllOf else text


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _render_geo(geo: GeoQuery, terms: TermMap) -> dict[str, Any]:
    georel = geo.relation
    for name, distance in (("maxDistance", geo.max_distance), ("minDistance", geo.min_distance)):
        if distance is not None:
            georel += f";{name}=={_number(distance)}"
    return {"geometry": geo.geometry["type"], "coordinates": geo.geometry["coordinates"],
            "georel": georel, "geoproperty": terms.compact(geo.geoproperty)}


def _render_selector(selector: EntitySelector, terms: TermMap) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _unparse_types(selector.types, terms.compact)}
    if selector.id is not None:
        out["id"] = selector.id
    if selector.id_pattern is not None:
        out["idPattern"] = selector.id_pattern
    return out


def _render_notification(params: NotificationParams, terms: TermMap,
                         state: DeliveryState | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if params.attributes is not None:
        out["attributes"] = [terms.compact(a) for a in params.attributes]
    out["format"] = params.format
    out["showChanges"] = params.show_changes
    out["sysAttrs"] = params.sys_attrs
    out["endpoint"] = render_endpoint(params.endpoint)
    if state is not None:
        status = state.status
        if status is not None:
            out["status"] = status
        out["timesSent"] = state.times_sent
        out["timesFailed"] = state.times_failed
        for member, value in (("lastNotification", state.last_notification),
                              ("lastSuccess", state.last_success),
                              ("lastFailure", state.last_failure)):
            if value is not None:
                out[member] = value
    return out


def status_of(sub: Subscription, now: str) -> str:
    """Clause 5.2.12 status: expired once expiresAt has passed, else paused when not isActive,
    else active."""
    if sub.expires_at is not None and sub.expires_at <= now:
        return "expired"
    return "active" if sub.is_active else "paused"


def render_subscription(sub: Subscription, terms: TermMap, *, now: str,
                        state: DeliveryState | None = None, sys_attrs: bool = False
                        ) -> dict[str, Any]:
    """The subscription as clients read it, names compacted with `terms`; the read-only members
    come from `state` (None leaves them out) and from `now` (status)."""
    out: dict[str, Any] = {"id": sub.id, "type": SUBSCRIPTION}
    if sub.name is not None:
        out["subscriptionName"] = sub.name
    if sub.description is not None:
        out["description"] = sub.description
    if sub.entities:
        out["entities"] = [_render_selector(s, terms) for s in sub.entities]
    if sub.watched_attributes is not None:
        out["watchedAttributes"] = [terms.compact(a) for a in sub.watched_attributes]
    out["notificationTrigger"] = list(sub.triggers)  # as the ETSI test suite reads it back
    if sub.time_interval is not None:
        out["timeInterval"] = _number(sub.time_interval)
    if sub.q is not None:
        # "%" is escaped so that the text reads back through _q's percent-decoding unchanged.
        out["q"] = unparse(expand_names(sub.q, terms.compact)).replace("%", "%25")
    if sub.geo_q is not None:
        out["geoQ"] = _render_geo(sub.geo_q, terms)
    if sub.scope_q is not None:
        out["scopeQ"] = unparse_scopeq(sub.scope_q)
    if sub.lang is not None:
        out["lang"] = sub.lang
    out["isActive"] = sub.is_active
    if sub.expires_at is not None:
        out["expiresAt"] = sub.expires_at
    if sub.throttling is not None:
        out["throttling"] = _number(sub.throttling)
    if sub.jsonld_context is not None:
        out["jsonldContext"] = sub.jsonld_context
    if sub.purpose is not None:
        out["purpose"] = sub.purpose
    out["status"] = status_of(sub, now)
    out["notification"] = _render_notification(sub.notification, terms, state)
    if sys_attrs:
        out.update((k, v) for k, v in (("createdAt", sub.created_at),
                                       ("modifiedAt", sub.modified_at)) if v is not None)
    return out


# -- persistence ---------------------------------------------------------------------------------

RECORD_VERSION = 1


def to_record(sub: Subscription) -> dict[str, Any]:
    """A JSON-serialisable form for a store: the payload with every name as an IRI (compacting
    with the core context alone is lossless), plus what the payload does not carry."""
    body = render_subscription(sub, CORE_TERMS, now="", sys_attrs=True)
    del body["status"]
    return {"version": RECORD_VERSION, "subscription": body, "context": sub.context}


def from_record(record: Mapping[str, Any], tenant: str = "") -> Subscription:
    """The Subscription a store kept with to_record."""
    body = dict(record["subscription"])
    sub = parse_subscription(body, CORE_TERMS, body.get("createdAt") or "",
                             context=record.get("context"), tenant=tenant, check_expiry=False)
    return replace(sub, created_at=body.get("createdAt"), modified_at=body.get("modifiedAt"))


# -- update (clause 5.8.2) -----------------------------------------------------------------------

def _deletes(value: Any) -> bool:
    # Clause 5.8.2 (and 5.5.12 merge semantics): null, or the NGSI-LD Null, removes a member.
    return value is None or value == NULL


def patch_subscription(current: Subscription, fragment: Any, terms: TermMap, now: str
                       ) -> Subscription:
    """The subscription after an update (clause 5.8.2): each member of the fragment replaces
    the subscription's; notification is merged one level deep (its endpoint is replaced whole);
    null or "urn:ngsi-ld:null" removes an optional member. The result is validated as a whole,
    so a fragment that breaks a rule between members (timeInterval with watchedAttributes...)
    is refused and the subscription is left as it was."""
    if not isinstance(fragment, dict):
        raise BadRequestData("A subscription update is a JSON object")
    members = {k: v for k, v in fragment.items() if k != "@context"}
    if not members:
        raise BadRequestData("A subscription update needs at least one member")
    if "id" in members and members["id"] != current.id:
        raise BadRequestData("The id of a subscription cannot be changed")
    if "type" in members and members["type"] != SUBSCRIPTION:
        raise BadRequestData('A subscription has "type": "Subscription"')
    if "purpose" in members and members["purpose"] != current.purpose:
        raise BadRequestData("The purpose of a subscription is fixed at its creation")
    base = render_subscription(current, terms, now=now)
    del base["status"]
    for member, value in members.items():
        if member in ("id", "type") or member in READ_ONLY:
            continue
        if member == "notification" and not _deletes(value):
            base["notification"] = _merge_notification(base["notification"], value)
        elif _deletes(value):
            if member == "notification":
                raise BadRequestData("notification cannot be removed from a subscription")
            base.pop(member, None)
        else:
            base[member] = value
    updated = parse_subscription(base, terms, now, context=current.context,
                                 tenant=current.tenant, check_expiry="expiresAt" in members)
    return replace(updated, created_at=current.created_at, modified_at=now)


def _merge_notification(base: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise BadRequestData("notification must be an object")
    merged = dict(base)
    for member, value in patch.items():
        if member in NOTIFICATION_READ_ONLY:
            continue
        if _deletes(value):
            if member == "endpoint":
                raise BadRequestData("notification.endpoint cannot be removed")
            merged.pop(member, None)
        else:
            merged[member] = value
    return merged


__all__ = [
    "DEFAULT_TRIGGERS",
    "FORMATS",
    "TRIGGERS",
    "DeliveryState",
    "EntitySelector",
    "NotificationParams",
    "Subscription",
    "from_record",
    "new_subscription_id",
    "parse_subscription",
    "patch_subscription",
    "render_subscription",
    "status_of",
    "to_record",
]
