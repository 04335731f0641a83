"""The lighting adapter: Luminis CMS -> Streetlight, StreetlightControlCabinet,
StreetlightGroup, Device; and dimming/switching changes made on the broker -> CMS commands.

Config (the `[lighting]` section of --config, or what the simulator serves):
    cms = "http://cms.example:8081"   # the CMS API
    interval = 2.0                    # seconds between two polls of the change feed
    commands = true                   # send write-back commands (false: read only)

    cetate adapter run lighting --config lighting.toml --state /var/lib/cetate/lighting
    cetate adapter run lighting --simulate --broker http://127.0.0.1:8080 --limit 500
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx

from adapters.lighting import mapping, writeback
from adapters.lighting.parse import Cabinet, Group, Record, parse_item
from adapters.lighting.simulator import Lighting, start
from adapters.sdk import Adapter, BadRecord, Config, Entity, Position, Pseudonymise, Raw, WriteBack
from adapters.sdk.sources import HttpPolling

log = logging.getLogger("cetate.adapter")

STREETLIGHTING = "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld"
CMS_TIMEOUT = 10.0  # seconds for one CMS call; a command not answered by then is retried
STREAM = "cms"


class CmsFeed(HttpPolling):
    """The CMS change feed, after its catalogue: the cabinets and groups a lamp may name (a
    compacted feed may show a lamp before the latest state of its group, and a restarted
    adapter does not see them again)."""

    def __init__(self, cms: str, catalogue: set[str], **options: Any) -> None:
        super().__init__(f"{cms}/api/v1/changes", stream=STREAM, items="items",
                         cursor_param="after", position_field="seq", **options)
        self.cms, self.catalogue = cms, catalogue

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        while True:
            try:
                await self._catalogue()
                break
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                # the CMS down or answering nonsense at start: wait for it, as a poll would
                log.warning("catalogue of %s unavailable (%r); again in %.1f s", self.cms, exc,
                            self.interval)
                await asyncio.sleep(self.interval)
        async for raw in super().read(checkpoint):
            yield raw

    async def _catalogue(self) -> None:
        async with httpx.AsyncClient(timeout=CMS_TIMEOUT) as http:
            for what, key in (("cabinets", "cabinetId"), ("groups", "groupId")):
                answer = await http.get(f"{self.cms}/api/v1/{what}")
                answer.raise_for_status()
                self.catalogue.update(str(item[key]) for item in answer.json())


class LightingSimulator:
    """The Luminis CMS (config: seed, host, port, cabinets, lamps_per_group, page), the city
    moving on one minute every `tick` seconds, and with `fast_forward` (the default here) as
    fast as the adapter reads its feed, so that `run --simulate --limit N` and bench/adapters.py
    measure the adapter, not the simulator's clock."""

    def __init__(self, config: Config) -> None:
        self.cms = Lighting(seed=int(config.get("seed", 7)),
                            cabinets_count=int(config.get("cabinets", 8)),
                            lamps_per_group=int(config.get("lamps_per_group", 10)),
                            page=int(config.get("page", 500)),
                            fast_forward=bool(config.get("fast_forward", True)))
        self.host = str(config.get("host", "127.0.0.1"))
        self.port = int(config.get("port", 0))
        self.tick = float(config.get("tick", 0.5))
        self.runner: Any = None
        self.clock: asyncio.Task[None] | None = None

    async def start(self) -> Config:
        self.runner, url = await start(self.cms, host=self.host, port=self.port)
        if self.tick > 0:
            self.clock = asyncio.create_task(self._advance())
        return {"cms": url, "interval": 0.2}

    async def _advance(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.cms.tick()

    async def stop(self) -> None:
        if self.clock is not None:
            self.clock.cancel()
        if self.runner is not None:
            await self.runner.cleanup()


class LightingAdapter(Adapter):
    name = "lighting"
    context = STREETLIGHTING  # Devices carry the Device context themselves
    write_back = WriteBack(types=("Streetlight",), attributes=("powerState", "illuminanceLevel"),
                           outcome=("annotations",))

    def __init__(self) -> None:
        self.known: set[str] = set()  # cabinet and group ids the CMS described

    def source(self, config: Config) -> CmsFeed:
        return CmsFeed(str(config["cms"]).rstrip("/"), self.known,
                       interval=float(config.get("interval", 2.0)))

    def parse(self, raw: Raw) -> Iterable[Record]:
        record = parse_item(raw.data)
        if isinstance(record, Cabinet):
            self.known.add(record.cabinet_id)
        elif isinstance(record, Group):
            self.known.add(record.group_id)
        return [record]

    def map(self, record: Record, pseudonymise: Pseudonymise) -> Iterable[Entity]:
        # no direct identifiers in street lighting: pseudonymise is not needed
        return [{**entity, "@context": mapping.context_of(entity)}
                for entity in mapping.entities(record, self.known, self.known)]

    def simulator(self, config: Config) -> LightingSimulator:
        return LightingSimulator(config)

    async def on_entity_change(self, entity: Entity, config: Config) -> Mapping[str, Any] | None:
        if config.get("commands", True) is False:
            return None
        cms = str(config["cms"]).rstrip("/")
        try:
            lamp = mapping.lamp_of(str(entity.get("id")))
        except ValueError as exc:
            raise BadRecord(str(exc)) from None
        async with httpx.AsyncClient(base_url=cms, timeout=CMS_TIMEOUT) as http:
            found = await http.get(f"/api/v1/lamps/{lamp}")
            if found.status_code == 404:
                raise BadRecord(f"the CMS has no lamp {lamp}")
            found.raise_for_status()  # CMS down: raised, the notification comes again
            controller = found.json()
            command = writeback.command_for(entity, controller)
            if command is None:
                return None
            answer = await http.post(f"/api/v1/controllers/{controller['controllerId']}"
                                     f"/commands", json=command)
            if answer.status_code >= 500:
                answer.raise_for_status()
            return writeback.outcome({**command, **answer.json()})


ADAPTER = LightingAdapter
