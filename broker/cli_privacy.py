"""`cetate privacy ...`: explain a policy decision, the records of processing, check policies.

    cetate privacy explain --role R --action A --type T [--purpose P] [--tenant T]
                           [--attribute X ...] [--json]
    cetate privacy explain --role R --action administer --resource audit [--purpose P]
    cetate privacy report [--json]
    cetate privacy retention [--now 2026-12-01T00:00:00Z] [--json]
    cetate privacy check
    cetate privacy purge [--dry-run] [--now T] [--tenant T ...] [--store URL] [--json]
    cetate privacy subject export|erase --subject PSEUDONYM [--tenant T ...] [--store URL]

explain, report and check take --policies DIR (default CETATE_POLICY_DIR, else
contracts/policies/). `check` exits 1 and names each file and rule at fault when the directory
would be refused. purge and subject work on the store directly (--store, default CETATE_STORE)
and record what they did in its audit log, as the broker would (docs/privacy.md); tenants are
the default one and CETATE_PRIVACY_TENANTS unless --tenant names them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_REFUSED = 1  # a policy directory that does not load; a denied explanation


def _policy(args: argparse.Namespace) -> Any:
    from security.policy.load import PolicyError, load_policy

    try:
        return load_policy(Path(args.policies) if args.policies else None)
    except PolicyError as exc:
        raise SystemExit(f"policies refused:\n{exc}") from None


def _explain(args: argparse.Namespace) -> int:
    from security.policy.explain import explain, format_explanation
    from security.policy.model import DEFAULT_TENANT, Resource

    policy = _policy(args)
    tenant = "" if args.tenant in (None, DEFAULT_TENANT) else args.tenant
    only = None
    if args.resource:
        resource = Resource.of_api(args.resource, tenant)
    else:
        try:
            type_iri = policy.type_iri(args.type)
            only = ([policy.attribute_iri(type_iri, a) for a in args.attribute]
                    if args.attribute else None)
        except KeyError as exc:
            raise SystemExit(str(exc.args[0])) from None
        resource = Resource.entity([type_iri], tenant, only)
    explanation = explain(policy, args.role, args.action, resource, args.purpose)
    if args.json:
        print(json.dumps(explanation.as_json(), indent=2, ensure_ascii=False))
    else:
        print(format_explanation(explanation, only))
    return 0 if explanation.decision.allowed else EXIT_REFUSED


def _report(args: argparse.Namespace) -> int:
    from broker.validation.contracts import contracts
    from security.privacy.report import as_json, as_text, records

    policy = _policy(args)
    items = records(policy, contracts())
    if args.json:
        print(json.dumps(as_json(items), indent=2, ensure_ascii=False))
        return 0
    print(as_text(items))
    # What art. 30(1) asks beside the per-type records: the purposes (b) and the recipients (d)
    # spelt out, and what the broker cannot know (a, e, g), for the DPO to complete.
    print("Purposes of the processing (art. 30(1)(b)):")
    for name, text in sorted(policy.purposes.items()):
        print(f"  {name}: {text}")
    print("\nRecipients, by role (art. 30(1)(d)):")
    for name, text in sorted(policy.roles.items()):
        print(f"  {name}: {text}")
    print("\nNot held by the broker, to add to this record: the controller's and the DPO's "
          "contact\ndetails (a), transfers to third countries (e), the security measures "
          "(g; see docs/privacy.md).")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from broker.validation.contracts import contracts
    from security.privacy.retention import cutoffs, parse_instant

    try:
        now = parse_instant(args.now) if args.now else datetime.now(UTC)
    except ValueError:
        raise SystemExit(f"--now {args.now!r} is not a date-time") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    known = contracts()
    cut = cutoffs({c.name: c.retention for c in known.values()}, now)
    rows = [{"type": name, "retention": known.named(name).retention,
             "expiredBefore": cut[name].astimezone(UTC).isoformat().replace("+00:00", "Z")}
            for name in known.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"as of {now.astimezone(UTC).isoformat().replace('+00:00', 'Z')}: entities last "
              "changed before the cutoff are expired")
        for row in rows:
            print(f"  {row['type']:<28} {row['retention']:<6} {row['expiredBefore']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from security.policy.load import PolicyError, load_policy, policy_dir

    directory = Path(args.policies) if args.policies else policy_dir()
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        print(f"{directory}: refused", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{directory}: {len(policy.rules)} rules in {len(policy.sources)} files, "
          f"{len(policy.roles)} roles, {len(policy.purposes)} purposes: ok")
    return 0


CLI_PRINCIPAL = "cli:"  # + the OS user: the audit entries' principal for these commands
CLI_RULE = "cli"  # whoever can open the store may run them: the database is theirs anyway


def _store_url(args: argparse.Namespace) -> str:
    from broker.settings import from_env

    return str(args.store or from_env().store)


def _tenants(args: argparse.Namespace) -> list[str]:
    from security.privacy.purge import tenants_from_env

    if not args.tenant:
        return tenants_from_env()
    return list(dict.fromkeys("" if t == "@default" else t for t in args.tenant))


async def _open_audit(store_url: str) -> Any:
    """The store's audit log, opened as `cetate audit` opens it (None when CETATE_AUDIT=off)."""
    from broker.cli_audit import _open_log
    from broker.settings import from_env

    if not from_env().with_overrides(store=store_url).audit:
        return None
    log = _open_log(store_url)
    await log.open()
    return log


async def _record(log: Any, record: Any, status: int = 200) -> None:
    from datetime import UTC, datetime

    from security.audit.entry import seal

    if log is None:
        return
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await log.append(seal(record, time=when, request_id="cli", status=status,
                          pseudonyms=log.pseudonyms))


