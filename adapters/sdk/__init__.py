"""The adapter SDK: subclass adapters.sdk.Adapter (adapters/sdk/hooks.py lists every hook),
pick a source from adapters.sdk.sources, and `cetate adapter run NAME` does the rest."""

from adapters.sdk.errors import AdapterError, BadRecord, BrokerUnavailable, ConfigError
from adapters.sdk.hooks import (
    CETATE_CONTEXT,
    Adapter,
    Config,
    Entity,
    Position,
    Pseudonymise,
    Raw,
    Simulator,
    Source,
    WriteBack,
)
from adapters.sdk.pseudonymise import Pseudonymiser

__all__ = ["CETATE_CONTEXT", "Adapter", "AdapterError", "BadRecord", "BrokerUnavailable",
           "Config", "ConfigError", "Entity", "Position", "Pseudonymise", "Pseudonymiser", "Raw",
           "Simulator", "Source", "WriteBack"]
