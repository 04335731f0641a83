"""The run: source -> parse -> map -> validate -> publish -> checkpoint, until the source ends
or `limit` records are handled.

A raw record is handled when its entities are published or it is dead-lettered; a record is
published whole or dead-lettered whole (one invalid entity sends the record's others to the
dead-letter file with it), except for entities the broker itself refuses in a 207. A batch is
sent when it holds `batch_size` entities, or the source has been quiet for `linger` seconds
(so a webhook or MQTT trickle is not held back). Files in the state directory:
checkpoint.json, dead-letters.jsonl, status.json (counters, for monitoring).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.sdk import validate
from adapters.sdk.batch import Batch
from adapters.sdk.checkpoint import Checkpoint
from adapters.sdk.counters import Counters, write_status
from adapters.sdk.deadletter import DeadLetters
from adapters.sdk.errors import BadRecord, ConfigError
from adapters.sdk.hooks import Adapter, Config, Entity, Raw, Source
from adapters.sdk.pseudonymise import pseudonymiser
from adapters.sdk.publish import Publisher

log = logging.getLogger("cetate.adapter")

# Entities (or records) per upsert. bench/adapters.py, raw upsert and the SDK at 10 to 1,000 a
# batch: 10 costs a request per 10 entities (several times slower), and from 250 on the rate is flat
# within the noise while a batch's latency (and what a restart sends again) keeps growing. 500
# Vehicles are ~0.3 MB, far below the broker's 16 MB body limit (a 413 is split anyway).
BATCH_SIZE = 500
LINGER = 0.5  # seconds a partial batch waits for more records before it is sent
LOG_EVERY = 10.0  # seconds between two progress lines in the log
QUEUE_BATCHES = 2  # batches' worth of raw records read ahead of the pipeline
API_KEY_ENV = "CETATE_ADAPTER_API_KEY"  # the adapter's key on the broker (cetate keys create)
TOKEN_ENV = "CETATE_ADAPTER_TOKEN"  # or an OIDC access token


@dataclass
class Options:
    broker: str
    state_dir: Path
    limit: int | None = None
    batch_size: int = BATCH_SIZE
    linger: float = LINGER
    simulate: bool = False  # lets the pseudonymiser fall back to its development key
    progress: bool = False  # a tqdm bar, for sources that know their total (files)
    tenant: str | None = None  # overrides the adapter's
    api_key: str | None = None
    token: str | None = None
    write_back: bool = True
    log_every: float = LOG_EVERY
    counters: Counters = field(default_factory=Counters)
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set: finish the batch, end


def options_from(config: Config, **given: Any) -> Options:
    """Options from the config's SDK keys (broker, state_dir, batch_size, tenant, ...), any
    given explicitly (the command line) winning."""
    keys = ("broker", "state_dir", "limit", "batch_size", "linger", "tenant", "api_key",
            "token", "write_back", "progress")
    found: dict[str, Any] = {k: config[k] for k in keys if k in config}
    found.update({k: v for k, v in given.items() if v is not None})
    if not found.get("broker"):
        raise ConfigError("no broker: give --broker URL or broker = \"...\" in the config")
    found.setdefault("api_key", os.environ.get(API_KEY_ENV))
    found.setdefault("token", os.environ.get(TOKEN_ENV))
    if not found.get("state_dir"):
        if not found.get("simulate"):
            raise ConfigError("no state directory: give --state DIR or state_dir in the config "
                              "(the checkpoint and dead letters live there)")
        found["state_dir"] = tempfile.mkdtemp(prefix="cetate-adapter-")
    found["state_dir"] = Path(found["state_dir"])
    return Options(**found)


def with_context(entity: Entity, context: Any) -> Entity:
    return entity if "@context" in entity else {**entity, "@context": context}


class Pipeline:
    def __init__(self, adapter: Adapter, config: Config, options: Options) -> None:
        self.adapter, self.config, self.options = adapter, config, options
        self.counters = options.counters
        state = options.state_dir
        self.checkpoint = Checkpoint(state / "checkpoint.json")
        self.dead = DeadLetters(state / "dead-letters.jsonl")
        self.status_path = state / "status.json"
        self.pseudonymise = pseudonymiser(config, simulate=options.simulate)
        self.update = adapter.upsert == "update"
        self.batch = Batch(update=self.update)
        tenant = adapter.tenant if options.tenant is None else options.tenant
        self.tenant = tenant
        self.publisher = Publisher(options.broker, tenant=tenant, api_key=options.api_key,
                                   token=options.token, update=self.update,
                                   counters=self.counters)
        self.handled = 0
        self.on_published: Callable[[Iterable[Entity]], None] | None = None
        self.inflight: asyncio.Task[None] | None = None

    def reject(self, raw: Raw, reason: str, entity: Any = None) -> None:
        self.dead.add(raw.stream, raw.position, reason, self.adapter.redact(raw), entity)
        self.counters.rejected += 1

    def entities(self, raw: Raw) -> list[Entity]:
        """The record's entities, each with its @context; BadRecord if any cannot be made or
        would be refused."""
        try:
            entities = [with_context(e, self.adapter.context)
                        for record in self.adapter.parse(raw)
                        for e in self.adapter.map(record, self.pseudonymise)]
        except BadRecord:
            raise
        except Exception as exc:  # a mapping tripping on data it did not expect: the record's
            # fault as far as the run goes (dead-lettered), the adapter's bug in the log
            log.exception("%s failed on %s position %s", self.adapter.name, raw.stream,
                          raw.position)
            raise BadRecord(f"the adapter failed on this record: {exc!r}") from exc
        reasons = [f"{e.get('id', '?')}: {p}" for e in entities for p in validate.problems(e)]
        if reasons:
            raise BadRecord("; ".join(reasons))
        return entities

    def take(self, raw: Raw) -> None:
        self.counters.read += 1
        if raw.error:
            self.reject(raw, raw.error)
        else:
            try:
                made = self.entities(raw)
            except BadRecord as bad:
                self.reject(raw, bad.reason)
            else:
                for entity in made:
                    self.batch.add(entity, raw)
        self.batch.reach(raw)
        self.handled += 1

    async def flush(self, source: Source, *, wait: bool = False) -> None:
        """Send the batch being made. One batch is in flight while the next is made (the
        broker works while the adapter parses); checkpoints are written in batch order."""
        if self.inflight is not None:
            inflight, self.inflight = self.inflight, None
            await inflight
        if self.batch.records:
            batch, self.batch = self.batch, Batch(update=self.update)
            self.inflight = asyncio.create_task(self._publish(batch, source))
        if wait and self.inflight is not None:
            inflight, self.inflight = self.inflight, None
            await inflight

    async def _publish(self, batch: Batch, source: Source) -> None:
        if self.on_published is not None:  # before: the broker may notify before it answers
            self.on_published(batch.payload())
        refused = await self.publisher.upsert(batch.payload())
        for entity_id, reason in refused:
            origin = batch.origin(entity_id)
            if origin is None:
                log.error("the broker refused %s, which this batch did not hold: %s",
                          entity_id, reason)
                continue
            self.reject(origin, f"broker: {reason}", batch.entities.get(entity_id))
        self.dead.sync()  # before the checkpoint moves past the dead-lettered records
        self.checkpoint.save(batch.reached)
        source.committed(self.checkpoint.positions)
        self.counters.batches += 1
        write_status(self.status_path, self.adapter.name, self.counters, "running")

    async def run(self) -> Counters:
        try:
            source = self.adapter.source(self.config)
        except KeyError as exc:
            raise ConfigError(f"the config of adapter {self.adapter.name} has no {exc} "
                              f"(docs/vendors.md, Configuration)") from None
        positions = self.checkpoint.load()
        if positions:
            log.info("%s resumes after %s", self.adapter.name, positions)
        queue: asyncio.Queue[Raw | None] = asyncio.Queue(self.options.batch_size * QUEUE_BATCHES)
        reader = asyncio.create_task(_pump(source.read(dict(positions)), queue))
        progress = _progress(source, self.options, positions)
        last_log = time.monotonic()
        state, ended = "failed", False
        try:
            while (self.options.limit is None or self.handled < self.options.limit) \
                    and not self.options.stop.is_set():
                try:
                    raw = await asyncio.wait_for(queue.get(), self.options.linger)
                except TimeoutError:
                    await self.flush(source)  # quiet source: send what is waiting
                    continue
                if raw is None:
                    ended = True
                    break
                self.take(raw)
                if progress is not None:
                    progress.update(1)
                if max(len(self.batch), self.batch.records) >= self.options.batch_size:
                    await self.flush(source)
                if time.monotonic() - last_log >= self.options.log_every:
                    log.info("%s: %s", self.adapter.name, self.counters.line())
                    last_log = time.monotonic()
            await self.flush(source, wait=True)
            if ended:
                await reader  # the source's own error, if it ended with one
            state = "finished"
        finally:
            if self.inflight is not None:  # failed meanwhile: its batch is not checkpointed
                self.inflight.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.inflight
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if progress is not None:
                progress.close()
            self.dead.close()
            await self.publisher.close()
            write_status(self.status_path, self.adapter.name, self.counters, state)
            log.info("%s %s: %s", self.adapter.name, state, self.counters.line())
        return self.counters


async def _pump(records: AsyncIterator[Raw], queue: asyncio.Queue[Raw | None]) -> None:
    """Source -> queue, then None at its end, also when the source fails (run then re-raises
    its error); a full queue delays the None, never drops it. Cancelled: no None needed."""
    try:
        async for raw in records:
            await queue.put(raw)
    except Exception:
        await queue.put(None)
        raise
    await queue.put(None)


def _progress(source: Source, options: Options, positions: Mapping[str, Any]) -> Any:
    if not options.progress or source.total is None:
        return None
    from tqdm import tqdm

    # Sources that know their total (files) count positions in records: a resumed import's
    # bar starts where the checkpoint is.
    done = sum(p for p in positions.values() if isinstance(p, int))
    total = source.total if options.limit is None else min(source.total, done + options.limit)
    return tqdm(total=total, initial=min(done, total), unit="rec", desc="import")


async def run(adapter: Adapter, config: Config, options: Options) -> Counters:
    """Run `adapter` with `config` until its source ends or options.limit records are handled."""
    pipeline = Pipeline(adapter, config, options)
    if adapter.write_back is None or not options.write_back:
        return await pipeline.run()
    from adapters.sdk.writeback import WriteBackReceiver

    async with WriteBackReceiver(adapter, config, options, pipeline.tenant) as receiver:
        pipeline.on_published = receiver.remember
        return await pipeline.run()


async def run_simulated(adapter: Adapter, config: Config, options: Options) -> Counters:
    """Start the adapter's own simulator, run against it, stop it."""
    simulator = adapter.simulator(dict(config.get("simulator", {})))
    served: Mapping[str, Any] = await simulator.start()
    try:
        return await run(adapter, {**config, **served}, options)
    finally:
        await simulator.stop()
