"""The semantics of every entity change (clauses 5.6.2-5.6.5, 5.6.17-5.6.19). Pure.

Each function takes the stored entity and returns a new one; inputs are never changed in place
(the store may still hold references to them): every container on a changed path is copied and
every changed instance is a new dict. Instances are matched by datasetId; no datasetId is the
default instance (clause 4.5.5). An instance that is kept keeps its createdAt; whatever changes,
and the entity, get modifiedAt = now. Fragments come from broker.entities.parse, deletions
included (kinds.is_deletion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.entities.kinds import (
    NULL,
    RELATIONSHIPS,
    UNITLESS,
    VALUE_MEMBER,
    VALUE_MEMBERS,
    is_deletion,
)
from broker.entities.parse import Fragment, Instance
from broker.entities.values import Check, check_value
from broker.errors import BadRequestData, ResourceNotFound

Entity = dict[str, Any]


@dataclass(frozen=True)
class NotUpdated:
    attr: str  # expanded attribute IRI
    reason: str


@dataclass
class UpdateResult:
    """Which attributes changed and which did not, and why (clause 5.2.18)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[NotUpdated] = field(default_factory=list)


# -- small pieces ------------------------------------------------------------------------------

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


def _add_types(entity: Entity, types: list[str] | None) -> bool:
    missing = [t for t in types or () if t not in entity["type"]]
    if missing:
        entity["type"] = [*entity["type"], *missing]
    return bool(missing)


def _instance_of(entity: Entity, iri: str, dataset_id: str | None) -> tuple[list[Instance], int]:
    instances = entity["attrs"].get(iri)
    index = None if instances is None else _find(instances, dataset_id)
    if instances is None or index is None:
        which = f" with datasetId {dataset_id}" if dataset_id else ""
        raise ResourceNotFound(f"Entity {entity['id']} has no attribute instance{which} "
                               f"for {iri}")
    return list(instances), index


def _store(entity: Entity, iri: str, instances: list[Instance]) -> None:
    """Set an attribute's instances; an attribute left with none is gone."""
    if instances:
        entity["attrs"][iri] = instances
    else:
        entity["attrs"].pop(iri, None)


# -- merge-patch of values (clause 5.5.12) ----------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch with the NGSI-LD Null as the deletion marker: objects merge
    key by key, urn:ngsi-ld:null removes a key, anything else (arrays too) replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value == NULL:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _merge_language_map(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old) if isinstance(old, dict) else {}
    for tag, text in new.items():
        if text == NULL:
            merged.pop(tag, None)  # clause 4.5.18: deletes that language
        else:
            merged[tag] = text
    return merged


# How a merge combines an old value member with a new one; others are replaced.
_MERGE_VALUE: dict[str, Callable[[Any, Any], Any]] = {
    "value": merge_patch,  # Property: compound values merge (5.5.12); a geometry is no dict
    "json": merge_patch,   # JsonProperty: the same, on raw JSON
    "languageMap": _merge_language_map,
}


def _merge_value(kind: str, member: str, old: Any, new: Any) -> Any:
    if kind == "GeoProperty":
        return new  # a geometry is replaced whole
    combine = _MERGE_VALUE.get(member)
    return combine(old, new) if combine else new


def _fresh(patch: Instance) -> Instance | None:
    """A merge-patch instance added where nothing was: deletion markers dropped."""
    return _merge_instance({"type": patch["type"]}, patch, patch["modifiedAt"], fresh=True)


def _merge_instance(old: Instance, patch: Instance, now: str, *,
                    fresh: bool = False) -> Instance | None:
    """`patch` merged into `old` (clause 5.5.12); None if nothing valid is left."""
    kind = patch["type"]
    if kind != old["type"]:  # another kind: a new instance in the old one's place
        new = _fresh(patch)
        return None if new is None else _renewed(new, old)
    merged = dict(old)
    for key, value in patch.items():
        if key in ("type", "createdAt", "modifiedAt"):
            continue
        if value is None:
            merged.pop(key, None)
        elif key in VALUE_MEMBERS:
            merged[key] = _merge_value(kind, key, old.get(key), value)
        elif ":" in key:  # a sub-attribute: merged the same way
            sub = (_merge_instance(old[key], value, now) if isinstance(old.get(key), dict)
                   else _fresh(value))
            if sub is None:
                merged.pop(key, None)
            else:
                merged[key] = sub
        else:
            merged[key] = value
    if kind == "LanguageProperty" and not merged.get("languageMap"):
        return None  # every language deleted
    if fresh:
        merged["createdAt"] = patch["createdAt"]
    merged["modifiedAt"] = now
    return merged


