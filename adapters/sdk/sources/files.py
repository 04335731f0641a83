"""Files: CSV, JSON (an array, or the array under `items`), JSON lines, XML (defusedxml).

Each file is a stream named after it; a record's position is its ordinal in the file (1-based),
bad records included, so a restart skips exactly what the checkpoint covers. Bad bytes never
stop an import: text is decoded with surrogateescape, and a record holding undecodable bytes
comes out as a Raw with `error` (the dead-letter file gets it), as do a CSV row of the wrong
width, a JSON line that does not parse, and the rest of a truncated JSON array or XML file
(the records before the damage still count). XML entities and DTDs are refused (defusedxml:
no billion laughs, no external entity reads).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from adapters.sdk.errors import ConfigError
from adapters.sdk.hooks import Position, Raw
from adapters.sdk.sources.base import BaseSource

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xml": "xml"}
# surrogateescape turns each undecodable byte into one of these code points (PEP 383).
_ESCAPED = re.compile("[\udc80-\udcff]")
MAX_SHOWN = 10_000  # characters of a bad record kept in its dead letter

Parsed = tuple[Any, str]  # (record data, error: "" when it decoded)


def _undecodable(value: Any) -> bool:
    if isinstance(value, str):
        return _ESCAPED.search(value) is not None
    if isinstance(value, dict):
        return any(_undecodable(k) or _undecodable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_undecodable(v) for v in value)
    return False


def _shown(value: Any) -> Any:
    """A bad record as the dead letter shows it: undecodable bytes as \\xNN escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _checked(data: Any, encoding: str) -> Parsed:
    if _undecodable(data):
        return _shown(data), f"bytes that are not {encoding}"
    return data, ""


def csv_records(text: str, encoding: str, delimiter: str = ",") -> Iterator[Parsed]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            yield _shown(row), (f"CSV line {reader.line_num}: {len(row)} fields, the header "
                                f"has {len(header)}" + (" (truncated?)"
                                                        if len(row) < len(header) else ""))
            continue
        yield _checked(dict(zip(header, row, strict=True)), encoding)


def _json_array_prefix(text: str) -> Iterator[Parsed]:
    """The whole elements at the start of a damaged JSON array, then the damage."""
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    count = 0
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index < len(text) and text[index] == "]":
            return
        try:
            item, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            yield _shown(text[index:index + MAX_SHOWN]), \
                f"JSON damaged after {count} records: {exc.msg} at char {exc.pos}"
            return
        count += 1
        yield item, ""


def json_records(text: str, encoding: str, items: str | None = None) -> Iterator[Parsed]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        if not items and text.lstrip().startswith("["):
            for item, error in _json_array_prefix(text):
                yield (item, error) if error else _checked(item, encoding)
        else:
            yield _shown(text[:MAX_SHOWN]), f"not JSON: {exc.msg} at char {exc.pos}"
        return
    found = body.get(items) if items and isinstance(body, dict) else body
    if not isinstance(found, list):
        yield _shown(text[:MAX_SHOWN]), "no JSON array of records" + (
            f" under {items!r}" if items else "")
        return
    for item in found:
        yield _checked(item, encoding)


def jsonl_records(text: str, encoding: str) -> Iterator[Parsed]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield _shown(line[:MAX_SHOWN]), f"line {number} is not JSON: {exc.msg}"
            continue
        yield _checked(item, encoding)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element(element: Any) -> dict[str, Any]:
    """attributes, then each child's text (a repeated child: a list; nested ones: a dict)."""
    out: dict[str, Any] = {_local(k): v for k, v in element.attrib.items()}
    for child in element:
        value: Any = _element(child) if len(child) or child.attrib else (child.text or "").strip()
        name = _local(child.tag)
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def xml_records(data: bytes, record_tag: str) -> Iterator[Parsed]:
    count = 0
    try:
        for _, element in SafeET.iterparse(io.BytesIO(data), events=("end",),
                                           forbid_dtd=True):
            if _local(element.tag) == record_tag:
                count += 1
                yield _element(element), ""
                element.clear()
    except SafeET.ParseError as exc:
        yield None, f"XML damaged after {count} records: {exc}"
    except DefusedXmlException as exc:
        yield None, f"XML refused: {exc!r} (entities and DTDs are not accepted)"


class Files(BaseSource):
    """Records of the files given (a directory: its files of known suffixes, sorted)."""

    def __init__(self, paths: str | Path | Sequence[str | Path], *, format: str | None = None,
                 encoding: str = "utf-8", items: str | None = None,
                 record_tag: str | None = None, delimiter: str = ",") -> None:
        given = [paths] if isinstance(paths, str | Path) else list(paths)
        self.paths: list[Path] = []
        for path in map(Path, given):
            if path.is_dir():
                self.paths.extend(sorted(p for p in path.iterdir() if p.suffix in FORMATS))
            else:
                self.paths.append(path)
        self.format, self.encoding, self.items = format, encoding, items
        self.record_tag, self.delimiter = record_tag, delimiter
        self._total: int | None = None

    def _format(self, path: Path) -> str:
        found = self.format or FORMATS.get(path.suffix.lower(), "")
        if found not in FORMATS.values():
            raise ConfigError(f"{path}: unknown file format (give format= csv, json, jsonl, "
                              f"xml)")
        if found == "xml" and not self.record_tag:
            raise ConfigError(f"{path}: XML needs record_tag, the element of one record")
        return found

    def records(self, path: Path, data: bytes) -> Iterator[Parsed]:
        """(data, error) of each record of one file, in order."""
        kind = self._format(path)
        if kind == "xml":
            assert self.record_tag is not None
            yield from xml_records(data, self.record_tag)
            return
        text = data.decode(self.encoding, "surrogateescape")
        if kind == "csv":
            yield from csv_records(text, self.encoding, self.delimiter)
        elif kind == "json":
            yield from json_records(text, self.encoding, self.items)
        else:
            yield from jsonl_records(text, self.encoding)

    def stream(self, path: Path) -> str:
        return path.name

    @property
    def total(self) -> int:
        """Records in all the files (read once, for the progress bar)."""
        if self._total is None:
            self._total = sum(sum(1 for _ in self.records(p, p.read_bytes()))
                              for p in self.paths)
        return self._total

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        for path in self.paths:
            stream = self.stream(path)
            done = checkpoint.get(stream)
            after = done if isinstance(done, int) else 0
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                yield Raw(stream, after + 1, str(path), f"cannot read {path}: {exc}")
                continue
            for position, (record, error) in enumerate(self.records(path, data), 1):
                if position > after:
                    yield Raw(stream, position, record, error)
