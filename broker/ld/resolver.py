"""Turn the @context of a request into a TermMap: resolve URLs, compile once, cache. I/O.

A context value is None (core only), a URL, an inline object, or a list of those (a Link header
or a body's "@context"). URLs resolve in this order: built in (the core context, whatever
version it is spelt with, and what it embeds); hosted by this broker
(.../ngsi-ld/v1/jsonldContexts/{id} or the bare id); cached in the store; else fetched under the
address policy and stored as kind "Cached" (clause 5.13). The compiled TermMaps and fetched
documents are cached per process in LRUs that are safe to lose (architecture invariant 4).

It also carries out the /jsonldContexts operations (clauses 5.13.2-5.13.5) for the HTTP handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit

import orjson

from broker.entities.clock import now_iso
from broker.errors import BadRequestData, LdContextNotAvailable, ResourceNotFound
from broker.ld.core import builtin_document, is_core_context_url
from broker.ld.fetch import fetch_json
from broker.ld.netpolicy import AddressPolicy
from broker.ld.termmap import CORE_TERMS, TermMap, compile_context
from broker.store.protocol import StoredContext

MAX_DEPTH = 8  # nesting of remote contexts; JSON-LD 1.1 leaves the limit to processors
MAX_DOCUMENTS = 32  # remote documents one @context may pull in, so fan-out is bounded too
HOSTED_PREFIX = "urn:ngsi-ld:jsonldContext:"
HOSTED_PATH = "/ngsi-ld/v1/jsonldContexts/"
KINDS = ("Hosted", "Cached", "ImplicitlyCreated")
# Seconds a process trusts its cached copy of a context: bounds how long a replica keeps
# serving a context that another replica deleted or reloaded.
CACHE_TTL = 60.0


class ContextStore(Protocol):
    """The context half of broker.store.protocol.Store: all the resolver needs of a store."""

    async def put_context(self, ctx: StoredContext) -> None: ...

    async def get_context(self, context_id: str) -> StoredContext | None: ...

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]: ...

    async def delete_context(self, context_id: str) -> bool: ...

    async def touch_context(self, context_id: str, when: str) -> None: ...


@dataclass
class _Walk:
    """The state of resolving one @context: how many remote documents it has pulled in."""

    documents: int = 0


class _LRU(OrderedDict[Any, tuple[float, Any]]):
    """A bounded map whose entries also expire: another replica may delete or reload a context,
    and this process learns it only by looking again (architecture invariant 4)."""

    def __init__(self, size: int, ttl: float) -> None:
        super().__init__()
        self.size = size
        self.ttl = ttl

    def find(self, key: Any) -> Any | None:
        found = self.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self[key]
            return None
        self.move_to_end(key)
        return found[1]

    def keep(self, key: Any, value: Any) -> None:
        self[key] = (time.monotonic() + self.ttl, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class ContextResolver:
    """Resolves and compiles @contexts for one broker process."""

    def __init__(
        self,
        store: ContextStore,
        policy: AddressPolicy,
        *,
        timeout: float = 5.0,
        max_bytes: int = 1_000_000,
        cache_size: int = 512,
        cache_ttl: float = CACHE_TTL,
        self_base_url: str | None = None,
        remember_inline: bool = True,
    ) -> None:
        """`self_base_url`: where clients reach this broker, so that a missing context under
        it fails at once instead of being fetched; `remember_inline`: keep every distinct
        inline or compound @context as kind ImplicitlyCreated (clause 5.13)."""
        self.store = store
        self.policy = policy
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.self_base_url = self_base_url.rstrip("/") if self_base_url else None
        self.remember_inline = remember_inline
        self._maps = _LRU(cache_size, cache_ttl)  # canonical JSON of a context -> TermMap
        self._documents = _LRU(cache_size, cache_ttl)  # URL -> document
        self._pending: dict[bytes, asyncio.Future[TermMap]] = {}

    # -- term maps ---------------------------------------------------------------------------
    async def term_map(self, context: Any | None) -> TermMap:
        """The compiled context for a request's @context (None: the core context alone)."""
        given, context = context, _without_core(context)
        if context is None:
            return CORE_TERMS
        try:
            key = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            raise BadRequestData("An @context must be JSON") from None
        found: TermMap | None = self._maps.find(key)
        if found is not None:
            return found
        # Concurrent requests with the same new context share one resolution (and one fetch).
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._build(context, given, key))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(pending)

    def _settle(self, key: bytes, done: asyncio.Future[TermMap]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved, so an error nobody awaited any more is not logged

    async def _build(self, context: Any, given: Any, key: bytes) -> TermMap:
        terms = compile_context(await self._resolve(context, None, 0, (), _Walk()))
        if self.remember_inline and _has_inline(context):
            await self._remember_inline(given, key)
        self._maps.keep(key, terms)
        return terms

    async def _resolve(
        self, value: Any, base: str | None, depth: int, trail: tuple[str, ...], walk: _Walk
    ) -> list[Mapping[str, Any]]:
        """The context objects `value` stands for, in order, remote ones fetched."""
        if isinstance(value, list):
            out: list[Mapping[str, Any]] = []
            for item in value:
                if item is None:
                    out.clear()  # JSON-LD: null resets the active context
                else:
                    out.extend(await self._resolve(item, base, depth, trail, walk))
            return out
        if isinstance(value, dict):
            if isinstance(value.get("@import"), str):  # JSON-LD 1.1 §4.1.10: merge, own win
                imported = await self._resolve(value["@import"], base, depth, trail, walk)
                if len(imported) != 1:
                    raise LdContextNotAvailable(f"@import {value['@import']} is not one object")
                return [{**imported[0], **{k: v for k, v in value.items() if k != "@import"}}]
            return [value]
        if not isinstance(value, str):
            raise BadRequestData("An @context must be a URL, an object, or a list of those")
        url = urljoin(base, value) if base else value
        if url in trail:
            raise LdContextNotAvailable(f"@context {url} includes itself")
        if depth >= MAX_DEPTH:
            raise LdContextNotAvailable(f"@context nesting deeper than {MAX_DEPTH} at {url}")
        document = await self._document(url, walk)
        if not isinstance(document, dict) or "@context" not in document:
            raise LdContextNotAvailable(f"{url} holds no @context")
        return await self._resolve(document["@context"], url, depth + 1, (*trail, url), walk)

    async def _document(self, url: str, walk: _Walk) -> Any:
        builtin = builtin_document(url)
        if builtin is not None:
            return builtin
        found = self._documents.find(url)
        if found is not None:
            return found
        walk.documents += 1
        if walk.documents > MAX_DOCUMENTS:
            raise LdContextNotAvailable(f"@context pulls in more than {MAX_DOCUMENTS} documents")
        hosted_id = _hosted_id(url)
        stored = await self.store.get_context(hosted_id or url)
        if stored is None and hosted_id is not None and self._is_own(url):
            raise LdContextNotAvailable(f"No @context {hosted_id} is held by this broker")
        if stored is not None:
            document = stored.body
            await self.store.touch_context(stored.id, now_iso())
        else:
            document = await self._fetch_and_cache(url)
        self._documents.keep(url, document)
        return document

    def _is_own(self, url: str) -> bool:
        if url.startswith(HOSTED_PREFIX):
            return True
        return self.self_base_url is not None and url.startswith(self.self_base_url + "/")

    async def _fetch(self, url: str) -> Any:
        document = await fetch_json(url, self.policy, timeout=self.timeout,
                                    max_bytes=self.max_bytes)
        if not isinstance(document, dict) or "@context" not in document:
            raise LdContextNotAvailable(f"{url} is JSON but holds no @context")
        return document

    async def _fetch_and_cache(self, url: str) -> Any:
        document = await self._fetch(url)
        await self.store.put_context(StoredContext(
            id=_cached_id(url), url=url, kind="Cached", body=document, created_at=now_iso()))
        return document

    async def _remember_inline(self, context: Any, key: bytes) -> None:
        """Keep an inline or compound @context as ImplicitlyCreated (clause 5.13), once per
        distinct content, so that it can be listed, served and referred to by URL later."""
        local_id = HOSTED_PREFIX + hashlib.sha256(key).hexdigest()[:32]
        if await self.store.get_context(local_id) is None:
            await self.store.put_context(StoredContext(
                id=local_id, url=local_id, kind="ImplicitlyCreated",
                body={"@context": context}, created_at=now_iso()))

    def forget(self) -> None:
        """Drop every cached map and document (after a context is deleted or reloaded)."""
        self._maps.clear()
        self._documents.clear()

    # -- /jsonldContexts operations (clauses 5.13.2-5.13.5) ------------------------------------
    async def add_hosted(self, body: Any, now: str) -> StoredContext:
        """Host a client's @context (5.13.2); it must be usable, so it is resolved first."""
        if not isinstance(body, dict) or "@context" not in body:
            raise BadRequestData("The body must be a JSON object with an @context member")
        context = body["@context"]
        if not isinstance(context, (dict, list, str)):
            raise BadRequestData("@context must be an object, a URL or a list of those")
        compile_context(await self._resolve(context, None, 0, (), _Walk()))
        local_id = HOSTED_PREFIX + str(uuid.uuid4())
        ctx = StoredContext(id=local_id, url=local_id, kind="Hosted",
                            body={"@context": context}, created_at=now)
        await self.store.put_context(ctx)
        return ctx

    async def list(self, kind: str | None = None) -> list[StoredContext]:
        """The stored contexts, optionally of one kind (5.13.3)."""
        if kind is not None and kind not in KINDS:
            raise BadRequestData(f"kind must be one of {', '.join(KINDS)}")
        return await self.store.list_contexts(kind)

    async def get(self, context_id: str) -> StoredContext:
        """One stored context (5.13.4)."""
        found = await self.store.get_context(context_id)
        if found is None:
            raise ResourceNotFound(f"No @context {context_id}")
        return found

    async def delete(self, context_id: str, reload: bool = False) -> None:
        """Delete a stored context, or with `reload` fetch a Cached one again (5.13.5). A failed
        reload keeps the copy held so far and raises LdContextNotAvailable."""
        if is_core_context_url(context_id):
            raise BadRequestData("The core @context cannot be deleted")
        found = await self.get(context_id)
        if reload:
            if found.kind != "Cached":
                raise BadRequestData(f"Only a Cached @context can be reloaded, not {found.kind}")
            document = await self._fetch(found.url)
            await self.store.put_context(replace(found, body=document))
        else:
            await self.store.delete_context(found.id)
        self.forget()


def _without_core(context: Any) -> Any:
    """The context less the core context URLs it names (it is always applied last anyway);
    None when nothing else is left."""
    if isinstance(context, str) and is_core_context_url(context):
        return None
    if isinstance(context, list):
        rest = [c for c in context if not (isinstance(c, str) and is_core_context_url(c))]
        return rest or None
    return context


def _has_inline(context: Any) -> bool:
    return isinstance(context, dict) or (
        isinstance(context, list) and any(isinstance(c, dict) for c in context))


def _hosted_id(url: str) -> str | None:
    """The local id if `url` names a context held by a broker: a bare id, or a URL whose path
    is /ngsi-ld/v1/jsonldContexts/{id} (under any host)."""
    if url.startswith(HOSTED_PREFIX):
        return url
    path = urlsplit(url).path
    if HOSTED_PATH not in path:
        return None
    local_id = unquote(path.rsplit(HOSTED_PATH, 1)[1])
    return local_id if local_id and "/" not in local_id else None


def _cached_id(url: str) -> str:
    # Derived from the URL, so every replica caching the same URL writes the same row.
    return HOSTED_PREFIX + "cached:" + hashlib.sha256(url.encode()).hexdigest()[:32]
