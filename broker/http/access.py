"""Access control on every path out of the broker: the one place handlers ask the policy layer.

Each handler calls into this module with the request; it resolves the principal (identity
middleware), the declared purpose (Cetate-Purpose), the tenant, decides with the policy in force
(security/policy) and notes the decision in the request's audit record. docs/access-control.md.

The rule for refusals (issue 8: "403 or 404 consistently"):
- a principal that may not *read* an entity's types is told nothing of it: 404 ResourceNotFound,
  exactly as for an entity that does not exist (reads, and writes on existing entities it may
  neither read nor write);
- a principal that may know the entity (or names the type itself, as a create does) but not do
  the action gets 403 Forbidden, and nothing is written.

CETATE_ACCESS_CONTROL = auto (default: enforce once identity is configured, i.e. an OIDC issuer
or any API key; it is re-read per request, so a first key made at run time turns it on) | on
(enforce even without identity: every anonymous request is `public`) | off (nothing enforced,
with a warning at start-up).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from aiohttp import web

from broker.errors import CetateError, ResourceNotFound
from broker.http import audit
from broker.http.identity import IDENTITY, principal_of
from broker.query import qlang
from broker.query.typeexpr import AllOf, AnyOf, NoneOf, TypeExpr, TypeName, Within
from broker.store.protocol import Entity, EntityQuery, Mutation, Store, SubscriptionRow
from broker.subscriptions.match import Change
from broker.subscriptions.notification import OWNER
from broker.subscriptions.outbox import Draft, Screening
from broker.subscriptions.subscription import Subscription
from security.audit.entry import Principal as AuditPrincipal
from security.audit.keys import read_or_create_secret
from security.audit.log import config_for
from security.identity.principal import PUBLIC, Principal
from security.identity.resolver import IdentityResolver
from security.policy.model import ANY as ANY_TYPE
from security.policy.model import Decision, Resource
from security.policy.service import OPEN, PolicyService, purpose_of
from security.privacy.pseudonym import DEV_KEY_ENV, KEY_FILE_ENV, PseudonymKeyError

log = logging.getLogger("cetate.access")

ACCESS_ENV = "CETATE_ACCESS_CONTROL"
Mode = Literal["auto", "on", "off"]
MODES: tuple[Mode, ...] = ("auto", "on", "off")
AUDIT_RESOURCE = "audit"  # the API resource of /cetate/v1/audit (contracts/policies)
# A type no rule and no contract names: its decision is every such type's (Access.exclusion).
UNLISTED_TYPE = "urn:cetate:access:unlisted-type"
EXCLUSIONS_CACHED = 4096  # (principal, purpose, tenant, attributes) entries before a reset


class Forbidden(CetateError):
    """NGSI-LD has no 403 for authorisation; this one is ours (as identity's Unauthorized)."""

    type_name = "Forbidden"
    status = 403
    title = "The principal may not do this"


@dataclass(frozen=True)
class AccessSettings:
    mode: Mode = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AccessSettings:
        env = os.environ if env is None else env
        raw = (env.get(ACCESS_ENV) or "auto").strip().lower()
        if raw not in MODES:
            raise ValueError(f"{ACCESS_ENV}: {raw!r} is not one of {', '.join(MODES)}")
        return cls(mode=raw)


class Access:
    """The broker's access control: the policy service and when it is enforced."""

    def __init__(self, settings: AccessSettings, policies: PolicyService,
                 identity: IdentityResolver | None = None) -> None:
        self.settings = settings
        self.policies = policies
        self.identity = identity
        # (principal, purpose, tenant, attributes matched on) -> the query's type exclusion,
        # for the policy in force (cleared when it is reloaded)
        self._exclusions: dict[tuple[Any, ...], TypeExpr | None] = {}
        self._exclusions_of: object | None = None

    @property
    def enforcing(self) -> bool:
        if self.settings.mode == "auto":
            return self.identity is not None and self.identity.is_configured
        return self.settings.mode == "on"

    def decide(self, principal: Principal, action: str, resource: Resource,
               purpose: str | None) -> Decision:
        if not self.enforcing:
            return OPEN
        return self.policies.decide(principal, action, resource, purpose)

    def apply(self, decision: Decision, entity: Entity) -> Entity:
        return cast(Entity, self.policies.apply(decision, entity))

    def exclusion(self, principal: Principal, purpose: str | None, tenant: str,
                  named: frozenset[str]) -> TypeExpr | None:
        """The type condition that keeps a query from matching (and counting) an entity with
        a type the principal may not read or not match on in clear: visible() shows an entity
        only if it may read all its types. None when no type is hidden.

        Types a rule or a contract names are decided one by one; every other type gets the
        same decision (only a rule for any type can apply to it), so one probe decides them:
        if they are readable, exclude the hidden named ones (NoneOf); else keep the entity
        only if each of its types is a readable named one (Within). No store read needed."""
        policy = self.policies.policy
        if policy is not self._exclusions_of:
            self._exclusions, self._exclusions_of = {}, policy
        key = (principal, purpose, tenant, named)
        if key in self._exclusions:
            return self._exclusions[key]

        def readable(type_iri: str) -> bool:
            decision = self.decide(principal, "read", Resource.entity((type_iri,), tenant),
                                   purpose)
            return decision.allowed and all(decision.effect(a) == "allow" for a in named)
        listed: set[str] = set(policy.types) if policy is not None else set()
        for rule in policy.rules if policy is not None else ():
            listed.update(t for t in rule.types or () if t != ANY_TYPE)
        ok = sorted(t for t in listed if readable(t))
        expr: TypeExpr | None
        if readable(UNLISTED_TYPE):
            hidden = sorted(listed - set(ok))
            expr = NoneOf(tuple(TypeName(t) for t in hidden)) if hidden else None
        else:
            expr = Within(tuple(ok))
        if len(self._exclusions) >= EXCLUSIONS_CACHED:
            self._exclusions.clear()
        self._exclusions[key] = expr
        return expr

    @classmethod
    def create(cls, settings: AccessSettings, identity: IdentityResolver | None,
               env: Mapping[str, str] | None = None) -> Access:
        """The policy layer for `settings`; SystemExit when it cannot work (a policy that does
        not load, mode `on` with a pseudonymising rule and no key)."""
        if settings.mode == "off":
            log.warning("%s=off: access policies are NOT enforced, every request sees "
                        "everything", ACCESS_ENV)
            return cls(settings, PolicyService(False), identity)
        try:
            policies = PolicyService.from_env(True, env=env)
        except PseudonymKeyError as exc:
            if settings.mode == "on":
                raise SystemExit(f"access control: {exc}") from None
            # auto: identity may never be configured here; say it now rather than per request.
            log.warning("access control: %s; requests needing a pseudonym will fail once "
                        "identity is configured", exc)
            policies = PolicyService(True)
        except Exception as exc:  # a policy directory that does not load stops the start
            raise SystemExit(f"access control: {exc}") from None
        return cls(settings, policies, identity)


ACCESS = web.AppKey("access", Access)


def setup(app: web.Application, identity: IdentityResolver | None = None,
          settings: AccessSettings | None = None) -> Access:
    """Install access control (app[ACCESS]); the policy reloader runs while the app does."""
    if settings is None:
        try:
            settings = AccessSettings.from_env()
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    access = Access.create(settings, identity if identity is not None else app.get(IDENTITY),
                           env=_with_default_key(app))
    app[ACCESS] = access

    async def start(_: web.Application) -> None:
        await access.policies.start()
        if settings.mode == "auto" and not access.enforcing:
            log.warning("access control is not enforced until identity is configured "
                        "(%s=auto)", ACCESS_ENV)

    async def stop(_: web.Application) -> None:
        await access.policies.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return access


def _with_default_key(app: web.Application) -> Mapping[str, str]:
    """The environment, with the pseudonym key the audit log uses by default (created beside
    its signing keys, 0600) when none is configured: a broker that starts enforcing once
    identity is configured must not then fail on each pseudonymised read. Several replicas
    must share one key, so on PostgreSQL the operator is told to configure it."""
    env = dict(os.environ)
    if env.get(KEY_FILE_ENV) or env.get(DEV_KEY_ENV):
        return env
    from broker.http.state import BROKER  # the app's settings (state imports nothing of ours)

    settings = app[BROKER].settings
    path = (Path(settings.pseudonym_key_file) if settings.pseudonym_key_file else
            config_for(settings.store, settings.audit_store, settings.audit_key_dir).key_dir
            / "pseudonym.key")
    try:
        read_or_create_secret(path)
    except Exception as exc:  # an unwritable data directory: the policy layer says why
        log.warning("no pseudonym key: %s", exc)
        return env
    if settings.store.startswith("postgres"):
        log.warning("%s is not set: this replica uses %s; every replica of one database must "
                    "share one pseudonym key", KEY_FILE_ENV, path)
    return {**env, KEY_FILE_ENV: str(path)}


# -- per request ---------------------------------------------------------------------------------

def _decision_note(request: web.Request, principal: Principal, purpose: str | None,
                   decision: Decision) -> None:
    """Note a decision in the request's audit record; a deny already noted stays (a batch with
    one refused entity is recorded as denied, whatever the order of its entities)."""
    record = request.get(audit.RECORD)
    if decision.allowed and getattr(record, "decision", None) == "deny":
        return
    fields: dict[str, Any] = {"decision": "allow" if decision.allowed else "deny",
                              "rule": ",".join(decision.rules)}
    if purpose is not None:
        fields["purpose"] = purpose
    if not principal.is_public:
        fields["principal"] = AuditPrincipal(principal.subject, tuple(sorted(principal.roles)))
    audit.note(request, masked=sorted(decision.masked | decision.pseudonymised), **fields)


@dataclass
class Guard:
    """One request's principal, purpose and tenant, and the decisions taken for it."""

    access: Access
    request: web.Request | None
    principal: Principal
    purpose: str | None
    tenant: str

    @property
    def enforcing(self) -> bool:
        return self.access.enforcing

    def decide(self, action: str, types: Iterable[str],
               attributes: Iterable[str] | None = None) -> Decision:
        decision = self.access.decide(self.principal, action,
                                      Resource.entity(tuple(types), self.tenant, attributes),
                                      self.purpose)
        if self.request is not None and decision is not OPEN:
            _decision_note(self.request, self.principal, self.purpose, decision)
        return decision

    def decide_api(self, action: str, api: str) -> Decision:
        decision = self.access.decide(self.principal, action, Resource.of_api(api, self.tenant),
                                      self.purpose)
        if self.request is not None and decision is not OPEN:
            _decision_note(self.request, self.principal, self.purpose, decision)
        return decision

    # -- reads -----------------------------------------------------------------------------------
    def read(self, entity: Entity) -> Entity:
        """The entity as the principal may see it; ResourceNotFound if it may not read it."""
        if not self.enforcing:
            return entity
        decision = self.decide("read", entity["type"])
        if not decision.allowed:
            raise ResourceNotFound(f"Entity {entity['id']} not found")
        return self.access.apply(decision, entity)

    def visible(self, entities: Iterable[Entity], action: str = "read") -> list[Entity]:
        """The entities the principal may see, each filtered; the others left out."""
        if not self.enforcing:
            return list(entities)
        out = []
        cache: dict[tuple[str, ...], Decision] = {}
        for entity in entities:
            key = tuple(entity["type"])
            decision = cache.get(key)
            if decision is None:
                decision = cache[key] = self.decide(action, key)
            if decision.allowed:
                out.append(self.access.apply(decision, entity))
        return out

    def readable(self, types: Iterable[str]) -> list[str]:
        return [t for t in dict.fromkeys(types) if self.may_read(t)]

    def may_read(self, type_iri: str) -> bool:
        return self.access.decide(self.principal, "read", Resource.entity((type_iri,),
                                  self.tenant), self.purpose).allowed

    def read_decision(self, type_iri: str) -> Decision:
        return self.access.decide(self.principal, "read", Resource.entity((type_iri,),
                                  self.tenant), self.purpose)

    # -- queries ---------------------------------------------------------------------------------
    async def restrict(self, store: Store, query: EntityQuery) -> EntityQuery | None:
        """The query limited to what the principal may read: to readable types, without the
        types for which q, geoQ or attrs name an attribute it does not see in clear (matching
        on it would reveal it one yes/no at a time); None when nothing is left to match."""
        if not self.enforcing:
            return query
        known = _named_types(query)
        if known is None:  # no type named on some branch: every type the tenant holds
            known = set(await store.entity_types(self.tenant))
            policy = self.access.policies.policy
            if policy is not None:
                known.update(policy.types)
        named = _filtered_attributes(query)
        allowed: list[str] = []
        rules: list[str] = []
        for t in sorted(known):
            decision = self.read_decision(t)
            if decision.allowed and all(decision.effect(a) == "allow" for a in named):
                allowed.append(t)
                rules.extend(decision.rules)
        if not allowed:
            self.decide("read", sorted(known) or ["*"])  # noted: nothing readable
            return None
        if self.request is not None:  # noted even if no entity matches
            _decision_note(self.request, self.principal, self.purpose,
                           Decision(True, tuple(dict.fromkeys(rules)), "query"))
        scope: TypeExpr = (TypeName(allowed[0]) if len(allowed) == 1
                           else AnyOf(tuple(TypeName(t) for t in allowed)))
        selectors = None
        if query.selectors is not None:
            selectors = tuple(replace(s, types=_within(s.types, scope)) for s in query.selectors)
        types = _within(query.types, scope)
        # An entity is shown only if every one of its types is readable (visible): one with a
        # readable and a hidden type must not match either, or the count and the paging would
        # tell of it.
        exclusion = self.access.exclusion(self.principal, self.purpose, self.tenant,
                                          frozenset(named))
        if exclusion is not None:
            types = AllOf((types, exclusion))
        return replace(query, types=types, selectors=selectors)

    # -- writes ----------------------------------------------------------------------------------
    def guard(self, mutation: Mutation[Any]) -> Mutation[Any]:
        """`mutation`, refused inside its transaction unless the principal may do it: create
        on a new entity's types, update on an existing one's (and any type it gains), delete;
        each with the attributes it changes. Refused → nothing is written."""
        if not self.enforcing:
            return mutation

        def run(current: Entity | None) -> tuple[Entity | None, Any]:
            if current is not None and not self._knows(current):
                raise ResourceNotFound(f"Entity {current['id']} not found")
            entity, result = mutation(current)
            if current is None and entity is None:
                return entity, result
            if current is None:
                assert entity is not None
                action, types, attrs = "create", list(entity["type"]), set(entity["attrs"])
            elif entity is None:
                action, types, attrs = "delete", list(current["type"]), None
            else:
                action = "update"
                types = list(dict.fromkeys([*current["type"], *entity["type"]]))
                old, new = current["attrs"], entity["attrs"]
                attrs = {a for a in old.keys() | new.keys() if old.get(a) != new.get(a)}
            decision = self.decide(action, types, attrs)
            if not decision.allowed:
                raise Forbidden(f"{action} is not granted on this entity ({decision.reason})")
            return entity, result
        return run

    def _knows(self, entity: Entity) -> bool:
        """Whether the principal may learn that `entity` exists: it may read, update or
        delete its types."""
        resource = Resource.entity(tuple(entity["type"]), self.tenant)
        return any(self.access.decide(self.principal, action, resource, self.purpose).allowed
                   for action in ("read", "update", "delete"))


def _within(types: TypeExpr | None, scope: TypeExpr) -> TypeExpr:
    # The query language has no negation: an entity matching one has at least one of its leaf
    # types, so a query naming only types within the scope needs no second type condition
    # (in SQL a second subquery on entity_types: ~15 % of a query's cost, bench/access.py).
    if types is not None and _type_leaves(types) <= _type_leaves(scope):
        return types
    return scope if types is None else AllOf((types, scope))


def _type_leaves(expr: TypeExpr) -> set[str]:
    if isinstance(expr, TypeName):
        return {expr.name}
    if isinstance(expr, Within):
        return set(expr.names)
    return {n for item in expr.items for n in _type_leaves(item)}


def _named_types(query: EntityQuery) -> set[str] | None:
    """Every type a query can match, when each of its branches names types; else None."""
    if query.selectors is not None and query.types is None:
        if any(s.types is None for s in query.selectors):
            return None
        return {n for s in query.selectors for n in _type_leaves(s.types)}
    if query.types is None:
        return None
    return _type_leaves(query.types)


def _filtered_attributes(query: EntityQuery) -> set[str]:
    """The attribute IRIs a query selects or matches on (q, geoQ's geoproperty, attrs)."""
    names: set[str] = set(query.attrs or ())
    if query.q is not None:
        names.update(q_attributes(query.q))
    if query.geo is not None:
        names.add(query.geo.geoproperty)
    return names


def q_attributes(node: Any) -> set[str]:
    """The attribute IRIs a q expression names."""
    if isinstance(node, qlang.And | qlang.Or):
        return {a for item in node.items for a in q_attributes(item)}
    path = getattr(node, "path", None)
    return {path.attr} if isinstance(path, qlang.Path) else set()


def access_of(app: web.Application) -> Access:
    found = app.get(ACCESS)
    if found is None:  # an app assembled without access control (some tests): open
        found = app[ACCESS] = Access(AccessSettings("off"), PolicyService(False))
    return found


def guard_of(request: web.Request, tenant: str) -> Guard:
    """The request's guard for `tenant` (the principal and purpose of its headers)."""
    return Guard(access_of(request.app), request, principal_of(request),
                 purpose_of(request.headers), tenant)


def owner_guard(access: Access, owner: Mapping[str, Any] | None, purpose: str | None,
                tenant: str) -> Guard:
    """A guard for a subscription's owner (as stored with it) at delivery time."""
    return Guard(access, None, principal_from_record(owner), purpose, tenant)


# -- the owner of a subscription, as stored in its record ----------------------------------------

def principal_record(principal: Principal) -> dict[str, Any]:
    return {"subject": principal.subject, "roles": sorted(principal.roles),
            "kind": principal.kind,
            "tenants": None if principal.tenants is None else sorted(principal.tenants),
            "purposes": None if principal.purposes is None else sorted(principal.purposes),
            "issuer": principal.issuer}


def principal_from_record(data: Mapping[str, Any] | None) -> Principal:
    """The stored owner; a subscription made before owners were stored (or while access
    control was open) is the public principal's: it notifies only what public may read."""
    if not isinstance(data, Mapping) or not isinstance(data.get("subject"), str):
        return PUBLIC

    def opt(name: str) -> frozenset[str] | None:
        value = data.get(name)
        return None if value is None else frozenset(str(v) for v in value)
    return Principal(subject=data["subject"], roles=frozenset(data.get("roles") or ()),
                     kind=str(data.get("kind") or "token"), tenants=opt("tenants"),
                     purposes=opt("purposes"), issuer=data.get("issuer"))


def may_manage(principal: Principal, owner: Mapping[str, Any] | None) -> bool:
    """Whether `principal` may see, patch or delete a subscription owned by `owner`."""
    if "admin" in principal.roles:
        return True
    stored = principal_from_record(owner)
    return stored.subject == principal.subject and stored.kind == principal.kind



# -- notifications, at delivery time -------------------------------------------------------------

ENTITY_TRIGGERS = frozenset({"entityCreated", "entityDeleted", "timeInterval"})


def screen_notifications(access: Access
                         ) -> Callable[[SubscriptionRow, Subscription, Draft], Draft | None]:
    """The filter of broker/subscriptions/service.py `prepare`: each entity of a draft as its
    subscription's owner may see it with the subscription's purpose, under the policy in force
    now. Dropped: entities the owner may not see; entities whose match used an attribute it
    does not see in clear (q, geoQ: the notification would tell of its value); updates of
    which it sees no change of a watched attribute (their timing alone would tell of a hidden
    change). None when nothing is left."""
    def screen(stored: SubscriptionRow, sub: Subscription, draft: Draft) -> Draft | None:
        if not access.enforcing:
            return draft
        guard = owner_guard(access, stored.record.get(OWNER), sub.purpose, draft.tenant)
        matched_on = q_attributes(sub.q) if sub.q is not None else set()
        if sub.geo_q is not None:
            matched_on.add(sub.geo_q.geoproperty)
        watched = frozenset(sub.watched_attributes or ())
        decisions: dict[tuple[str, ...], Decision] = {}
        items = []
        used: list[Decision] = []  # the decisions of what is sent, for its audit entry
        for item in draft.items:
            change = item.change
            key = tuple(change.current["type"])
            decision = decisions.get(key)
            if decision is None:
                decision = decisions[key] = guard.access.decide(
                    guard.principal, "subscribe", Resource.entity(key, guard.tenant),
                    guard.purpose)
            if not decision.allowed or any(decision.effect(a) != "allow" for a in matched_on):
                continue
            before = None if change.before is None else access.apply(decision, change.before)
            after = None if change.after is None else access.apply(decision, change.after)
            # A draft keeps of `before` only what rendering needs: `changed` is not recomputed.
            seen = Change(change.tenant, before, after,
                          frozenset(a for a in change.changed if decision.effect(a) != "mask"),
                          change.now)
            if item.trigger not in ENTITY_TRIGGERS and not change.retyped and (
                    not seen.changed or (watched and not seen.changed & watched)):
                continue
            items.append(replace(item, change=seen))
            used.append(decision)
        if not items:
            return None
        screening = Screening(
            tuple(sorted({r for d in used for r in d.rules})),
            tuple(sorted({a for d in used for a in d.masked | d.pseudonymised})))
        return replace(draft, items=tuple(items), screening=screening)
    return screen
