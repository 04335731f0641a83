"""From the internal form to the representations of clause 4.5: normalized, concise, keyValues,
and GeoJSON (clause 4.5.16). Pure; compaction with the requester's terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.entities.kinds import METADATA, SYSTEM, VALUE_MEMBER
from broker.entities.parse import Instance
from broker.entities.terms import Terms

Entity = dict[str, Any]


@dataclass(frozen=True)
class RenderOptions:
    format: str = "normalized"  # "normalized" | "concise" | "keyValues"
    sys_attrs: bool = False
    pick: frozenset[str] | None = None  # expanded attribute IRIs, plus "id" and "type"
    omit: frozenset[str] | None = None
    lang: str | None = None

    def keeps(self, name: str) -> bool:
        if self.pick is not None and name not in self.pick:
            return False
        return not (self.omit is not None and name in self.omit)


def _languages(lang: str) -> list[str]:
    """The tags of a lang parameter in preference order ("ro,en;q=0.5")."""
    weighted = []
    for index, part in enumerate(lang.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        weighted.append((-weight, index, tag.strip()))
    return [tag for _, _, tag in sorted(weighted) if tag]


def pick_language(language_map: dict[str, Any], lang: str) -> tuple[str, Any]:
    """The (tag, string) of a LanguageProperty best matching `lang` (clause 4.15)."""
    for wanted in _languages(lang):
        for tag, text in language_map.items():
            if tag.lower() == wanted.lower() or tag.lower().startswith(wanted.lower() + "-"):
                return tag, text
    if "@none" in language_map:
        return "@none", language_map["@none"]
    tag = next(iter(language_map))
    return tag, language_map[tag]


def _compact_types(types: Any, terms: Terms) -> Any:
    if isinstance(types, list):
        names = [terms.compact(t) for t in types]
        return names[0] if len(names) == 1 else names
    return terms.compact(types)


def _value(inst: Instance, terms: Terms) -> tuple[str, Any]:
    kind = inst["type"]
    member = VALUE_MEMBER[kind]
    value = inst[member]
    if kind == "VocabProperty":
        value = _compact_types(value, terms)
    return member, value


def _normalized(inst: Instance, terms: Terms, opts: RenderOptions, concise: bool,
                bare: bool = True) -> Any:
    kind = inst["type"]
    member, value = _value(inst, terms)
    out: dict[str, Any] = {"type": kind, member: value}
    if kind == "LanguageProperty" and opts.lang and opts.lang != "*":
        tag, text = pick_language(value, opts.lang)
        out = {"type": "Property", "value": text, "lang": tag}
    for meta in METADATA:
        if meta in inst:
            out[meta] = (_compact_types(inst[meta], terms) if meta == "objectType"
                         else inst[meta])
    if opts.sys_attrs:
        out.update((s, inst[s]) for s in SYSTEM if s in inst)
    for key, sub in inst.items():
        if ":" in key and isinstance(sub, dict):
            out[terms.compact(key)] = _normalized(sub, terms, opts, concise)
    if not concise:
        return out
    if bare and set(out) == {"type", "value"} and kind in ("Property", "GeoProperty"):
        return out["value"]  # a bare geometry reads back as a GeoProperty
    del out["type"]  # concise: the value member names the kind (clause 4.5.x)
    return out


def _key_value(inst: Instance, terms: Terms, opts: RenderOptions) -> Any:
    _, value = _value(inst, terms)
    if inst["type"] == "LanguageProperty" and opts.lang and opts.lang != "*":
        return pick_language(value, opts.lang)[1]
    return value


def _default(instances: list[Instance]) -> Instance:
    return next((i for i in instances if "datasetId" not in i), instances[0])


def _attribute(instances: list[Instance], terms: Terms, opts: RenderOptions) -> Any:
    if opts.format == "keyValues":
        return _key_value(_default(instances), terms, opts)
    concise = opts.format == "concise"
    # Several instances stay objects even in concise form: a list holding a bare value would
    # read back as one Property whose value is that list.
    bare = len(instances) == 1
    rendered = [_normalized(i, terms, opts, concise, bare) for i in instances]
    return rendered[0] if len(rendered) == 1 else rendered


def render_entity(entity: Entity, terms: Terms, opts: RenderOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if opts.keeps("id"):
        out["id"] = entity["id"]
    if opts.keeps("type"):
        out["type"] = _compact_types(entity["type"], terms)
    if "scope" in entity and opts.keeps("scope") and entity["scope"]:
        scope = entity["scope"]
        out["scope"] = scope[0] if len(scope) == 1 else scope
    if opts.sys_attrs and opts.format != "keyValues":
        out.update((s, entity[s]) for s in SYSTEM if s in entity)
    for iri, instances in entity["attrs"].items():
        if instances and opts.keeps(iri):
            out[terms.compact(iri)] = _attribute(instances, terms, opts)
    return out


def geometry_of(entity: Entity, geometry_property: str) -> Any:
    """The GeoJSON geometry of an entity's GeoProperty (default instance), or None."""
    instances = entity["attrs"].get(geometry_property)
    if not instances:
        return None
    inst = _default(instances)
    return inst["value"] if inst["type"] == "GeoProperty" else None


def render_geojson(entity: Entity, terms: Terms, opts: RenderOptions,
                   geometry_property: str) -> dict[str, Any]:
    """A GeoJSON Feature (clause 4.5.16): the entity's members become its properties."""
    properties = render_entity(entity, terms, opts)
    properties.pop("id", None)
    return {"id": entity["id"], "type": "Feature",
            "geometry": geometry_of(entity, geometry_property), "properties": properties}
