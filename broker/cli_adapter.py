"""`cetate adapter ...`: run a vendor adapter, or its vendor simulator.

    cetate adapter run NAME --config FILE [--broker URL] [--state DIR] [--limit N]
    cetate adapter run NAME --simulate --broker URL --limit N
    cetate adapter simulate NAME [--config FILE] [--seed N]
    cetate adapter list

NAME is a registered adapter (lighting, parking, ticketing, tax, example) or module:ATTRIBUTE.
`run --simulate` starts the adapter's own simulator, runs the adapter against it until N source
records are handled (published or dead-lettered), and exits 0. Exit 1: the broker stayed
unavailable or refused the adapter; 2: a configuration error (no key, unknown adapter...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _run(args: argparse.Namespace) -> int:
    from adapters import registry
    from adapters.sdk.config import for_adapter, load_config
    from adapters.sdk.counters import Counters
    from adapters.sdk.errors import AdapterError, ConfigError
    from adapters.sdk.run import options_from, run, run_simulated

    _logs(args)
    try:
        adapter = registry.load(args.name)()
        config = for_adapter(load_config(args.config), adapter.name)
        options = options_from(config, broker=args.broker, state_dir=args.state,
                               limit=args.limit, batch_size=args.batch_size,
                               tenant=args.tenant, simulate=args.simulate or None,
                               progress=not args.no_progress,
                               write_back=False if args.no_write_back else None)
        go = run_simulated if args.simulate else run

        async def main() -> Counters:
            # SIGTERM/SIGINT: the batch being made is published and checkpointed, then exit 0
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, options.stop.set)
            return await go(adapter, config, options)

        counters = asyncio.run(main())
    except ConfigError as exc:
        print(f"cetate adapter run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AdapterError as exc:
        print(f"cetate adapter run: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    print(json.dumps({"adapter": adapter.name, "state_dir": str(options.state_dir),
                      **counters.as_json()}))
    return 0


async def _serve(name: str, config: dict[str, Any]) -> None:
    from adapters import registry

    simulator = registry.load(name)().simulator(config)
    served = await simulator.start()
    print(json.dumps(served, default=str), flush=True)  # what `run --config` needs
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def _simulate(args: argparse.Namespace) -> int:
    from adapters import registry
    from adapters.sdk.config import for_adapter, load_config
    from adapters.sdk.errors import ConfigError

    _logs(args)
    try:
        adapter = registry.load(args.name)
        whole = for_adapter(load_config(args.config), adapter.name)
        config = dict(whole.get("simulator", {}))
        for key in ("seed", "port", "host"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        asyncio.run(_serve(args.name, config))
    except ConfigError as exc:
        print(f"cetate adapter simulate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _list(args: argparse.Namespace) -> int:
    from adapters.registry import ADAPTERS

    for name, target in sorted(ADAPTERS.items()):
        print(f"{name}\t{target}")
    return 0


def _logs(args: argparse.Namespace) -> None:
    import logging

    from broker import logs

    logs.configure(args.log_level, args.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns progress


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or JSON settings (docs/vendors.md)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    parser.add_argument("--log-format", choices=("json", "text"), default="text")


def add_adapter_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the `adapter` subcommands on the top-level parser."""
    adapter = sub.add_parser("adapter", help="vendor adapters: run one, or its simulator")
    commands = adapter.add_subparsers(dest="adapter_command", required=True)

    run = commands.add_parser("run", help="read a vendor system, publish its entities")
    run.add_argument("name", help="lighting, parking, ticketing, tax, or module:ATTRIBUTE")
    _common(run)
    run.add_argument("--broker", help="the NGSI-LD broker's base URL (config: broker)")
    run.add_argument("--state", help="directory of checkpoint, dead letters and status "
                                     "(config: state_dir; --simulate: a fresh temporary one)")
    run.add_argument("--limit", type=int, help="stop after N source records are handled")
    run.add_argument("--simulate", action="store_true",
                     help="start the adapter's own vendor simulator and read from it")
    run.add_argument("--batch-size", type=int, help="entities per upsert (default 500)")
    run.add_argument("--tenant", help="NGSILD-Tenant, instead of the adapter's")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on imports")
    run.add_argument("--no-write-back", action="store_true",
                     help="do not subscribe for changes to send back to the vendor")
    run.set_defaults(func=_run)

    simulate = commands.add_parser("simulate", help="serve a vendor system simulator")
    simulate.add_argument("name")
    _common(simulate)
    simulate.add_argument("--seed", type=int, help="random seed (deterministic data)")
    simulate.add_argument("--port", type=int, help="port to serve on (0: any)")
    simulate.add_argument("--host", help="address to serve on (127.0.0.1)")
    simulate.set_defaults(func=_simulate)

    listing = commands.add_parser("list", help="the registered adapters")
    listing.set_defaults(func=_list)
