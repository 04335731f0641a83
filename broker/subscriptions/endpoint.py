"""The notification endpoint (clause 5.2.15): where and how a notification goes. Pure.

    uri           http(s)://host[:port]/path, or mqtt(s)://[user[:password]@]host[:port]/topic
    accept        application/json (default) or application/ld+json
    timeout       milliseconds a delivery may take (clause 5.2.15; ours is capped)
    cooldown      milliseconds to wait after a failure before the next attempt to this endpoint
    receiverInfo  [{key, value}]: HTTP headers (or MQTT metadata) sent with each notification
    notifierInfo  [{key, value}]: how to talk to the endpoint; MQTT-Version, MQTT-QoS (the MQTT
                  binding)

Addresses: an endpoint whose host is an IP literal in a refused range (loopback, private,
link-local...: broker.ld.netpolicy) is refused here, at subscription time. A host name is checked
on the addresses it resolves to at each delivery (broker.subscriptions.resolve), since DNS can
change after the subscription was accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from broker.entities.values import require_uri
from broker.errors import BadRequestData
from broker.ld.netpolicy import AddressPolicy, parse_address

JSON = "application/json"
JSON_LD = "application/ld+json"
ACCEPTS = (JSON, JSON_LD)
HTTP_SCHEMES = frozenset({"http", "https"})
MQTT_SCHEMES = frozenset({"mqtt", "mqtts"})
DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}

MQTT_VERSION = "MQTT-Version"
MQTT_QOS = "MQTT-QoS"
# Clause 5.2.15 / the MQTT binding: "mqtt3.1.1" or "mqtt5.0" (the default); QoS 0 (default), 1
# or 2. QoS 2 (exactly once) buys nothing over 1 here: receivers drop duplicates by id.
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
DEFAULT_MQTT_VERSION = "mqtt5.0"
MQTT_QOS_LEVELS = (0, 1)

MAX_TIMEOUT_MS = 60_000  # one delivery never holds a worker longer than a minute
MAX_COOLDOWN_MS = 24 * 3600 * 1000
MAX_INFO_ITEMS = 32  # receiverInfo / notifierInfo entries
MAX_INFO_LENGTH = 4096  # characters of one key or value (HTTP servers cap header lines at 8 KiB)
MAX_TOPIC_LENGTH = 1024  # MQTT allows 65535 bytes; topics people use are a few levels deep

# RFC 9110 §5.6.2: a header name is a token.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers the broker writes itself: a receiverInfo entry cannot replace or smuggle them.
RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "transfer-encoding", "host",
    "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-connection", "link",
    "ngsild-tenant", "expect",
})


@dataclass(frozen=True, slots=True)
class Endpoint:
    uri: str
    accept: str = JSON
    timeout_ms: int | None = None
    cooldown_ms: int | None = None
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme.lower()

    @property
    def is_mqtt(self) -> bool:
        return self.scheme in MQTT_SCHEMES

    @property
    def key(self) -> str:
        """The receiver this endpoint names (scheme://host:port): the unit of delivery
        isolation. Every topic of one MQTT broker shares a key, as they share a connection."""
        return endpoint_key(self.uri)

    def notifier(self, key: str) -> str | None:
        return next((v for k, v in self.notifier_info if k == key), None)

    @property
    def mqtt_qos(self) -> int:
        return int(self.notifier(MQTT_QOS) or 0)

    @property
    def mqtt_version(self) -> str:
        return self.notifier(MQTT_VERSION) or DEFAULT_MQTT_VERSION


def endpoint_key(uri: str) -> str:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def mqtt_topic(uri: str) -> str:
    """The topic an mqtt(s) URI publishes to: its path without the leading "/"."""
    return unquote(urlsplit(uri).path)[1:]


def _info(value: Any, what: str, *, header_names: bool) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_INFO_ITEMS:
        raise BadRequestData(f"{what} must be a list of at most {MAX_INFO_ITEMS} "
                             "{{\"key\": ..., \"value\": ...}} objects")
    items: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise BadRequestData(f'{what}: each entry is an object with "key" and "value"')
        key, val = item["key"], item["value"]
        if not isinstance(key, str) or not isinstance(val, str):
            raise BadRequestData(f"{what}: key and value must be strings")
        if not key or len(key) > MAX_INFO_LENGTH or len(val) > MAX_INFO_LENGTH:
            raise BadRequestData(f"{what}: keys are 1 to {MAX_INFO_LENGTH} characters and "
                                 f"values at most {MAX_INFO_LENGTH}")
        if header_names and not _TOKEN_RE.fullmatch(key):
            raise BadRequestData(f"{what}: {key!r} is not a valid header name")
        if header_names and key.lower() in RESERVED_HEADERS:
            raise BadRequestData(f"{what}: the header {key} is set by the broker")
        # A header value with CR, LF or NUL would split the request (RFC 9110 §5.5).
        if any(c in val for c in "\r\n\x00"):
            raise BadRequestData(f"{what}: the value of {key} holds a line break or NUL")
        if any(k.lower() == key.lower() for k, _ in items):
            raise BadRequestData(f"{what}: {key} is given twice")
        items.append((key, val))
    return tuple(items)


def _milliseconds(value: Any, what: str, cap: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= cap:
        raise BadRequestData(f"endpoint.{what} must be a number of milliseconds above 0 and at "
                             f"most {cap}")
    return int(value)


def _check_uri(uri: Any) -> str:
    uri = require_uri(uri, "endpoint.uri")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise BadRequestData(f"endpoint.uri {uri!r} is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in HTTP_SCHEMES | MQTT_SCHEMES:
        raise BadRequestData(f"endpoint.uri {uri!r}: notifications go over http, https, mqtt "
                             "or mqtts")
    if not parts.hostname:
        raise BadRequestData(f"endpoint.uri {uri!r} has no host")
    try:
        parts.hostname.encode("idna")  # what the senders connect with (RFC 5891)
    except UnicodeError:
        raise BadRequestData(f"endpoint.uri {uri!r}: the host is not a valid name") from None
    if "#" in uri:  # urlsplit reads an MQTT "#" wildcard as the start of a fragment
        what = "a published MQTT topic holds no wildcard (+, #)" if scheme in MQTT_SCHEMES \
            else "a fragment is never sent to a receiver"
        raise BadRequestData(f"endpoint.uri {uri!r}: {what}")
    if scheme in MQTT_SCHEMES:
        topic = mqtt_topic(uri)
        if not topic or len(topic) > MAX_TOPIC_LENGTH or parts.query:
            raise BadRequestData(f"endpoint.uri {uri!r}: an MQTT endpoint names its topic in "
                                 "the path, as mqtt://broker:1883/city/streetlights")
        # MQTT 3.1.1 §4.7.1: wildcards are for subscribing, never in a published topic.
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise BadRequestData(f"endpoint.uri {uri!r}: a published MQTT topic holds no "
                                 "wildcard (+, #)")
    elif parts.username is not None:
        raise BadRequestData(f"endpoint.uri {uri!r}: credentials in an http(s) URI are not "
                             "supported; use receiverInfo (e.g. an Authorization header)")
    return uri


def _check_notifier(info: tuple[tuple[str, str], ...], mqtt: bool) -> None:
    for key, value in info:
        if key == MQTT_VERSION and value not in MQTT_VERSIONS:
            raise BadRequestData(f"notifierInfo: MQTT-Version is one of "
                                 f"{', '.join(MQTT_VERSIONS)}, not {value!r}")
        if key == MQTT_QOS and value not in {str(q) for q in MQTT_QOS_LEVELS}:
            raise BadRequestData(f"notifierInfo: MQTT-QoS is 0 or 1 here, not {value!r} "
                                 "(QoS 2 is not supported)")
        if key in (MQTT_VERSION, MQTT_QOS) and not mqtt:
            raise BadRequestData(f"notifierInfo: {key} applies to mqtt(s) endpoints only")


def parse_endpoint(raw: Any) -> Endpoint:
    """An Endpoint from its JSON form; BadRequestData naming the member at fault."""
    if not isinstance(raw, dict):
        raise BadRequestData("notification.endpoint must be an object with a uri")
    unknown = set(raw) - {"uri", "accept", "timeout", "cooldown", "receiverInfo",
                          "notifierInfo"}
    if unknown:
        raise BadRequestData(f"notification.endpoint: unknown member(s) "
                             f"{', '.join(sorted(unknown))}")
    if "uri" not in raw:
        raise BadRequestData("notification.endpoint.uri is mandatory")
    uri = _check_uri(raw["uri"])
    accept = raw.get("accept", JSON)
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept is one of {', '.join(ACCEPTS)}, "
                             f"not {accept!r}")
    mqtt = urlsplit(uri).scheme.lower() in MQTT_SCHEMES
    notifier = _info(raw.get("notifierInfo"), "notifierInfo", header_names=False)
    _check_notifier(notifier, mqtt)
    return Endpoint(
        uri=uri,
        accept=accept,
        timeout_ms=_milliseconds(raw.get("timeout"), "timeout", MAX_TIMEOUT_MS),
        cooldown_ms=_milliseconds(raw.get("cooldown"), "cooldown", MAX_COOLDOWN_MS),
        receiver_info=_info(raw.get("receiverInfo"), "receiverInfo", header_names=True),
        notifier_info=notifier,
    )


def render_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": endpoint.uri, "accept": endpoint.accept}
    if endpoint.timeout_ms is not None:
        out["timeout"] = endpoint.timeout_ms
    if endpoint.cooldown_ms is not None:
        out["cooldown"] = endpoint.cooldown_ms
    for member, info in (("receiverInfo", endpoint.receiver_info),
                         ("notifierInfo", endpoint.notifier_info)):
        if info:
            out[member] = [{"key": k, "value": v} for k, v in info]
    return out


def check_endpoint_address(endpoint: Endpoint, policy: AddressPolicy) -> None:
    """BadRequestData if the endpoint's host is an IP literal the policy refuses. Host names
    pass here and are checked on what they resolve to at each delivery."""
    host = urlsplit(endpoint.uri).hostname or ""
    ip = parse_address(host)
    if ip is not None and not policy.permits(ip):
        raise BadRequestData(
            f"endpoint.uri {endpoint.uri!r} points at a refused address ({ip}); loopback, "
            "private and link-local networks need the operator's --allow-network")
