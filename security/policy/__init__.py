"""The policy decision point: policies as data (contracts/policies/), decided purely.

    policy = load_policy()                      # or PolicyReloader().policy
    decision = decide(policy, principal, "read", Resource.entity([type_iri], tenant), purpose)
    if decision.allowed:
        entity = apply_decision(decision, entity, pseudonymiser)
"""

from security.policy.decide import (
    apply_decision,
    decide,
    filter_entities,
    readable_types,
    unfilterable,
    visible_attributes,
)
from security.policy.load import PolicyError, PolicyReloader, compile_policy, load_policy
from security.policy.model import PURPOSE_HEADER, Decision, Policy, Resource, Rule

__all__ = ["PURPOSE_HEADER", "Decision", "Policy", "PolicyError", "PolicyReloader", "Resource",
           "Rule", "apply_decision", "compile_policy", "decide", "filter_entities",
           "load_policy", "readable_types", "unfilterable", "visible_attributes"]
