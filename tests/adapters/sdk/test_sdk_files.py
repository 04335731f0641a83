"""File sources: records with stable positions; bad bytes, short rows, truncated JSON and XML
become per-record errors (dead letters), never an exception; a checkpoint skips what it covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sdk import ConfigError, Raw
from adapters.sdk.sources import Files, merged


async def read_all(source: Files, checkpoint: dict[str, int] | None = None) -> list[Raw]:
    return [raw async for raw in source.read(checkpoint or {})]


async def test_csv_records_positions_and_a_wrong_encoding(tmp_path: Path) -> None:
    path = tmp_path / "sms.csv"
    path.write_bytes(b"zone,plate\nA,DJ01ABC\n" + "B,DJ02ŞĂ\n".encode("cp1250")
                     + b"C,DJ03XYZ\n")
    raws = await read_all(Files(path))
    assert [(r.stream, r.position) for r in raws] == [("sms.csv", 1), ("sms.csv", 2),
                                                      ("sms.csv", 3)]
    assert raws[0].data == {"zone": "A", "plate": "DJ01ABC"} and not raws[0].error
    assert "not utf-8" in raws[1].error and "\\x" in raws[1].data["plate"]
    assert raws[2].data == {"zone": "C", "plate": "DJ03XYZ"} and not raws[2].error


async def test_csv_short_row_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b,c\n1,2,3\n4,5\n")
    raws = await read_all(Files(path))
    assert raws[0].data == {"a": "1", "b": "2", "c": "3"}
    assert "2 fields, the header has 3 (truncated?)" in raws[1].error


async def test_truncated_json_array_keeps_the_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('[{"n": 1}, {"n": 2}, {"n": 3, "m"')
    raws = await read_all(Files(path))
    assert [r.data for r in raws[:2]] == [{"n": 1}, {"n": 2}]
    assert raws[2].error.startswith("JSON damaged after 2 records")


async def test_json_items_and_jsonl_bad_line(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"rows": [{"n": 1}]}')
    (tmp_path / "b.jsonl").write_text('{"n": 2}\n{"n": \n{"n": 3}\n')
    raws = await read_all(Files(tmp_path, items="rows"))
    assert [(r.stream, r.position, r.data if not r.error else "bad") for r in raws] == [
        ("a.json", 1, {"n": 1}), ("b.jsonl", 1, {"n": 2}), ("b.jsonl", 2, "bad"),
        ("b.jsonl", 3, {"n": 3})]


async def test_xml_records_truncation_and_entities(tmp_path: Path) -> None:
    good = tmp_path / "a.xml"
    good.write_text('<export><plata id="1"><suma>12.50</suma><tip>auto</tip></plata>'
                    '<plata id="2"><suma>3</suma></plata><plata id="3"><suma>4')
    raws = await read_all(Files(good, record_tag="plata"))
    assert raws[0].data == {"id": "1", "suma": "12.50", "tip": "auto"}
    assert raws[1].data == {"id": "2", "suma": "3"}
    assert raws[2].error.startswith("XML damaged after 2 records")
    bomb = tmp_path / "b.xml"
    bomb.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><export><plata>&a;</plata></export>')
    raws = await read_all(Files(bomb, record_tag="plata"))
    assert len(raws) == 1 and "refused" in raws[0].error


async def test_checkpoint_skips_covered_records_and_total_counts(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("".join(f'{{"n": {n}}}\n' for n in range(1, 11)))
    source = Files(tmp_path / "a.jsonl")
    assert source.total == 10
    raws = await read_all(source, {"a.jsonl": 7})
    assert [r.position for r in raws] == [8, 9, 10]
    both = merged(source, Files(tmp_path / "a.jsonl"))
    assert both.total == 20


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="unknown file format"):
        list(Files(tmp_path / "x.txt").records(tmp_path / "x.txt", b"hi"))
