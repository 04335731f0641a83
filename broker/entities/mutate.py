"""The semantics of every entity change (clauses 5.6.2-5.6.5, 5.6.17-5.6.19). Pure.

Each function takes the stored entity and returns a new one; inputs are never changed in place
(the store may still hold references to them), so only the containers on the changed path are
copied. Instances are matched by datasetId: no datasetId is the default instance (clause 4.5.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.entities.kinds import VALUE_MEMBER
from broker.entities.parse import Fragment, Instance, check_value
from broker.errors import BadRequestData, ResourceNotFound

Entity = dict[str, Any]


@dataclass(frozen=True)
class NotUpdated:
    attr: str
    reason: str


@dataclass
class UpdateResult:
    """Which attributes changed and which did not, and why (clause 5.2.18)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[NotUpdated] = field(default_factory=list)


def _copy(entity: Entity) -> Entity:
    return {**entity, "attrs": dict(entity["attrs"])}


def _find(instances: list[Instance], dataset_id: str | None) -> int | None:
    for index, inst in enumerate(instances):
        if inst.get("datasetId") == dataset_id:
            return index
    return None


def _renewed(new: Instance, old: Instance) -> Instance:
    """`new` replacing `old`: the instance keeps its creation time."""
    return {**new, "createdAt": old.get("createdAt", new.get("createdAt"))}


def _touch(entity: Entity, now: str) -> Entity:
    entity["modifiedAt"] = now
    return entity


def _add_types(entity: Entity, types: list[str] | None) -> bool:
    missing = [t for t in types or () if t not in entity["type"]]
    if missing:
        entity["type"] = [*entity["type"], *missing]
    return bool(missing)


# What happens to each instance of a fragment, by operation, given whether its attribute and
# its instance (same datasetId) exist: "add", "replace", or the reason it is not updated.
Rule = Callable[[bool, bool], str]
_APPEND: Rule = lambda attr, inst: "replace" if inst else "add"  # noqa: E731
_APPEND_NO_OVERWRITE: Rule = (  # noqa: E731
    lambda attr, inst: "attribute exists and noOverwrite was requested" if inst else "add")
_UPDATE: Rule = (  # noqa: E731
    lambda attr, inst: "replace" if inst
    else ("no instance with that datasetId to update" if attr else "attribute does not exist"))


def _apply_fragment(entity: Entity, fragment: Fragment, now: str,
                    rule: Rule) -> tuple[Entity, UpdateResult]:
    new = _copy(entity)
    result = UpdateResult()
    for iri, instances in fragment.attrs.items():
        current = list(new["attrs"].get(iri, ()))
        changed = False
        for inst in instances:
            index = _find(current, inst.get("datasetId"))
            action = rule(bool(current), index is not None)
            if action == "add":
                current.append(inst)
            elif action == "replace":
                assert index is not None
                current[index] = _renewed(inst, current[index])
            else:
                result.not_updated.append(NotUpdated(iri, action))
                continue
            changed = True
        if changed:
            new["attrs"][iri] = current
            result.updated.append(iri)
    _add_types(new, fragment.types)
    return _touch(new, now), result


def append(entity: Entity, fragment: Fragment, now: str, *,
           no_overwrite: bool) -> tuple[Entity, UpdateResult]:
    """Append attributes (5.6.3): new ones added, existing ones overwritten unless noOverwrite."""
    new, result = _apply_fragment(entity, fragment, now,
                                  _APPEND_NO_OVERWRITE if no_overwrite else _APPEND)
    if fragment.scope is not None:
        new["scope"] = list(dict.fromkeys([*entity.get("scope", ()), *fragment.scope]))
    return new, result


def update(entity: Entity, fragment: Fragment, now: str) -> tuple[Entity, UpdateResult]:
    """Update attributes (5.6.2): only instances that exist are replaced."""
    new, result = _apply_fragment(entity, fragment, now, _UPDATE)
    if fragment.scope is not None:
        new["scope"] = fragment.scope
    return new, result


