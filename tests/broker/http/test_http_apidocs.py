"""The contract and its docs: /ngsi-ld/v1/openapi.yaml, /docs, and the contract lists exactly
the routes the broker registers (so it cannot drift from the code unnoticed)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from broker.app import create_app
from broker.http.apidocs import contract, render_docs
from broker.settings import Settings

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def registered_routes(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    routes = set()
    for route in app.router.routes():
        if route.method not in METHODS:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        routes.add((route.method, re.sub(r"\{slash[^}]*\}$", "", path)))
    return routes


def contract_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in contract()["paths"].items()
            for method in item if method.upper() in METHODS}


def test_contract_lists_exactly_the_registered_routes(settings: Settings) -> None:
    registered, documented = registered_routes(settings), contract_routes()
    assert registered - documented == set(), "served but not in contracts/openapi.yaml"
    assert documented - registered == set(), "in contracts/openapi.yaml but not served"


def test_every_ref_resolves_and_every_operation_has_an_id() -> None:
    doc = contract()
    text = Path("contracts/openapi.yaml").read_text()
    for ref in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = doc
        for part in ref.split("/"):
            assert part in node, f"dangling $ref #/{ref}"
            node = node[part]
    ids = [op["operationId"] for item in doc["paths"].values()
           for m, op in item.items() if m.upper() in METHODS]
    assert len(ids) == len(set(ids))


async def test_serves_the_contract_as_yaml(client: httpx.AsyncClient) -> None:
    r = await client.get("/ngsi-ld/v1/openapi.yaml")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/yaml")
    served = yaml.safe_load(r.text)
    assert served == contract()
    assert served["openapi"].startswith("3.")


async def test_docs_page_is_self_contained_html(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>Cetate NGSI-LD API</title>" in page
    for method, path in contract_routes():
        assert f">{method} {path}<" in page  # in the navigation
    assert 'id="schema-ProblemDetails"' in page
    # Offline: nothing is loaded from elsewhere, and no script at all.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page.split("</header>", 1)[1]
                         .split("<main>", 1)[0] + re.sub(r'<a [^>]*>', "", page))
    assert (await client.get("/docs/")).status_code == 200


def test_render_docs_escapes_what_it_shows() -> None:
    doc = {"info": {"title": "<b>x</b>", "description": "a `<i>` **b**"},
           "paths": {"/p/{id}": {"get": {"summary": "<script>", "responses": {
               "200": {"description": "ok"}}}}}}
    page = render_docs(doc)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<code>&lt;i&gt;</code>" in page and "<strong>b</strong>" in page
    assert "<script>" not in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--hide-scrollbars")


async def _chromium(*args: str) -> str:
    """Run headless Chromium without blocking the loop that serves the page."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *CHROMIUM_FLAGS, *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0
    return out.decode()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                             "chromium) — the docs page is not rendered")
async def test_docs_page_renders_in_headless_chromium(client: httpx.AsyncClient,
                                                      tmp_path: Path) -> None:
    url = f"{client.base_url}/docs"
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = await _chromium(profile, "--dump-dom", url)
    assert "Query Entities" in dom and "ProblemDetails" in dom
    shot = tmp_path / "docs.png"
    await _chromium(profile, f"--screenshot={shot}", "--window-size=1280,900", url)
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a picture with content in it


async def test_method_not_allowed_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    r = await client.post("/ngsi-ld/v1/types")
    assert r.status_code == 405
    assert r.json()["status"] == 405
    assert "GET" in r.headers["Allow"]
