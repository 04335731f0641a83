"""A simulated local tax system of Craiova (Direcţia de Impozite şi Taxe Locale) and its online
payment gateway (ghiseul.ro style).

- The export: contribuabili.csv and debite.csv (adapters/tax/parse.py gives the columns),
  written to a directory, as the tax system's nightly export job leaves them.
- The gateway: GET /api/payments?after=SEQ&limit=N -> {"payments": [...], "next": SEQ}, the
  payments after SEQ in order.

Deterministic with `seed`. Taxpayers are people of Dolj (CNP county 16, with valid check
digits) and firms of Craiova (CUI with valid check digits); obligations are 2026 building,
land and vehicle taxes (two installments: 31 March and 30 September), the sanitation fee and
traffic fines; payments settle outstanding obligations, now and then one paid by someone else.

Bad data on demand (`bad`, a set of kinds; each spoils a few records):
bad-cnp (a taxpayer whose CNP check digit is wrong), negative-amount (an obligation of
-120,00 lei), unknown-obligation (a payment of debit D2026-999999), wrong-encoding (a
contribuabili.csv line in Windows-1250), truncated-export (debite.csv cut mid-line),
three-decimals (a payment of 12.345 lei), foreign-currency (a payment in EUR).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.sdk.hooks import Config
from adapters.tax.identifiers import cnp_check_digit, cui_check_digit
from adapters.tax.parse import LOCAL_TIME

BAD_KINDS = frozenset({"bad-cnp", "negative-amount", "unknown-obligation", "wrong-encoding",
                       "truncated-export", "three-decimals", "foreign-currency"})
PAGE = 100  # payments per gateway answer
TAXPAYERS_FILE = "contribuabili.csv"
OBLIGATIONS_FILE = "debite.csv"
TAXPAYER_COLUMNS = ("rol_fiscal", "tip", "cod_fiscal", "denumire")
OBLIGATION_COLUMNS = ("id_debit", "rol_fiscal", "categorie", "an_fiscal", "data_emitere",
                      "temei_legal", "bun_impozabil", "suma_datorata", "majorari",
                      "bonificatie", "achitat", "rata1_scadenta", "rata1_suma",
                      "rata2_scadenta", "rata2_suma", "stare")
FAMILY = ("Popescu", "Ionescu", "Stănescu", "Dumitrescu", "Marinescu", "Georgescu", "Ţuţuianu",
          "Bălcescu", "Ciobanu", "Radu", "Niculescu", "Şerban")
GIVEN = ("Ion", "Maria", "Elena", "Gheorghe", "Andreea", "Mihai", "Ioana", "Constantin",
         "Ştefan", "Alexandra")
FIRMS = ("Oltenia Construct SRL", "Jiul Transport SRL", "Craiova Print SA", "Bănie Trade SRL",
         "Amaradia Agro SRL", "Doljana Services SRL")
YEAR = 2026


def fake_cnp(rng: random.Random) -> str:
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 67))
    sex = rng.randrange(2)
    first = (1 if born.year < 2000 else 5) + sex
    body = f"{first}{born:%y%m%d}16{rng.randrange(1, 1000):03d}"
    return body + str(cnp_check_digit(body))


def fake_cui(rng: random.Random) -> str:
    body = str(rng.randrange(1_000_000, 99_999_999))
    return body + str(cui_check_digit(body))


def lei_ro(amount: Decimal) -> str:
    return f"{amount:.2f}".replace(".", ",")


@dataclass
class TaxSystem:
    seed: int = 11
    taxpayers: int = 120
    payments: int = 150
    bad: frozenset[str] = frozenset()
    people: list[dict[str, str]] = field(default_factory=list, repr=False)
    debits: list[dict[str, str]] = field(default_factory=list, repr=False)
    gateway: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.bad) - BAD_KINDS
        if unknown:
            raise ValueError(f"unknown bad-data kinds: {', '.join(sorted(unknown))}")
        rng = random.Random(self.seed)
        for n in range(self.taxpayers):
            self.people.append(self._taxpayer(rng, n))
        for person in self.people:
            self.debits.extend(self._obligations(rng, person))
        self._payments(rng)
        self._spoil()

    def _taxpayer(self, rng: random.Random, n: int) -> dict[str, str]:
        kind = rng.choices(("PF", "PFA", "PJ"), (75, 10, 15))[0]
        if kind == "PF":
            code, name = fake_cnp(rng), f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}"
        elif kind == "PFA":
            code, name = fake_cui(rng), f"{rng.choice(FAMILY)} {rng.choice(GIVEN)} PFA"
        else:
            code, name = f"RO{fake_cui(rng)}", rng.choice(FIRMS)
        return {"rol_fiscal": f"R{100000 + n}", "tip": kind, "cod_fiscal": code,
                "denumire": name}

    def _obligations(self, rng: random.Random, person: dict[str, str]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        kinds = ["IMPOZIT_CLADIRI", "TAXA_LOCALA"]
        if rng.random() < 0.6:
            kinds.append("IMPOZIT_TEREN")
        if rng.random() < 0.5:
            kinds.append("IMPOZIT_MIJLOACE_TRANSPORT")
        if rng.random() < 0.15:
            kinds.append("AMENDA")
        for kind in kinds:
            due = Decimal(rng.randrange(5_000, 250_000)) / 100
            asset = ""
            basis = "Legea 227/2015 (Codul fiscal), HCL Craiova 410/2025"
            if kind == "IMPOZIT_MIJLOACE_TRANSPORT":
                letters = "".join(rng.choices("ABCDEFGHKLMNPRSTVX", k=3))
                asset = f"DJ {rng.randrange(1, 99):02d} {letters}"
            elif kind in ("IMPOZIT_CLADIRI", "IMPOZIT_TEREN"):
                asset = f"{rng.randrange(200_000, 240_000)}-C1" if kind == "IMPOZIT_CLADIRI" \
                    else str(rng.randrange(200_000, 240_000))
            elif kind == "AMENDA":
                due = Decimal(rng.choice((290, 580, 1160, 1450)))
                basis = "OUG 195/2002, proces-verbal Poliţia Locală Craiova"
            elif kind == "TAXA_LOCALA":
                due = Decimal("144.00")  # taxa specială de salubrizare, 12 lei a month
            first = (due / 2).quantize(Decimal("0.01"))
            state = rng.choices(("NEACHITAT", "PARTIAL", "ACHITAT", "RESTANT"), (4, 2, 3, 1))[0]
            paid = {"NEACHITAT": Decimal(0), "PARTIAL": first, "ACHITAT": due,
                    "RESTANT": Decimal(0)}[state]
            late = (due * Decimal("0.01") * 3).quantize(Decimal("0.01")) \
                if state == "RESTANT" else Decimal(0)
            split = kind != "AMENDA"
            out.append({
                "id_debit": f"D{YEAR}-{len(self.debits) + len(out) + 1:06d}",
                "rol_fiscal": person["rol_fiscal"], "categorie": kind, "an_fiscal": str(YEAR),
                "data_emitere": f"15.01.{YEAR}", "temei_legal": basis, "bun_impozabil": asset,
                "suma_datorata": lei_ro(due), "majorari": lei_ro(late) if late else "",
                "bonificatie": lei_ro((due * Decimal("0.10")).quantize(Decimal("0.01")))
                if split and kind != "TAXA_LOCALA" else "",
                "achitat": lei_ro(paid),
                "rata1_scadenta": f"31.03.{YEAR}" if split else "",
                "rata1_suma": lei_ro(first) if split else "",
                "rata2_scadenta": f"30.09.{YEAR}" if split else "",
                "rata2_suma": lei_ro(due - first) if split else "",
                "stare": state})
        return out

    def _payments(self, rng: random.Random) -> None:
        open_debits = [d for d in self.debits if d["stare"] != "ACHITAT"]
        by_rol = {p["rol_fiscal"]: p for p in self.people}
        moment = datetime(YEAR, 11, 2, 8, 0, tzinfo=LOCAL_TIME)
        for seq in range(1, self.payments + 1):
            debit = rng.choice(open_debits)
            owed = Decimal(debit["suma_datorata"].replace(",", ".")) \
                + Decimal((debit["majorari"] or "0").replace(",", ".")) \
                - Decimal(debit["achitat"].replace(",", "."))
            amount = owed if rng.random() < 0.7 else (owed / 2).quantize(Decimal("0.01"))
            payer = by_rol[debit["rol_fiscal"]]["cod_fiscal"] if rng.random() < 0.9 \
                else fake_cnp(rng)
            moment += timedelta(seconds=rng.randrange(30, 900))
            self.gateway.append({
                "seq": seq, "transactionId": f"GH{moment:%Y%m%d}{seq:06d}",
                "paidAt": moment.isoformat(), "amount": f"{amount:.2f}", "currency": "RON",
                "payerId": payer.removeprefix("RO"), "method": "card", "status": "SETTLED",
                "receipt": f"CH-{YEAR}-{seq:07d}",
                "items": [{"debitId": debit["id_debit"], "amount": f"{amount:.2f}"}]})

    def _spoil(self) -> None:
        if "bad-cnp" in self.bad:
            for person in self.people:
                if person["tip"] == "PF":
                    code = person["cod_fiscal"]
                    person["cod_fiscal"] = code[:12] + str((int(code[12]) + 1) % 10)
                    break
        if "negative-amount" in self.bad:
            self.debits[3]["suma_datorata"] = "-120,00"
        if "unknown-obligation" in self.bad and self.gateway:
            self.gateway[len(self.gateway) // 2]["items"][0]["debitId"] = f"D{YEAR}-999999"
        if "three-decimals" in self.bad and len(self.gateway) > 2:
            self.gateway[2]["amount"] = self.gateway[2]["items"][0]["amount"] = "12.345"
        if "foreign-currency" in self.bad and len(self.gateway) > 4:
            self.gateway[4]["currency"] = "EUR"

    # -- the export files --

    def _csv(self, columns: Sequence[str], rows: list[dict[str, str]]) -> list[str]:
        return [";".join(columns)] + [";".join(row[c] for c in columns) for row in rows]

    def export_files(self) -> dict[str, bytes]:
        taxpayers = self._csv(TAXPAYER_COLUMNS, self.people)
        obligations = self._csv(OBLIGATION_COLUMNS, self.debits)
        people = "\r\n".join(taxpayers) + "\r\n"
        data = people.encode("utf-8")
        if "wrong-encoding" in self.bad:
            data += f"R199999;PF;{fake_cnp(random.Random(1))};Ţuţuianu Ştefan\r\n".encode(
                "cp1250")
        debits = ("\r\n".join(obligations) + "\r\n").encode("utf-8")
        if "truncated-export" in self.bad:
            debits = debits[: len(debits) - len(obligations[-1]) // 2 - 2]
        return {TAXPAYERS_FILE: data, OBLIGATIONS_FILE: debits}

    def write_export(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.export_files().items():
            temporary = directory / f".{name}.tmp"
            temporary.write_bytes(data)
            temporary.replace(directory / name)


class TaxSimulator:
    """Writes the export to `export_dir` (a temporary directory if none) and serves the
    gateway on host:port (port 0: any free port)."""

    def __init__(self, system: TaxSystem, *, port: int = 0,
                 export_dir: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self.system, self.port, self.host = system, port, host
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if export_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="cetate-tax-")
            export_dir = self._temporary.name
        self.export_dir = Path(export_dir)
        self.url = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/payments", self._payments)
        return app

    async def _payments(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", 0))
            limit = min(1000, max(1, int(request.query.get("limit", PAGE))))
        except ValueError:
            raise web.HTTPBadRequest(text="after and limit are integers") from None
        page = [p for p in self.system.gateway if p["seq"] > after][:limit]
        return web.json_response({"payments": page,
                                  "next": page[-1]["seq"] if page else after})

    async def start(self) -> Config:
        self.system.write_export(self.export_dir)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://{self.host}:{self.port}"
        return {"export_dir": str(self.export_dir), "gateway_url": f"{self.url}/api/payments"}

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self._temporary:
            self._temporary.cleanup()


def system_of(config: Config) -> TaxSystem:
    bad = config.get("bad", ())
    return TaxSystem(seed=int(config.get("seed", 11)),
                     taxpayers=int(config.get("taxpayers", 120)),
                     payments=int(config.get("payments", 150)),
                     bad=frozenset(bad.split(",") if isinstance(bad, str) else bad) - {""})


def simulator_of(config: Config) -> TaxSimulator:
    return TaxSimulator(system_of(config), port=int(config.get("port", 0)),
                        export_dir=config.get("export_dir"),
                        host=str(config.get("host", "127.0.0.1")))


async def _serve(args: argparse.Namespace) -> None:
    simulator = simulator_of(vars(args))
    config = await simulator.start()
    print(f"Craiova local tax system simulator: export in {config['export_dir']}, gateway at "
          f"{config['gateway_url']}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--taxpayers", type=int, default=120)
    parser.add_argument("--payments", type=int, default=150)
    parser.add_argument("--export-dir", default=None)
    parser.add_argument("--bad", default="",
                        help=f"comma-separated: {', '.join(sorted(BAD_KINDS))}")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
