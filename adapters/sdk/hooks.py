"""Everything a vendor provides to connect a system to the city's brokers: one subclass of
`Adapter`. Read this file, then docs/vendors.md (a complete example: adapters/sdk/example.py).

The SDK runs the pipeline; a vendor writes only the hooks below:

    source(config) --Raw--> parse(raw) --records--> map(record, pseudonymise) --entities-->
    validate (contracts/) --> batch upsert (POST /ngsi-ld/v1/entityOperations/upsert)
    --> checkpoint after each published batch

- Registration: the package adapters/<name>/ has a module adapter.py whose attribute ADAPTER is
  the class (`adapters.<name>.adapter:ADAPTER`); adapters/registry.py maps the name to it, so
  `cetate adapter run <name>` finds it. Adapters elsewhere: `cetate adapter run module:ATTR`.
- Entities are NGSI-LD normalized (clause 4.5.2: {"type": "Property", "value": ...} members),
  with no "@context": the SDK gives them the adapter's `context` and publishes them as
  application/ld+json. An entity that carries its own "@context" keeps it (an adapter mixing
  two vocabularies, e.g. Streetlighting and Device, sets it per entity).
- Validation: each entity is read as the broker reads it (broker.entities.parse.parse_entity,
  with its @context compiled offline from contracts/ld/) and checked by
  broker.validation.check_entity; failures go to the dead-letter file with the contract's reason.
- Positions: every Raw carries its stream name and a position that grows within the stream; the
  checkpoint holds the last published position per stream, and a restarted source resumes after
  it. Upserts are idempotent, so a batch replayed after a crash doubles nothing.
- Direct identifiers (CNP, CUI, card UID, plate, phone number) reach an entity only through
  `pseudonymise(kind, value)`: HMAC-SHA256 keyed by the adapter's secret, 64 hex digits (the
  contracts' keyedHash). Never in clear, never a plain hash.
- A record that cannot be parsed or mapped raises BadRecord(reason): it is dead-lettered with
  that reason, and the run goes on. Any other exception from parse or map is dead-lettered too
  ("the adapter failed on this record: ..."), its traceback logged: bad data never ends a run.
- A record is published whole or dead-lettered whole (one invalid entity takes its siblings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from adapters.sdk.errors import AdapterError, BadRecord, BrokerUnavailable, ConfigError

__all__ = ["CETATE_CONTEXT", "Adapter", "AdapterError", "BadRecord", "BrokerUnavailable",
           "Config", "ConfigError", "Entity", "Position", "Pseudonymise", "Raw", "Simulator",
           "Source", "WriteBack", "check_adapter"]

CETATE_CONTEXT = "https://cetate.city/ns/context.jsonld"

Config = Mapping[str, Any]  # --config FILE (TOML/JSON), its [<name>] table merged over the top
Entity = dict[str, Any]  # an NGSI-LD entity, normalized form
Position = int | str  # where a raw record sits in its stream; JSON-serialisable, increasing
Pseudonymise = Callable[[str, str], str]  # (kind, value) -> 64 hex digits, e.g. ("plate", ...)


@dataclass(frozen=True)
class Raw:
    """One native record, as the source read it."""

    stream: str  # which source it came from ("lamps", "sensors", "sms.csv")
    position: Position  # the checkpoint resumes after the last published one
    data: Any  # bytes, str, or decoded JSON: what parse() receives
    error: str = ""  # set when the source itself could not decode it (wrong encoding,
    # truncated JSON/XML, short CSV row): dead-lettered with this reason, parse() never sees it


class Source(Protocol):
    """Where raw records come from: adapters.sdk.sources has HTTP polling, webhook, MQTT and
    CSV/JSON/XML files, and `merged` to read several at once."""

    @property
    def total(self) -> int | None:
        """How many records a bulk import holds (its progress bar), None when unknown."""
        ...

    def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        """The raw records after the checkpoint's position of each stream, in order."""
        ...

    def committed(self, checkpoint: Mapping[str, Position]) -> None:
        """Called after each checkpoint is written: a source acknowledging its sender (the
        webhook answers its POSTs) does it now. sources.BaseSource makes it a no-op."""
        ...


class Simulator(Protocol):
    """The vendor's system, simulated: serves its native protocol for demos and tests."""

    async def start(self) -> Config:
        """Start serving; the config members (URLs, topics, paths) the adapter reads it with."""
        ...

    async def stop(self) -> None:
        """Stop serving and release its port or files."""
        ...


@dataclass(frozen=True)
class WriteBack:
    """Changes to send back to the vendor: a broker subscription (POST /ngsi-ld/v1/
    subscriptions) on these types and attributes, notified to a receiver the SDK runs."""

    types: tuple[str, ...]  # entity types, as the adapter's context names them
    attributes: tuple[str, ...] = ()  # watchedAttributes; () = any attribute
    outcome: tuple[str, ...] = ()  # attributes on_entity_change may write back (not watched)


class Adapter:
    """Subclass it, set the class attributes, write the hooks. Instances hold no state the SDK
    relies on: it makes one per run."""

    name: ClassVar[str] = ""  # the registry name: lighting, parking, ticketing, tax...
    tenant: ClassVar[str] = ""  # NGSILD-Tenant of its entities; "" is the default tenant
    context: ClassVar[str | list[str]] = CETATE_CONTEXT  # @context of the entities it maps
    write_back: ClassVar[WriteBack | None] = None  # set it to receive on_entity_change calls
    # "replace": each entity is the whole state (upsert replaces what the broker holds);
    # "update": entities are partial (an event with one attribute), merged into the broker's.
    upsert: ClassVar[str] = "replace"

    def source(self, config: Config) -> Source:
        """Where the native records come from (adapters.sdk.sources), given the config."""
        raise NotImplementedError

    def parse(self, raw: Raw) -> Iterable[Any]:
        """The records in one raw record; raise BadRecord(reason) if it cannot be read."""
        raise NotImplementedError

    def map(self, record: Any, pseudonymise: Pseudonymise) -> Iterable[Entity]:
        """The NGSI-LD entities of one record; raise BadRecord(reason) if it makes none."""
        raise NotImplementedError

    def simulator(self, config: Config) -> Simulator:
        """A simulator of the vendor's system (`cetate adapter simulate`, `run --simulate`)."""
        raise NotImplementedError

    def redact(self, raw: Raw) -> Any:
        """What a dead letter keeps of a refused raw record: mask direct identifiers here
        (adapters.sdk.redact.mask_fields); by default the record as read."""
        return raw.data

    def on_entity_change(self, entity: Entity, config: Config
                         ) -> Awaitable[Mapping[str, Any] | None]:
        """Send a changed entity (normalized, from a notification) back to the vendor; the
        attributes returned (write_back.outcome) are appended to the entity to record it."""
        raise NotImplementedError


def check_adapter(adapter: type[Adapter]) -> None:
    """Refuse an adapter class missing what every run needs (a readable error, not a crash)."""
    if not adapter.name:
        raise ConfigError(f"{adapter.__qualname__} has no name")
    for hook in ("source", "parse", "map"):
        if getattr(adapter, hook) is getattr(Adapter, hook):
            raise ConfigError(f"adapter {adapter.name} does not implement {hook}()")
    if adapter.upsert not in ("replace", "update"):
        raise ConfigError(f"adapter {adapter.name}: upsert is \"replace\" or \"update\"")
    if adapter.write_back is not None and adapter.on_entity_change is Adapter.on_entity_change:
        raise ConfigError(f"adapter {adapter.name} sets write_back but no on_entity_change()")

