"""The deployment files agree with each other: docker-compose.yml parses, has the services
docs/deploy.md describes, with health checks, and configures the brokers by environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def documented_services() -> set[str]:
    """The services named in docs/deploy.md's table: rows like "| `broker-1` | ... |"."""
    text = (REPO / "docs" / "deploy.md").read_text("utf-8")
    return set(re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", text, re.MULTILINE))


def test_compose_names_the_documented_services() -> None:
    services = compose()["services"]
    documented = documented_services()
    assert documented >= {"db", "mosquitto", "broker-1", "broker-2", "proxy", "migrate"}
    assert set(services) == documented


def test_long_running_services_have_health_checks() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name != "migrate":  # a one-shot job
            assert "healthcheck" in service, name
    for name in ("broker-1", "broker-2"):
        assert "/health" in " ".join(services[name]["healthcheck"]["test"])


def test_brokers_share_one_postgis_database_by_environment() -> None:
    services = compose()["services"]
    stores = {services[n]["environment"]["CETATE_STORE"] for n in ("broker-1", "broker-2")}
    assert len(stores) == 1
    (store,) = stores
    assert store.startswith("postgresql://") and "@db:5432/" in store
    assert services["db"]["image"].startswith("postgis/postgis:")
    migrate = services["migrate"]["command"][-1]
    assert migrate.startswith("cetate db migrate && cetate audit public-key")
    assert set(compose()["volumes"]) >= {"pgdata", "mosquitto-data", "keys"}
    # One audit log in PostgreSQL: the replicas and the job that makes its keys share them.
    for name in ("migrate", "broker-1", "broker-2"):
        assert services[name]["volumes"] == ["keys:/app/data"]
        assert services[name]["environment"]["CETATE_AUDIT_KEY_DIR"] == "/app/data/audit-keys"
    caddyfile = compose()["configs"]["caddyfile"]["content"]
    assert "broker-1:1026" in caddyfile and "broker-2:1026" in caddyfile
