"""Subscription payloads: parse, validate, render, persist and patch (clauses 5.2.12-5.2.15,
5.8.1, 5.8.2). Pure."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.ld.netpolicy import AddressPolicy
from broker.ld.termmap import CORE_TERMS, compile_context
from broker.query.qlang import And, Compare
from broker.query.scopeq import Pattern
from broker.query.typeexpr import AllOf, AnyOf, TypeName
from broker.subscriptions.endpoint import check_endpoint_address, endpoint_key, mqtt_topic
from broker.subscriptions.subscription import (
    DEFAULT_TRIGGERS,
    DeliveryState,
    from_record,
    parse_subscription,
    patch_subscription,
    render_subscription,
    status_of,
    to_record,
)

NOW = "2026-12-01T10:00:00.000Z"
LATER = "2026-12-02T10:00:00.000Z"
EX = "https://example.org/city/"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
TERMS = compile_context([{"Streetlight": EX + "Streetlight", "powerState": EX + "powerState",
                          "OffStreetParking": EX + "OffStreetParking",
                          "availableSpotNumber": EX + "availableSpotNumber",
                          "ex": {"@id": EX, "@prefix": True}}])


def streetlight_faults() -> dict[str, Any]:
    """The dispatch centre: every Craiova streetlight that reports a fault."""
    return {
        "id": "urn:ngsi-ld:Subscription:streetlight-faults",
        "type": "Subscription",
        "subscriptionName": "Streetlight faults",
        "entities": [{"type": "Streetlight"}],
        "watchedAttributes": ["powerState"],
        "q": 'powerState=="fault"',
        "scopeQ": "/Craiova/#",
        "notification": {
            "attributes": ["powerState", "location"],
            "format": "normalized",
            "endpoint": {"uri": "https://dispatch.example.org/ngsi-ld/notify",
                         "accept": "application/json",
                         "receiverInfo": [{"key": "Authorization", "value": "Bearer t0k3n"}]},
        },
        "throttling": 10,
    }


def free_parking() -> dict[str, Any]:
    """The parking app: free spots near the centre, over MQTT."""
    return {
        "type": "Subscription",
        "entities": [{"type": "OffStreetParking", "idPattern": "^urn:ngsi-ld:OffStreetParking:"}],
        "notificationTrigger": ["entityCreated", "attributeUpdated", "entityDeleted"],
        "q": "availableSpotNumber>0",
        "geoQ": {"georel": "near;maxDistance==1500", "geometry": "Point",
                 "coordinates": [23.7949, 44.3302]},
        "notification": {
            "format": "concise",
            "showChanges": True,
            "endpoint": {"uri": "mqtt://mqtt.example.org:1883/craiova/parking",
                         "notifierInfo": [{"key": "MQTT-Version", "value": "mqtt3.1.1"},
                                          {"key": "MQTT-QoS", "value": "1"}]},
        },
        "expiresAt": "2027-06-30T23:59:59Z",
    }


def test_streetlight_faults_expanded() -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW, tenant="craiova")
    assert sub.id == "urn:ngsi-ld:Subscription:streetlight-faults"
    assert sub.entities[0].types == TypeName(EX + "Streetlight")
    assert sub.watched_attributes == (EX + "powerState",)
    assert sub.triggers == DEFAULT_TRIGGERS
    assert isinstance(sub.q, Compare) and sub.q.path.attr == EX + "powerState"
    assert sub.scope_q == Pattern(("Craiova",), subtree=True)
    assert sub.throttling == 10.0
    params = sub.notification
    assert params.attributes == (EX + "powerState", "https://uri.etsi.org/ngsi-ld/location")
    assert params.endpoint.receiver_info == (("Authorization", "Bearer t0k3n"),)
    assert sub.tenant == "craiova" and sub.created_at == NOW == sub.modified_at
    assert sub.is_active and status_of(sub, NOW) == "active"


def test_free_parking_mqtt() -> None:
    sub = parse_subscription(free_parking(), TERMS, NOW)
    assert sub.id.startswith("urn:ngsi-ld:Subscription:")
    assert sub.triggers == ("entityCreated", "attributeUpdated", "entityDeleted")
    assert sub.geo_q is not None and sub.geo_q.max_distance == 1500.0
    assert sub.geo_q.geoproperty == "https://uri.etsi.org/ngsi-ld/location"
    endpoint = sub.notification.endpoint
    assert endpoint.is_mqtt and endpoint.mqtt_qos == 1 and endpoint.mqtt_version == "mqtt3.1.1"
    assert mqtt_topic(endpoint.uri) == "craiova/parking"
    assert endpoint.key == "mqtt://mqtt.example.org:1883"
    assert sub.expires_at == "2027-06-30T23:59:59.000Z"
    assert sub.notification.show_changes and sub.notification.format == "concise"


def test_type_expressions_and_ids() -> None:
    body = streetlight_faults()
    body["entities"] = [{"type": "(Streetlight,ex:Lamp);ex:Public"},
                        {"type": "Streetlight", "id": "urn:ngsi-ld:Streetlight:craiova-001"}]
    sub = parse_subscription(body, TERMS, NOW)
    assert sub.entities[0].types == AllOf((AnyOf((TypeName(EX + "Streetlight"),
                                                  TypeName(EX + "Lamp"))),
                                           TypeName(EX + "Public")))
    assert sub.entities[1].id == "urn:ngsi-ld:Streetlight:craiova-001"
    rendered = render_subscription(sub, TERMS, now=NOW)
    assert rendered["entities"][0] == {"type": "(Streetlight,ex:Lamp);ex:Public"}
    assert rendered["entities"][1] == {"type": "Streetlight",
                                       "id": "urn:ngsi-ld:Streetlight:craiova-001"}


def test_periodic_subscription() -> None:
    body = {"type": "Subscription", "entities": [{"type": "Streetlight"}], "timeInterval": 3600,
            "notification": {"endpoint": {"uri": "http://city.example.org/report"}}}
    sub = parse_subscription(body, TERMS, NOW)
    assert sub.periodic and sub.time_interval == 3600.0
    rendered = render_subscription(sub, TERMS, now=NOW)
    assert rendered["timeInterval"] == 3600
    assert rendered["notificationTrigger"] == list(DEFAULT_TRIGGERS)


def test_render_compacts_with_reader_context_and_state() -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW)
    state = DeliveryState(times_sent=3, times_failed=1, last_notification=LATER,
                          last_success=LATER, last_failure=NOW)
    mine = render_subscription(sub, TERMS, now=NOW, state=state, sys_attrs=True)
    assert mine["watchedAttributes"] == ["powerState"]
    assert mine["q"] == 'powerState=="fault"'
    assert mine["status"] == "active"
    assert mine["notification"]["timesSent"] == 3
    assert mine["notification"]["timesFailed"] == 1
    assert mine["notification"]["status"] == "ok"
    assert mine["notification"]["lastSuccess"] == LATER
    assert mine["createdAt"] == NOW
    # A reader without the city's @context sees full IRIs, which expand back to the same.
    core = render_subscription(sub, CORE_TERMS, now=NOW)
    assert core["watchedAttributes"] == [EX + "powerState"]
    assert core["entities"] == [{"type": EX + "Streetlight"}]
    assert core["q"] == f'{EX}powerState=="fault"'
    assert "timesSent" not in core["notification"]


def test_delivery_status() -> None:
    assert DeliveryState().status is None
    assert DeliveryState(1, 0, NOW, NOW, None).status == "ok"
    assert DeliveryState(1, 1, LATER, NOW, LATER).status == "failed"


def test_status_paused_and_expired() -> None:
    body = streetlight_faults() | {"isActive": False, "expiresAt": LATER}
    sub = parse_subscription(body, TERMS, NOW)
    assert status_of(sub, NOW) == "paused"
    assert status_of(sub, "2026-12-03T00:00:00.000Z") == "expired"


@pytest.mark.parametrize("make", [streetlight_faults, free_parking])
def test_record_round_trip(make: Any) -> None:
    sub = parse_subscription(make(), TERMS, NOW, context="https://example.org/ctx.jsonld",
                             tenant="t1")
    record = to_record(sub)
    again = from_record(record, "t1")
    assert again == sub
    assert again.context == "https://example.org/ctx.jsonld"


def test_read_only_members_are_ignored() -> None:
    body = streetlight_faults() | {"status": "expired", "createdAt": "2020-01-01T00:00:00Z"}
    body["notification"] |= {"timesSent": 99, "status": "failed", "lastSuccess": NOW}
    sub = parse_subscription(body, TERMS, NOW)
    assert status_of(sub, NOW) == "active" and sub.created_at == NOW


def _with(path: str, value: Any, base: Any = streetlight_faults) -> dict[str, Any]:
    body = copy.deepcopy(base())
    target = body
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()

BAD: list[tuple[dict[str, Any], str]] = [
    (_with("type", "Subscriptions"), 'type": "Subscription'),
    (_with("notification", _DELETE), "notification is mandatory"),
    (_with("notification.endpoint", _DELETE), "endpoint is mandatory"),
    (_with("notification.endpoint.uri", "not a uri"), "is not a URI"),
    (_with("notification.endpoint.uri", "ftp://example.org/x"), "http, https, mqtt"),
    (_with("notification.endpoint.uri", "mqtt://broker.example.org"), "topic in the path"),
    (_with("notification.endpoint.uri", "mqtt://broker.example.org/city/#"), "wildcard"),
    (_with("notification.endpoint.uri", "https://u:p@example.org/x"), "credentials"),
    (_with("notification.endpoint.uri", "http://a..b/x"), "not a valid name"),
    (_with("notification.endpoint.accept", "text/plain"), "accept is one of"),
    (_with("notification.endpoint.timeout", 0), "milliseconds"),
    (_with("notification.endpoint.receiverInfo", [{"key": "Content-Type", "value": "x"}]),
     "set by the broker"),
    (_with("notification.endpoint.receiverInfo", [{"key": "X-A", "value": "a\r\nX-B: b"}]),
     "line break"),
    (_with("notification.endpoint.receiverInfo", [{"key": "bad header", "value": "v"}]),
     "not a valid header name"),
    (_with("notification.endpoint.receiverInfo", {"key": "X", "value": "v"}), "a list"),
    (_with("notification.endpoint.notifierInfo", [{"key": "MQTT-QoS", "value": "1"}]),
     "mqtt(s) endpoints only"),
    (_with("notification.endpoint.notifierInfo", [{"key": "MQTT-QoS", "value": "2"}],
           free_parking), "QoS 2"),
    (_with("notification.endpoint.notifierInfo", [{"key": "MQTT-Version", "value": "mqtt4"}],
           free_parking), "MQTT-Version"),
    (_with("notification.format", "compact"), "notification.format"),
    (_with("notification.format", "keyValues", free_parking), "showChanges cannot be true"),
    (_with("notification.attributes", []), "non-empty list"),
    (_with("notification.attributes", ["ok", "bad name"]), "Invalid"),
    (_with("notification.sysAttrs", "yes"), "true or false"),
    (_with("notification.pick", ["a"]), "unknown or unsupported"),
    (_with("entities", []), "non-empty list"),
    (_with("entities", [{"id": "urn:x:1"}]), "type is mandatory"),
    (_with("entities", [{"type": "A", "id": "urn:x:1", "idPattern": ".*"}]), "exclude"),
    (_with("entities", [{"type": "A", "idPattern": "("}]), "not a regular expression"),
    (_with("entities", [{"type": "A", "id": "nope"}]), "is not a URI"),
    (_with("entities", [{"type": "A,"}]), "entities[].type: Type expected"),
    (_with("entities", [{"type": "A", "name": "x"}]), "unknown member"),
    (_with("entities", _DELETE) | {"watchedAttributes": None}, "watchedAttributes"),
    (_with("watchedAttributes", []), "non-empty list"),
    (_with("watchedAttributes", "powerState"), "non-empty list"),
    (_with("notificationTrigger", ["attributeChanged"]), "is not one of"),
    (_with("notificationTrigger", ["entityCreated", "entityCreated"]), "twice"),
    (_with("notificationTrigger", []), "non-empty list"),
    (_with("q", "powerState=="), "q:"),
    (_with("q", ""), "non-empty"),
    (_with("geoQ", {"georel": "near", "geometry": "Point", "coordinates": [1, 2]}),
     "maxDistance"),
    (_with("geoQ", {"georel": "within", "geometry": "Circle", "coordinates": [1, 2]}),
     "geometry"),
    (_with("geoQ", {"georel": "within", "geometry": "Point", "coordinates": [1, 2],
                    "extra": 1}), "unknown member"),
    (_with("scopeQ", "Craiova"), "scopeQ:"),
    (_with("lang", ""), "lang"),
    (_with("throttling", 0), "throttling must be"),
    (_with("throttling", -5), "throttling must be"),
    (_with("throttling", True), "throttling must be"),
    (_with("timeInterval", 60), "exclude each other"),
    (_with("watchedAttributes", _DELETE) | {"timeInterval": 60}, "throttling applies"),
    (_with("expiresAt", "tomorrow"), "ISO 8601"),
    (_with("expiresAt", "2020-01-01T00:00:00Z"), "already passed"),
    (_with("isActive", "true"), "true or false"),
    (_with("id", "subscription-1"), "is not a URI"),
    (_with("watchedAttribute", ["powerState"]), "Unknown Subscription member"),
    (_with("csf", "x"), "not supported by this broker yet"),
    (_with("jsonldContext", "not a url"), "is not a URI"),
    (_with("subscriptionName", 42), "string"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_payloads(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestData) as info:
        parse_subscription(body, TERMS, NOW)
    assert message in info.value.detail


@pytest.mark.parametrize("body", [None, [], "Subscription", 3])
def test_not_an_object(body: Any) -> None:
    with pytest.raises(BadRequestData, match="JSON object"):
        parse_subscription(body, TERMS, NOW)


@pytest.mark.parametrize(("uri", "refused"), [
    ("http://127.0.0.1:8080/notify", True),
    ("http://[::1]/notify", True),
    ("http://169.254.169.254/latest/meta-data", True),
    ("http://10.1.2.3/x", True),
    ("mqtt://192.168.1.10/city/lights", True),
    ("http://0x7f.1/x", True),
    ("http://receiver.example.org/x", False),  # a name: checked at each delivery instead
    ("http://93.184.216.34/x", False),
])
def test_endpoint_address_policy(uri: str, refused: bool) -> None:
    body = _with("notification.endpoint.uri", uri)
    sub = parse_subscription(body, TERMS, NOW)
    if refused:
        with pytest.raises(BadRequestData, match="refused address"):
            check_endpoint_address(sub.notification.endpoint, AddressPolicy())
        check_endpoint_address(sub.notification.endpoint,
                               AddressPolicy(["127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                              "192.168.0.0/16", "169.254.0.0/16"]))
    else:
        check_endpoint_address(sub.notification.endpoint, AddressPolicy())


def test_endpoint_keys() -> None:
    assert endpoint_key("HTTP://Example.org/a") == "http://example.org:80"
    assert endpoint_key("https://example.org:8443/a") == "https://example.org:8443"
    assert endpoint_key("mqtts://u:p@broker.example.org/t") == "mqtts://broker.example.org:8883"
    assert endpoint_key("http://[::1]:9/") == "http://[::1]:9"


# -- PATCH (clause 5.8.2) --------------------------------------------------------------------

def test_patch_replaces_members_and_merges_notification() -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW, tenant="craiova")
    patched = patch_subscription(sub, {"isActive": False, "q": 'powerState=="off"|brightness<5',
                                       "notification": {"format": "keyValues"}}, TERMS, LATER)
    assert not patched.is_active
    assert isinstance(patched.q, type(patched.q)) and patched.q != sub.q
    assert patched.notification.format == "keyValues"
    # The rest of notification is kept: attributes, endpoint.
    assert patched.notification.attributes == sub.notification.attributes
    assert patched.notification.endpoint == sub.notification.endpoint
    assert patched.created_at == NOW and patched.modified_at == LATER
    assert patched.tenant == "craiova" and patched.id == sub.id


def test_patch_replaces_endpoint_whole_and_removes_members() -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW)
    patched = patch_subscription(sub, {
        "throttling": None, "scopeQ": "urn:ngsi-ld:null",
        "notification": {"endpoint": {"uri": "http://new.example.org/n"}, "attributes": None},
    }, TERMS, LATER)
    assert patched.throttling is None and patched.scope_q is None
    assert patched.notification.endpoint.receiver_info == ()
    assert patched.notification.attributes is None


def test_patch_to_periodic_needs_watched_removed() -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW)
    with pytest.raises(BadRequestData, match="exclude each other"):
        patch_subscription(sub, {"timeInterval": 60, "throttling": None}, TERMS, LATER)
    periodic = patch_subscription(sub, {"timeInterval": 60, "throttling": None,
                                        "watchedAttributes": None}, TERMS, LATER)
    assert periodic.periodic and periodic.watched_attributes is None


@pytest.mark.parametrize(("fragment", "message"), [
    ({}, "at least one member"),
    ({"id": "urn:ngsi-ld:Subscription:other"}, "cannot be changed"),
    ({"type": "Entity"}, "Subscription"),
    ({"notification": None}, "cannot be removed"),
    ({"notification": {"endpoint": None}}, "endpoint cannot be removed"),
    ({"entities": None, "watchedAttributes": None}, "entities or watchedAttributes"),
    ({"expiresAt": "2026-11-30T00:00:00Z"}, "already passed"),
    ({"bogus": 1}, "Unknown Subscription member"),
    ([], "JSON object"),
])
def test_bad_patches(fragment: Any, message: str) -> None:
    sub = parse_subscription(streetlight_faults(), TERMS, NOW)
    with pytest.raises(BadRequestData) as info:
        patch_subscription(sub, fragment, TERMS, LATER)
    assert message in info.value.detail


def test_patch_keeps_a_passed_expiry_it_does_not_touch() -> None:
    sub = parse_subscription(streetlight_faults() | {"expiresAt": LATER}, TERMS, NOW)
    late = "2027-01-01T00:00:00.000Z"
    patched = patch_subscription(sub, {"isActive": False}, TERMS, late)
    assert patched.expires_at == LATER and status_of(patched, late) == "expired"


def test_q_with_and_survives_patch_round_trip() -> None:
    sub = parse_subscription(_with("q", 'powerState=="fault";ex:brightness>=10'), TERMS, NOW)
    assert isinstance(sub.q, And)
    same = patch_subscription(sub, {"isActive": True}, CORE_TERMS, LATER)
    assert same.q == sub.q and same.entities == sub.entities


@pytest.mark.parametrize("member", ["geoQ", "q", "entities", "throttling", "notification"])
def test_null_members_are_refused(member: str) -> None:
    with pytest.raises(BadRequestData, match=f"{member} is null"):
        parse_subscription(streetlight_faults() | {member: None}, TERMS, NOW)


# -- round trips over many shapes (hypothesis) -----------------------------------------------

_NAMES = st.sampled_from(["powerState", "brightness", "ex:colour", "location",
                          "https://example.org/other/attr", "name"])
_TYPES = st.sampled_from(["Streetlight", "ex:Lamp", "Streetlight,ex:Lamp",
                          "(Streetlight|ex:Lamp);ex:Public", "https://example.org/T"])
_Q = st.sampled_from(['powerState=="fault"', "brightness>10;powerState",
                      "(brightness<5|brightness>95);!ex:colour", 'ex:colour~="^re"',
                      "brightness==1..5", "location.observedAt>2026-01-01T00:00:00Z"])
_ENDPOINT = st.sampled_from([
    {"uri": "https://r.example.org/n"},
    {"uri": "http://r.example.org:8080/n?x=1", "accept": "application/ld+json",
     "timeout": 1500, "receiverInfo": [{"key": "X-K", "value": "v"}]},
    {"uri": "mqtts://u:p@m.example.org/city/a", "cooldown": 1000,
     "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}]},
])


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "Subscription"}
    periodic = draw(st.booleans())
    if periodic or draw(st.booleans()):
        body["entities"] = [
            {"type": t} | draw(st.sampled_from([{}, {"id": "urn:ngsi-ld:X:1"},
                                                {"idPattern": "^urn:.*:[0-9]+$"}]))
            for t in draw(st.lists(_TYPES, min_size=1, max_size=3))]
    if periodic:
        body["timeInterval"] = draw(st.sampled_from([1, 60, 0.5, 3600]))
    else:
        body["watchedAttributes"] = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            body["notificationTrigger"] = draw(st.lists(
                st.sampled_from(["entityCreated", "entityUpdated", "entityDeleted",
                                 "attributeCreated", "attributeUpdated", "attributeDeleted"]),
                min_size=1, max_size=6, unique=True))
        if draw(st.booleans()):
            body["throttling"] = draw(st.sampled_from([1, 2.5, 600]))
    for member, strategy in (("q", _Q),
                             ("scopeQ", st.sampled_from(["/Craiova/#", "/a/+/b|/c"])),
                             ("lang", st.sampled_from(["ro", "ro,en;q=0.5"])),
                             ("isActive", st.booleans()),
                             ("expiresAt", st.sampled_from(["2030-01-01T00:00:00Z"]))):
        if draw(st.booleans()):
            body[member] = draw(strategy)
    if draw(st.booleans()):
        body["geoQ"] = draw(st.sampled_from([
            {"georel": "near;minDistance==10.5", "geometry": "Point", "coordinates": [23.8, 44.3]},
            {"georel": "within", "geometry": "Polygon", "geoproperty": "ex:area",
             "coordinates": [[[23, 44], [24, 44], [24, 45], [23, 44]]]},
        ]))
    fmt = draw(st.sampled_from(["normalized", "concise", "keyValues"]))
    notification: dict[str, Any] = {"format": fmt, "endpoint": draw(_ENDPOINT),
                                    "sysAttrs": draw(st.booleans())}
    if fmt != "keyValues":
        notification["showChanges"] = draw(st.booleans())
    if draw(st.booleans()):
        notification["attributes"] = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
    body["notification"] = notification
    return body


@settings(max_examples=200, deadline=None)
@given(payloads())
def test_every_shape_round_trips(body: dict[str, Any]) -> None:
    sub = parse_subscription(body, TERMS, NOW, tenant="t")
    assert from_record(to_record(sub), "t") == sub
    # Rendered with the writer's context, the payload reads back as the same subscription.
    again = parse_subscription(render_subscription(sub, TERMS, now=NOW), TERMS, NOW,
                               tenant="t", new_id=lambda: "unused")
    assert again == sub
    # A PATCH that changes nothing changes nothing but modifiedAt.
    patched = patch_subscription(sub, {"isActive": sub.is_active}, CORE_TERMS, NOW)
    assert patched == sub


def test_q_may_be_percent_encoded_as_in_a_url() -> None:
    # As the ETSI conformance suite writes it (subscription-...-watchedAttributes-query).
    sub = parse_subscription(_with("q", 'name=="Eiffel%20Tower"'), TERMS, NOW)
    assert isinstance(sub.q, Compare) and sub.q.value == "Eiffel Tower"


def test_percent_in_q_values_survives_round_trips() -> None:
    sub = parse_subscription(_with("q", 'name=="100%25 a%2541"'), TERMS, NOW)
    assert isinstance(sub.q, Compare) and sub.q.value == "100% a%41"
    assert from_record(to_record(sub)) == sub
    assert patch_subscription(sub, {"isActive": True}, TERMS, NOW).q == sub.q
