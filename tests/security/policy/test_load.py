"""Loading policy files: schema and semantic checks naming file and rule, the reloader keeping
the old policy when a change is refused, explanations and `cetate privacy explain|check`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from broker.cli import main
from security.identity.principal import PUBLIC
from security.policy import PolicyError, PolicyReloader, Resource, decide, load_policy
from security.policy.explain import explain
from security.policy.load import POLICY_DIR

LIGHT = "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"
STREETLIGHT = Resource("", (LIGHT,))


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, target)
    return target


def write(path: Path, document: object) -> None:
    text = yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    # bump the mtime explicitly: two writes within one filesystem tick must still be seen
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def refusal(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    return caught.value.problems


BAD_RULE = {"id": "bad", "description": "d", "roles": ["public"], "actions": ["read"],
            "types": ["Streetlight"], "effect": "allow"}


@pytest.mark.parametrize(("change", "message"), [
    ({"roles": ["mayor"]}, "unknown role mayor"),
    ({"types": ["Lamp"]}, "unknown type Lamp"),
    ({"types": ["Lamp*"]}, "type pattern Lamp* matches no contract"),
    ({"attributes": ["colour"]}, "unknown attribute colour"),
    ({"purposes": ["marketing"]}, "unknown purpose marketing"),
    ({"types": ["Taxpayer"], "classes": ["personal"]}, "with no purpose"),
    ({"types": ["Taxpayer"], "attributes": ["name"]}, "Taxpayer.name with no purpose"),
    ({"actions": ["administer"]}, "action administer does not apply to entities"),
    ({"effect": "permit"}, "rule bad: effect"),
    ({"description": ""}, "rule bad: description"),
])
def test_bad_rules_are_refused_naming_file_and_rule(policies: Path, change: dict[str, object],
                                                    message: str) -> None:
    write(policies / "90-bad.yaml", {"rules": [{**BAD_RULE, **change}]})
    with pytest.raises(PolicyError) as caught:
        load_policy(policies)
    assert any(p.startswith("90-bad.yaml: ") and message in p for p in caught.value.problems), \
        caught.value.problems


def test_api_rules_take_resources_and_allow_or_deny(policies: Path) -> None:
    rule = {"id": "bad", "description": "d", "roles": ["auditor"], "actions": ["administer"],
            "resources": ["ledger"], "effect": "mask"}
    write(policies / "90-bad.yaml", {"rules": [rule]})
    problems = "\n".join(refusal(policies))
    assert "unknown resource ledger" in problems and "effect mask applies to entities" in problems


def test_duplicates_and_unparsable_files_are_refused(policies: Path) -> None:
    write(policies / "90-dup.yaml", {"roles": {"public": "again"},
                                     "rules": [{**BAD_RULE, "id": "admin-apis"}]})
    problems = refusal(policies)
    assert any("role public is already declared in 00-vocabulary.yaml" in p for p in problems)
    assert any("rule admin-apis: id already used in 20-operators.yaml" in p for p in problems)
    (policies / "90-dup.yaml").write_text("rules: [unclosed\n")
    problems = refusal(policies)
    assert problems[0].startswith("90-dup.yaml: does not parse")


def test_the_shipped_policies_load(policies: Path) -> None:
    policy = load_policy(policies)
    assert len(policy.rules) >= 20 and policy.unclassified == "personal"
    assert all(r.description for r in policy.rules)


def test_reloader_swaps_in_a_good_change_and_keeps_the_old_policy_on_a_bad_one(
        policies: Path) -> None:
    reloader = PolicyReloader(policies)
    first = reloader.policy
    assert decide(first, PUBLIC, "read", STREETLIGHT).allowed
    assert reloader.check() is False  # nothing changed

    open_data = policies / "10-open-data.yaml"
    document = yaml.safe_load(open_data.read_text())
    document["rules"][0]["types"] = ["GtfsStop"]  # the public loses street lights
    write(open_data, document)
    assert reloader.check() is True
    assert not decide(reloader.policy, PUBLIC, "read", STREETLIGHT).allowed
    second = reloader.policy

    open_data.write_text(open_data.read_text() + "\n  - id: [broken\n")
    assert reloader.check() is False
    assert reloader.policy is second and reloader.last_error is not None
    assert "10-open-data.yaml: does not parse" in str(reloader.last_error)

    write(open_data, {"rules": [{**BAD_RULE, "roles": ["nobody"]}]})  # parses, means nothing
    assert reloader.check() is False and reloader.policy is second
    assert "unknown role nobody" in str(reloader.last_error)

    (policies / "10-open-data.yaml").unlink()
    assert reloader.check() is True and reloader.last_error is None


async def test_reloader_task_polls_the_directory(policies: Path) -> None:
    changed = threading.Event()
    reloader = PolicyReloader(policies, interval=0.02, on_change=lambda p: changed.set())
    await reloader.start()
    try:
        (policies / "10-open-data.yaml").unlink()
        assert await asyncio.to_thread(changed.wait, 5.0)
        assert not decide(reloader.policy, PUBLIC, "read", STREETLIGHT).allowed
    finally:
        await reloader.stop()
    await reloader.stop()  # stopping twice is harmless


def test_explain_names_the_deciding_rule_and_why_others_do_not_apply() -> None:
    policy = load_policy()
    validation = policy.type_iri("TicketValidation")
    card_ref = policy.attribute_iri(validation, "refTransitCard")
    e = explain(policy, ["transport-operator"], "read",
                Resource.entity([validation], "", [card_ref]), "transport-operations")
    assert e.decision.allowed
    why = {c.rule: c for c in e.rules}
    assert why["transport-validations"].why == "decided"
    assert why["transport-cards"].why.startswith("types TransitCard")
    assert not why["tax-officer-collection"].applies
    attr = next(a for a in e.attributes if a.iri == card_ref)
    assert (attr.name, attr.cls, attr.effect, attr.rule) == (
        "refTransitCard", "pseudonymous", "pseudonymise", "transport-validations-card-pseudonym")

    e = explain(policy, ["transport-operator"], "read", Resource("", (validation,)))
    assert not e.decision.allowed and e.decision.rules == ("default-deny",)
    assert why["transport-validations"].rule == "transport-validations"
    assert next(c for c in e.rules if c.rule == "transport-validations").why == \
        "purposes transport-operations only"


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["privacy", "explain", "--role", "tax-officer", "--purpose", "tax-collection",
                 "--action", "read", "--type", "TaxObligation", "--tenant", "tax",
                 "--attribute", "amountDue"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ALLOWED") and "decided by: tax-officer-collection" in out
    assert "amountDue" in out and "personal" in out

    code = main(["privacy", "explain", "--role", "public", "--action", "read",
                 "--type", "TicketValidation", "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 1 and answer["allowed"] is False and answer["decidedBy"] == ["default-deny"]

    code = main(["privacy", "explain", "--role", "auditor", "--action", "administer",
                 "--resource", "audit", "--purpose", "audit"])
    assert code == 0 and "decided by: auditor-audit-api" in capsys.readouterr().out


def test_cli_check(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["privacy", "check", "--policies", str(policies)]) == 0
    assert ": ok" in capsys.readouterr().out
    write(policies / "90-bad.yaml", {"rules": [{**BAD_RULE, "roles": ["mayor"]}]})
    assert main(["privacy", "check", "--policies", str(policies)]) == 1
    assert "90-bad.yaml: rule bad: unknown role mayor" in capsys.readouterr().err
