"""Publishing: batch upsert (POST /ngsi-ld/v1/entityOperations/upsert, clause 5.6.8) with httpx,
to any NGSI-LD broker.

The answer decides, by status (a table, as h11 picks by state):
- 201, 204: all published.  207: the BatchOperationResult's errors are refused one by one, the
  rest is published.  400: the whole batch refused, with the broker's detail.  413: too big,
  sent again in halves.  429, 5xx, or no answer (refused, reset, timeout): the broker is down
  or busy, sent again after a backoff with jitter until `give_up_after` seconds have passed.
  Any other status (401, 403, 404...) is a misconfiguration: the run stops, nothing is
  checkpointed, and a restart sends the batch again.
Upserts are idempotent, so sending a batch twice (a retry after a lost answer, a restart after
a crash) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

import httpx
import orjson

from adapters.sdk.counters import Counters
from adapters.sdk.errors import AdapterError, BrokerUnavailable
from adapters.sdk.hooks import Entity
from broker.subscriptions.backoff import Backoff

log = logging.getLogger("cetate.adapter")

UPSERT = "/ngsi-ld/v1/entityOperations/upsert"
JSON_LD = "application/ld+json"
REQUEST_TIMEOUT = 30.0  # seconds for one batch: the broker commits it before answering
# First retry after 0.2 s, doubling to 10 s between attempts: a broker restarting (seconds) is
# caught quickly, one down for long is not hammered. Ten minutes before giving up by default.
RETRY = Backoff(base=0.2, factor=2.0, cap=10.0, jitter=0.5, give_up_after=600.0)
Refused = tuple[str, str]  # (entity id, reason)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)[:500]


def _refused(response: httpx.Response, entities: Sequence[Entity]) -> list[Refused]:
    """A 207's errors; an error whose entity cannot be told is the broker's word on each."""
    body = response.json()
    out = []
    for error in body.get("errors", []) if isinstance(body, dict) else []:
        problem = error.get("error") or {}
        reason = str(problem.get("detail") or problem.get("title") or problem)
        out.append((str(error.get("entityId", "")), reason))
    return out or [(e.get("id", ""), f"207 without errors: {body}") for e in entities]


def broker_headers(tenant: str, api_key: str | None, token: str | None) -> dict[str, str]:
    """The tenant and the credential (docs/identity.md: adapters use an API key made with
    `cetate keys create`; a bearer token works too) of every request to the broker."""
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class Publisher:
    """Batches to one broker, for one tenant ("" = the default tenant)."""

    def __init__(self, broker: str, *, tenant: str = "", api_key: str | None = None,
                 token: str | None = None, update: bool = False, backoff: Backoff = RETRY,
                 counters: Counters | None = None) -> None:
        headers = {"Content-Type": JSON_LD, "Accept": "application/json",
                   **broker_headers(tenant, api_key, token)}
        self.client = httpx.AsyncClient(base_url=broker.rstrip("/"), headers=headers,
                                        timeout=REQUEST_TIMEOUT)
        self.params = {"options": "update"} if update else {}
        self.backoff = backoff
        self.counters = counters or Counters()

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _post(self, body: bytes) -> httpx.Response:
        """The broker's answer, once it gives one that is not 'down or busy'."""
        attempt, first = 0, time.monotonic()
        while True:
            try:
                response = await self.client.post(UPSERT, content=body, params=self.params)
                if response.status_code != 429 and response.status_code < 500:
                    return response
                why = f"{response.status_code} {_detail(response)}"
            except httpx.TransportError as exc:  # refused, reset, timed out
                why = repr(exc)
            attempt += 1
            if self.backoff.gives_up(attempt, first, time.monotonic()):
                raise BrokerUnavailable(f"broker {self.client.base_url} still unavailable after "
                                        f"{attempt} attempts: {why}")
            delay = self.backoff.delay(attempt, random.random())
            log.warning("broker unavailable (%s); retry %d in %.2f s", why, attempt, delay)
            self.counters.retried += 1
            await asyncio.sleep(delay)

    async def upsert(self, entities: Sequence[Entity]) -> list[Refused]:
        """Publish `entities`; the ones the broker refused, with its reasons."""
        if not entities:
            return []
        response = await self._post(orjson.dumps(list(entities)))
        status = response.status_code
        if status in (201, 204):
            refused: list[Refused] = []
        elif status == 207:
            refused = _refused(response, entities)
        elif status == 400:
            reason = f"the broker refused the whole batch: {_detail(response)}"
            refused = [(e.get("id", ""), reason) for e in entities]
        elif status == 413 and len(entities) > 1:
            half = len(entities) // 2
            return [*await self.upsert(entities[:half]), *await self.upsert(entities[half:])]
        elif status == 413:
            refused = [(entities[0].get("id", ""), f"too large for the broker: "
                                                   f"{_detail(response)}")]
        else:
            raise AdapterError(f"broker {self.client.base_url} answered {status} to the upsert: "
                               f"{_detail(response)}")
        self.counters.published += len(entities) - len(refused)
        return refused
