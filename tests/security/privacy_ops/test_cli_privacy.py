"""`cetate privacy purge` and `cetate privacy subject export|erase` on a real SQLite store, with
their audit entries in the log beside it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from broker.cli import main
from broker.cli_audit import _open_log
from broker.store.open import open_store
from broker.store.protocol import EntityQuery
from security.audit.entry import decode
from security.audit.log import EntryQuery
from tests.security.privacy_ops.kit import (
    NOW,
    OLD,
    VALIDATION,
    P,
    entity,
    prop,
    put,
    strangers,
    subject_entities,
)


def seed(url: str) -> None:
    async def run() -> None:
        store = open_store(url)
        await store.open()
        try:
            await put(store, "", *subject_entities()[3:], *strangers(),
                      entity("urn:ngsi-ld:TicketValidation:rat:old", VALIDATION, OLD,
                             passengerCount=prop(1)))
            await put(store, "tax", *subject_entities()[:3])
        finally:
            await store.close()
    asyncio.run(run())


def ids(url: str, tenant: str = "") -> set[str]:
    async def run() -> set[str]:
        store = open_store(url)
        await store.open()
        try:
            page = await store.query_entities(tenant, EntityQuery(limit=100))
            return {e["id"] for e in page.entities}
        finally:
            await store.close()
    return asyncio.run(run())


def logged(url: str, action: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        log = _open_log(url)  # as `cetate audit` reads it
        await log.open()
        try:
            return [decode(raw) for _, raw in await log.query(EntryQuery(action=action))]
        finally:
            await log.close()
    return asyncio.run(run())


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("CETATE_AUDIT_STORE", "CETATE_AUDIT_KEY_DIR", "CETATE_PRIVACY_TENANTS",
                 "CETATE_AUDIT"):
        monkeypatch.delenv(name, raising=False)
    store = f"sqlite:///{tmp_path}/cetate.db"
    seed(store)
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["privacy", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_purge_dry_run_then_for_real(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    dry = run(capsys, "purge", "--store", url, "--now", NOW, "--dry-run", "--json")
    assert dry["dryRun"] and dry["removed"] == 1
    assert "urn:ngsi-ld:TicketValidation:rat:old" in ids(url)
    done = run(capsys, "purge", "--store", url, "--now", NOW, "--json")
    assert done["types"][0]["ids"] == ["urn:ngsi-ld:TicketValidation:rat:old"]
    assert "urn:ngsi-ld:TicketValidation:rat:old" not in ids(url)
    (entry,) = logged(url, "privacy.purge")
    assert entry["entities"]["ids"] == ["urn:ngsi-ld:TicketValidation:rat:old"]


def test_subject_export_and_erase(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    exported = run(capsys, "subject", "export", "--subject", P, "--store", url,
                   "--tenant", "@default", "--tenant", "tax")
    assert {e["entity"]["id"] for e in exported["entities"]} == {
        e["id"] for e in subject_entities()}
    assert exported["recipients"] == []
    erased = run(capsys, "subject", "erase", "--subject", P, "--store", url, "--tenant", "tax")
    assert erased["erased"] == [] and len(erased["kept"]) == 3  # taxes: art. 17(3)(b)
    erased = run(capsys, "subject", "erase", "--subject", P, "--store", url)
    assert len(erased["erased"]) == 3
    assert ids(url) == {e["id"] for e in strangers()} | {"urn:ngsi-ld:TicketValidation:rat:old"}
    assert len(ids(url, "tax")) == 3
    entries = logged(url, "privacy.subject.erase")
    assert len(entries) == 2 and entries[0]["principal"]["subject"]  # pseudonymised OS user


def test_subject_too_short_is_refused(url: str) -> None:
    with pytest.raises(SystemExit, match="pseudonym"):
        main(["privacy", "subject", "export", "--subject", "abc", "--store", url])