async def _with_store(url: str, work: Any) -> Any:
    from broker.store.open import open_store

    store = open_store(url)
    await store.open()
    log = None
    try:
        log = await _open_audit(url)
        return await work(store, log)
    finally:
        if log is not None:
            await log.close()
        await store.close()


def _purge(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import UTC, datetime

    from security.privacy.purge import audit_record, contract_retentions, purge
    from security.privacy.retention import parse_instant

    try:
        now = parse_instant(args.now) if args.now else datetime.now(UTC)
    except ValueError:
        raise SystemExit(f"--now {args.now!r} is not a date-time") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    async def work(store: Any, log: Any) -> Any:
        async def audited(batch: Any) -> None:
            await _record(log, audit_record(batch))
        return await purge(store, contract_retentions(), _tenants(args), now,
                           dry_run=args.dry_run, on_batch=None if args.dry_run else audited)

    report = asyncio.run(_with_store(_store_url(args), work))
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"retention purge as of {report.as_json()['now']}: {verb} {report.removed} entities")
    for row in report.as_json()["types"]:
        tenant = row["tenant"] or "@default"
        print(f"  {tenant:<16} {row['type']:<56} {row['retention']:<6} {len(row['ids'])}")
    for tenant in report.skipped_tenants:
        print(f"  {tenant}: no such tenant (skipped)")
    return 0


def _subject(args: argparse.Namespace) -> int:
    import asyncio
    import getpass
    from datetime import UTC, datetime

    from security.audit.entry import AuditRecord
    from security.audit.entry import Principal as AuditPrincipal
    from security.privacy.purge import existing_tenants
    from security.privacy.subject import (
        SubjectError,
        check_subject,
        erase_document,
        export_document,
        found_ids,
        found_types,
    )

    try:
        subject = check_subject(args.subject)
    except SubjectError as exc:
        raise SystemExit(str(exc)) from None
    answer = export_document if args.subject_command == "export" else erase_document
    action = f"privacy.subject.{args.subject_command}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def work(store: Any, log: Any) -> Any:
        present, missing = await existing_tenants(store, _tenants(args))
        for tenant in missing:
            print(f"{tenant}: no such tenant (skipped)", file=sys.stderr)
        document, found = await answer(store, log, present, subject, now)
        record = AuditRecord(action=action, rule=CLI_RULE,
                             principal=AuditPrincipal(CLI_PRINCIPAL + getpass.getuser()))
        record.note(entity_ids=found_ids(found), types=found_types(found))
        await _record(log, record)
        return document

    document = asyncio.run(_with_store(_store_url(args), work))
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def add_privacy_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the `privacy` subcommands on the top-level parser."""
    privacy = sub.add_parser("privacy", help="policy explanations, records of processing")
    commands = privacy.add_subparsers(dest="privacy_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policies", help="policy directory (CETATE_POLICY_DIR; default "
                                          "contracts/policies/)")

    explain = commands.add_parser("explain", help="which rule decides a request, and why")
    explain.add_argument("--role", action="append", required=True,
                         help="a role of the principal (repeat for several)")
    explain.add_argument("--action", required=True,
                         choices=["read", "create", "update", "delete", "subscribe",
                                  "query-history", "administer"])
    target = explain.add_mutually_exclusive_group(required=True)
    target.add_argument("--type", help="entity type: a contract's short name or an IRI")
    target.add_argument("--resource", help="an API resource (audit, data-subject-requests...)")
    explain.add_argument("--purpose", help="the declared purpose (Cetate-Purpose header)")
    explain.add_argument("--tenant", help="the tenant (default: the default tenant)")
    explain.add_argument("--attribute", action="append", default=[],
                         help="an attribute of the type (short name or IRI; repeatable)")
    explain.add_argument("--json", action="store_true", help="JSON instead of text")
    common(explain)
    explain.set_defaults(func=_explain)

    report = commands.add_parser("report", help="records of processing (GDPR art. 30)")
    report.add_argument("--json", action="store_true", help="JSON instead of text")
    common(report)
    report.set_defaults(func=_report)

    retention = commands.add_parser("retention", help="each type's retention cutoff")
    retention.add_argument("--now", help="the instant to compute from (default: now)")
    retention.add_argument("--json", action="store_true", help="JSON instead of text")
    retention.set_defaults(func=_retention)

    check = commands.add_parser("check", help="load and check the policy files")
    common(check)
    check.set_defaults(func=_check)

    def on_store(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", help="the broker's store URL (CETATE_STORE)")
        p.add_argument("--tenant", action="append", default=[],
                       help="a tenant to cover (repeatable; default: the default tenant and "
                            "CETATE_PRIVACY_TENANTS; @default names the default tenant)")

    purge = commands.add_parser("purge", help="delete entities past their type's retention")
    purge.add_argument("--dry-run", action="store_true",
                       help="list what would be deleted, delete nothing")
    purge.add_argument("--now", help="the instant to compute from (default: now)")
    purge.add_argument("--json", action="store_true", help="JSON instead of text")
    on_store(purge)
    purge.set_defaults(func=_purge)

    subject = commands.add_parser("subject", help="data-subject requests (GDPR art. 15, 17, "
                                                  "20)")
    requests = subject.add_subparsers(dest="subject_command", required=True)
    for name, text in (("export", "everything referring to a pseudonym, with its recipients"),
                       ("erase", "erase a pseudonym's data where the lawful basis allows")):
        request = requests.add_parser(name, help=text)
        request.add_argument("--subject", required=True, help="the data subject's pseudonym")
        on_store(request)
        request.set_defaults(func=_subject)
