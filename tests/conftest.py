"""Fixtures shared by every test: a real broker on a loopback port, with a fresh store.

The store is SQLite unless `--store-engine postgresql` (or env CETATE_TEST_STORE=postgresql):
then each test gets a fresh PostgreSQL database, copied from a template migrated once per run
and dropped after the test. PostgreSQL is the local server (CETATE_TEST_PG, default
postgresql://postgres@127.0.0.1:5432/postgres); when it is unreachable, tests needing it skip
with how to start it, or fail when CI=true.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"

ENGINES = ("sqlite", "postgresql")
PG_ADMIN_URL = os.environ.get("CETATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOW_TO_START = ("start it with 'pg_ctlcluster --skip-systemctl-redirect 15 main start' "
                   "(and install PostGIS: apt-get install postgresql-15-postgis-3), or point "
                   "CETATE_TEST_PG at a server")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-engine", choices=ENGINES,
                     default=os.environ.get("CETATE_TEST_STORE", "sqlite"),
                     help="the store engine of HTTP-level tests (env CETATE_TEST_STORE)")
    parser.addoption("--store-tests-only", action="store_true",
                     help="run only the tests whose broker store --store-engine picks (those "
                          "using the `settings` fixture): the second pass of `make test`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--store-tests-only"):
        return
    keep = [i for i in items if "test_store_url" in getattr(i, "fixturenames", ())]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@dataclass
class PostgresServer:
    """The test PostgreSQL server. A run gets one database of its own, migrated once and
    dropped at the end; each test starts from it emptied back to what the migrations left
    (TRUNCATE is milliseconds; CREATE DATABASE from a PostGIS template costs checkpoints)."""

    admin_url: str
    run: str  # random per run, so parallel runs on one server never collide
    database: str = ""
    made: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + database

    def create_empty(self) -> str:
        """A new empty database (no migrations, dropped at the end of the run); its name."""
        name = f"cetate_test_{self.run}_{len(self.made) + 1}"
        asyncio.run(_execute(self.admin_url, f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return name

    def fresh(self) -> str:
        """The run's database, migrated and emptied of everything tests wrote; its name."""
        if not self.database:
            self.database = self.create_empty()
            asyncio.run(_migrate(self.url(self.database)))
            asyncio.run(_execute(self.url(self.database), _SNAPSHOT_SEED))
        else:
            asyncio.run(_execute(self.url(self.database), _RESET))
        return self.database

    def drop_all(self) -> None:
        for name in self.made:
            asyncio.run(_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Tables the reset leaves alone: PostGIS's own and the migration record.
_KEEP = "'spatial_ref_sys', 'schema_migrations'"
# After migrating: copy each table's seeded rows (the default tenant...) aside.
_SNAPSHOT_SEED = f"""
DO $$ DECLARE t text; BEGIN
  CREATE SCHEMA cetate_test_seed;
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public'
           AND tablename NOT IN ({_KEEP}) LOOP
    EXECUTE format('CREATE TABLE cetate_test_seed.%I AS TABLE public.%I', t, t);
  END LOOP;
END $$"""
# Before each test: empty every table, then put the seeded rows back.
_RESET = f"""
DO $$ DECLARE t text; BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public'
           AND tablename NOT IN ({_KEEP}) LOOP
    EXECUTE format('TRUNCATE public.%I RESTART IDENTITY CASCADE', t);
  END LOOP;
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'cetate_test_seed' LOOP
    EXECUTE format('INSERT INTO public.%I OVERRIDING SYSTEM VALUE '
                   'SELECT * FROM cetate_test_seed.%I', t, t);
  END LOOP;
END $$"""


async def _execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    from broker.store.open import open_store

    store = open_store(url)
    await store.open()
    await store.close()


async def _reachable(url: str) -> str | None:
    """None if the server answers and has PostGIS available, else why not."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {url} is unreachable ({exc!r})"
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
    finally:
        await conn.close()
    return None if found else f"PostgreSQL at {url} has no PostGIS"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server for this run; skips (fails under CI=true) if it is absent."""
    why = asyncio.run(_reachable(PG_ADMIN_URL))
    if why is not None:
        message = f"{why}: {PG_HOW_TO_START}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(PG_ADMIN_URL, secrets.token_hex(4))
    yield server
    server.drop_all()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a migrated PostgreSQL database holding nothing but what migrations seed."""
    return postgres_server.url(postgres_server.fresh())


@pytest.fixture
def store_engine(request: pytest.FixtureRequest) -> str:
    """The engine HTTP-level tests run on (--store-engine / CETATE_TEST_STORE)."""
    return str(request.config.getoption("--store-engine"))


@pytest.fixture
def test_store_url(store_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh store of the selected engine."""
    if store_engine == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/cetate.db"


@pytest.fixture
def settings(test_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The audit log lives in the store's database; its keys default to beside a SQLite store,
    # but beside a PostgreSQL one to ./data, shared by every test: so to tmp_path, and to the
    # environment, where `cetate audit` commands run by the test look for them.
    key_dir = ""
    if not test_store_url.startswith("sqlite"):
        key_dir = f"{tmp_path}/audit-keys"
        monkeypatch.setenv("CETATE_AUDIT_KEY_DIR", key_dir)
    return Settings(
        store=test_store_url,
        allowed_networks=("127.0.0.0/8",),
        max_body_bytes=1_000_000,
        log_level="WARNING",
        audit_key_dir=key_dir,
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        yield http
