"""The `cetate` command: `cetate serve` runs the broker, `cetate db migrate` its migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

from aiohttp import web

from broker import __version__, logs
from broker.cli_adapter import add_adapter_commands
from broker.cli_audit import add_audit_commands
from broker.cli_keys import add_keys_commands
from broker.cli_privacy import add_privacy_commands
from broker.settings import from_env

log = logging.getLogger("cetate")


def _serve(args: argparse.Namespace) -> int:
    networks = tuple(args.allow_network) if args.allow_network else None
    settings = from_env().with_overrides(
        host=args.host, port=args.port, store=args.store, allowed_networks=networks,
        log_level=args.log_level, log_format=args.log_format,
        migrate=False if args.no_migrate else None, workers=args.workers,
    )
    if settings.workers < 1:
        print("cetate serve: --workers must be at least 1", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    from broker.app import create_app  # after logging is set up

    log.info("cetate %s listening on %s:%s, store %s, %d worker(s)", __version__,
             settings.host, settings.port, settings.store, settings.workers)
    # aiohttp handles SIGINT/SIGTERM: stop accepting, let in-flight requests finish within
    # shutdown_timeout, then run cleanup (which closes the store and checkpoints its journal).
    if settings.workers == 1:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                    shutdown_timeout=settings.shutdown_timeout, access_log=None)
        return 0
    from broker.workers import listening_socket, supervise

    def worker(sock: socket.socket) -> None:
        web.run_app(create_app(settings), sock=sock, print=None,
                    shutdown_timeout=settings.shutdown_timeout, access_log=None)

    return supervise(worker, listening_socket(settings.host, settings.port), settings.workers)


def _db_migrate(args: argparse.Namespace) -> int:
    from broker.store.migrate import MigrationError
    from broker.store.open import migrate_store

    url = args.store or from_env().store
    try:
        applied = asyncio.run(migrate_store(url))
    except (MigrationError, ValueError) as exc:
        print(f"cetate db migrate: {exc}", file=sys.stderr)
        return 1
    print(f"applied migrations {applied}" if applied else "schema already up to date")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cetate", description="Cetate NGSI-LD context broker")
    top.add_argument("--version", action="version", version=f"cetate {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker (settings also from CETATE_* variables)")
    serve.add_argument("--host", help="address to listen on (CETATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CETATE_PORT, default 1026)")
    serve.add_argument("--store", help="sqlite:///path.db (CETATE_STORE)")
    serve.add_argument("--allow-network", action="append", metavar="CIDR",
                       help="let outbound requests reach this network (repeatable; "
                            "CETATE_ALLOWED_NETWORKS, comma-separated)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (CETATE_LOG_LEVEL)")
    serve.add_argument("--log-format", choices=("json", "text"), help="CETATE_LOG_FORMAT")
    serve.add_argument("--no-migrate", action="store_true",
                       help="do not run schema migrations on start (CETATE_MIGRATE=false)")
    serve.add_argument("--workers", type=int,
                       help="broker processes sharing the port (CETATE_WORKERS, default 1)")
    serve.set_defaults(func=_serve)
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command",
                                                                          required=True)
    migrate = db.add_parser("migrate", help="apply pending schema migrations and exit")
    migrate.add_argument("--store", help="store URL (CETATE_STORE)")
    migrate.set_defaults(func=_db_migrate)
    add_audit_commands(sub)
    add_adapter_commands(sub)
    add_keys_commands(sub)
    add_privacy_commands(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
