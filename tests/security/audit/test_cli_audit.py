"""`cetate audit export / verify / public-key / rotate-key` on a log the real server wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestServer

from broker.cli import main
from broker.settings import Settings

ENTITIES = "/ngsi-ld/v1/entities"


async def cli(*args: str) -> int:
    """The command in a thread: it runs its own event loop, beside the server's."""
    return await asyncio.to_thread(main, list(args))


async def _fill(client: httpx.AsyncClient, n: int) -> str:
    for i in range(n):
        await client.post(ENTITIES, json={"id": f"urn:ngsi-ld:Lamp:{i}", "type": "Lamp"})
    return (await client.get("/cetate/v1/audit/checkpoint")).text


async def test_export_and_verify_round_trip(client: httpx.AsyncClient, settings: Settings,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    previous = tmp_path / "seen.checkpoint"
    previous.write_text(await _fill(client, 6))
    await _fill(client, 4)
    keys = tmp_path / "keys.txt"
    keys.write_text((await client.get("/cetate/v1/audit/public-key")).text)
    out = tmp_path / "export.json"
    assert await cli("audit", "export", "--store", settings.store, "--out", str(out),
                 "--from", "3") == 0
    assert await cli("audit", "verify", str(out), "--public-key", str(keys),
                 "--previous", str(previous)) == 0
    report = capsys.readouterr().out
    assert "verified" in report and "previous checkpoint (size 6)" in report

    http_out = tmp_path / "http-export.json"
    assert await cli("audit", "export", "--store", str(client.base_url), "--out", str(http_out),
                 "--to", "5") == 0
    assert await cli("audit", "verify", str(http_out), "--public-key",
                 keys.read_text().splitlines()[0]) == 0

    document = orjson.loads(out.read_bytes())
    document["entries"].pop(2)
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
    capsys.readouterr()
    assert await cli("audit", "verify", str(tampered), "--public-key", str(keys)) == 1
    assert "FAIL" in capsys.readouterr().out


async def test_rotation_keeps_old_exports_verifiable(client: httpx.AsyncClient,
                                                     server: TestServer, settings: Settings,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await _fill(client, 3)
    old = tmp_path / "old.json"
    assert await cli("audit", "export", "--store", settings.store, "--out", str(old)) == 0
    capsys.readouterr()
    assert await cli("audit", "rotate-key", "--store", settings.store) == 0
    capsys.readouterr()
    assert await cli("audit", "public-key", "--store", settings.store) == 0
    published = capsys.readouterr().out.split()
    assert len(published) == 2
    keys = tmp_path / "keys.txt"
    keys.write_text("\n".join(published))
    assert await cli("audit", "verify", str(old), "--public-key", str(keys)) == 0
    new = tmp_path / "new.json"
    await _fill(client, 1)
    assert await cli("audit", "export", "--store", settings.store, "--out", str(new)) == 0
    assert await cli("audit", "verify", str(new), "--public-key", published[0]) == 0
    assert await cli("audit", "verify", str(old), "--public-key", published[0]) == 1


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "absent.json"), "--public-key",
                 "x+00000000+AA=="]) == 2
    with pytest.raises(SystemExit, match="no audit log"):
        main(["audit", "export", "--store", f"sqlite:///{tmp_path}/none.db", "--out",
              str(tmp_path / "o.json")])


async def test_erase_deletes_a_subjects_details_and_keeps_the_tree(
        client: httpx.AsyncClient, server: TestServer, settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from broker.http.audit import AUDIT
    from security.audit.entry import decode, opens

    await _fill(client, 3)
    audit = server.app[AUDIT]
    rows = await audit.entries(0, 3)
    pseudonym = decode(rows[0][1])["principal"]["subject"]
    kept = await audit._read(audit.storage.details, 0)
    assert kept and all(opens(rows[0][1], d) for d in kept)
    head = await audit.head()
    capsys.readouterr()
    assert await cli("audit", "erase", "--store", settings.store, "--subject", pseudonym) == 0
    assert "erased the kept details of 3 entries" in capsys.readouterr().out
    assert [await audit._read(audit.storage.details, i) for i in range(3)] == [[], [], []]
    assert (await audit.head()).root() == head.root()  # the leaves, and so the tree, stay
    assert await audit.entries(0, 3) == rows
    keys = tmp_path / "keys.txt"
    keys.write_text((await client.get("/cetate/v1/audit/public-key")).text)
    out = tmp_path / "after-erasure.json"
    assert await cli("audit", "export", "--store", settings.store, "--out", str(out)) == 0
    assert await cli("audit", "verify", str(out), "--public-key", str(keys)) == 0
