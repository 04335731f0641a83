"""Privacy operations over HTTP: data-subject requests (GDPR art. 15, 17, 20) and the retention
purge job's wiring (docs/privacy.md).

    POST /cetate/v1/privacy/subject-requests/export  {"subject": P, "tenants"?: [...]}
    POST /cetate/v1/privacy/subject-requests/erase   {"subject": P, "tenants"?: [...]}

Only for a principal the policy lets act on the API resource `data-subject-requests` (the `dpo`
role in the default policies: `read` to export, `administer` to erase), and only while access
control is enforced: with it off nobody can be told apart from the DPO, so both answer 403 and
say why. Tenants searched: those named in the request, else the default tenant and
CETATE_PRIVACY_TENANTS, always limited to the principal's own tenants. Every request, allowed or
refused, is recorded in the audit log (durably, before the answer) with the entity ids found.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from broker.errors import BadRequestData, NgsiError
from broker.http import audit
from broker.http.access import ACCESS, Forbidden
from broker.http.edge import json_response
from broker.http.identity import principal_of
from broker.http.state import BROKER
from security.audit.entry import AuditRecord
from security.audit.entry import Principal as AuditPrincipal
from security.identity.principal import Principal
from security.policy.model import Resource
from security.policy.service import purpose_of
from security.privacy import purge as purging
from security.privacy.subject import (
    SubjectError,
    check_subject,
    erase_document,
    export_document,
    found_ids,
    found_types,
)

API = "/cetate/v1/privacy"
RESOURCE = "data-subject-requests"  # the API resource of contracts/policies/
EXPORT_ACTION = "privacy.subject.export"  # audit actions
ERASE_ACTION = "privacy.subject.erase"
MAX_TENANTS = 64
OFF_DETAIL = ("data-subject requests need access control: configure identity "
              "(CETATE_OIDC_ISSUER or an API key) so the DPO can be told apart (docs/privacy.md)")

PURGE_JOB = web.AppKey("privacy_purge", purging.PurgeJob)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _authorise(request: web.Request, action: str, record: AuditRecord) -> Principal:
    """The principal allowed `action` on the data-subject-requests resource (the deciding
    rule noted in `record`); Forbidden (403) otherwise."""
    access = request.app.get(ACCESS)
    if access is None or not access.enforcing:
        record.note(decision="deny", rule="access-control-off")
        raise Forbidden(OFF_DETAIL)
    principal = principal_of(request)
    purpose = purpose_of(request.headers)
    if not principal.may_claim(purpose):
        record.note(decision="deny", rule="identity.purpose-not-granted")
        raise Forbidden(f"Purpose {purpose!r} is not granted to this principal")
    decision = access.policies.decide(principal, action, Resource.of_api(RESOURCE), purpose)
    record.note(decision="allow" if decision.allowed else "deny",
                rule=",".join(decision.rules))
    if not decision.allowed:
        raise Forbidden(f"{action} on {RESOURCE} is not granted to this principal")
    return principal


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequestData("The body must be a JSON object {\"subject\": ...}") from None
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object {\"subject\": ...}")
    return body


def _tenants(body: dict[str, Any], principal: Principal) -> list[str]:
    named = body.get("tenants")
    if named is None:
        tenants = purging.tenants_from_env()
        if principal.tenants is not None:  # and the principal's own, which it may act on
            tenants = list(dict.fromkeys([*tenants, *sorted(principal.tenants)]))
    elif (isinstance(named, list) and len(named) <= MAX_TENANTS
          and all(isinstance(t, str) for t in named)):
        tenants = list(dict.fromkeys(named))
    else:
        raise BadRequestData(f"tenants must be a list of at most {MAX_TENANTS} tenant names")
    return [t for t in tenants if principal.may_use_tenant(t)]


Answer = Callable[..., Awaitable[tuple[dict[str, Any], Any]]]


async def _subject_request(request: web.Request, action: str, policy_action: str,
                           answer: Answer) -> web.Response:
    record = AuditRecord(action=action, purpose=purpose_of(request.headers))
    principal = principal_of(request)
    if not principal.is_public:
        record.note(principal=AuditPrincipal(principal.subject, tuple(sorted(principal.roles))))
    status = 500
    try:
        principal = _authorise(request, policy_action, record)
        body = await _body(request)
        try:
            subject = check_subject(body.get("subject"))
        except SubjectError as exc:
            raise BadRequestData(str(exc)) from None
        store = request.app[BROKER].store
        present, _ = await purging.existing_tenants(store, _tenants(body, principal))
        log = request.app.get(audit.AUDIT)
        document, found = await answer(store, log, present, subject, _now())
        record.note(entity_ids=found_ids(found), types=found_types(found))
        status = 200
        return json_response(document)
    except NgsiError as error:
        status = error.status
        raise
    finally:
        pending = audit.record_event(request.app, record, status=status, durable=True)
        if pending is not None:
            await pending  # durable before the answer, like a write's entry


async def export(request: web.Request) -> web.Response:
    """Art. 15 (access) and 20 (portability): everything referring to the subject."""
    return await _subject_request(request, EXPORT_ACTION, "read", export_document)


async def erase(request: web.Request) -> web.Response:
    """Art. 17: erase what the lawful basis allows, answer the reason for the rest."""
    return await _subject_request(request, ERASE_ACTION, "administer", erase_document)


def add_routes(app: web.Application) -> None:
    """Register the /cetate/v1/privacy routes."""
    app.router.add_post(f"{API}/subject-requests/export", export)
    app.router.add_post(f"{API}/subject-requests/erase", erase)


# -- the retention purge job -----------------------------------------------------------------


def purge_job(app: web.Application) -> purging.PurgeJob:
    """The app's purge job (CETATE_PURGE_INTERVAL, CETATE_PRIVACY_TENANTS), each batch removed
    recorded durably in the audit log. Call it in create_app (before the app starts, which
    freezes its state); start() it once the store is open, stop() it on shutdown."""
    job = app.get(PURGE_JOB)
    if job is None:
        async def audited(batch: purging.PurgedBatch) -> None:
            pending = audit.record_event(app, purging.audit_record(batch), status=200,
                                         durable=True)
            if pending is not None:
                await pending

        try:
            interval = purging.interval_from_env()
        except ValueError as exc:  # a misconfiguration stops the start, as settings do
            raise SystemExit(str(exc)) from None
        job = purging.PurgeJob(app[BROKER].store, interval_s=interval, on_batch=audited)
        app[PURGE_JOB] = job
    return job
