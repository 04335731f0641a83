"""The NGSI-LD Entity (clause 5.2.4) in normalized form, and the batch result (5.2.16-5.2.17)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from models.attributes import Attribute, Uri
from models.core import ProblemDetails

_ATTRIBUTE: TypeAdapter[Any] = TypeAdapter(Attribute | list[Attribute])
ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "@context"})


class Entity(BaseModel):
    """An entity in normalized form: every member other than id, type, scope and the system
    members is an attribute (one instance, or a list of instances with datasetIds)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Uri
    type: str | list[str]
    scope: str | list[str] | None = None
    createdAt: str | None = None
    modifiedAt: str | None = None
    context: Any = Field(default=None, alias="@context")

    @model_validator(mode="after")
    def _attributes(self) -> Entity:
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, (dict, list)):
                raise ValueError(f"{name}: in normalized form an attribute is an object")
            (self.model_extra or {})[name] = _ATTRIBUTE.validate_python(value)
        return self

    @property
    def attributes(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def normalized(self) -> dict[str, Any]:
        """The entity as JSON for POST /entities (with @context if one was set)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class BatchEntityError(BaseModel):
    """Why one entity of a batch failed (clause 5.2.17)."""

    entityId: str
    error: ProblemDetails


class BatchOperationResult(BaseModel):
    """The 207 answer of a batch operation (clause 5.2.16)."""

    success: list[str]
    errors: list[BatchEntityError]
