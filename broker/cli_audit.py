"""`cetate audit ...`: export a range of the audit log and verify an export offline.

    cetate audit export --store URL --out FILE [--from N] [--to N] [--consistency-from N]
    cetate audit verify EXPORT --public-key KEY [--previous CHECKPOINT]
    cetate audit public-key --store URL
    cetate audit rotate-key --store URL
    cetate audit erase --store URL --subject PSEUDONYM

--store is the broker's store URL (the audit log is in its database, or at CETATE_AUDIT_STORE
when kept apart), or for `export` the http(s):// base URL of a running broker, whose
/cetate/v1/audit/export is fetched.
`verify` needs nothing but the export and the verifier key(s); it prints what it checked and
what failed where, and exits 0 only if everything verified.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from broker.settings import from_env
from security.audit.export import verify_export
from security.audit.log import AuditConfig, AuditLog, ThreadedCommitter, config_for, sqlite_path
from security.audit.note import NoteError, VerifierKey, parse_verifier_keys
from security.audit.sqlite_log import SQLiteAuditStorage

T = TypeVar("T")

EXIT_FAILED = 1  # the export did not verify
EXIT_USAGE = 2  # unreadable input, missing log (argparse uses 2 as well)
HTTP_TIMEOUT = 60.0


def _config(store: str) -> AuditConfig:
    settings = from_env().with_overrides(store=store)
    return config_for(settings.store, settings.audit_store, settings.audit_key_dir,
                      settings.audit_origin, settings.pseudonym_key_file)


def _open_log(store: str) -> AuditLog:
    """The log of a broker store (in its database, or kept apart at CETATE_AUDIT_STORE), written
    through transactions of its own: safe beside running brokers."""
    config = _config(store)
    if config.store:
        if not sqlite_path(config.store).exists():
            raise SystemExit(f"no audit log at {config.store} (CETATE_AUDIT_STORE)")
        return AuditLog(config)
    scheme = store.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres"):
        from broker.store.postgres import split_url
        from broker.store.postgres_audit import PostgresAuditStorage

        pg = PostgresAuditStorage(split_url(store)[0])
        return AuditLog(config, pg, committer=ThreadedCommitter(pg))
    path = sqlite_path(store)
    if not path.exists():
        raise SystemExit(f"no audit log: no broker store at {path}")
    return AuditLog(config, SQLiteAuditStorage(path, create=False))


async def _with_log(store: str, use: Callable[[AuditLog], Awaitable[T]]) -> T:
    log = _open_log(store)
    await log.open()
    try:
        return await use(log)
    finally:
        await log.close()


def _http_export(base: str, start: int, end: int | None, older: list[int]) -> bytes:
    import httpx

    params: dict[str, int] = {"from": start}
    if end is not None:
        params["to"] = end
    if older:
        params["consistency_from"] = older[0]
    r = httpx.get(base.rstrip("/") + "/cetate/v1/audit/export", params=params,
                  timeout=HTTP_TIMEOUT)
    if r.status_code != 200:
        raise SystemExit(f"export failed: HTTP {r.status_code}: {r.text[:500]}")
    return r.content


def _export(args: argparse.Namespace) -> int:
    older = list(args.consistency_from or [])
    if args.store.startswith(("http://", "https://")):
        if len(older) > 1:
            raise SystemExit("over HTTP, give --consistency-from once")
        data = _http_export(args.store, args.start, args.end, older)
    else:
        data = asyncio.run(_with_log(args.store, lambda log: log.export(args.start, args.end,
                                                                        older)))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


def _keys(text_or_path: str) -> list[VerifierKey]:
    path = Path(text_or_path)
    text = path.read_text() if path.is_file() else text_or_path
    return parse_verifier_keys(text)


def _verify(args: argparse.Namespace) -> int:
    try:
        raw = Path(args.export).read_bytes()
        keys = [k for spec in args.public_key for k in _keys(spec)]
        previous = Path(args.previous).read_text() if args.previous else None
    except (OSError, NoteError) as exc:
        print(f"cannot read the inputs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not keys:
        print("no verifier key given", file=sys.stderr)
        return EXIT_USAGE
    report = verify_export(raw, keys, previous)
    sys.stdout.write(report.text())
    return 0 if report.ok else EXIT_FAILED


def _erase(args: argparse.Namespace) -> int:
    count = asyncio.run(_with_log(args.store, lambda log: log.erase_pseudonym(args.subject)))
    print(f"erased the kept details of {count} entries of {args.subject}; the leaves stay")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    config = _config(args.store)
    from security.audit.keys import KeyRing

    ring = KeyRing(config.key_dir, config.origin)
    ring.signer()  # a log always has a key once it has run; make sure, for a fresh one
    for key in ring.published():
        print(key.text())
    return 0


def _rotate_key(args: argparse.Namespace) -> int:
    config = _config(args.store)
    from security.audit.keys import KeyRing

    signer = KeyRing(config.key_dir, config.origin).rotate()
    print(f"new signing key: {signer.verifier.text()}")
    print("running brokers pick it up on restart; old checkpoints still verify with "
          "`cetate audit public-key`'s full list")
    return 0


def add_audit_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="export and verify the tamper-evident audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    export = commands.add_parser("export", help="write a range of the log with its proofs")
    export.add_argument("--store", required=True,
                        help="the broker's store URL (sqlite:///data/cetate.db) or http(s) URL")
    export.add_argument("--out", required=True, help="the export file to write")
    export.add_argument("--from", dest="start", type=int, default=0,
                        help="first index (default 0)")
    export.add_argument("--to", dest="end", type=int, default=None,
                        help="end index, exclusive (default: the signed tree's size)")
    export.add_argument("--consistency-from", type=int, action="append", metavar="SIZE",
                        help="also prove consistency from this earlier tree size (repeatable)")
    export.set_defaults(func=_export)

    verify = commands.add_parser("verify", help="verify an export offline")
    verify.add_argument("export", help="the export file")
    verify.add_argument("--public-key", required=True, action="append", metavar="KEY",
                        help="verifier key text, or a file of them one a line (repeatable)")
    verify.add_argument("--previous", metavar="CHECKPOINT",
                        help="a signed checkpoint seen before: check the log still extends it")
    verify.set_defaults(func=_verify)

    public = commands.add_parser("public-key", help="print the log's verifier keys")
    public.add_argument("--store", required=True, help="the broker's store URL")
    public.set_defaults(func=_public_key)

    rotate = commands.add_parser("rotate-key", help="start signing with a new key")
    rotate.add_argument("--store", required=True, help="the broker's store URL")
    rotate.set_defaults(func=_rotate_key)

    erase = commands.add_parser(
        "erase", help="delete a subject's kept details and salts (the leaves stay, unlinkable)")
    erase.add_argument("--store", required=True, help="the broker's store URL")
    erase.add_argument("--subject", required=True, metavar="PSEUDONYM",
                       help="the subject's pseudonym, as entries show it (principal.subject)")
    erase.set_defaults(func=_erase)
