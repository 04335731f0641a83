"""From the internal form to the representations of clause 4.5: normalized, concise, keyValues
(simplified), and GeoJSON (clause 4.5.16). Pure; terms are compacted with the requester's
@context (the caller adds "@context" itself).

Concise output is lossless: it reads back through broker.entities.parse as the same entity, so
"type" is only left out, and a value only written bare, where the parser infers them back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.entities.kinds import CORE, DEFAULT_DATASET, METADATA, SYSTEM, VALUE_MEMBER
from broker.entities.lang import pick_language
from broker.entities.parse import (
    Instance,
    infer_kind,
    reads_back_as_geometry,
    reads_back_as_value,
)
from broker.entities.terms import Terms
from broker.errors import BadRequestData

Entity = dict[str, Any]

_SCOPE_NAMES = ("scope", CORE + "scope")


@dataclass(frozen=True)
class RenderOptions:
    """What to render and how (clauses 4.5, 4.15, 4.21, 5.7.1)."""

    format: str = "normalized"  # "normalized" | "concise" | "keyValues"
    sys_attrs: bool = False     # createdAt and modifiedAt on the entity and every instance
    attrs: frozenset[str] | None = None  # attribute IRIs to keep (id and type always stay)
    pick: frozenset[str] | None = None   # members to keep: attribute IRIs, "id", "type"...
    omit: frozenset[str] | None = None   # members to leave out, named as in pick
    lang: str | None = None     # the language filter: LanguageProperties become Properties
    dataset_ids: frozenset[str] | None = None  # instances to keep; "@none": the default one

    def keeps(self, name: str, *aliases: str) -> bool:
        """Whether pick and omit keep the member `name` (or any of its aliases)."""
        names = (name, *aliases)
        if self.pick is not None and not self.pick.intersection(names):
            return False
        return not (self.omit is not None and self.omit.intersection(names))

    def keeps_attribute(self, iri: str) -> bool:
        return (self.attrs is None or iri in self.attrs) and self.keeps(iri)

    def instances(self, instances: list[Instance]) -> list[Instance]:
        if self.dataset_ids is None:
            return instances
        return [i for i in instances
                if i.get("datasetId", DEFAULT_DATASET) in self.dataset_ids]


def _compact_terms(value: Any, terms: Terms) -> Any:
    """Types, objectType and vocab: one stays a string, several a list."""
    if isinstance(value, list):
        names = [terms.compact(t) for t in value]
        return names[0] if len(names) == 1 else names
    return terms.compact(value)


def _compact_member(member: str, value: Any, terms: Terms) -> Any:
    if member == "objectType" or (member == "valueType" and value != "langString"):
        return _compact_terms(value, terms)
    return value


# -- normalized --------------------------------------------------------------------------------

SubRenderer = Callable[[Instance, Terms, RenderOptions], Any]


def _normalized(inst: Instance, terms: Terms, opts: RenderOptions,
                sub: SubRenderer) -> dict[str, Any]:
    """An instance as a normalized object; sub-attributes rendered with `sub`."""
    kind = inst["type"]
    member = VALUE_MEMBER[kind]
    value = inst[member]
    out: dict[str, Any]
    if kind == "LanguageProperty" and opts.lang:
        # Clause 4.15: a Property holding the best-matching string, and the tag it carries.
        tag, text = pick_language(value, opts.lang)
        out = {"type": "Property", "value": text, "lang": tag}
    else:
        out = {"type": kind,
               member: value if kind != "VocabProperty" else _compact_terms(value, terms)}
    for meta in METADATA:
        if meta in inst:
            out[meta] = _compact_member(meta, inst[meta], terms)
    if opts.sys_attrs:
        out.update((s, inst[s]) for s in SYSTEM if s in inst)
    for key, child in inst.items():
        if ":" in key and isinstance(child, dict):  # sub-attributes are keyed by IRIs
            out[terms.compact(key)] = sub(child, terms, opts)
    return out


def _normalized_instance(inst: Instance, terms: Terms, opts: RenderOptions) -> Any:
    return _normalized(inst, terms, opts, _normalized_instance)


# -- concise -----------------------------------------------------------------------------------

def _concise(inst: Instance, terms: Terms, opts: RenderOptions, bare: bool) -> Any:
    out = _normalized(inst, terms, opts, _concise_sub)
    kind = out.pop("type")
    own = VALUE_MEMBER[kind]
    if bare and set(out) == {own}:
        if kind == "Property" and reads_back_as_value(out[own]):
            return out[own]
        if kind == "GeoProperty" and reads_back_as_geometry(out[own]):
            return out[own]
    if infer_kind(out) == kind:
        return out  # the value member names the kind (clause 4.5.2.3 and siblings)
    return {"type": kind, **out}  # e.g. a Property whose value is a geometry


def _concise_sub(inst: Instance, terms: Terms, opts: RenderOptions) -> Any:
    return _concise(inst, terms, opts, bare=True)


# -- keyValues (simplified) --------------------------------------------------------------------

def _vocab(inst: Instance, terms: Terms) -> Any:
    return _compact_terms(inst["vocab"], terms)


# Clause 4.5.4: each kind by its value alone; the kinds whose value would read as a plain
# Property keep their value member as a one-key object.
_SIMPLIFIED: dict[str, Callable[[Instance, Terms], Any]] = {
    "Property": lambda i, t: i["value"],
    "GeoProperty": lambda i, t: i["value"],
    "Relationship": lambda i, t: i["object"],
    "LanguageProperty": lambda i, t: {"languageMap": i["languageMap"]},
    "VocabProperty": _vocab,
    "JsonProperty": lambda i, t: {"json": i["json"]},
    "ListProperty": lambda i, t: i["valueList"],
    "ListRelationship": lambda i, t: i["objectList"],
}


def _simplified(inst: Instance, terms: Terms, opts: RenderOptions) -> Any:
    if inst["type"] == "LanguageProperty" and opts.lang:
        return pick_language(inst["languageMap"], opts.lang)[1]
    return _SIMPLIFIED[inst["type"]](inst, terms)


# -- attributes and entities -------------------------------------------------------------------

def _normalized_attribute(instances: list[Instance], terms: Terms, opts: RenderOptions) -> Any:
    rendered = [_normalized_instance(i, terms, opts) for i in instances]
    return rendered[0] if len(rendered) == 1 else rendered


def _concise_attribute(instances: list[Instance], terms: Terms, opts: RenderOptions) -> Any:
    # Several instances stay objects: a list of bare values reads back as one Property.
    bare = len(instances) == 1
    rendered = [_concise(i, terms, opts, bare) for i in instances]
    return rendered[0] if bare else rendered


def _simplified_attribute(instances: list[Instance], terms: Terms, opts: RenderOptions) -> Any:
    if len(instances) == 1:
        return _simplified(instances[0], terms, opts)
    # Clause 4.5.4: a multi-attribute maps each datasetId ("@none": default) to its value.
    return {"dataset": {i.get("datasetId", DEFAULT_DATASET): _simplified(i, terms, opts)
                        for i in instances}}


_FORMATS: dict[str, Callable[[list[Instance], Terms, RenderOptions], Any]] = {
    "normalized": _normalized_attribute,
    "concise": _concise_attribute,
    "keyValues": _simplified_attribute,
}


def render_attribute(instances: list[Instance], terms: Terms, opts: RenderOptions) -> Any:
    """An attribute's instances (already selected) in the chosen format."""
    try:
        render = _FORMATS[opts.format]
    except KeyError:
        raise BadRequestData(f"Unknown representation {opts.format!r}: use one of "
                             f"{', '.join(_FORMATS)}") from None
    return render(instances, terms, opts)