def _instance_of(entity: Entity, iri: str, dataset_id: str | None) -> tuple[list[Instance], int]:
    instances = entity["attrs"].get(iri)
    index = None if instances is None else _find(instances, dataset_id)
    if instances is None or index is None:
        which = f" with datasetId {dataset_id}" if dataset_id else ""
        raise ResourceNotFound(f"Entity {entity['id']} has no attribute instance{which} "
                               f"for {iri}")
    return list(instances), index


def _merge_members(old: Instance, patch: Instance, now: str) -> Instance:
    """Members of `patch` over `old`; a sub-attribute patched to None is removed."""
    merged = dict(old)
    for key, value in patch.items():
        if key == "createdAt":
            continue
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(old.get(key), dict) and ":" in key \
                and value.get("type", old[key].get("type")) == old[key].get("type"):
            merged[key] = _merge_members(old[key], value, now)
        else:
            merged[key] = value
    merged["modifiedAt"] = now
    return merged


def partial_update(entity: Entity, attr_iri: str, instance: Instance, now: str) -> Entity:
    """Partial attribute update (5.6.4): patch the members of one existing instance."""
    instances, index = _instance_of(entity, attr_iri, instance.get("datasetId"))
    old = instances[index]
    kind = instance.get("type", old["type"])
    if kind != old["type"]:
        raise BadRequestData(f"Attribute {attr_iri} is a {old['type']}, not a {kind}")
    own = VALUE_MEMBER[kind]
    for member in VALUE_MEMBER.values():
        if member in instance and member != own:
            raise BadRequestData(f"Attribute {attr_iri} is a {kind}: it has no {member}")
    if own in instance:
        check_value(kind, instance[own], f"Attribute {attr_iri}")
    instances[index] = _merge_members(old, instance, now)
    new = _copy(entity)
    new["attrs"][attr_iri] = instances
    return _touch(new, now)


def replace_attribute(entity: Entity, attr_iri: str, instances: list[Instance],
                      now: str) -> Entity:
    """Replace an attribute (5.6.19): each given instance replaces the one of its datasetId."""
    current = list(entity["attrs"].get(attr_iri, ()))
    if not current:
        raise ResourceNotFound(f"Entity {entity['id']} has no attribute {attr_iri}")
    for inst in instances:
        index = _find(current, inst.get("datasetId"))
        if index is None:
            current.append(inst)
        else:
            current[index] = _renewed(inst, current[index])
    new = _copy(entity)
    new["attrs"][attr_iri] = current
    return _touch(new, now)


def delete_attribute(entity: Entity, attr_iri: str, *, dataset_id: str | None,
                     delete_all: bool, now: str) -> Entity:
    """Delete an attribute (5.6.5): one instance, or all of them with deleteAll."""
    new = _copy(entity)
    if delete_all:
        if attr_iri not in new["attrs"]:
            raise ResourceNotFound(f"Entity {entity['id']} has no attribute {attr_iri}")
        del new["attrs"][attr_iri]
        return _touch(new, now)
    instances, index = _instance_of(entity, attr_iri, dataset_id)
    del instances[index]
    if instances:
        new["attrs"][attr_iri] = instances
    else:
        del new["attrs"][attr_iri]
    return _touch(new, now)


def merge(entity: Entity, fragment: Fragment, now: str) -> Entity:
    """Merge-patch an entity (5.6.17): urn:ngsi-ld:null deletes, the rest is merged in."""
    new = _copy(entity)
    for iri in fragment.deletions:
        new["attrs"].pop(iri, None)
    for iri, instances in fragment.attrs.items():
        current = list(new["attrs"].get(iri, ()))
        for inst in instances:
            index = _find(current, inst.get("datasetId"))
            if index is None:
                current.append({k: v for k, v in inst.items() if v is not None})
            elif current[index]["type"] != inst["type"]:
                current[index] = _renewed(inst, current[index])
            else:
                current[index] = _merge_members(current[index], inst, now)
        new["attrs"][iri] = current
    if fragment.scope is not None:
        new["scope"] = fragment.scope
    _add_types(new, fragment.types)
    return _touch(new, now)


def replace(entity: Entity, replacement: Entity, now: str) -> Entity:
    """Replace an entity (5.6.18): same id and creation time, everything else new."""
    return {**replacement, "id": entity["id"], "createdAt": entity["createdAt"],
            "modifiedAt": now}