# -- fragments: append, update, merge ---------------------------------------------------------

# What happens to one instance of a fragment, given whether its attribute exists, whether an
# instance with its datasetId exists, and whether it is a deletion: an action, or the reason
# it is not applied (reported in the UpdateResult, clause 5.2.18).
Rule = Callable[[bool, bool, bool], str]
_ADD, _REPLACE, _DELETE, _SKIP = "add", "replace", "delete", "skip"
_MERGE, _MERGE_ADD = "merge", "merge-add"  # merge-patch: deletion markers applied, not kept
_NO_ATTRIBUTE = "attribute does not exist"
_NO_INSTANCE = "no instance with that datasetId to update"
_KEPT = "attribute exists and noOverwrite was requested"


def _append_rule(attr: bool, inst: bool, deletion: bool) -> str:
    if deletion:
        return _DELETE if inst else _SKIP
    return _REPLACE if inst else _ADD


def _append_keep_rule(attr: bool, inst: bool, deletion: bool) -> str:
    return _KEPT if inst else _append_rule(attr, inst, deletion)


def _update_rule(attr: bool, inst: bool, deletion: bool) -> str:
    if inst:
        return _DELETE if deletion else _REPLACE
    return _NO_INSTANCE if attr else _NO_ATTRIBUTE


def _merge_rule(attr: bool, inst: bool, deletion: bool) -> str:
    if deletion:
        return _DELETE if inst else _SKIP
    return _MERGE if inst else _MERGE_ADD


def _apply(entity: Entity, fragment: Fragment, now: str,
           rule: Rule) -> tuple[Entity, UpdateResult, bool]:
    new = _copy(entity)
    result = UpdateResult()
    for iri, instances in fragment.attrs.items():
        current = list(new["attrs"].get(iri, ()))
        changed = False
        for inst in instances:
            index = _find(current, inst.get("datasetId"))
            action = rule(bool(current), index is not None, is_deletion(inst))
            if action == _SKIP:
                continue
            if action == _ADD:
                current.append(inst)
            elif action == _MERGE_ADD:
                added = _fresh(inst)
                if added is not None:
                    current.append(added)
            elif action in (_REPLACE, _MERGE, _DELETE):
                assert index is not None
                kept = (None if action == _DELETE
                        else _renewed(inst, current[index]) if action == _REPLACE
                        else _merge_instance(current[index], inst, now))
                if kept is None:
                    del current[index]
                else:
                    current[index] = kept
            else:
                result.not_updated.append(NotUpdated(iri, action))
                continue
            changed = True
        if changed:
            _store(new, iri, current)
            result.updated.append(iri)
    touched = _add_types(new, fragment.types) | bool(result.updated)
    return new, result, touched


def _finish(entity: Entity, new: Entity, touched: bool, now: str) -> Entity:
    if not touched:
        return entity  # nothing changed: the stored entity as it was
    new["modifiedAt"] = now
    return new


def append(entity: Entity, fragment: Fragment, now: str, *,
           no_overwrite: bool) -> tuple[Entity, UpdateResult]:
    """Append attributes (5.6.3): new ones added, existing instances overwritten unless
    noOverwrite; types added, scopes added."""
    new, result, touched = _apply(entity, fragment, now,
                                  _append_keep_rule if no_overwrite else _append_rule)
    if fragment.scope:
        scope = list(dict.fromkeys([*entity.get("scope", ()), *fragment.scope]))
        touched |= scope != entity.get("scope")
        new["scope"] = scope
    return _finish(entity, new, touched, now), result


def update(entity: Entity, fragment: Fragment, now: str) -> tuple[Entity, UpdateResult]:
    """Update attributes (5.6.2): only instances that exist are replaced (or deleted, for a
    fragment parsed with nulls); the others are reported not updated."""
    new, result, touched = _apply(entity, fragment, now, _update_rule)
    if fragment.scope:
        new["scope"] = fragment.scope
        touched = True
    return _finish(entity, new, touched, now), result


