"""The local taxes adapter: the tax system's export and the payment gateway -> the broker, in
the tenant `tax` (set `tenant` in the config for another).

Config (the `tax` section of --config FILE; `run --simulate` fills the first two itself):

    export_dir = "/srv/export/impozite"      # contribuabili.csv, debite.csv (parse.py)
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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adapters.sdk.errors import BadRecord, ConfigError
from adapters.sdk.hooks import CETATE_CONTEXT, Adapter, Config, Entity, Pseudonymise, Raw
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


class TaxAdapter(Adapter):
    name = "tax"
    tenant = "tax"
    context = CETATE_CONTEXT

    def __init__(self) -> None:
        self.ledger = Ledger()

    def source(self, config: Config) -> Merged:
        if not config.get("export_dir"):
            raise ConfigError("tax: no export_dir (the tax system's export) in the config")
        directory = Path(str(config["export_dir"]))
        paths = [directory / TAXPAYERS_FILE, directory / OBLIGATIONS_FILE]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigError(f"tax: the export lacks {', '.join(missing)}")
        export = Files(paths, format="csv", delimiter=DELIMITER)
        rows = {p.name: [data for data, error in export.records(p, p.read_bytes()) if not error]
                for p in paths}
        self.ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE],
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

    def parse(self, raw: Raw) -> Iterable[Any]:
        if raw.stream == TAXPAYERS_FILE:
            return [parse_taxpayer(raw.data)]
        if raw.stream == OBLIGATIONS_FILE:
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