def render_entity(entity: Entity, terms: Terms, opts: RenderOptions) -> dict[str, Any]:
    """An entity in the chosen format, terms compacted; no "@context" member."""
    if opts.format not in _FORMATS:
        render_attribute([], terms, opts)  # raises the error naming the formats
    out: dict[str, Any] = {}
    if opts.keeps("id"):
        out["id"] = entity["id"]
    if opts.keeps("type"):
        out["type"] = _compact_terms(entity["type"], terms)
    scope = entity.get("scope")
    if scope and opts.keeps(*_SCOPE_NAMES):
        out["scope"] = scope[0] if len(scope) == 1 else scope
    if opts.sys_attrs:
        out.update((s, entity[s]) for s in SYSTEM if s in entity and opts.keeps(s))
    for iri, all_instances in entity["attrs"].items():
        instances = opts.instances(all_instances) if opts.keeps_attribute(iri) else []
        if instances:
            out[terms.compact(iri)] = render_attribute(instances, terms, opts)
    return out


def geometry_of(entity: Entity, geometry_property: str, opts: RenderOptions) -> Any:
    """The GeoJSON geometry of an entity's GeoProperty as `opts` lets it be seen (default
    instance first), or None."""
    if not opts.keeps_attribute(geometry_property):
        return None  # a property the caller may not see gives no geometry either
    instances = opts.instances(entity["attrs"].get(geometry_property, []))
    if not instances:
        return None
    inst = next((i for i in instances if "datasetId" not in i), instances[0])
    return inst["value"] if inst["type"] == "GeoProperty" else None


def render_geojson(entity: Entity, terms: Terms, opts: RenderOptions,
                   geometry_property_iri: str) -> dict[str, Any]:
    """A GeoJSON Feature (clause 4.5.16): the entity's members, "type" included, become its
    properties; its geometry is the chosen GeoProperty's value, or null."""
    properties = render_entity(entity, terms, opts)
    properties.pop("id", None)
    return {"id": entity["id"], "type": "Feature",
            "geometry": geometry_of(entity, geometry_property_iri, opts),
            "properties": properties}
