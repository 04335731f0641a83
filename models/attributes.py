"""Pydantic models of the NGSI-LD attribute kinds in normalized form (clauses 4.5, 5.2.5-5.2.8,
4.5.18-4.5.24), discriminated by "type". Sub-attributes are extra members holding attributes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# RFC 3986 §3: what the broker accepts as an entity id, datasetId or object.
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$"
Uri = Annotated[str, Field(pattern=URI_PATTERN)]
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection")


class _Attribute(BaseModel):
    """Members every kind may carry (clause 4.5.2.2); extra members are sub-attributes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    datasetId: Uri | None = None
    observedAt: str | None = None
    createdAt: str | None = None
    modifiedAt: str | None = None

    @field_validator("observedAt")
    @classmethod
    def _utc(cls, value: str | None) -> str | None:
        if value is not None and "T" not in value:
            raise ValueError("observedAt is an ISO 8601 date-time")
        return value

    def normalized(self) -> dict[str, Any]:
        """The attribute as JSON, sub-attributes included, nothing unset."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Property(_Attribute):
    type: Literal["Property"] = "Property"
    value: Any
    unitCode: str | None = None


class Relationship(_Attribute):
    type: Literal["Relationship"] = "Relationship"
    object: Uri | list[Uri]
    objectType: str | list[str] | None = None


class Geometry(BaseModel):
    """A GeoJSON geometry (RFC 7946 §3.1); coordinates are checked by the broker."""

    model_config = ConfigDict(extra="allow")

    type: Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection"]
    coordinates: Any = None
    geometries: list[Geometry] | None = None


class GeoProperty(_Attribute):
    type: Literal["GeoProperty"] = "GeoProperty"
    value: Geometry


class LanguageProperty(_Attribute):
    type: Literal["LanguageProperty"] = "LanguageProperty"
    languageMap: dict[str, str | list[str]]


class VocabProperty(_Attribute):
    type: Literal["VocabProperty"] = "VocabProperty"
    vocab: str | list[str]


class JsonProperty(_Attribute):
    type: Literal["JsonProperty"] = "JsonProperty"
    json_: Any = Field(alias="json")


class ListProperty(_Attribute):
    type: Literal["ListProperty"] = "ListProperty"
    valueList: list[Any]
    unitCode: str | None = None


class ListRelationship(_Attribute):
    type: Literal["ListRelationship"] = "ListRelationship"
    objectList: list[Uri]
    objectType: str | list[str] | None = None


Attribute = Annotated[
    Property | Relationship | GeoProperty | LanguageProperty | VocabProperty | JsonProperty
    | ListProperty | ListRelationship,
    Field(discriminator="type"),
]
KINDS: dict[str, type[_Attribute]] = {
    "Property": Property, "Relationship": Relationship, "GeoProperty": GeoProperty,
    "LanguageProperty": LanguageProperty, "VocabProperty": VocabProperty,
    "JsonProperty": JsonProperty, "ListProperty": ListProperty,
    "ListRelationship": ListRelationship,
}
