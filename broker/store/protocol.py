"""The store protocol: everything a storage engine provides, in NGSI-LD terms.

Read this one file to write an engine. Handlers never write SQL; they call these methods with
entities in Cetate's internal form (see docs/internals.md): expanded IRIs for types and
attribute names, attribute instances in normalized form, timestamps as ISO 8601 UTC strings.

Every write goes through `apply`: the engine reads the current entity inside a transaction,
hands it to a pure function that returns the new one, writes the result and commits before it
returns. So every mutation (create, append, update, merge, replace, delete) is atomic and a 2xx
is never sent before the commit. Engines: SQLite (embedded default), PostgreSQL (scale-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # the subscriptions package builds on the store's types, not the reverse
    from broker.subscriptions.outbox import Outbox, PlannedWrite
    from broker.subscriptions.subscription import DeliveryState

Entity = dict[str, Any]
"""An entity in internal form: {"id", "type", "scope"?, "createdAt", "modifiedAt", "attrs"}."""

T = TypeVar("T")

Mutation = Callable[[Entity | None], tuple[Entity | None, T]]
"""A pure function from the stored entity (None if absent) to (the entity to store, or None to
delete it; a result handed back to the caller). It may raise an NgsiError to abort the write."""


@dataclass(frozen=True)
class StoredContext:
    """A JSON-LD @context held by the broker (clause 5.13: hosted, cached or implicitly created)."""

    id: str
    url: str
    kind: str  # "Hosted" | "Cached" | "ImplicitlyCreated"
    body: Any
    created_at: str
    last_used_at: str | None = None
    number_of_hits: int = 0


@dataclass(frozen=True)
class EntityWrite:
    """One entity written by a transaction: what the write observer plans notifications from."""

    tenant: str
    before: Entity | None  # None: created
    after: Entity | None  # None: deleted


@dataclass(frozen=True)
class SubscriptionRow:
    """A stored subscription (clause 5.2.12) with what delivery has made of it."""

    tenant: str
    id: str
    record: dict[str, Any]  # broker.subscriptions.subscription.to_record(), as JSON
    delivery: DeliveryState  # timesSent, lastSuccess...: kept by the outbox methods
    periodic_last: float | None = None  # epoch seconds of the last periodic notification


SubscriptionEdit = Callable[[dict[str, Any]], dict[str, Any]]
"""A pure function from a stored subscription record to the record to store (PATCH); it may
raise an NgsiError to abort."""


class WriteObserver(Protocol):
    """What an engine calls inside every write transaction that changes entities: the
    subscriptions' planner (broker/subscriptions/planner.py). Pure and synchronous, so the
    SQLite writer thread and PostgreSQL's transaction call it alike.

    Per transaction, before COMMIT: read the subscriptions version (a counter bumped in the
    transaction of every subscription create/update/delete); if `stale(version)`, read every
    tenant's subscription rows and `load` them; then `plan` with the entities written and store
    what it returns (notification_changes + notification_outbox rows, see outbox.py). If plan
    raises, the transaction fails as a whole: a write is never acknowledged without the
    notifications it owes."""

    def stale(self, version: int) -> bool:
        """Whether the subscriptions this observer holds are older than `version`."""
        ...

    def load(self, version: int, subscriptions: Sequence[SubscriptionRow]) -> None:
        """Take these subscriptions (every tenant's) as those of `version`."""
        ...

    def plan(self, writes: Sequence[EntityWrite], now: float) -> PlannedWrite | None:
        """The notifications these writes owe (None: none), `now` in epoch seconds."""
        ...


class Store(Protocol):
    """A storage engine. Tenant "" is the default tenant; every other tenant is created by its
    first write and isolated from the rest."""

    async def open(self) -> None:
        """Connect, run pending migrations (unless disabled) and get ready to serve."""

    async def close(self) -> None:
        """Finish in-flight writes and release every resource; idempotent."""

    async def healthy(self) -> bool:
        """Whether the engine can serve a read right now."""

    # -- tenants ---------------------------------------------------------------------------
    async def tenant_exists(self, tenant: str) -> bool:
        """Whether a tenant has been created (the default tenant always exists)."""

    # -- entities --------------------------------------------------------------------------
    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        """The entity with this id, or None."""

    async def get_entities(self, tenant: str, entity_ids: Sequence[str]) -> list[Entity]:
        """The entities with these ids that exist, in no particular order."""

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        """The entities matching a query, in a stable order (oldest first), one page of them."""

    async def apply(self, tenant: str, entity_id: str, mutation: Mutation[T]) -> T:
        """Run `mutation` on the stored entity in one transaction and commit before returning.

        Creates the tenant on its first write. Returns the mutation's result. If the mutation
        raises, nothing is written and the exception propagates.
        """

    async def apply_many(
        self, tenant: str, changes: Sequence[tuple[str, Mutation[Any]]]
    ) -> list[Any]:
        """Apply several mutations, each atomic on its own (one failing leaves the others).

        Returns, per change and in order, the mutation's result or the exception it raised.
        Engines should commit the whole group together (one fsync) for throughput.
        """

    # -- discovery (clauses 5.7.5-5.7.10) --------------------------------------------------
    # Answered from the derived rows with indexed aggregates, never by loading entities.
    # Attributes are top-level attribute names only (no sub-attributes); names are IRIs.
    async def entity_types(self, tenant: str) -> list[str]:
        """The distinct type IRIs of the tenant's entities, sorted (EntityTypeList)."""

    async def describe_types(self, tenant: str,
                             types: Sequence[str] | None = None) -> list[TypeSummary]:
        """Per entity type (these, or all), its entity count and the attributes its entities
        have (EntityType, EntityTypeInfo); types without entities are left out. Sorted."""

    async def attribute_names(self, tenant: str) -> list[str]:
        """The distinct attribute IRIs of the tenant's entities, sorted (AttributeList)."""

    async def describe_attributes(self, tenant: str,
                                  names: Sequence[str] | None = None) -> list[AttributeSummary]:
        """Per attribute name (these, or all): instance count, kinds and the entity types
        having it (Attribute); names no entity has are left out. Sorted by name."""

    # -- JSON-LD contexts (clause 5.13) ----------------------------------------------------
    async def put_context(self, ctx: StoredContext) -> None:
        """Store or replace a context by id."""

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A stored context by id (the id is also accepted as its URL)."""

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        """Every stored context, optionally of one kind."""

    async def delete_context(self, context_id: str) -> bool:
        """Delete a stored context; False if there was none."""

    async def touch_context(self, context_id: str, when: str) -> None:
        """Record a use of a stored context (lastUsedAt, numberOfHits); best effort."""

    # -- subscriptions (clauses 5.8, 5.11) and their outbox --------------------------------
    # Records are opaque JSON to the engine; ids are unique per tenant. Every create, update
    # and delete bumps the subscriptions version in its transaction (WriteObserver).
    def observe(self, observer: WriteObserver) -> None:
        """Call `observer` in every entity write transaction from now on (before open())."""

    @property
    def outbox(self) -> Outbox:
        """The notification outbox (broker/subscriptions/outbox.py) on this store's tables."""

    async def create_subscription(self, tenant: str, sub_id: str,
                                  record: dict[str, Any]) -> bool:
        """Store a new subscription; False (nothing written) if the id exists in the tenant.
        Creates the tenant on its first write."""

    async def get_subscription(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        """One subscription, or None."""

    async def list_subscriptions(self, tenant: str, limit: int,
                                 offset: int) -> tuple[list[SubscriptionRow], int]:
        """A page of the tenant's subscriptions, oldest first, and how many there are."""

    async def update_subscription(self, tenant: str, sub_id: str,
                                  edit: SubscriptionEdit) -> dict[str, Any] | None:
        """Replace a subscription's record with edit(record) in one transaction; the new
        record, or None if there is no such subscription."""

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        """Delete a subscription, its delivery state and its outbox rows (pending and failed);
        False if there was none."""

    async def subscriptions(self) -> tuple[int, list[SubscriptionRow]]:
        """Every tenant's subscriptions, with the version they are of."""

    async def subscriptions_version(self) -> int:
        """The version of the subscriptions: it changes with every create, update or delete
        of one (not with their delivery state), so a reader can keep what it read before."""

    async def enqueue_periodic(self, tenant: str, sub_id: str, expected_last: float | None,
                               now: float, planned: PlannedWrite | None) -> bool:
        """Record a periodic subscription's tick: if its periodic_last is still
        `expected_last` (compare and set: one replica wins a tick), set it to `now` and insert
        `planned` (None: nothing matched this time); False if another process took the tick
        or the subscription is gone."""


@dataclass(frozen=True)
class EntitySelector:
    """One EntitySelector of a Query (clause 5.2.33): every field given must hold."""

    id: str | None = None
    id_pattern: str | None = None
    types: Any = None  # broker.query.typeexpr.TypeExpr, names expanded


@dataclass(frozen=True)
class EntityQuery:
    """A compiled entity query (clause 5.7.2): every name already expanded to an IRI.

    Engines translate it into their SQL; `geo` gets a spatial-index prefilter in SQL and an
    exact check (broker.query.geo.geo_matches) on the candidates only.
    """

    types: Any = None  # broker.query.typeexpr.TypeExpr
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    attrs: frozenset[str] | None = None  # entities having at least one of these
    q: Any = None  # broker.query.qlang node, names expanded
    scope_q: Any = None  # broker.query.scopeq node (clause 4.19): entity_scopes rows
    # POST /entityOperations/query: entities matching any of these (beside the fields above).
    selectors: tuple[EntitySelector, ...] | None = None
    geo: Any = None  # broker.query.geo.GeoQuery, geoproperty expanded
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass(frozen=True)
class QueryResult:
    entities: list[Entity]
    total: int | None = None  # when count was asked for


@dataclass(frozen=True)
class AttributeSummary:
    """What discovery tells of one attribute name (clause 5.2.28 Attribute)."""

    name: str  # the attribute IRI
    # attributeCount: attribute instances (each datasetId counts) with this name; None where
    # not counted (the attributes of a TypeSummary)
    count: int | None
    kinds: tuple[str, ...]  # attributeTypes: "Property", "Relationship"..., sorted
    types: tuple[str, ...] = ()  # typeNames: IRIs of entity types having it, sorted


@dataclass(frozen=True)
class TypeSummary:
    """What discovery tells of one entity type (clauses 5.2.25 EntityType, 5.2.26
    EntityTypeInfo): `attributes` are those its entities have, with the kinds seen in them
    (their `count` None and `types` empty)."""

    type: str  # the type IRI
    entity_count: int
    attributes: tuple[AttributeSummary, ...]
