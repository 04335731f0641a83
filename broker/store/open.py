"""Open a store from its URL: the scheme picks the engine (SCHEMES), the rest is the engine's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.store.postgres import PostgresStore, split_url
from broker.store.protocol import Store
from broker.store.sqlite import SQLiteStore

MEMORY_PATHS = frozenset({"", ":memory:"})


def _sqlite(rest: str, **options: Any) -> Store:
    # sqlite:///relative/path.db -> "relative/path.db"; sqlite:////abs/path.db -> "/abs/path.db"
    path = rest[1:] if rest.startswith("/") else rest
    if path in MEMORY_PATHS:
        # The writer and every reader hold their own connection, so they must share a file.
        raise ValueError("SQLite needs a file path (the writer and the readers share it), e.g. "
                         "sqlite:///data/cetate.db; for a throwaway store use a temporary file")
    return SQLiteStore(path, **options)


def _postgresql(rest: str, **options: Any) -> Store:
    # postgresql://user@host:port/db?pool_max=20: libpq's URL, with this engine's options.
    dsn, url_options = split_url("postgresql://" + rest)
    return PostgresStore(dsn, **{**url_options, **options})


# scheme -> engine factory taking the rest of the URL after "scheme://" and the options.
SCHEMES: dict[str, Callable[..., Store]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "postgres": _postgresql,  # libpq accepts both spellings
}


def open_store(url: str, **options: Any) -> Store:
    """An unopened store for the URL (call `await store.open()`); ValueError if unsupported."""
    scheme, sep, rest = url.partition("://")
    engine = SCHEMES.get(scheme.lower()) if sep else None
    if engine is None:
        raise ValueError(f"Unsupported store URL {url!r}; supported schemes: "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    return engine(rest, **options)
