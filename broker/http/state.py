"""What handlers share: the store, the @context resolver and the settings of one broker process."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from broker.errors import BadRequestData, NonexistentTenant
from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.resolver import ContextResolver
from broker.ld.termmap import TermMap
from broker.settings import Settings
from broker.store.protocol import Store

if TYPE_CHECKING:
    from broker.subscriptions.service import Notifications

TENANT_HEADER = "NGSILD-Tenant"
# Tenant names end up in logs, metrics and (on PostgreSQL) schema names: keep them plain.
_TENANT_RE = re.compile(r"^[A-Za-z0-9_.\-:/]{1,128}$")


@dataclass
class Broker:
    settings: Settings
    store: Store
    contexts: ContextResolver
    notifications: Notifications | None = None


BROKER = web.AppKey("broker", Broker)


def broker(request: web.Request) -> Broker:
    return request.app[BROKER]


def tenant_of(request: web.Request) -> str:
    """The tenant named by NGSILD-Tenant ("" is the default tenant)."""
    name = request.headers.get(TENANT_HEADER, "").strip()
    if name and not _TENANT_RE.match(name):
        raise BadRequestData(f"Invalid tenant name {name!r}")
    return name


async def existing_tenant(request: web.Request) -> str:
    """The tenant of a read: an unknown tenant is a NonexistentTenant error (clause 4.14)."""
    tenant = tenant_of(request)
    if tenant and not await broker(request).store.tenant_exists(tenant):
        raise NonexistentTenant(f"Tenant {tenant!r} does not exist")
    return tenant


async def terms_for(request: web.Request, context: Any) -> TermMap:
    return await broker(request).contexts.term_map(context)


def response_context(context: Any) -> Any:
    """The @context to put in an application/ld+json response for a requester's context."""
    if context is None:
        return CORE_CONTEXT_URL
    if isinstance(context, str):
        return [context, CORE_CONTEXT_URL]
    return context
