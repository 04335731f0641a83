"""What one broker process holds of the policy layer: the policy in force (reloaded from its
directory), the pseudonymiser, and whether enforcement is on at all.

Until identity is configured (no OIDC issuer, no API keys) the broker keeps its open behaviour
(issue 8, "Testable interface"): `decide` then answers OPEN, which filters nothing. The
handlers call the same methods either way, so no path is written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from security.audit.entry import entry_text
from security.identity.principal import Principal
from security.policy.decide import Pseudonymise, apply_decision, decide
from security.policy.load import RELOAD_INTERVAL, PolicyReloader
from security.policy.model import PURPOSE_HEADER, Decision, Policy, Resource
from security.privacy.pseudonym import PseudonymKeyError, pseudonymiser_from_env

log = logging.getLogger("cetate.policy")

OPEN = Decision(True, ("policies-off",), "no identity is configured: policies are not enforced",
                unclassified="allow")


def purpose_of(headers: Mapping[str, str]) -> str | None:
    """The declared purpose of a request (the Cetate-Purpose header), None if absent or blank.
    A purpose the policy does not declare is refused by the decision itself. (Bytes that are
    not UTF-8 become U+FFFD: the purpose is recorded in audit entries.)"""
    return entry_text(headers.get(PURPOSE_HEADER, "").strip()) or None


def _no_key(value: str) -> str:
    raise PseudonymKeyError("a policy pseudonymises but no pseudonym key is configured "
                            "(CETATE_PSEUDONYM_KEY_FILE)")


class PolicyService:
    def __init__(self, enabled: bool, directory: Path | None = None,
                 pseudonymise: Pseudonymise | None = None,
                 interval: float = RELOAD_INTERVAL) -> None:
        self.enabled = enabled
        self._reloader = PolicyReloader(directory, interval=interval) if enabled else None
        self._pseudonymise = pseudonymise

    @classmethod
    def from_env(cls, enabled: bool, env: Mapping[str, str] | None = None,
                 directory: Path | None = None) -> PolicyService:
        """Enforcing policies needs the pseudonym key (CETATE_PSEUDONYM_KEY_FILE) as soon as a
        rule pseudonymises: refuse to start without it rather than leak or fail per request."""
        if not enabled:
            log.warning("no OIDC issuer and no API keys are configured: access policies are "
                        "NOT enforced, every request sees everything")
            return cls(False)
        service = cls(True, directory)
        assert service._reloader is not None
        needs_key = any(r.effect == "pseudonymise" for r in service._reloader.policy.rules)
        try:
            service._pseudonymise = pseudonymiser_from_env(env)
        except PseudonymKeyError:
            if needs_key:
                raise
        return service

    @property
    def policy(self) -> Policy | None:
        return self._reloader.policy if self._reloader else None

    def decide(self, principal: Principal, action: str, resource: Resource,
               purpose: str | None = None) -> Decision:
        if self._reloader is None:
            return OPEN
        return decide(self._reloader.policy, principal, action, resource, purpose)

    def apply(self, decision: Decision, entity: Mapping[str, Any]) -> Mapping[str, Any]:
        """The entity as the decision lets its principal see it."""
        if not decision.filters:
            return entity
        return apply_decision(decision, entity, self._pseudonymise or _no_key)

    @property
    def reloader(self) -> PolicyReloader | None:
        """The directory watcher (None when not enforcing): `check()` polls it at once."""
        return self._reloader

    async def start(self) -> None:
        if self._reloader is not None:
            await self._reloader.start()

    async def stop(self) -> None:
        if self._reloader is not None:
            await self._reloader.stop()
