"""Does a change fire a subscription, and what entity data goes out (clauses 5.2.12, 5.11,
4.5). Pure: entities are built with the entity core's parser, as the store keeps them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.entities.kinds import NULL
from broker.entities.parse import parse_entity
from broker.ld.termmap import compile_context
from broker.subscriptions.match import Change, evaluate, fires, selects
from broker.subscriptions.subscription import Subscription, parse_subscription

T0 = "2026-12-01T10:00:00.000Z"
T1 = "2026-12-01T10:05:00.000Z"
EX = "https://example.org/city/"
TERMS = compile_context([{"Streetlight": EX + "Streetlight", "powerState": EX + "powerState",
                          "brightness": EX + "brightness", "name": EX + "name",
                          "controlledBy": EX + "controlledBy", "Lamp": EX + "Lamp"}])
LIGHT_ID = "urn:ngsi-ld:Streetlight:craiova-001"
ENDPOINT = {"uri": "http://dispatch.example.org/notify"}


def light(**attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": LIGHT_ID, "type": "Streetlight", "scope": "/Craiova/Centru",
        "powerState": {"type": "Property", "value": "on"},
        "brightness": {"type": "Property", "value": 80, "unitCode": "P1"},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [23.7967, 44.3190]}},
        "controlledBy": {"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:c7"},
        "name": {"type": "LanguageProperty", "languageMap": {"ro": "Felinar 1", "en": "Lamp 1"}},
    }
    for key, value in attrs.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def entity(body: dict[str, Any], now: str = T0) -> dict[str, Any]:
    return parse_entity(body, TERMS, now)


def sub(**members: Any) -> Subscription:
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Streetlight"}],
                            "notification": {"endpoint": ENDPOINT}}
    notification = members.pop("notification", {})
    body["notification"] |= notification
    body |= members
    return parse_subscription(body, TERMS, T0)


def created() -> Change:
    return Change.between("", None, entity(light()), T0)


def updated(**attrs: Any) -> Change:
    before = entity(light())
    after = copy.deepcopy(before)
    changed = entity(light(**attrs), T1)
    after["attrs"] = changed["attrs"]
    after["modifiedAt"] = T1
    # Attributes left out of `attrs` keep their instance (and its timestamps) from before.
    for iri, instances in before["attrs"].items():
        if iri in after["attrs"] and not any(EX + k == iri for k in attrs):
            after["attrs"][iri] = instances
    return Change.between("", before, after, T1)


def deleted() -> Change:
    return Change.between("", entity(light()), None, T1)


# -- triggers --------------------------------------------------------------------------------

TRIGGER_CASES = [
    # (notificationTrigger, change, fired trigger or None)
    (None, created, "attributeCreated"),
    (None, lambda: updated(powerState={"type": "Property", "value": "fault"}),
     "attributeUpdated"),
    (None, lambda: updated(brightness=None), None),  # attributeDeleted is not a default
    (None, deleted, None),
    (["entityCreated"], created, "entityCreated"),
    (["entityCreated"], lambda: updated(brightness={"type": "Property", "value": 1}), None),
    (["entityUpdated"], lambda: updated(brightness={"type": "Property", "value": 1}),
     "entityUpdated"),
    (["entityUpdated"], lambda: updated(brightness=None), "entityUpdated"),
    (["entityUpdated"], created, None),
    (["entityDeleted"], deleted, "entityDeleted"),
    (["entityDeleted"], lambda: updated(brightness=None), None),
    (["attributeCreated"], lambda: updated(
        installedAt={"type": "Property", "value": "2020"}), "attributeCreated"),
    (["attributeCreated"], lambda: updated(brightness={"type": "Property", "value": 2}), None),
    (["attributeUpdated"], lambda: updated(brightness={"type": "Property", "value": 2}),
     "attributeUpdated"),
    (["attributeDeleted"], lambda: updated(brightness=None), "attributeDeleted"),
    (["attributeDeleted"], deleted, None),
    (["attributeDeleted", "entityUpdated"], lambda: updated(brightness=None), "entityUpdated"),
]


@pytest.mark.parametrize(("triggers", "make", "expected"), TRIGGER_CASES)
def test_triggers(triggers: list[str] | None, make: Any, expected: str | None) -> None:
    s = sub(notificationTrigger=triggers) if triggers else sub()
    assert fires(s, make()) == expected


def test_watched_attributes_narrow_every_trigger() -> None:
    s = sub(watchedAttributes=["powerState"],
            notificationTrigger=["attributeUpdated", "attributeDeleted", "entityUpdated"])
    assert fires(s, updated(brightness={"type": "Property", "value": 5})) is None
    assert fires(s, updated(brightness=None)) is None
    assert fires(s, updated(powerState={"type": "Property", "value": "fault"})) \
        == "entityUpdated"
    only_attr = sub(watchedAttributes=["powerState"], notificationTrigger=["attributeDeleted"])
    assert fires(only_attr, updated(powerState=None)) == "attributeDeleted"
    watched_creation = sub(watchedAttributes=["powerState"], notificationTrigger=["entityCreated"])
    assert fires(watched_creation, created()) == "entityCreated"
    absent = sub(watchedAttributes=["colour"], notificationTrigger=["entityCreated"])
    assert fires(absent, created()) is None


def test_watched_attributes_without_entities() -> None:
    s = parse_subscription({"type": "Subscription", "watchedAttributes": ["powerState"],
                            "notification": {"endpoint": ENDPOINT}}, TERMS, T0)
    assert fires(s, updated(powerState={"type": "Property", "value": "off"})) \
        == "attributeUpdated"


def test_status_tenant_and_periodic_never_fire() -> None:
    change = created()
    assert fires(sub(isActive=False), change) is None
    expiring = parse_subscription({"type": "Subscription", "entities": [{"type": "Streetlight"}],
                                   "expiresAt": "2026-12-01T10:01:00Z",
                                   "notification": {"endpoint": ENDPOINT}}, TERMS, T0)
    assert fires(expiring, change) is not None
    assert fires(expiring, updated(brightness={"type": "Property", "value": 3})) is None
    other_tenant = Change.between("sibiu", None, entity(light()), T0)
    assert fires(sub(), other_tenant) is None
    periodic = sub(timeInterval=60)
    assert fires(periodic, change) is None


# -- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("members", "expected"), [
    ({"entities": [{"type": "Streetlight"}]}, True),
    ({"entities": [{"type": "Lamp"}]}, False),
    ({"entities": [{"type": "Lamp,Streetlight"}]}, True),
    ({"entities": [{"type": "Lamp;Streetlight"}]}, False),
    ({"entities": [{"type": "Lamp"}, {"type": "Streetlight", "id": LIGHT_ID}]}, True),
    ({"entities": [{"type": "Streetlight", "id": "urn:ngsi-ld:Streetlight:other"}]}, False),
    ({"entities": [{"type": "Streetlight", "idPattern": "craiova-0\\d\\d$"}]}, True),
    ({"entities": [{"type": "Streetlight", "idPattern": "^timisoara"}]}, False),
    ({"q": 'powerState=="on"'}, True),
    ({"q": "brightness>90"}, False),
    ({"q": "brightness>50;powerState"}, True),
    ({"q": "brightness.unitCode==\"P1\""}, True),
    ({"q": "controlledBy==urn:ngsi-ld:Cabinet:c7"}, True),
    ({"q": "!powerState"}, False),
    ({"geoQ": {"georel": "near;maxDistance==500", "geometry": "Point",
               "coordinates": [23.7970, 44.3195]}}, True),
    ({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Point",
               "coordinates": [23.7970, 44.3195]}}, False),
    ({"geoQ": {"georel": "within", "geometry": "Polygon",
               "coordinates": [[[23.7, 44.3], [23.9, 44.3], [23.9, 44.4], [23.7, 44.4],
                                [23.7, 44.3]]]}}, True),
    ({"geoQ": {"georel": "within", "geometry": "Polygon",
               "coordinates": [[[21.1, 45.7], [21.3, 45.7], [21.3, 45.8], [21.1, 45.8],
                                [21.1, 45.7]]]}}, False),  # Timișoara
    ({"geoQ": {"georel": "intersects", "geometry": "Point",
               "coordinates": [23.7967, 44.3190], "geoproperty": "brightness"}}, False),
    ({"scopeQ": "/Craiova/#"}, True),
    ({"scopeQ": "/Craiova/+"}, True),
    ({"scopeQ": "/Sibiu/#"}, False),
    ({"scopeQ": "/Sibiu/#|/Craiova/Centru"}, True),
])
def test_filters(members: dict[str, Any], expected: bool) -> None:
    s = sub(**members)
    assert selects(s, entity(light())) is expected
    assert (fires(s, created()) is not None) is expected


def test_filters_see_the_entity_after_the_change() -> None:
    s = sub(q='powerState=="fault"')
    assert fires(s, updated(powerState={"type": "Property", "value": "fault"})) is not None
    assert fires(s, updated(brightness={"type": "Property", "value": 1})) is None


def test_deletion_is_filtered_on_the_entity_as_it_was() -> None:
    s = sub(q='powerState=="on"', notificationTrigger=["entityDeleted"])
    assert fires(s, deleted()) == "entityDeleted"
    s = sub(q='powerState=="fault"', notificationTrigger=["entityDeleted"])
    assert fires(s, deleted()) is None


# -- data ------------------------------------------------------------------------------------

def data(s: Subscription, change: Change) -> dict[str, Any]:
    match = evaluate(s, change, TERMS)
    assert match is not None
    return match.entity


def test_normalized_entity_all_attributes() -> None:
    out = data(sub(), created())
    assert out["id"] == LIGHT_ID and out["type"] == "Streetlight"
    assert out["scope"] == "/Craiova/Centru"
    assert out["powerState"] == {"type": "Property", "value": "on"}
    assert out["brightness"] == {"type": "Property", "value": 80, "unitCode": "P1"}
    assert out["controlledBy"] == {"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:c7"}
    assert "createdAt" not in out and "createdAt" not in out["powerState"]


def test_attributes_filter_and_sys_attrs() -> None:
    out = data(sub(notification={"attributes": ["powerState"], "sysAttrs": True}), created())
    assert set(out) == {"id", "type", "scope", "createdAt", "modifiedAt", "powerState"}
    assert out["powerState"]["createdAt"] == T0


@pytest.mark.parametrize(("fmt", "power", "brightness"), [
    ("keyValues", "on", 80),
    ("concise", "on", {"value": 80, "unitCode": "P1"}),
    ("normalized", {"type": "Property", "value": "on"},
     {"type": "Property", "value": 80, "unitCode": "P1"}),
])
def test_formats(fmt: str, power: Any, brightness: Any) -> None:
    out = data(sub(notification={"format": fmt}), created())
    assert out["powerState"] == power
    assert out["brightness"] == brightness


def test_lang_picks_one_string() -> None:
    out = data(sub(lang="en", notification={"format": "keyValues"}), created())
    assert out["name"] == "Lamp 1"
    normalized = data(sub(lang="ro"), created())
    assert normalized["name"] == {"type": "Property", "value": "Felinar 1", "lang": "ro"}


def test_show_changes_previous_values() -> None:
    s = sub(notification={"showChanges": True},
            notificationTrigger=["attributeUpdated"])
    change = updated(powerState={"type": "Property", "value": "fault"},
                     controlledBy={"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:c8"},
                     name={"type": "LanguageProperty", "languageMap": {"ro": "Felinar 2"}})
    out = data(s, change)
    assert out["powerState"] == {"type": "Property", "value": "fault", "previousValue": "on"}
    assert out["controlledBy"] == {"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:c8",
                                   "previousObject": "urn:ngsi-ld:Cabinet:c7"}
    assert out["name"]["previousLanguageMap"] == {"ro": "Felinar 1", "en": "Lamp 1"}
    assert "previousValue" not in out["brightness"]  # not part of this change


def test_show_changes_concise_keeps_objects() -> None:
    s = sub(notification={"showChanges": True, "format": "concise"})
    out = data(s, updated(brightness={"type": "Property", "value": 20, "unitCode": "P1"}))
    assert out["brightness"] == {"value": 20, "unitCode": "P1", "previousValue": 80}
    assert out["powerState"] == "on"


def test_show_changes_not_on_creation() -> None:
    out = data(sub(notification={"showChanges": True}), created())
    assert "previousValue" not in out["powerState"]


def test_deleted_attribute_reads_as_null() -> None:
    s = sub(notificationTrigger=["attributeDeleted"], notification={"showChanges": True})
    out = data(s, updated(controlledBy=None))
    assert out["controlledBy"] == {"type": "Relationship", "object": "urn:ngsi-ld:null",
                                   "previousObject": "urn:ngsi-ld:Cabinet:c7"}
    sys = data(sub(notificationTrigger=["attributeDeleted"], notification={"sysAttrs": True}),
               updated(controlledBy=None))
    assert sys["controlledBy"] == {"type": "Relationship", "object": "urn:ngsi-ld:null",
                                   "createdAt": T0, "modifiedAt": T0, "deletedAt": T1}
    lang = data(sub(notificationTrigger=["attributeDeleted"]), updated(name=None))
    assert lang["name"] == {"type": "LanguageProperty", "languageMap": {"@none": NULL}}
    kv = data(sub(notificationTrigger=["attributeDeleted"],
                  notification={"format": "keyValues"}), updated(brightness=None))
    assert kv["brightness"] == "urn:ngsi-ld:null"


def test_entity_deleted_data() -> None:
    # As the ETSI test suite expects: deletedAt, and each selected attribute with its null.
    out = data(sub(notificationTrigger=["entityDeleted"],
                   notification={"attributes": ["powerState", "controlledBy"]}), deleted())
    assert out == {"id": LIGHT_ID, "type": "Streetlight", "scope": "/Craiova/Centru",
                   "deletedAt": T1,
                   "powerState": {"type": "Property", "value": NULL},
                   "controlledBy": {"type": "Relationship", "object": NULL}}
    kv = data(sub(notificationTrigger=["entityDeleted"],
                  notification={"format": "keyValues", "attributes": ["powerState"]}), deleted())
    assert kv == {"id": LIGHT_ID, "type": "Streetlight", "scope": "/Craiova/Centru",
                  "deletedAt": T1, "powerState": NULL}
    shown = data(sub(notificationTrigger=["entityDeleted"],
                     notification={"showChanges": True, "sysAttrs": True,
                                   "attributes": ["brightness"]}), deleted())
    assert shown["createdAt"] == T0 and shown["deletedAt"] == T1
    assert shown["brightness"] == {"type": "Property", "value": NULL, "createdAt": T0,
                                   "modifiedAt": T0, "deletedAt": T1, "previousValue": 80}


def test_other_context_compacts_names() -> None:
    s = sub()
    other = compile_context([{"Felinar": EX + "Streetlight", "stare": EX + "powerState"}])
    match = evaluate(s, created(), other)
    assert match is not None
    assert match.entity["type"] == "Felinar" and "stare" in match.entity


def test_new_type_or_scope_is_an_entity_update() -> None:
    before = entity(light())
    for after in (entity(light(type=["Streetlight", "Lamp"])),
                  entity(light(scope="/Craiova/Nord"))):
        change = Change.between("", before, after, T1)
        assert change.changed == frozenset() and change.retyped
        assert fires(sub(notificationTrigger=["entityUpdated"]), change) == "entityUpdated"
        assert fires(sub(), change) is None  # no attribute was created or updated
        assert fires(sub(notificationTrigger=["entityUpdated"],
                         watchedAttributes=["powerState"]), change) is None
