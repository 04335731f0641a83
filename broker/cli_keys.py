"""`cetate keys ...`: API keys for adapters, kept in the broker's database (docs/identity.md).

    cetate keys create --role adapter --tenant parking [--purpose P] [--name N] [--store URL]
    cetate keys list [--json] [--store URL]
    cetate keys revoke ID [--store URL]

`create` prints the key alone on stdout, once (KEY=$(cetate keys create ...) works); only its
hash is stored, so a lost key is revoked and replaced, never recovered. --store defaults to
CETATE_STORE, the same database the broker serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from broker.settings import from_env
from security.identity.apikeys import ID_RE, ApiKey
from security.identity.keystore import KeyStore, create_key, now, open_key_store

T = TypeVar("T")
EXIT_NOT_FOUND = 1


def _store_url(args: argparse.Namespace) -> str:
    return str(args.store or from_env().store)


async def _with_store(url: str, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    store = open_key_store(url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _run(args: argparse.Namespace, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_store(_store_url(args), work))
    except (ValueError, OSError, asyncpg.PostgresError) as exc:
        raise SystemExit(f"cetate keys: {exc}") from None


def _optional_set(values: list[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values else None


def _create(args: argparse.Namespace) -> int:
    roles = frozenset(args.role)
    tenants, purposes = _optional_set(args.tenant), _optional_set(args.purpose)
    record, key = _run(args, lambda store: create_key(store, roles, tenants=tenants,
                                                      purposes=purposes, name=args.name))
    print(key)
    print(f"created key {record.id} (roles {', '.join(sorted(roles))}; tenants "
          f"{', '.join(sorted(tenants)) if tenants else 'any'}): store it now, it is not shown "
          "again", file=sys.stderr)
    return 0


def _as_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "roles": sorted(key.roles),
        "tenants": None if key.tenants is None else sorted(key.tenants),
        "purposes": None if key.purposes is None else sorted(key.purposes),
        "createdAt": key.created_at.isoformat() if key.created_at else None,
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _list(args: argparse.Namespace) -> int:
    keys = _run(args, lambda store: store.all())
    if args.json:
        print(json.dumps([_as_dict(k) for k in keys], indent=2))
        return 0
    if not keys:
        print("no API keys", file=sys.stderr)
        return 0
    rows = [("ID", "NAME", "ROLES", "TENANTS", "PURPOSES", "CREATED", "REVOKED")]
    for k in keys:
        rows.append((k.id, k.name or "-", ",".join(sorted(k.roles)),
                     ",".join(sorted(k.tenants)) if k.tenants is not None else "*",
                     ",".join(sorted(k.purposes)) if k.purposes is not None else "*",
                     k.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if k.created_at else "-",
                     k.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if k.revoked_at else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if not ID_RE.fullmatch(args.id):
        raise SystemExit(f"cetate keys revoke: {args.id!r} is not a key id (see `cetate keys "
                         "list`)")
    if _run(args, lambda store: store.revoke(args.id, now())):
        print(f"revoked key {args.id}")
        return 0
    print(f"no active key {args.id}", file=sys.stderr)
    return EXIT_NOT_FOUND


def add_keys_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the `keys` subcommands on the top-level parser."""
    keys = sub.add_parser("keys", help="API keys for adapters").add_subparsers(
        dest="keys_command", required=True)
    store_help = "the broker's store URL (CETATE_STORE)"

    create = keys.add_parser("create", help="create a key and print it, once")
    create.add_argument("--role", action="append", required=True,
                        help="a role the key grants (repeatable), e.g. adapter")
    create.add_argument("--tenant", action="append",
                        help="a tenant the key may act on (repeatable; default: any tenant)")
    create.add_argument("--purpose", action="append",
                        help="a purpose the key may declare (repeatable; default: any)")
    create.add_argument("--name", default="", help="what the key is for, e.g. parking-adapter")
    create.add_argument("--store", help=store_help)
    create.set_defaults(func=_create)

    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.add_argument("--store", help=store_help)
    listing.set_defaults(func=_list)

    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", help="the key id, as `cetate keys list` shows it")
    revoke.add_argument("--store", help=store_help)
    revoke.set_defaults(func=_revoke)
