"""`cetate privacy ...`: explain a policy decision, the records of processing, check policies.

    cetate privacy explain --role R --action A --type T [--purpose P] [--tenant T]
                           [--attribute X ...] [--json]
    cetate privacy explain --role R --action administer --resource audit [--purpose P]
    cetate privacy report [--json]
    cetate privacy retention [--now 2026-12-01T00:00:00Z] [--json]
    cetate privacy check

Every command takes --policies DIR (default CETATE_POLICY_DIR, else contracts/policies/).
`check` exits 1 and names each file and rule at fault when the directory would be refused.
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

    items = records(_policy(args), contracts())
    if args.json:
        print(json.dumps(as_json(items), indent=2, ensure_ascii=False))
    else:
        print(as_text(items))
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
