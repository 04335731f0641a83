"""Subscriptions (clause 5.2.12) and context source registrations (5.2.9), as clients send them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.attributes import Uri


class _Open(BaseModel):
    # Members added by later spec versions or by the broker are kept, not refused.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EntitySelector(_Open):
    """Which entities (clause 5.2.33): a type, optionally an id or an id pattern."""

    type: str
    id: Uri | None = None
    idPattern: str | None = None


class GeoQuery(_Open):
    """A geo-query (clause 5.2.13)."""

    geometry: str
    coordinates: Any
    georel: str
    geoproperty: str | None = None


class Endpoint(_Open):
    """Where notifications go (clause 5.2.15): HTTP(S) or MQTT."""

    uri: Uri
    accept: Literal["application/json", "application/ld+json",
                    "application/geo+json"] | None = None
    receiverInfo: list[dict[str, str]] | None = None
    notifierInfo: list[dict[str, str]] | None = None


class NotificationParams(_Open):
    """How to notify (clause 5.2.14)."""

    endpoint: Endpoint
    attributes: list[str] | None = None
    format: Literal["normalized", "concise", "keyValues"] | None = None


class Subscription(_Open):
    """A subscription as created by POST /subscriptions (clause 5.2.12)."""

    id: Uri | None = None
    type: Literal["Subscription"] = "Subscription"
    subscriptionName: str | None = None
    description: str | None = None
    entities: list[EntitySelector] | None = None
    watchedAttributes: list[str] | None = None
    notificationTrigger: list[str] | None = None
    timeInterval: float | None = Field(default=None, gt=0)
    q: str | None = None
    geoQ: GeoQuery | None = None
    scopeQ: str | None = None
    isActive: bool | None = None
    notification: NotificationParams
    expiresAt: str | None = None
    throttling: float | None = Field(default=None, ge=0)
    lang: str | None = None
    context: Any = Field(default=None, alias="@context")

    @model_validator(mode="after")
    def _what(self) -> Subscription:
        # Clause 5.2.12: entities or watchedAttributes (or both) must be given, and
        # timeInterval excludes watchedAttributes.
        if not self.entities and not self.watchedAttributes:
            raise ValueError("a subscription needs entities or watchedAttributes")
        if self.timeInterval is not None and self.watchedAttributes:
            raise ValueError("timeInterval and watchedAttributes exclude each other")
        return self

    def body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class RegistrationInfo(_Open):
    """What a context source offers (clause 5.2.10)."""

    entities: list[EntitySelector] | None = None
    propertyNames: list[str] | None = None
    relationshipNames: list[str] | None = None


class TimeInterval(_Open):
    startAt: str
    endAt: str | None = None


class CSourceRegistration(_Open):
    """A context source registration (clause 5.2.9)."""

    id: Uri | None = None
    type: Literal["ContextSourceRegistration"] = "ContextSourceRegistration"
    registrationName: str | None = None
    description: str | None = None
    information: list[RegistrationInfo] = Field(min_length=1)
    endpoint: Uri
    observationInterval: TimeInterval | None = None
    managementInterval: TimeInterval | None = None
    location: dict[str, Any] | None = None
    tenant: str | None = None
    mode: Literal["inclusive", "exclusive", "redirect", "auxiliary"] | None = None
    operations: list[str] | None = None
    expiresAt: str | None = None
    contextSourceInfo: list[dict[str, str]] | None = None
    context: Any = Field(default=None, alias="@context")

    def body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
