"""Loading policies: the YAML files of one directory, checked and compiled into a `Policy`.

Two checks, both naming the file and the rule: the JSON Schema of a policy file
(contracts/policies/policy.schema.json), then the meaning (roles, purposes and API resources
declared, types and attributes known to the contracts, personal data granted only for a
purpose). A directory with any problem is refused whole. `PolicyReloader` polls the directory's
modification times and swaps in the new policy; a refused change leaves the old one in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema_rs
import orjson
import yaml
from jsonschema import Draft202012Validator

from broker.ld.core import CONTRACTS
from broker.validation.contracts import Contracts
from broker.validation.contracts import contracts as shipped_contracts
from security.policy.model import (
    ANY,
    API_ACTIONS,
    DEFAULT_TENANT,
    DISCLOSING,
    ENTITY_ACTIONS,
    GRANTS,
    PURPOSE_BOUND,
    Effect,
    Policy,
    Rule,
    TypeInfo,
)

log = logging.getLogger("cetate.policy")

POLICY_DIR = CONTRACTS / "policies"
POLICY_DIR_ENV = "CETATE_POLICY_DIR"
SCHEMA_FILE = "policy.schema.json"
PATTERNS = ("*.yaml", "*.yml")
DEFAULT_UNCLASSIFIED = "personal"  # privacy by default: what the contracts do not classify
RELOAD_INTERVAL = 2.0  # seconds between polls of the policy directory
MAX_FILE_BYTES = 1_000_000  # a policy file is a page of YAML; anything larger is a mistake

Document = tuple[str, Any]  # (file name, parsed YAML)


class PolicyError(Exception):
    """A policy directory that cannot be used; `problems` names each file and rule at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def policy_dir(env: Mapping[str, str] | None = None) -> Path:
    """The policy directory: CETATE_POLICY_DIR, else the shipped contracts/policies/."""
    env = os.environ if env is None else env
    return Path(env[POLICY_DIR_ENV]) if env.get(POLICY_DIR_ENV) else POLICY_DIR


@cache
def _schema() -> Any:
    return orjson.loads((POLICY_DIR / SCHEMA_FILE).read_bytes())


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema())


@cache
def _is_valid() -> Callable[[Any], bool]:
    # jsonschema-rs for the common, valid case; jsonschema only to explain a failure
    return jsonschema_rs.Draft202012Validator(_schema()).is_valid


def type_infos(contracts: Contracts) -> dict[str, TypeInfo]:
    """The personal-data class and short name of every contracted attribute, by IRI."""
    infos = {}
    for iri, contract in contracts.items():
        by_iri = contract.by_iri()
        names = {contract.terms.expand(n): n for n in contract.attributes
                 if n not in ("id", "type")}
        infos[iri] = TypeInfo(name=contract.name, iri=iri,
                              classes={a: attr.personal_data for a, attr in by_iri.items()},
                              names=names)
    return infos


