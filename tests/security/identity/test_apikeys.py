"""API keys: the pure format and hash, and create/list/revoke/verify on real SQLite and
PostgreSQL databases (the broker's own), also through `cetate keys`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.cli import main
from security.identity.apikeys import hash_key, key_id_of, key_matches, new_key
from security.identity.errors import InvalidCredentials
from security.identity.keystore import TABLE, KeyStore, create_key, now, open_key_store
from security.identity.resolver import ApiKeyVerifier


def test_key_format_and_hash() -> None:
    key_id, key = new_key()
    assert key.startswith(f"cetate_{key_id}_")
    assert key_id_of(key) == key_id
    assert key_matches(key, hash_key(key))
    assert not key_matches(key[:-1] + ("A" if key[-1] != "A" else "B"), hash_key(key))
    assert key_id_of("cetate_zz_short") is None
    assert key_id_of(key + "x") is None
    assert key_id_of(key + "\n") is None
    assert len({new_key()[1] for _ in range(100)}) == 100


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))  # skips, saying why, without PG
    return f"sqlite:///{tmp_path}/cetate.db"


@pytest.fixture
async def keys(store_url: str) -> AsyncIterator[KeyStore]:
    store = open_key_store(store_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_create_list_verify_revoke(keys: KeyStore) -> None:
    assert not await keys.any_keys()
    record, key = await create_key(keys, frozenset({"adapter"}), tenants=frozenset({"parking"}),
                                   name="parking-adapter")
    other, _ = await create_key(keys, frozenset({"admin"}))
    assert await keys.any_keys()

    listed = await keys.all()
    assert [k.id for k in listed] == [record.id, other.id]
    assert listed[0].roles == {"adapter"} and listed[0].tenants == {"parking"}
    assert listed[0].name == "parking-adapter" and listed[0].created_at is not None
    assert listed[1].tenants is None and listed[1].purposes is None

    found = await keys.get(record.id)
    assert found is not None
    assert found[1] == hash_key(key)  # only the hash is kept
    verifier = ApiKeyVerifier(keys, cache_seconds=0)
    principal = await verifier.verify(key)
    assert principal.subject == f"key:{record.id}"
    assert principal.kind == "api-key"
    assert principal.roles == {"adapter"} and principal.tenants == {"parking"}

    assert await keys.revoke(record.id, now())
    assert not await keys.revoke(record.id, now())  # once
    assert not await keys.revoke("0" * 16, now())
    await keys.revoke(other.id, now())
    assert await keys.any_keys()  # every key revoked: still configured, not reopened
    revoked = await keys.get(record.id)
    assert revoked is not None and revoked[0].revoked_at is not None
    with pytest.raises(InvalidCredentials, match="revoked"):
        await verifier.verify(key)
    with pytest.raises(InvalidCredentials, match="unknown"):
        await verifier.verify(new_key()[1])
    with pytest.raises(InvalidCredentials, match="wrong secret"):
        await verifier.verify(f"cetate_{record.id}_{'A' * 43}")


async def test_secret_never_stored(store_url: str, keys: KeyStore, tmp_path: Path) -> None:
    _, key = await create_key(keys, frozenset({"adapter"}))
    secret = key.split("_", 2)[2]
    if store_url.startswith("sqlite"):
        raw = (tmp_path / "cetate.db").read_bytes()
        wal = tmp_path / "cetate.db-wal"
        raw += wal.read_bytes() if wal.exists() else b""
        assert secret.encode() not in raw
    else:
        import asyncpg

        conn = await asyncpg.connect(store_url)
        try:
            dump = json.dumps([dict(r) for r in await conn.fetch(f"SELECT * FROM {TABLE}")],
                              default=str)
        finally:
            await conn.close()
        assert secret not in dump


async def test_cache_remembers_verified_keys_for_its_interval(keys: KeyStore) -> None:
    record, key = await create_key(keys, frozenset({"adapter"}))
    clock = [0.0]
    verifier = ApiKeyVerifier(keys, cache_seconds=10, clock=lambda: clock[0])
    await verifier.verify(key)
    await keys.revoke(record.id, now())  # by another process: this one's cache still holds it
    assert (await verifier.verify(key)).subject == f"key:{record.id}"
    clock[0] = 11
    with pytest.raises(InvalidCredentials, match="revoked"):
        await verifier.verify(key)


async def test_invalid_grants_refused(keys: KeyStore) -> None:
    with pytest.raises(ValueError, match="role"):
        await create_key(keys, frozenset())
    with pytest.raises(ValueError, match="invalid role"):
        await create_key(keys, frozenset({"drop table;"}))


def test_cli_create_list_revoke(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--role", "adapter", "--tenant", "parking", "--name",
                 "parking-adapter", "--store", store_url]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    key_id = key_id_of(key)
    assert key_id is not None and key_id in err and "not shown again" in err

    assert main(["keys", "list", "--store", store_url]) == 0
    table = capsys.readouterr().out
    assert key_id in table and "parking-adapter" in table and "adapter" in table
    assert key.split("_", 2)[2] not in table

    assert main(["keys", "list", "--json", "--store", store_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == key_id and listed[0]["tenants"] == ["parking"]
    assert listed[0]["revokedAt"] is None
    assert "secret" not in json.dumps(listed) and key not in json.dumps(listed)

    assert main(["keys", "revoke", key_id, "--store", store_url]) == 0
    assert main(["keys", "revoke", key_id, "--store", store_url]) == 1
    assert "no active key" in capsys.readouterr().err


def test_cli_revoke_reports_revoked(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "create", "--role", "adapter", "--store", store_url])
    key_id = key_id_of(capsys.readouterr().out.strip())
    assert key_id is not None
    assert main(["keys", "revoke", key_id, "--store", store_url]) == 0
    capsys.readouterr()
    main(["keys", "list", "--json", "--store", store_url])
    assert json.loads(capsys.readouterr().out)[0]["revokedAt"] is not None
    with pytest.raises(SystemExit, match="not a key id"):
        main(["keys", "revoke", "nope", "--store", store_url])
