"""Turn the @context of a request into a TermMap: resolve URLs, compile once, cache.

A context value is None (core only), a URL, an inline object, or a list of those. URLs resolve
in order: built-in (the core context, whatever version it is spelt with), hosted by this broker
(/ngsi-ld/v1/jsonldContexts/{id}), cached in the store, else fetched under the address policy
and cached (kind "Cached", clause 5.13). Caches here are per process and safe to lose.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from broker.entities.clock import now_iso
from broker.errors import BadRequestData, LdContextNotAvailable, ResourceNotFound
from broker.ld.core import builtin_document, is_core_context_url
from broker.ld.fetch import fetch_json
from broker.ld.netpolicy import AddressPolicy
from broker.ld.termmap import CORE_TERMS, TermMap, compile_context
from broker.store.protocol import Store, StoredContext

MAX_DEPTH = 8  # nested remote contexts; JSON-LD 1.1 leaves the limit to processors
HOSTED_PREFIX = "urn:ngsi-ld:jsonldContext:"
_HOSTED_PATH = re.compile(r"/ngsi-ld/v1/jsonldContexts/([^/?#]+)$")


class ContextResolver:
    def __init__(
        self,
        store: Store,
        policy: AddressPolicy,
        *,
        timeout: float = 5.0,
        max_bytes: int = 1_000_000,
        cache_size: int = 512,
        self_base_url: str | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_size = cache_size
        self.self_base_url = self_base_url
        self._maps: OrderedDict[bytes, TermMap] = OrderedDict()
        self._documents: OrderedDict[str, Any] = OrderedDict()

    # -- term maps ---------------------------------------------------------------------------
    async def term_map(self, context: Any | None) -> TermMap:
        if context is None:
            return CORE_TERMS
        if isinstance(context, str) and is_core_context_url(context):
            return CORE_TERMS
        key = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
        found = self._maps.get(key)
        if found is not None:
            self._maps.move_to_end(key)
            return found
        objects = await self._resolve(context, 0, ())
        terms = compile_context(objects)
        if not isinstance(context, str):
            await self._remember_inline(context, key)
        self._maps[key] = terms
        if len(self._maps) > self.cache_size:
            self._maps.popitem(last=False)
        return terms

    async def _resolve(
        self, value: Any, depth: int, trail: tuple[str, ...]
    ) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if isinstance(value, list):
            out: list[Mapping[str, Any]] = []
            for item in value:
                out.extend(await self._resolve(item, depth, trail))
            return out
        if isinstance(value, dict):
            return [value]
        if not isinstance(value, str):
            raise BadRequestData("An @context must be a URL, an object, or a list of those")
        if value in trail:
            raise LdContextNotAvailable(f"@context {value} includes itself")
        if depth >= MAX_DEPTH:
            raise LdContextNotAvailable(f"@context nesting deeper than {MAX_DEPTH} at {value}")
        document = await self._document(value)
        if not isinstance(document, dict) or "@context" not in document:
            raise LdContextNotAvailable(f"{value} holds no @context")
        return await self._resolve(document["@context"], depth + 1, (*trail, value))

    async def _document(self, url: str) -> Any:
        builtin = builtin_document(url)
        if builtin is not None:
            return builtin
        if url in self._documents:
            return self._documents[url]
        hosted_id = self._hosted_id(url)
        if hosted_id is not None:
            stored = await self.store.get_context(hosted_id)
            if stored is None:
                raise LdContextNotAvailable(f"No hosted @context {hosted_id}")
            document = stored.body
        else:
            stored = await self.store.get_context(url)
            if stored is not None:
                document = stored.body
                await self.store.touch_context(stored.id, now_iso())
            else:
                document = await self._fetch_and_cache(url)
        self._documents[url] = document
        if len(self._documents) > self.cache_size:
            self._documents.popitem(last=False)
        return document

    async def _fetch_and_cache(self, url: str) -> Any:
        document = await fetch_json(url, self.policy, timeout=self.timeout,
                                    max_bytes=self.max_bytes)

        local_id = hashlib.sha256(url.encode()).hexdigest()[:32]
        await self.store.put_context(StoredContext(
            id=local_id, url=url, kind="Cached", body=document, created_at=now_iso()))
        return document

    async def _remember_inline(self, context: Any, key: bytes) -> None:
        """Keep an inline or compound @context as ImplicitlyCreated (clause 5.13), once per
        distinct content, so that it can be listed, served and referred to by URL later."""
        local_id = HOSTED_PREFIX + hashlib.sha256(key).hexdigest()[:32]
        if await self.store.get_context(local_id) is None:
            await self.store.put_context(StoredContext(
                id=local_id, url=local_id, kind="ImplicitlyCreated",
                body={"@context": context}, created_at=now_iso()))

    def _hosted_id(self, url: str) -> str | None:
        if url.startswith(HOSTED_PREFIX):
            return url
        match = _HOSTED_PATH.search(url)
        return match.group(1) if match else None

    def forget(self) -> None:
        """Drop every cached map and document (after a context is deleted or reloaded)."""
        self._maps.clear()
        self._documents.clear()

    # -- /jsonldContexts operations (clauses 5.13.2-5.13.5) ------------------------------------
    async def add_hosted(self, body: Any, now: str) -> StoredContext:
        if not isinstance(body, dict) or "@context" not in body:
            raise BadRequestData("The body must be a JSON object with an @context member")
        context = body["@context"]
        if not isinstance(context, (dict, list, str)):
            raise BadRequestData("@context must be an object, a URL or a list of those")
        await self._resolve(context, 0, ())  # refuse what could never be used
        local_id = HOSTED_PREFIX + str(uuid.uuid4())
        ctx = StoredContext(id=local_id, url=local_id, kind="Hosted",
                            body={"@context": context}, created_at=now)
        await self.store.put_context(ctx)
        return ctx

    async def list(self, kind: str | None = None) -> list[StoredContext]:
        return await self.store.list_contexts(kind)

    async def get(self, context_id: str) -> StoredContext:
        found = await self.store.get_context(context_id)
        if found is None:
            raise ResourceNotFound(f"No @context {context_id}")
        return found

    async def delete(self, context_id: str, *, reload: bool = False) -> None:
        if is_core_context_url(context_id):
            raise BadRequestData("The core @context cannot be deleted")
        found = await self.get(context_id)
        if reload and found.kind != "Cached":
            raise BadRequestData("Only a cached @context can be reloaded")
        await self.store.delete_context(found.id)
        self.forget()
        if reload:
            await self._fetch_and_cache(found.url)
