"""The contract holds: schemathesis drives the real broker process (a `cetate serve` on a
loopback port, SQLite store) with requests generated from contracts/openapi.yaml, a bounded
number of examples per operation and a fixed seed. Every response must be no 5xx, and conform
to the contract: status code, content type, headers and body schema.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "openapi.yaml"
# Examples per operation: ~30 operations x this many requests stays well under a minute on the
# 2-core CI machine, while still reaching every response the examples and fuzzing lead to.
MAX_EXAMPLES = int(os.environ.get("CETATE_SCHEMATHESIS_EXAMPLES", "6"))
# The coverage phase (boundary and negative values of every parameter, unbounded by
# MAX_EXAMPLES) takes minutes here: on for a deep run with CETATE_SCHEMATHESIS_COVERAGE=1.
COVERAGE = os.environ.get("CETATE_SCHEMATHESIS_COVERAGE", "") == "1"
SEED = 1026
schema = schemathesis.openapi.from_path(str(CONTRACT), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
    "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"enabled": False}},
}))
REMOTE_CONTEXT_UNAVAILABLE = "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"


def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                    case: schemathesis.Case) -> bool | None:
    """No 5xx, except the 503 LdContextNotAvailable that clause 5.5.2 prescribes when a request
    names a remote @context that cannot be fetched (nothing outside loopback is reachable)."""
    if response.status_code < 500:
        return None
    if response.status_code == 503:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and problem.get("type") == REMOTE_CONTEXT_UNAVAILABLE:
            return None
    raise AssertionError(f"{response.status_code} from {case.method} {case.path}: "
                         f"{response.text[:500]}")


CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
_LOOPBACK_URL = re.compile(r"^https?://(127\.0\.0\.1|localhost)[:/]")


def _hermetic(context: Any) -> Any:
    """A generated @context with every URL outside loopback replaced by the (built-in) core
    one: the run stays on this machine, and a fetch would only ever end in a 503 anyway."""
    if isinstance(context, list):
        return [_hermetic(c) for c in context]
    if isinstance(context, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", context) \
            and not _LOOPBACK_URL.match(context):
        return CORE_CONTEXT
    return context


def make_hermetic(case: schemathesis.Case) -> None:
    items = case.body if isinstance(case.body, list) else [case.body]
    for item in items:
        if isinstance(item, dict) and "@context" in item:
            item["@context"] = _hermetic(item["@context"])


_CONTRACT_DOC = yaml.safe_load(CONTRACT.read_text())
NORMALIZED = jsonschema.Draft7Validator({
    "components": _CONTRACT_DOC["components"],
    "type": "array", "items": {"$ref": "#/components/schemas/EntityNormalized"}})
ENTITY_READS = {"retrieveEntity", "queryEntities", "queryEntitiesPost"}


def normalized_when_asked(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                          case: schemathesis.Case) -> bool | None:
    """The contract's Entity is any of three forms; a read that asks for no other form must
    answer strictly in the normalized one (every attribute a typed instance)."""
    if (case.operation.definition.raw.get("operationId") not in ENTITY_READS
            or response.status_code != 200
            or not response.headers.get("content-type", [""])[0].startswith("application/json")):
        return None
    query = case.query or {}
    asked = f"{query.get('format', '')},{query.get('options', '')}"
    if "concise" in asked or "keyValues" in asked:
        return None
    body = response.json()
    errors = [e.message for e in NORMALIZED.iter_errors(body if isinstance(body, list)
                                                          else [body])]
    assert not errors, f"not normalized: {errors[:3]}"
    return True


CHECKS = [no_server_error, normalized_when_asked, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


LIGHT = {
    "id": "urn:ngsi-ld:Streetlight:craiova-001", "type": "Streetlight",
    "powerState": {"type": "Property", "value": "on", "observedAt": "2026-11-23T10:00:00Z"},
    "name": {"type": "LanguageProperty", "languageMap": {"ro": "Strada Unirii", "en": "Union"}},
    "refGroup": {"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:centru"},
    "location": {"type": "GeoProperty",
                 "value": {"type": "Point", "coordinates": [23.7967, 44.319]}},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(url: str) -> None:
    """Data the examples of the contract name, so that reads also reach their 200s."""
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/ngsi-ld/v1/entities", json=LIGHT).status_code == 201
        spots = [{"id": f"urn:ngsi-ld:ParkingSpot:craiova-{n}", "type": "ParkingSpot",
                  "status": {"type": "Property", "value": "free"}} for n in range(3)]
        assert http.post("/ngsi-ld/v1/entityOperations/create", json=spots).status_code == 201
        ctx = {"@context": {"Streetlight": "https://smartdatamodels.org/dataModel."
                                           "Streetlighting/Streetlight"}}
        assert http.post("/ngsi-ld/v1/jsonldContexts", json=ctx).status_code == 201


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("schemathesis") / "cetate.db"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CETATE_LOG_LEVEL": "ERROR", "CETATE_LOG_FORMAT": "text"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--port", str(port), "--store",
         f"sqlite:///{db}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not start")
            time.sleep(0.05)
        _seed(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_broker_honours_its_contract(case: schemathesis.Case, broker_url: str,
                                     session: requests.Session) -> None:
    make_hermetic(case)
    case.call_and_validate(base_url=broker_url, session=session, checks=CHECKS, timeout=60)


def test_normalized_schema_tells_the_forms_apart() -> None:
    """The strict check above has teeth: the contract's EntityNormalized takes a normalized
    entity and refuses its concise or keyValues forms."""
    assert NORMALIZED.is_valid([LIGHT])
    assert not NORMALIZED.is_valid([{**LIGHT, "powerState": "on"}])
    assert not NORMALIZED.is_valid([{**LIGHT, "powerState": {"value": "on"}}])
    assert not NORMALIZED.is_valid([{**LIGHT, "refGroup": {"type": "Relationship",
                                                           "object": 3}}])
