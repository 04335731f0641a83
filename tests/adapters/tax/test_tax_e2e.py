"""The tax adapter end to end: the simulated local tax system (export files) and payment
gateway (HTTP) -> the adapter -> a real broker process, in the tenant `tax`. The entities are
there and keep the contracts, no CNP, CUI, plate or person's name reaches the broker, impossible
values end in the dead-letter file with a reason, and an adapter killed mid-stream and
restarted leaves the broker holding exactly what the tax system holds."""

from __future__ import annotations

import contextlib
import json
import math
import signal
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk.run import Options, run
from adapters.sdk.validate import problems
from adapters.tax.adapter import TaxAdapter
from adapters.tax.simulator import BAD_KINDS, PAGE, TaxSimulator, TaxSystem
from tests.adapters.support import (
    BrokerProcess,
    checkpoint,
    dead_letters,
    eventually,
    run_cli,
    spawn_cli,
)
from tests.adapters.support import entities as held
from tests.broker.subscriptions.conftest import serving_receiver

CETATE = "https://cetate.city/ns/context.jsonld"
TYPES = ("Taxpayer", "TaxObligation", "TaxPayment")


def holding(url: str, tenant: str = "tax") -> dict[str, list[dict[str, Any]]]:
    return {t: held(url, t, CETATE, tenant=tenant) for t in TYPES}


def expected(system: TaxSystem) -> dict[str, set[str]]:
    """The ids the broker must hold for a tax system with no bad data."""
    return {"TaxObligation": {f"urn:ngsi-ld:TaxObligation:craiova:{d['id_debit']}"
                              for d in system.debits},
            "TaxPayment": {f"urn:ngsi-ld:TaxPayment:craiova:{p['transactionId']}"
                           for p in system.gateway}}


def ids(found: dict[str, list[dict[str, Any]]], kind: str) -> list[str]:
    return [e["id"] for e in found[kind]]




@contextlib.asynccontextmanager
async def serving(system: TaxSystem, export: Path) -> AsyncIterator[dict[str, Any]]:
    simulator = TaxSimulator(system, export_dir=export)
    served = await simulator.start()
    try:
        pages = math.ceil(len(system.gateway) / PAGE) + 1
        yield {**served, "polls": pages, "poll_interval": 0.05}
    finally:
        await simulator.stop()


