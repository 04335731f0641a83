"""Privacy operations over HTTP (data-subject requests, retention): being written."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register the /cetate/v1/privacy routes."""
