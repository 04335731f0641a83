"""Pydantic models of the NGSI-LD core data types that the API returns (clause 5.2).

They document the wire shapes and let clients and tests validate what the broker answers; the
broker's hot paths build plain dicts with the same shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ProblemDetails(BaseModel):
    """An error (RFC 7807, clause 5.5.2)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(pattern=r"^https://uri\.etsi\.org/ngsi-ld/errors/[A-Za-z]+$")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None


class NotUpdatedDetails(BaseModel):
    """Why one attribute was not updated (clause 5.2.19)."""

    attributeName: str
    reason: str


class UpdateResult(BaseModel):
    """The outcome of an update or append that was partly refused (clause 5.2.18)."""

    updated: list[str]
    notUpdated: list[NotUpdatedDetails]


class ContextInfo(BaseModel):
    """The metadata of a stored @context (clause 5.13.3, details=true)."""

    URL: str
    localId: str
    kind: Literal["Hosted", "Cached", "ImplicitlyCreated"]
    createdAt: str
    lastUsage: str | None = None
    numberOfHits: int | None = None