def test_run_simulate_publishes_valid_pseudonymised_entities_in_the_tax_tenant(
        broker: BrokerProcess, adapter_state: Path, tmp_path: Path) -> None:
    config = tmp_path / "tax.json"
    config.write_text(json.dumps({"simulator": {"seed": 11, "taxpayers": 60, "payments": 80}}))
    done = run_cli("run", "tax", "--simulate", "--broker", broker.url, "--limit", "10000",
                   "--state", str(adapter_state), "--config", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert dead_letters(adapter_state) == []
    system = TaxSystem(seed=11, taxpayers=60, payments=80)
    found = holding(broker.url)
    assert len(found["Taxpayer"]) == 60
    for kind, want in expected(system).items():
        assert sorted(ids(found, kind)) == sorted(want)
    for entities in found.values():
        for entity in entities:
            assert problems({**entity, "@context": CETATE}) == [], entity["id"]
    assert all(held(broker.url, t, CETATE) == [] for t in TYPES)  # none in the default tenant
    text = json.dumps(found, ensure_ascii=False)
    for person in system.people:
        assert person["cod_fiscal"].removeprefix("RO") not in text
        if person["tip"] != "PJ":
            assert person["denumire"] not in text
    for debit in system.debits:
        assert not debit["bun_impozabil"] or debit["bun_impozabil"] not in text
    owed = {e["id"].rsplit(":", 1)[1]: Decimal(str(e["amountDue"]["value"]))
            for e in found["TaxObligation"]}
    assert owed == {d["id_debit"]: Decimal(d["suma_datorata"].replace(",", "."))
                    for d in system.debits}
    paid = sum(Decimal(str(e["amountCollected"]["value"])) for e in found["TaxPayment"])
    assert paid == sum(Decimal(p["amount"]) for p in system.gateway)


def test_the_tenant_is_configurable(broker: BrokerProcess, adapter_state: Path,
                                    tmp_path: Path) -> None:
    config = tmp_path / "tax.json"
    config.write_text(json.dumps({"tenant": "impozite", "simulator": {"taxpayers": 5,
                                                                      "payments": 3}}))
    done = run_cli("run", "tax", "--simulate", "--broker", broker.url, "--limit", "1000",
                   "--state", str(adapter_state), "--config", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert len(holding(broker.url, "impozite")["Taxpayer"]) == 5
    answer = httpx.get(f"{broker.url}/ngsi-ld/v1/entities", params={"type": "Taxpayer"},
                       headers={"NGSILD-Tenant": "tax", "Link": f'<{CETATE}>; rel="http://www'
                                '.w3.org/ns/json-ld#context"; type="application/ld+json"'})
    assert answer.status_code == 404  # NonexistentTenant: nothing was ever written to `tax`
    assert answer.json()["type"].endswith("NonexistentTenant"), answer.text


async def test_impossible_values_end_in_the_dead_letter_file(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str,
        tmp_path: Path) -> None:
    system = TaxSystem(seed=11, taxpayers=60, payments=80, bad=BAD_KINDS)
    async with serving(system, tmp_path / "export") as config:
        counters = await run(TaxAdapter(), config, Options(broker=broker.url,
                                                           state_dir=adapter_state))
    letters = dead_letters(adapter_state)
    reasons = sorted(letter["reason"] for letter in letters)

    def where(words: str) -> list[tuple[str, Any]]:
        return [(d["stream"], d["position"]) for d in letters if words in d["reason"]]

    first_pf = next(i for i, p in enumerate(system.people) if p["tip"] == "PF")
    bad_rol = system.people[first_pf]["rol_fiscal"]
    negative, truncated = system.debits[3]["id_debit"], system.debits[-1]["id_debit"]
    orphans = {d["id_debit"] for d in system.debits if d["rol_fiscal"] == bad_rol}
    refused = orphans | {negative, truncated}
    assert where(f"taxpayer {bad_rol}: CNP: bad check digit") == [("contribuabili.csv",
                                                                   first_pf + 1)]
    assert where("bytes that are not utf-8") == [("contribuabili.csv", 61)]
    assert len(where("unknown taxpayer")) == len(orphans - {negative, truncated})
    assert where("suma_datorata: negative amount") == [("debite.csv", 4)]
    assert where("(truncated?)") == [("debite.csv", len(system.debits))]
    assert where("amount: more than 2 decimals") == [("payments", 3)]
    assert where("currency is not RON") == [("payments", 5)]
    assert where("unknown obligation D2026-999999") == [("payments", 41)]
    refused_payments = [p for p in system.gateway
                        if p["items"][0]["debitId"] in refused and p["seq"] not in (3, 5, 41)]
    # A line cut short cannot be read at all: its debit is unknown rather than refused.
    unreadable = [p["seq"] for p in refused_payments if p["items"][0]["debitId"] == truncated]
    assert where(f"unknown obligation {truncated}") == [("payments", s) for s in unreadable]
    assert len(where("was refused (see its own dead letter)")) == \
        len(refused_payments) - len(unreadable)
    assert counters.rejected == len(letters), reasons
    cnps = [p["cod_fiscal"] for p in system.people if p["tip"] == "PF"]
    assert not any(cnp in letter["reason"] for cnp in cnps for letter in letters)
    found = holding(broker.url)
    assert len(found["Taxpayer"]) == 59
    assert len(found["TaxObligation"]) == len(system.debits) - len(refused)
    assert len(found["TaxPayment"]) == 80 - 3 - len(refused_payments)
    published = set(ids(found, "TaxObligation"))
    assert not any(f"craiova:{debit}" in i for debit in refused for i in published)


async def test_each_nightly_export_is_published_a_restart_resumes(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str,
        tmp_path: Path) -> None:
    export = tmp_path / "export"
    system = TaxSystem(seed=14, taxpayers=10, payments=0)
    system.write_export(export)
    for name in ("contribuabili.csv", "debite.csv"):
        (export / name).rename(export / name.replace(".csv", "-2026-11-30.csv"))
    def options() -> Options:  # fresh counters each run
        return Options(broker=broker.url, state_dir=adapter_state, linger=0.1)

    await run(TaxAdapter(), {"export_dir": str(export)}, options())
    first = checkpoint(adapter_state)
    assert set(first) == {"contribuabili-2026-11-30.csv", "debite-2026-11-30.csv"}
    counters = await run(TaxAdapter(), {"export_dir": str(export)}, options())
    assert counters.read == 0  # the same night's files: nothing left after the checkpoint
    debit = system.debits[0]
    debit.update(achitat=debit["suma_datorata"], stare="ACHITAT")
    (export / "night-2").mkdir()
    system.write_export(export / "night-2")
    for name in ("contribuabili.csv", "debite.csv"):
        (export / "night-2" / name).rename(export / name.replace(".csv", "-2026-12-01.csv"))
    counters = await run(TaxAdapter(), {"export_dir": str(export)}, options())
    assert counters.read == len(system.people) + len(system.debits)
    [paid] = [e for e in holding(broker.url)["TaxObligation"]
              if e["id"].endswith(debit["id_debit"])]
    assert paid["paymentStatus"]["value"] == "paid"
    assert paid["amountOutstanding"]["value"] == 0


async def test_killed_mid_stream_then_restarted_nothing_lost_nothing_doubled(
        broker: BrokerProcess, adapter_state: Path, tmp_path: Path) -> None:
    system = TaxSystem(seed=12, taxpayers=150, payments=300)
    async with serving(system, tmp_path / "export") as served:
        config = tmp_path / "tax.json"
        config.write_text(json.dumps({**served, "poll_interval": 0.2}))
        args = ("run", "tax", "--config", str(config), "--broker", broker.url,
                "--state", str(adapter_state), "--batch-size", "10", "--no-progress")
        total = len(system.people) + len(system.debits) + len(system.gateway)

        def handled() -> int:
            return sum(int(p) for p in checkpoint(adapter_state).values())

        first = spawn_cli(*args)
        try:
            await eventually(lambda: handled() >= 100, "100 records checkpointed")
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        assert handled() < total, "to be killed mid-stream"
        second = spawn_cli(*args)
        try:
            await eventually(lambda: second.poll() is not None, "the restarted run's end", 60)
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode == 0, second.stderr.read() if second.stderr else ""
    found = holding(broker.url)
    assert len(found["Taxpayer"]) == len(set(ids(found, "Taxpayer"))) == 150
    for kind, want in expected(system).items():
        assert sorted(ids(found, kind)) == sorted(want)
    assert dead_letters(adapter_state) == []


async def test_a_subscription_receives_the_changes(broker: BrokerProcess, adapter_state: Path,
                                                   adapter_secret: str,
                                                   tmp_path: Path) -> None:
    async with serving_receiver() as receiver:
        async with httpx.AsyncClient(base_url=broker.url, timeout=10) as http:
            answer = await http.post("/ngsi-ld/v1/subscriptions", json={
                "id": "urn:ngsi-ld:Subscription:tax-payments", "type": "Subscription",
                "entities": [{"type": "TaxPayment"}],
                "notification": {"endpoint": {"uri": f"{receiver.url}/notify",
                                              "accept": "application/json"}},
                "@context": CETATE},
                headers={"Content-Type": "application/ld+json", "NGSILD-Tenant": "tax"})
        assert answer.status_code == 201, answer.text
        system = TaxSystem(seed=13, taxpayers=20, payments=25)
        async with serving(system, tmp_path / "export") as config:
            await run(TaxAdapter(), config, Options(broker=broker.url, state_dir=adapter_state))
        want = expected(system)["TaxPayment"]

        def notified() -> set[str]:
            return {e["id"] for n in receiver.received for e in n.body["data"]}

        await eventually(lambda: notified() == want, "every payment notified")
        assert all(e["type"] == "TaxPayment" for n in receiver.received for e in n.body["data"])
