"""The API contract: GET /ngsi-ld/v1/openapi.yaml serves contracts/openapi.yaml, and GET /docs a
readable HTML page generated from it on the server (no script, no fonts, nothing fetched: it
works offline, like the rest of the broker, invariant 7).

`render_docs` is pure (a parsed OpenAPI document in, HTML out); the handlers read the contract
once and keep the bytes and the page.
"""

from __future__ import annotations

import html
import re
from functools import cache
from typing import Any

import yaml
from aiohttp import web

from broker.ld.core import CONTRACTS, MissingContracts

CONTRACT_FILE = CONTRACTS / "openapi.yaml"
CONTRACT_PATH = "/ngsi-ld/v1/openapi.yaml"
DOCS_PATH = "/docs"
YAML = "application/yaml"  # RFC 9512
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def contract_bytes() -> bytes:
    try:
        return CONTRACT_FILE.read_bytes()
    except FileNotFoundError:
        raise MissingContracts(f"{CONTRACT_FILE} is missing: contracts/ must sit beside broker/ "
                               "(install the project from its source tree)") from None


@cache
def contract() -> dict[str, Any]:
    """The parsed contract (read once)."""
    doc = yaml.safe_load(contract_bytes())
    if not isinstance(doc, dict) or "paths" not in doc:
        raise MissingContracts(f"{CONTRACT_FILE} is not an OpenAPI document")
    return doc


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d3557;color:#fff;padding:1.2rem 2rem}header h1{margin:0;font-size:1.6rem}
main{display:flex;gap:2rem;padding:1rem 2rem}nav{min-width:15rem;position:sticky;top:0;
align-self:flex-start;max-height:100vh;overflow:auto;font-size:.9rem}nav ul{padding-left:1rem}
section.doc{flex:1;min-width:0}code{background:#eef1f5;padding:0 .25rem;border-radius:3px}
.op{border:1px solid #d5dbe3;border-radius:6px;margin:1rem 0;background:#fff}
.op>h3{margin:0;padding:.5rem .8rem;font-size:1rem;display:flex;gap:.6rem;align-items:center;
border-bottom:1px solid #e3e7ed;flex-wrap:wrap}.op .body{padding:.3rem .8rem .8rem}
.m{font:600 .8rem monospace;color:#fff;padding:.15rem .5rem;border-radius:3px;min-width:3.5rem;
text-align:center}.get{background:#2a7ab0}.post{background:#3a8f4f}.put{background:#b0782a}
.patch{background:#7a5ab0}.delete{background:#b03a3a}.path{font:600 .95rem monospace}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e3e7ed;text-align:left;padding:.25rem .4rem;vertical-align:top}
td p{margin:0 0 .3rem}th{background:#f3f5f8}.req{color:#b03a3a;font-weight:600}.muted{color:#5b6575}
details.schema{border:1px solid #d5dbe3;border-radius:6px;margin:.5rem 0;background:#fff;
padding:.3rem .8rem}details.schema summary{cursor:pointer;font:600 .95rem monospace}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


_CODE_RE = re.compile(r"`([^`]+)`")
_BOLD_RE = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    out = _esc(text)
    out = _CODE_RE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD_RE.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _prose(text: str | None) -> str:
    """The little Markdown the contract's descriptions use: paragraphs, `- ` lists, `code`,
    **bold**."""
    if not text:
        return ""
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines and lines[0].lstrip().startswith("- "):
            items: list[str] = []
            for line in lines:
                if line.lstrip().startswith("- "):
                    items.append(line.lstrip()[2:])
                elif items:
                    items[-1] += " " + line.strip()
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "".join(blocks)


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local $ref (#/components/...) to what it names."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node, seen = target, seen + 1
    return node


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_label(schema: Any) -> str:
    """A short HTML description of a schema: its type, constraints, links to named schemas."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        name = _esc(_ref_name(schema["$ref"]))
        return f'<a href="#schema-{name}">{name}</a>'
    for key, word in (("oneOf", "one of"), ("anyOf", "any of"), ("allOf", "all of")):
        if key in schema:
            parts = " | ".join(_schema_label(s) for s in schema[key])
            return f"{word} ({parts})" if len(schema[key]) > 1 else parts
    kind = schema.get("type", "any")
    label = f"array of {_schema_label(schema.get('items'))}" if kind == "array" else _esc(kind)
    notes = []
    if "enum" in schema:
        notes.append("one of " + ", ".join(f"<code>{_esc(v)}</code>" for v in schema["enum"]))
    for key in ("format", "pattern", "minimum", "maximum", "minLength", "maxLength",
                "minItems", "maxItems"):
        if key in schema:
            notes.append(f"{key} <code>{_esc(schema[key])}</code>")
    if schema.get("nullable"):
        notes.append("or null")
    return label + (f' <span class="muted">({"; ".join(notes)})</span>' if notes else "")


def _parameters(doc: dict[str, Any], params: list[Any]) -> str:
    if not params:
        return ""
    rows = []
    for raw in params:
        p = _resolve(doc, raw)
        required = '<span class="req">required</span>' if p.get("required") else ""
        rows.append(
            f"<tr><td><code>{_esc(p.get('name'))}</code> {required}</td>"
            f"<td>{_esc(p.get('in'))}</td><td>{_schema_label(p.get('schema'))}</td>"
            f"<td>{_prose(p.get('description'))}</td></tr>")
    return ("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>schema</th>"
            "<th>description</th></tr>" + "".join(rows) + "</table>")


def _content(content: dict[str, Any] | None) -> str:
    if not content:
        return ""
    return "<br>".join(f"<code>{_esc(media)}</code>: {_schema_label(body.get('schema'))}"
                       for media, body in content.items())


def _request_body(doc: dict[str, Any], raw: Any) -> str:
    if not raw:
        return ""
    body = _resolve(doc, raw)
    return f"<h4>Request body</h4><p>{_content(body.get('content'))}</p>"


def _responses(doc: dict[str, Any], responses: dict[str, Any]) -> str:
    rows = []
    for status, raw in responses.items():
        r = _resolve(doc, raw)
        headers = ", ".join(f"<code>{_esc(h)}</code>" for h in (r.get("headers") or {}))
        rows.append(
            f"<tr><td><code>{_esc(status)}</code></td><td>{_prose(r.get('description'))}</td>"
            f"<td>{_content(r.get('content'))}</td><td>{headers}</td></tr>")
    return ("<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th>"
            "<th>headers</th></tr>" + "".join(rows) + "</table>")


def _anchor(method: str, path: str) -> str:
    return "op-" + method + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], list[Any]]]:
    """(tag, method, path, operation, path-level parameters) in the contract's order."""
    ops = []
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                tag = (op.get("tags") or ["Other"])[0]
                ops.append((tag, method, path, op, item.get("parameters") or []))
    return ops


def _schema_section(doc: dict[str, Any]) -> str:
    parts = []
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        rows = []
        required = set(schema.get("required") or [])
        for prop, sub in (schema.get("properties") or {}).items():
            flag = ' <span class="req">required</span>' if prop in required else ""
            description = sub.get("description") if isinstance(sub, dict) else None
            rows.append(f"<tr><td><code>{_esc(prop)}</code>{flag}</td>"
                        f"<td>{_schema_label(sub)}</td><td>{_prose(description)}</td></tr>")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            rows.append(f"<tr><td><em>other members</em></td><td>{_schema_label(extra)}</td>"
                        "<td></td></tr>")
        table = ("<table><tr><th>member</th><th>schema</th><th>description</th></tr>"
                 + "".join(rows) + "</table>") if rows else ""
        shape = "" if rows else f"<p>{_schema_label(schema)}</p>"
        parts.append(f'<details class="schema" id="schema-{_esc(name)}"><summary>{_esc(name)}'
                     f"</summary>{_prose(schema.get('description'))}{shape}{table}</details>")
    return "<h2 id=\"schemas\">Schemas</h2>" + "".join(parts)


def render_docs(doc: dict[str, Any]) -> str:
    """A self-contained HTML page documenting an OpenAPI document."""
    info = doc.get("info") or {}
    ops = _operations(doc)
    tags = [t.get("name") for t in doc.get("tags") or []]
    tags += [t for t, *_ in ops if t not in tags]
    nav, body = [], []
    for tag in tags:
        tagged = [o for o in ops if o[0] == tag]
        if not tagged:
            continue
        tag_id = "tag-" + re.sub(r"[^A-Za-z0-9]+", "-", tag).strip("-")
        nav.append(f'<li><a href="#{tag_id}">{_esc(tag)}</a><ul>' + "".join(
            f'<li><a href="#{_anchor(m, p)}">{_esc(m.upper())} {_esc(p)}</a></li>'
            for _, m, p, _, _ in tagged) + "</ul></li>")
        description = next((t.get("description") for t in doc.get("tags") or []
                            if t.get("name") == tag), None)
        body.append(f'<h2 id="{tag_id}">{_esc(tag)}</h2>{_prose(description)}')
        for _, method, path, op, shared in tagged:
            body.append(
                f'<div class="op" id="{_anchor(method, path)}"><h3>'
                f'<span class="m {method}">{method.upper()}</span>'
                f'<span class="path">{_esc(path)}</span>'
                f'<span class="muted">{_esc(op.get("summary", ""))}</span></h3>'
                f'<div class="body">{_prose(op.get("description"))}'
                f"{_parameters(doc, [*shared, *(op.get('parameters') or [])])}"
                f"{_request_body(doc, op.get('requestBody'))}"
                f"{_responses(doc, op.get('responses') or {})}</div></div>")
    nav.append('<li><a href="#schemas">Schemas</a></li>')
    title = _esc(info.get("title", "API"))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title} <small>{_esc(info.get('version', ''))}</small></h1>"
        f'<div>The contract as YAML: <a style="color:#cfe3ff" href="{CONTRACT_PATH}">'
        f"{CONTRACT_PATH}</a></div></header>"
        f'<main><nav><ul>{"".join(nav)}</ul></nav><section class="doc">'
        f"{_prose(info.get('description'))}{''.join(body)}{_schema_section(doc)}"
        f"</section></main></body></html>")


@cache
def docs_page() -> bytes:
    return render_docs(contract()).encode()


# -- handlers ----------------------------------------------------------------------------------

async def serve_contract(request: web.Request) -> web.Response:
    return web.Response(body=contract_bytes(), content_type=YAML, charset="utf-8")


async def serve_docs(request: web.Request) -> web.Response:
    return web.Response(body=docs_page(), content_type="text/html", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get(CONTRACT_PATH, serve_contract, allow_head=False)
    app.router.add_get(DOCS_PATH + "{slash:/?}", serve_docs, allow_head=False)
