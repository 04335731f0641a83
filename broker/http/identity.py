"""The identity edge: resolve each request's principal once (security/identity) and keep it in
the request (`request[PRINCIPAL]`); handlers and the policy layer read it with
`principal_of(request)`.

No credentials → the public principal. A refused credential → 401 with a ProblemDetails body
that says nothing of why (the reason is logged) and an RFC 6750 §3 WWW-Authenticate challenge;
malformed or ambiguous credentials → 400; keys that cannot be checked now → 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.errors import CetateError, NgsiError, NonexistentTenant
from broker.http import audit
from broker.http.edge import problem_response
from broker.settings import Settings
from security.audit.entry import Principal as AuditPrincipal
from security.identity import PUBLIC, Principal
from security.identity.credentials import API_KEY, API_KEY_HEADER
from security.identity.errors import IdentityUnavailable, InvalidCredentials
from security.identity.keystore import open_key_store
from security.identity.resolver import IdentityResolver
from security.identity.settings import IdentitySettings

log = logging.getLogger("cetate.identity")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The request's storage key (web.RequestKey from aiohttp 3.11 on, as broker/http/audit.py does;
# a plain string key draws NotAppKeyWarning). Read it with principal_of(request).
PRINCIPAL: Any = (web.RequestKey("principal", Principal) if hasattr(web, "RequestKey")
                  else "principal")
IDENTITY = web.AppKey("identity", IdentityResolver)
REALM = "cetate"
CONFIGURED_POLL_S = 5.0  # how soon a first API key, made while the broker runs, is noticed
REFUSED_RULE = "identity.credentials-refused"  # the audit entry's rule for a 401/400/503
TENANT_RULE = "identity.tenant-not-granted"
PURPOSE_RULE = "identity.purpose-not-granted"
TENANT_HEADER = "NGSILD-Tenant"  # as broker/http/state.py
PURPOSE_HEADER = "Cetate-Purpose"  # as broker/http/audit.py
# Where a credential's tenants and purposes are enforced: the NGSI-LD API, which is tenanted.
# /health, /docs and the audit API are not, and an adapter checking /health sends no tenant.
SCOPED_PREFIXES = ("/ngsi-ld/",)


class Unauthorized(CetateError):
    """NGSI-LD defines no error type for missing or refused credentials, so this one is ours."""

    type_name = "Unauthorized"
    status = 401
    title = "The request's credentials are invalid, expired or revoked"


class MalformedCredentials(NgsiError):
    type_name = "BadRequestData"  # RFC 6750 §3.1 invalid_request is a 400
    status = 400
    title = "The request's credentials are malformed or ambiguous"


class PurposeNotGranted(CetateError):
    type_name = "PurposeNotGranted"
    status = 403
    title = "The principal may not declare this purpose of processing"


class IdentityUnavailableError(CetateError):
    type_name = "IdentityUnavailable"
    status = 503
    title = "Credentials cannot be checked at the moment; retry later"


def challenge(refused: InvalidCredentials) -> str:
    """The WWW-Authenticate value: the scheme presented, the realm, and the RFC 6750 error code
    only (no error_description: it would tell an attacker which check failed)."""
    scheme = "ApiKey" if refused.scheme == API_KEY else "Bearer"
    return f'{scheme} realm="{REALM}"' + (f', error="{refused.error}"' if refused.error else "")


def out_of_scope(principal: Principal, tenant: str, purpose: str | None) -> NgsiError | None:
    """The error for a request outside what the principal's credential grants, or None.

    A tenant the principal is not granted is answered exactly as a tenant that does not exist
    (broker/http/state.py existing_tenant), so that it learns nothing of other tenants."""
    if not principal.may_use_tenant(tenant):
        return NonexistentTenant(f"Tenant {tenant!r} does not exist")
    if not principal.may_claim(purpose):
        return PurposeNotGranted(f"Purpose {purpose!r} is not granted to this principal")
    return None


def identity_middleware(resolver: IdentityResolver, *, enforce_scope: bool = True,
                        ) -> Middleware:
    """The middleware resolving every request's principal with `resolver`. Placed after the
    audit middleware (inside it), it names the principal in the request's audit record and
    records refused credentials as denied accesses.

    With `enforce_scope`, a principal limited to some tenants or purposes (claims, key grants)
    that addresses another tenant (NGSILD-Tenant) of the NGSI-LD API gets 404 NonexistentTenant,
    and one declaring another purpose (Cetate-Purpose) 403, before any handler runs: no NGSI-LD
    path can forget it."""

    @web.middleware
    async def identity(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            principal = await resolver.resolve(request.headers.get("Authorization"),
                                               request.headers.get(API_KEY_HEADER))
        except InvalidCredentials as refused:
            log.info("credentials refused on %s %s: %s", request.method, request.path,
                     refused.reason)
            error: NgsiError = (MalformedCredentials() if refused.error == "invalid_request"
                                else Unauthorized())
            audit.note(request, decision="deny", rule=REFUSED_RULE)
            response = problem_response(error, request.path)
            if error.status == 401:
                response.headers["WWW-Authenticate"] = challenge(refused)
            return response
        except IdentityUnavailable as exc:
            log.warning("credentials not checkable on %s %s: %s", request.method, request.path,
                        exc)
            audit.note(request, decision="deny", rule=REFUSED_RULE)
            response = problem_response(IdentityUnavailableError(), request.path)
            response.headers["Retry-After"] = "5"
            return response
        request[PRINCIPAL] = principal
        if principal is PUBLIC:
            return await handler(request)
        audit.note(request, principal=AuditPrincipal(principal.subject,
                                                     tuple(sorted(principal.roles))))
        if (enforce_scope and (principal.tenants is not None or principal.purposes is not None)
                and request.path.startswith(SCOPED_PREFIXES)):
            outside = out_of_scope(principal, request.headers.get(TENANT_HEADER, "").strip(),
                                 request.headers.get(PURPOSE_HEADER, "").strip() or None)
            if outside is not None:
                log.info("%s on %s %s: %s", principal.subject, request.method, request.path,
                         outside.detail)
                audit.note(request, decision="deny", rule=TENANT_RULE
                           if isinstance(outside, NonexistentTenant) else PURPOSE_RULE)
                return problem_response(outside, request.path)
        return await handler(request)

    return identity


def principal_of(request: web.Request) -> Principal:
    """The request's principal; the public one if the identity middleware did not run."""
    principal = request.get(PRINCIPAL)
    return principal if isinstance(principal, Principal) else PUBLIC


