"""Validation on ingest: entities of a contract type (contracts/types/) are checked against its
JSON Schema on every write path, per tenant strict, warn or off (docs/contracts.md).

    from broker.validation import contracts, check_entity
    failures = check_entity(entity, contracts())     # [] when the entity keeps its contracts
    validator(settings.validation, settings.validation_tenants).checker(tenant)(entity)
"""

from broker.validation.check import (
    Failure,
    check_contract,
    check_entity,
    check_key_values,
    describe,
    key_values,
)
from broker.validation.contracts import (
    Attribute,
    ContractError,
    Contracts,
    TypeContract,
    contracts,
    load_contracts,
)
from broker.validation.modes import Policy, Rule, parse_policy
from broker.validation.runtime import EntityValidator, for_settings, validator

__all__ = [
    "Attribute",
    "ContractError",
    "Contracts",
    "EntityValidator",
    "Failure",
    "Policy",
    "Rule",
    "TypeContract",
    "check_contract",
    "check_entity",
    "check_key_values",
    "contracts",
    "describe",
    "for_settings",
    "key_values",
    "load_contracts",
    "parse_policy",
    "validator",
]
