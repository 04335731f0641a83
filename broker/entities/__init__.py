"""The pure entity core: parse payloads, apply changes, render representations. No I/O.

The shapes it works on are in docs/internals.md; the clauses are cited where they decide.
"""

from broker.entities.clock import normalize_datetime, now_iso
from broker.entities.mutate import (
    NotUpdated,
    UpdateResult,
    append,
    delete_attribute,
    merge,
    partial_update,
    replace,
    replace_attribute,
    update,
)
from broker.entities.parse import (
    MAX_DEPTH,
    Fragment,
    parse_attribute,
    parse_attributes,
    parse_entity,
    parse_fragment,
    require_uri,
)
from broker.entities.render import (
    RenderOptions,
    render_attribute,
    render_entity,
    render_geojson,
)
from broker.entities.terms import Terms

__all__ = [
    "MAX_DEPTH",
    "Fragment",
    "NotUpdated",
    "RenderOptions",
    "Terms",
    "UpdateResult",
    "append",
    "delete_attribute",
    "merge",
    "normalize_datetime",
    "now_iso",
    "parse_attribute",
    "parse_attributes",
    "parse_entity",
    "parse_fragment",
    "partial_update",
    "render_attribute",
    "render_entity",
    "render_geojson",
    "replace",
    "replace_attribute",
    "require_uri",
    "update",
]