async def _watch(resolver: IdentityResolver) -> None:
    """Until the first API key appears (`cetate keys create` against the running broker's
    database), look again every CONFIGURED_POLL_S, so that resolver.is_configured turns true
    without a restart; then stop (keys are only ever revoked, and that does not unconfigure)."""
    while not resolver.is_configured:
        await asyncio.sleep(CONFIGURED_POLL_S)
        try:
            if await resolver.configured():
                log.warning("identity is now configured (an API key exists)")
        except Exception as exc:  # a database hiccup: look again next time
            log.warning("cannot check for API keys: %s", exc)


def setup(app: web.Application, settings: Settings,
          identity: IdentitySettings | None = None, *,
          enforce_scope: bool = True) -> IdentityResolver:
    """Install identity on the application: the resolver (app[IDENTITY]) with the API keys of
    the broker's store, its middleware appended to app.middlewares (call this after
    audit.setup, so that refused credentials are audited too), the key store opened on startup
    (with a warning while identity is not configured) and closed on cleanup."""
    if identity is None:
        try:
            identity = IdentitySettings.from_env()
        except ValueError as exc:  # a misconfiguration stops the start, as broker settings do
            raise SystemExit(f"identity settings: {exc}") from None
    try:
        keys = open_key_store(settings.store)
    except ValueError:
        log.warning("store %s cannot hold API keys: API keys are refused", settings.store)
        keys = None
    try:
        resolver = IdentityResolver(identity, keys)
    except ValueError as exc:  # a JWKS location that cannot work
        raise SystemExit(f"identity settings: {exc}") from None
    app[IDENTITY] = resolver
    app.middlewares.append(identity_middleware(resolver, enforce_scope=enforce_scope))

    watcher: list[asyncio.Task[None]] = []

    async def open_resolver(_: web.Application) -> None:
        await resolver.open()
        if not resolver.is_configured:
            log.warning("identity is not configured (no CETATE_OIDC_ISSUER, no API key): every "
                        "request acts as the public principal")
            watcher.append(asyncio.create_task(_watch(resolver)))

    async def close_resolver(_: web.Application) -> None:
        for task in watcher:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await resolver.close()

    app.on_startup.append(open_resolver)
    app.on_cleanup.append(close_resolver)
    return resolver
