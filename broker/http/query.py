"""Query entities: GET /ngsi-ld/v1/entities and POST /entityOperations/query (clauses 5.7.2,
6.4.3.2 and 6.23.3.1). Parameters become an EntityQuery the store compiles to SQL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict

from broker.entities.kinds import DEFAULT_DATASET
from broker.entities.parse import require_uri
from broker.entities.rdf import entities_graph, serialize
from broker.entities.render import RenderOptions, render_entity, render_geojson
from broker.errors import BadRequestData, TooManyResults
from broker.http import access, audit, params
from broker.http.edge import dumps, link_context, read_payload
from broker.http.entities import ENTITIES, render_options
from broker.http.media import GEO_JSON, JSON, JSON_LD, RDF_TYPES, link_header, negotiate
from broker.http.state import broker, existing_tenant, response_context, terms_for
from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.termmap import TermMap
from broker.query.geo import geo_query_from_json, parse_geo_query
from broker.query.qlang import expand_names, parse_q
from broker.query.scopeq import parse_scopeq
from broker.query.typeexpr import expand_types, parse_types
from broker.store.protocol import EntityQuery, EntitySelector, QueryResult, Store

DEFAULT_LIMIT = 20
# Clause 5.7.2 lets the broker cap a page; a larger limit is a TooManyResults error (6.3.10).
MAX_LIMIT = 1000
MAX_SELECTORS = 100  # EntitySelectors in one Query: each is one OR-ed SQL branch
MAX_ID_PATTERN = 256  # regular expressions run inside SQLite: keep them short (ReDoS)
RESULTS_COUNT = "NGSILD-Results-Count"
QUERY_PATH = "/ngsi-ld/v1/entityOperations/query"


def _int(query: Mapping[str, Any], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequestData(f"{name} must be a non-negative integer") from None
    if value < 0:
        raise BadRequestData(f"{name} must be a non-negative integer")
    return value


def _pattern(text: str) -> str:
    if len(text) > MAX_ID_PATTERN:
        raise BadRequestData(f"idPattern longer than {MAX_ID_PATTERN} characters")
    try:
        re.compile(text)
    except re.error as exc:
        raise BadRequestData(f"idPattern is not a regular expression: {exc}") from None
    return text


def build_query(p: Mapping[str, Any], terms: TermMap, geo: Any,
                selectors: tuple[EntitySelector, ...] | None = None) -> EntityQuery:
    """An EntityQuery from query-string style parameters (strings and comma lists)."""
    limit = _int(p, "limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise TooManyResults(f"limit {limit} is over the maximum of {MAX_LIMIT}")
    count = params.flag(p, "count")
    if limit == 0 and not count:
        # Clause 5.5.9: a page of no entities only makes sense to ask for the count.
        raise BadRequestData("limit=0 is only allowed with count=true")
    q = expand_names(parse_q(p["q"]), terms.expand) if p.get("q") is not None else None
    scope_q = parse_scopeq(p["scopeQ"]) if p.get("scopeQ") is not None else None
    types = expand_types(parse_types(p["type"]), terms.expand) if p.get("type") else None
    ids = params.csv(p, "id")
    attrs = params.csv(p, "attrs")
    query = EntityQuery(
        types=types,
        ids=tuple(ids) if ids else None,
        id_pattern=_pattern(p["idPattern"]) if p.get("idPattern") is not None else None,
        attrs=frozenset(terms.expand(a) for a in attrs) if attrs else None,
        geo=geo,
        q=q,
        scope_q=scope_q,
        selectors=selectors,
        limit=limit,
        offset=_int(p, "offset", 0),
        count=count,
    )
    for entity_id in ids or ():
        require_uri(entity_id, "id")
    if not (query.types or query.ids or query.id_pattern or query.attrs or query.geo
            or query.q or query.scope_q or query.selectors):
        # Clause 5.7.2: at least one of type, id, idPattern, attrs, q, scopeQ or a geo-query.
        raise BadRequestData("A query needs at least one of type, id, idPattern, attrs, q, "
                             "scopeQ, geoQ")
    return query


def _geo(p: Mapping[str, Any], terms: TermMap) -> Any:
    geo = parse_geo_query(p.get("georel"), p.get("geometry"), p.get("coordinates"),
                          p.get("geoproperty"))
    return _expand_geo(geo, terms)


def _expand_geo(geo: Any, terms: TermMap) -> Any:
    if geo is None:
        return None
    return replace(geo, geoproperty=terms.expand(geo.geoproperty))


def _dataset_ids(p: Mapping[str, str]) -> frozenset[str] | None:
    """datasetId= (clause 6.4.3.2): the attribute instances to return, "@none" for the
    default instance; it trims the matched entities, it does not select them."""
    items = params.csv(p, "datasetId")
    if items is None:
        return None
    for item in items:
        if item != DEFAULT_DATASET:
            require_uri(item, "datasetId")
    return frozenset(items)


def _options(request: web.Request, terms: TermMap) -> RenderOptions:
    return replace(render_options(request, terms), dataset_ids=_dataset_ids(request.query))


def _respond(request: web.Request, query: EntityQuery, result: QueryResult, terms: TermMap,
             context: Any, media: str, page_params: Mapping[str, str],
             opts: RenderOptions, base: str = ENTITIES) -> web.Response:
    """The page of entities, with next/prev Links to `base` (clause 5.5.9): GET /entities with
    the same parameters, or, for POST /entityOperations/query, the same URL to POST the same
    Query to."""
    audit.note(request, entity_ids=[e["id"] for e in result.entities],
               types=[t for e in result.entities for t in e["type"]])
    headers: CIMultiDict[str] = CIMultiDict()
    if result.total is not None:
        headers[RESULTS_COUNT] = str(result.total)
    for rel, offset in _pages(query, result):
        link = urlencode({**page_params, "offset": str(offset), "limit": str(query.limit)})
        headers.add("Link", f'<{base}?{link}>; rel="{rel}"')
    if media in RDF_TYPES:  # linked data: one graph of every entity of the page
        rdf = serialize(entities_graph(result.entities, terms, opts), media)
        return web.Response(body=rdf, content_type=media, charset="utf-8", headers=headers)
    if media == GEO_JSON:
        geometry = terms.expand(request.query.get("geometryProperty", "location"))
        body: Any = {"type": "FeatureCollection",
                     "features": [render_geojson(e, terms, opts, geometry)
                                  for e in result.entities]}
    else:
        body = [render_entity(e, terms, opts) for e in result.entities]
        if media == JSON_LD:
            ctx = response_context(context)
            body = [{**item, "@context": ctx} for item in body]
    if media != JSON_LD:
        headers.add("Link", link_header(context if isinstance(context, str)
                                        else CORE_CONTEXT_URL))
    return web.Response(body=dumps(body), status=200, content_type=media, headers=headers)


async def _run(request: web.Request, store: Store, tenant: str,
               query: EntityQuery) -> QueryResult:
    """The query as the principal may run it (readable types only, no matching on what it does
    not see), each entity filtered by its decision; the count is of those it may see."""
    guard = access.guard_of(request, tenant)
    restricted = await guard.restrict(store, query)
    if restricted is None:
        return QueryResult([], 0 if query.count else None)
    result = await store.query_entities(tenant, restricted)
    if not guard.enforcing:
        return result
    return QueryResult(guard.visible(result.entities), result.total)


def _pages(query: EntityQuery, result: QueryResult) -> list[tuple[str, int]]:
    pages = []
    if query.offset > 0 and query.limit > 0:
        pages.append(("prev", max(0, query.offset - query.limit)))
    more = (len(result.entities) == query.limit and query.limit > 0
            and (result.total is None or query.offset + query.limit < result.total))
    if more:
        pages.append(("next", query.offset + query.limit))
    return pages


async def query_entities(request: web.Request) -> web.Response:
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD, GEO_JSON, *RDF_TYPES))
    context = link_context(request)
    terms = await terms_for(request, context)
    query = build_query(request.query, terms, _geo(request.query, terms))
    opts = _options(request, terms)
    tenant = await existing_tenant(request)
    result = await _run(request, broker(request).store, tenant, query)
    page = {k: v for k, v in request.query.items() if k not in ("offset", "limit")}
    return _respond(request, query, result, terms, context, media, page, opts)


def _selectors(entities: Any, terms: TermMap) -> tuple[EntitySelector, ...] | None:
    """The EntitySelectors of a Query body (clause 5.2.33), OR-ed together."""
    if entities is None:
        return None
    if (not isinstance(entities, list) or not entities
            or len(entities) > MAX_SELECTORS or not all(isinstance(e, dict) for e in entities)):
        raise BadRequestData(f"entities must be a list of 1 to {MAX_SELECTORS} EntitySelectors")
    selectors = []
    for item in entities:
        unknown = set(item) - {"id", "idPattern", "type"}
        if unknown:
            raise BadRequestData(f"Unknown EntitySelector member(s): {', '.join(sorted(unknown))}")
        for key in ("id", "idPattern", "type"):
            if key in item and not isinstance(item[key], str):
                raise BadRequestData(f"EntitySelector {key} must be a string")
        if not item:
            raise BadRequestData("An EntitySelector needs id, idPattern or type")
        selectors.append(EntitySelector(
            id=require_uri(item["id"], "id") if "id" in item else None,
            id_pattern=_pattern(item["idPattern"]) if "idPattern" in item else None,
            types=expand_types(parse_types(item["type"]), terms.expand) if "type" in item
            else None))
    return tuple(selectors)


async def post_query(request: web.Request) -> web.Response:
    """POST /entityOperations/query: the Query data type (5.2.23) in the body."""
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD, GEO_JSON, *RDF_TYPES))
    body, context = await read_payload(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('The body must be a Query object with "type": "Query"')
    terms = await terms_for(request, context)
    flat: dict[str, Any] = {**request.query}
    selectors = _selectors(body.get("entities"), terms)
    opts = _options(request, terms)
    attrs = body.get("attrs")
    if attrs is not None:
        if not isinstance(attrs, list) or not attrs or not all(
                isinstance(a, str) and a for a in attrs):
            raise BadRequestData("attrs must be a non-empty list of attribute names")
        flat["attrs"] = ",".join(attrs)
        if opts.pick is None:  # as attrs= on GET: only these attributes in the answer
            opts = replace(opts, pick=frozenset(terms.expand(a) for a in attrs) | {"id", "type"})
    for key in ("q", "scopeQ"):
        if body.get(key) is not None:
            if not isinstance(body[key], str):
                raise BadRequestData(f"{key} must be a string")
            flat[key] = body[key]
    if body.get("lang") is not None:
        if not isinstance(body["lang"], str):
            raise BadRequestData("lang must be a string")
        opts = replace(opts, lang=body["lang"])
    geo = _expand_geo(geo_query_from_json(body.get("geoQ")), terms)
    query = build_query(flat, terms, geo, selectors)
    tenant = await existing_tenant(request)
    result = await _run(request, broker(request).store, tenant, query)
    page = {k: v for k, v in request.query.items() if k not in ("offset", "limit")}
    return _respond(request, query, result, terms, context, media, page, opts, QUERY_PATH)


def add_routes(app: web.Application) -> None:
    app.router.add_get(ENTITIES + "{slash:/?}", query_entities, allow_head=False)
    app.router.add_post(QUERY_PATH + "{slash:/?}", post_query)