def merge(entity: Entity, fragment: Fragment, now: str) -> Entity:
    """Merge-patch an entity (5.6.17, 5.5.12): urn:ngsi-ld:null deletes instances, members,
    sub-attributes and keys of compound values; everything else is merged in."""
    new, _, touched = _apply(entity, fragment, now, _merge_rule)
    if fragment.scope is not None:
        if fragment.scope:
            new["scope"] = fragment.scope
        else:
            new.pop("scope", None)
        touched = True
    return _finish(entity, new, touched, now)


# -- one attribute: partial update, replace, delete --------------------------------------------

def _check_patch(attr_iri: str, kind: str, patch: Instance) -> None:
    """The members of a partial update against the stored kind (parse could not know it)."""
    where = f"Attribute {attr_iri}"
    if patch.get("type", kind) != kind:
        raise BadRequestData(f"{where} is a {kind}, not a {patch['type']}")
    own = VALUE_MEMBER[kind]
    for member in patch.keys() & VALUE_MEMBERS:
        if member != own:
            raise BadRequestData(f"{where} is a {kind}: it has no {member}")
    if "objectType" in patch and kind not in RELATIONSHIPS:
        raise BadRequestData(f"{where} is a {kind}: objectType belongs to relationships")
    if patch.get("unitCode") is not None and kind in UNITLESS:
        raise BadRequestData(f"{where} is a {kind}: it is unitless")
    if own in patch and kind in ("Property", "GeoProperty"):  # the others parse checked
        patch[own] = check_value(kind, patch[own], Check(where))


def partial_update(entity: Entity, attr_iri: str, instance_fragment: Instance,
                   now: str) -> Entity:
    """Partial attribute update (5.6.4, 5.5.8): the given members replace those of the
    instance with the same datasetId; None removes a member; a deletion deletes the instance.
    ResourceNotFound if there is no such instance."""
    instances, index = _instance_of(entity, attr_iri, instance_fragment.get("datasetId"))
    new = _copy(entity)
    if is_deletion(instance_fragment):
        del instances[index]
        _store(new, attr_iri, instances)
        new["modifiedAt"] = now
        return new
    old = instances[index]
    patch = dict(instance_fragment)
    _check_patch(attr_iri, old["type"], patch)
    merged = dict(old)
    for key, value in patch.items():
        if key in ("type", "createdAt"):
            continue
        if value is None:
            merged.pop(key, None)
        elif ":" in key and isinstance(old.get(key), dict):
            merged[key] = _renewed(value, old[key])  # a sub-attribute is replaced whole
        else:
            merged[key] = value
    merged["modifiedAt"] = now
    instances[index] = merged
    _store(new, attr_iri, instances)
    new["modifiedAt"] = now
    return new


def replace_attribute(entity: Entity, attr_iri: str, instances: list[Instance],
                      now: str) -> Entity:
    """Replace an attribute (5.6.19): each given instance replaces the one of its datasetId
    (or is added); ResourceNotFound if the entity has no such attribute."""
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
    _store(new, attr_iri, current)
    new["modifiedAt"] = now
    return new


def delete_attribute(entity: Entity, attr_iri: str, *, dataset_id: str | None,
                     delete_all: bool, now: str) -> Entity:
    """Delete an attribute (5.6.5): the instance of `dataset_id` (the default instance if
    None), or every instance with deleteAll. ResourceNotFound if there is none."""
    new = _copy(entity)
    if delete_all:
        if attr_iri not in new["attrs"]:
            raise ResourceNotFound(f"Entity {entity['id']} has no attribute {attr_iri}")
        del new["attrs"][attr_iri]
    else:
        instances, index = _instance_of(entity, attr_iri, dataset_id)
        del instances[index]
        _store(new, attr_iri, instances)
    new["modifiedAt"] = now
    return new


def replace(entity: Entity, replacement: Entity, now: str) -> Entity:
    """Replace an entity (5.6.18): same id and creation time, everything else new."""
    return {**replacement, "id": entity["id"], "createdAt": entity["createdAt"],
            "modifiedAt": now}
