"""The local taxes adapter: the tax system's export and the payment gateway -> the broker, in
the tenant `tax` (set `tenant` in the config for another).

Config (the `tax` section of --config FILE; `run --simulate` fills the first two itself):

    export_dir = "/srv/export/impozite"      # contribuabili[-DATE].csv, debite[-DATE].csv
    gateway_url = "https://gateway.example/api/payments"   # payments after a cursor
    place = "craiova"                        # in obligation and payment ids
    authority = "urn:ngsi-ld:Organization:craiova-dgitl"   # the local tax office
    poll_interval = 30.0                     # seconds between two gateway polls
    polls = 0                                # stop after that many polls (0: never)
    secret_file = "/etc/cetate/tax.key"      # the pseudonymisation key (CNP, CUI, plates)
    tenant = "tax"

The export is read once at the start to build the Ledger every reference is checked against,
then streamed record by record (file stream positions: line ordinals); payments resume after
the last published `seq`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adapters.sdk.errors import BadRecord, ConfigError
from adapters.sdk.hooks import CETATE_CONTEXT, Adapter, Config, Entity, Pseudonymise, Raw
from adapters.sdk.redact import mask_fields
from adapters.sdk.sources import Files, HttpPolling, Merged, merged
from adapters.tax.mapping import Ledger, ledger_of, map_obligation, map_payment, map_taxpayer
from adapters.tax.parse import (
    ObligationRow,
    Payment,
    TaxpayerRow,
    parse_obligation,
    parse_payment,
    parse_taxpayer,
)
from adapters.tax.simulator import (
    OBLIGATIONS_FILE,
    PAGE,
    TAXPAYERS_FILE,
    TaxSimulator,
    simulator_of,
)

PAYMENTS = "payments"
DELIMITER = ";"

CNP_LIKE = re.compile(r"\b[1-9]\d{12}\b")  # a CNP is 13 digits, the first 1-9


def latest(directory: Path, name: str) -> Path:
    """The newest export of `name` in `directory`: debite.csv, or the last by name of dated
    ones (debite-2026-12-01.csv), so each night's export is a stream of its own (its own
    checkpoint position) while a restart on the same file resumes where it stopped."""
    stem = name.removesuffix(".csv")
    found = sorted((p for p in directory.glob(f"{stem}*.csv") if p.is_file()),
                   key=lambda p: (p.name != name, p.name))
    if not found:
        raise ConfigError(f"tax: the export in {directory} has no {stem}*.csv")
    return found[-1]


class TaxAdapter(Adapter):
    name = "tax"
    tenant = "tax"
    context = CETATE_CONTEXT

    def __init__(self) -> None:
        self.ledger = Ledger()

    def source(self, config: Config) -> Merged:
        if not config.get("export_dir"):
            raise ConfigError("tax: no export_dir (the tax system's export) in the config")
        paths = [latest(Path(str(config["export_dir"])), name)
                 for name in (TAXPAYERS_FILE, OBLIGATIONS_FILE)]
        export = Files(paths, format="csv", delimiter=DELIMITER)
        taxpayers, obligations = ([data for data, error in export.records(p, p.read_bytes())
                                   if not error] for p in paths)
        self.ledger = ledger_of(taxpayers, obligations,
                                place=str(config.get("place", Ledger.place)),
                                authority=str(config.get("authority", Ledger.authority)))
        sources: list[Any] = [export]
        if config.get("gateway_url"):
            polls = int(config.get("polls", 0)) or None
            sources.append(HttpPolling(
                str(config["gateway_url"]), stream=PAYMENTS, items="payments",
                cursor_param="after", position_field="seq", polls=polls,
                interval=float(config.get("poll_interval", 30.0))))
        return merged(*sources)

    def redact(self, raw: Raw) -> Any:
        """A refused row or payment keeps no CNP/CUI or name in the dead letter (a CNP-shaped
        number in an unreadable line is masked too)."""
        return mask_fields(raw.data, {"cod_fiscal", "denumire", "payerId"}, (CNP_LIKE,))

    def parse(self, raw: Raw) -> Iterable[Any]:
        if raw.stream.startswith(TAXPAYERS_FILE.removesuffix(".csv")):
            return [parse_taxpayer(raw.data)]
        if raw.stream.startswith(OBLIGATIONS_FILE.removesuffix(".csv")):
            return [parse_obligation(raw.data)]
        if raw.stream == PAYMENTS:
            return [parse_payment(raw.data)]
        raise BadRecord(f"no stream {raw.stream!r} in the tax adapter")

    def map(self, record: Any, pseudonymise: Pseudonymise) -> Iterable[Entity]:
        if isinstance(record, TaxpayerRow):
            return [map_taxpayer(record, self.ledger, pseudonymise)]
        if isinstance(record, ObligationRow):
            return [map_obligation(record, self.ledger, pseudonymise)]
        if isinstance(record, Payment):
            return [map_payment(record, self.ledger, pseudonymise)]
        raise BadRecord(f"not a tax record: {type(record).__name__}")

    def simulator(self, config: Config) -> TaxSimulator:
        return _Simulated(simulator_of(config))


class _Simulated(TaxSimulator):
    """As `run --simulate` uses it: poll the gateway until its last payment, then stop."""

    def __init__(self, inner: TaxSimulator) -> None:
        super().__init__(inner.system, port=inner.port, export_dir=inner.export_dir,
                         host=inner.host)
        self._temporary, inner._temporary = inner._temporary, None

    async def start(self) -> Config:
        served = await super().start()
        pages = math.ceil(len(self.system.gateway) / PAGE)
        return {**served, "polls": pages + 1, "poll_interval": 0.05}


ADAPTER = TaxAdapter
