"""Open a store from its URL: the scheme picks the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.store.protocol import Store
from broker.store.sqlite import SQLiteStore


def _sqlite(rest: str, **options: Any) -> Store:
    # sqlite:///relative.db -> "relative.db"; sqlite:////abs.db -> "/abs.db"
    path = rest[1:] if rest.startswith("/") else rest
    if not path or path == ":memory:":
        raise ValueError("SQLite needs a file path (several connections share it), "
                         "e.g. sqlite:///data/cetate.db")
    return SQLiteStore(path, **options)


SCHEMES: dict[str, Callable[..., Store]] = {"sqlite": _sqlite}


def open_store(url: str, **options: Any) -> Store:
    scheme, sep, rest = url.partition("://")
    engine = SCHEMES.get(scheme.lower()) if sep else None
    if engine is None:
        raise ValueError(f"Unsupported store URL {url!r}; supported schemes: "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    return engine(rest, **options)
