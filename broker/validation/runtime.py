"""Validation on ingest for one broker process: the contracts, the per-tenant policy, and the
warn-mode counters. The handlers call `checker(tenant)` and run what it gives inside the pure
mutation they hand to the store, so the entity validated is the entity stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from broker.errors import BadRequestData
from broker.validation.check import check_entity, describe
from broker.validation.contracts import Contracts, contracts
from broker.validation.modes import Policy, parse_policy

log = logging.getLogger("cetate.validation")

Check = Callable[[Mapping[str, Any]], None]


def _unchecked(entity: Mapping[str, Any]) -> None:
    return None


class EntityValidator:
    def __init__(self, policy: Policy, known: Contracts | None = None) -> None:
        self.policy = policy
        self._contracts = known
        # (tenant, type) -> entities accepted in warn mode although invalid. Per process and
        # safe to lose, like every cache here (architecture invariant 4).
        self.warnings: Counter[tuple[str, str]] = Counter()

    @property
    def contracts(self) -> Contracts:
        if self._contracts is None:
            self._contracts = contracts()
        return self._contracts

    def checker(self, tenant: str) -> Check:
        """What to run on each entity written in `tenant`: raises BadRequestData (strict), logs
        and counts (warn), or nothing (off)."""
        rule = self.policy.rule(tenant)
        if rule.mode == "off":
            return _unchecked
        known, closed = self.contracts, rule.closed

        def strict(entity: Mapping[str, Any]) -> None:
            failures = check_entity(entity, known, closed=closed)
            if failures:
                raise BadRequestData(describe(entity["id"], failures),
                                     violations=[f.as_json() for f in failures])

        def warn(entity: Mapping[str, Any]) -> None:
            failures = check_entity(entity, known, closed=closed)
            if failures:
                for name in sorted({f.type for f in failures}):
                    self.warnings[(tenant, name)] += 1
                log.warning("accepted although invalid (validation mode warn, tenant %r): %s",
                            tenant, describe(entity["id"], failures))

        return strict if rule.mode == "strict" else warn


@cache
def validator(default: str = "strict", tenants: str = "") -> EntityValidator:
    """The process's validator for a policy (settings CETATE_VALIDATION and
    CETATE_VALIDATION_TENANTS); one per distinct policy, so counters survive requests."""
    return EntityValidator(parse_policy(default, tenants))


def for_settings(settings: Any) -> EntityValidator:
    """The validator a broker's settings ask for (settings.validation, .validation_tenants)."""
    return validator(settings.validation, settings.validation_tenants)