def read_documents(directory: Path) -> list[Document]:
    """Every policy file of `directory`, parsed (YAML 1.1, safe loader: no object tags)."""
    if not directory.is_dir():
        raise PolicyError([f"{directory}: no such policy directory"])
    paths = sorted({p for pattern in PATTERNS for p in directory.glob(pattern)})
    documents, problems = [], []
    for path in paths:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                problems.append(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
                continue
            documents.append((path.name, yaml.safe_load(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{path.name}: does not parse: {exc}".replace("\n", " "))
    if problems:
        raise PolicyError(problems)
    if not documents:
        raise PolicyError([f"{directory}: no policy files (*.yaml)"])
    return documents


def load_policy(directory: Path | None = None, contracts: Contracts | None = None) -> Policy:
    """Read, check and compile the policy files of `directory` (default: `policy_dir()`)."""
    directory = policy_dir() if directory is None else directory
    return compile_policy(read_documents(directory),
                          shipped_contracts() if contracts is None else contracts)


def compile_policy(documents: Iterable[Document],
                   contracts: Contracts | Mapping[str, TypeInfo]) -> Policy:
    """Check and compile parsed policy documents. Pure: raises PolicyError on any problem."""
    documents = list(documents)
    infos = (type_infos(contracts) if isinstance(contracts, Contracts)
             else dict(contracts))
    problems: list[str] = []
    for source, doc in documents:
        try:
            if _is_valid()(doc):
                continue
        except (TypeError, ValueError):  # YAML values JSON lacks (dates...): jsonschema says
            pass
        errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
        for error in errors[:5]:
            problems.append(f"{source}: {_where(doc, list(error.absolute_path))}: {error.message}")
    if problems:
        raise PolicyError(problems)

    vocab: dict[str, dict[str, str]] = {"roles": {}, "purposes": {}, "resources": {}}
    declared_in: dict[tuple[str, str], str] = {}
    unclassified: tuple[str, str] | None = None
    for source, doc in documents:
        for kind, names in vocab.items():
            for name, text in (doc.get(kind) or {}).items():
                if (kind, name) in declared_in:
                    problems.append(f"{source}: {kind[:-1]} {name} is already declared in "
                                    f"{declared_in[kind, name]}")
                declared_in[kind, name] = source
                names[name] = text
        if "unclassified" in doc:
            if unclassified is not None:
                problems.append(f"{source}: unclassified is already set in {unclassified[0]}")
            unclassified = (source, doc["unclassified"])

    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for source, doc in documents:
        for raw in doc.get("rules") or []:
            if raw["id"] in seen:
                problems.append(f"{source}: rule {raw['id']}: id already used in {seen[raw['id']]}")
                continue
            seen[raw["id"]] = source
            rule = _compile_rule(raw, source, vocab, infos, problems)
            if rule is not None:
                rules.append(rule)
    if not rules and not problems:
        problems.append("no rules in any policy file: everything would be denied")
    if problems:
        raise PolicyError(problems)
    return Policy(rules=tuple(rules), roles=vocab["roles"], purposes=vocab["purposes"],
                  resources=vocab["resources"],
                  unclassified=unclassified[1] if unclassified else DEFAULT_UNCLASSIFIED,
                  types=infos, sources=tuple(source for source, _ in documents))


def _where(doc: Any, path: list[Any]) -> str:
    """A schema error's place, by rule id where there is one."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rule = doc["rules"][path[1]]
        name = rule.get("id") if isinstance(rule, dict) else None
        rest = "/".join(str(p) for p in path[2:])
        return f"rule {name or '#' + str(path[1] + 1)}" + (f": {rest}" if rest else "")
    return "/".join(str(p) for p in path) or "(top)"


def _types(written: list[str], infos: Mapping[str, TypeInfo],
           fail: Callable[[str], None]) -> frozenset[str] | None:
    if ANY in written:
        return None
    names = {info.name: iri for iri, info in infos.items()}
    found: set[str] = set()
    for item in written:
        if ":" in item:  # an IRI: a type with no contract may still be named
            found.add(item)
        elif any(c in item for c in "*?["):
            matched = [iri for name, iri in names.items() if fnmatch.fnmatchcase(name, item)]
            if not matched:
                fail(f"type pattern {item} matches no contract")
            found.update(matched)
        elif item in names:
            found.add(names[item])
        else:
            fail(f"unknown type {item} (not in contracts/types/)")
    return frozenset(found)


def _attributes(written: list[str], scope: list[TypeInfo],
                fail: Callable[[str], None]) -> frozenset[str]:
    found: set[str] = set()
    for item in written:
        if ":" in item:
            found.add(item)
            continue
        iris = {iri for info in scope for iri, name in info.names.items() if name == item}
        if not iris:
            fail(f"unknown attribute {item} (no contract of the rule's types lists it)")
        found.update(iris)
    return frozenset(found)


def _compile_rule(raw: Mapping[str, Any], source: str, vocab: Mapping[str, Mapping[str, str]],
                  infos: Mapping[str, TypeInfo], problems: list[str]) -> Rule | None:
    before = len(problems)

    def fail(message: str) -> None:
        problems.append(f"{source}: rule {raw['id']}: {message}")

    for kind in ("roles", "purposes", "resources"):
        for name in raw.get(kind) or []:
            if name not in vocab[kind] and not (kind == "roles" and name == ANY):
                fail(f"unknown {kind[:-1]} {name} (declare it under `{kind}:`)")
    is_api = "resources" in raw
    allowed_actions = API_ACTIONS if is_api else ENTITY_ACTIONS
    actions = set(raw["actions"])
    if ANY in actions:
        actions = set(allowed_actions)
    for action in sorted(actions - set(allowed_actions)):
        fail(f"action {action} does not apply to {'API resources' if is_api else 'entities'}")

    types: frozenset[str] | None = None
    attributes: frozenset[str] | None = None
    classes = frozenset(raw["classes"]) if "classes" in raw else None
    if is_api:
        if "attributes" in raw or classes is not None:
            fail("attributes and classes apply to entities, not to API resources")
        if raw["effect"] not in ("allow", "deny"):
            fail(f"effect {raw['effect']} applies to entities; API resources take allow or deny")
    else:
        types = _types(raw["types"], infos, fail)
        scope = list(infos.values()) if types is None else [infos[t] for t in types if t in infos]
        if "attributes" in raw:
            attributes = _attributes(raw["attributes"], scope, fail)
        purpose_bound = _purpose_bound(classes, attributes, scope)
        if (raw["effect"] in GRANTS and actions & DISCLOSING and "purposes" not in raw
                and purpose_bound):
            fail(f"grants {', '.join(sorted(purpose_bound))} with no purpose: personal and "
                 "special data are disclosed only for a named purpose (GDPR art. 25)")
    if len(problems) > before:
        return None
    tenants = raw.get("tenants")
    return Rule(
        id=raw["id"], description=" ".join(raw["description"].split()), source=source,
        effect=cast(Effect, raw["effect"]), roles=frozenset(raw["roles"]),
        actions=frozenset(actions),
        tenants=None if tenants is None else frozenset(
            "" if t == DEFAULT_TENANT else t for t in tenants),
        purposes=frozenset(raw["purposes"]) if "purposes" in raw else None,
        types=types, resources=frozenset(raw["resources"]) if is_api else None,
        attributes=attributes, classes=classes,
        written_types=tuple(raw.get("types") or raw.get("resources") or ()))


def _purpose_bound(classes: frozenset[str] | None, attributes: frozenset[str] | None,
                   scope: list[TypeInfo]) -> set[str]:
    """What a rule names explicitly that is personal or special data."""
    found = {f"class {c}" for c in (classes or ()) if c in PURPOSE_BOUND}
    for info in scope:
        for iri in attributes or ():
            if info.classes.get(iri) in PURPOSE_BOUND:
                found.add(f"{info.name}.{info.names[iri]}")
    return found


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        paths = sorted({p for pattern in PATTERNS for p in directory.glob(pattern)})
        return tuple((p.name, st.st_mtime_ns, st.st_size) for p in paths
                     for st in (p.stat(),))
    except OSError:
        return ()


class PolicyReloader:
    """The policy in force, reloaded when a file of its directory changes (mtime poll).

    The first load must succeed (raises PolicyError); later a directory that fails to load is
    refused, logged, and the old policy kept, until the files change again. The started task
    loads in a worker thread, so `on_change` runs there too; swapping `policy` is atomic."""

    def __init__(self, directory: Path | None = None, contracts: Contracts | None = None,
                 interval: float = RELOAD_INTERVAL,
                 on_change: Callable[[Policy], None] | None = None) -> None:
        self.directory = policy_dir() if directory is None else directory
        self.contracts = shipped_contracts() if contracts is None else contracts
        self.interval = interval
        self.on_change = on_change
        self._stamp = _stamp(self.directory)
        self.policy = load_policy(self.directory, self.contracts)
        self.last_error: PolicyError | None = None
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Poll once: True if a changed directory loaded and its policy is now in force."""
        stamp = _stamp(self.directory)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(self.directory, self.contracts)
        except PolicyError as exc:
            self.last_error = exc
            log.error("policy change in %s refused, the previous policy stays in force:\n%s",
                      self.directory, exc)
            return False
        self.policy, self.last_error = policy, None
        log.info("policy reloaded from %s: %d rules", self.directory, len(policy.rules))
        if self.on_change is not None:
            self.on_change(policy)
        return True

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cetate-policy-reloader")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.to_thread(self.check)
