"""One batch in the making: entities by id, where each came from, the positions it reaches.
Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.sdk.hooks import Entity, Position, Raw


def _merged(old: Entity, new: Entity) -> Entity:
    """Two partial updates of one entity in one batch (upsert options=update): the later
    attribute wins, the others are kept."""
    return {**old, **new}


@dataclass
class Batch:
    update: bool = False  # upsert with options=update: entities are partial, merge them
    entities: dict[str, Entity] = field(default_factory=dict)
    origins: dict[str, Raw] = field(default_factory=dict)
    reached: dict[str, Position] = field(default_factory=dict)
    records: int = 0  # raw records covered (published, or dead-lettered, when flushed)

    def add(self, entity: Entity, raw: Raw) -> None:
        """Two entities with one id in one batch: one upsert of the later (replace) or of both
        merged (update), since a batch upserting an id twice leaves the order to the broker."""
        entity_id = entity["id"]
        old = self.entities.get(entity_id)
        self.entities[entity_id] = _merged(old, entity) if old and self.update else entity
        self.origins[entity_id] = raw

    def reach(self, raw: Raw) -> None:
        self.reached[raw.stream] = raw.position
        self.records += 1

    def __len__(self) -> int:
        return len(self.entities)

    def origin(self, entity_id: str) -> Raw | None:
        return self.origins.get(entity_id)

    def payload(self) -> list[Entity]:
        return list(self.entities.values())
