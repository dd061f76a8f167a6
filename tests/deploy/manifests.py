"""Reading deploy/ for the static tests: compose file, Kubernetes manifests, generator."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from canbao_contracts.topics import RECEIVES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
PRODUCTION = DEPLOY / "k8s" / "overlays" / "production"
SERVICES = ("identity", "matching", "survey", "reporting", "gateway")
# Services with a consumer group scale on its lag as well as on CPU, in the Deployment that
# consumes: the service's own, or (the gateway, whose HTTP Deployment scales on CPU alone) its
# notifier's; CONSUMER_GROUPS names the group.
CONSUMERS = tuple(service for service in SERVICES if RECEIVES[service])
CONSUMING_DEPLOYMENT: dict[str, str] = {**{s: s for s in CONSUMERS}, "gateway": "gateway-notify"}
CONSUMER_GROUPS: dict[str, str] = {**{s: s for s in CONSUMERS}, "gateway": "gateway.dci"}
# Every Deployment (and compose service) and the service whose image it runs: one per service, and
# identity's golden-record builder, a second Deployment of identity's image (IDENTITY_ROLES=build).
DEPLOYMENTS: dict[str, str] = {
    **{service: service for service in SERVICES},
    "identity-builder": "identity",
    "gateway-notify": "gateway",
}
# Deployments nobody calls: no Service, no ingress.
UNCALLED = ("identity-builder", "gateway-notify")

Manifest = dict[str, Any]


@cache
def generator() -> ModuleType:
    """deploy/generate.py, imported from its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def load_yaml_documents(path: Path) -> list[Manifest]:
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


@cache
def compose() -> Manifest:
    (document,) = load_yaml_documents(DEPLOY / "compose.yaml")
    return document


def compose_services() -> dict[str, Manifest]:
    services: dict[str, Manifest] = compose()["services"]
    return services


def manifests(directory: Path) -> list[Manifest]:
    """Every Kubernetes object in the YAML files of `directory` (kustomization files excluded)."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "kustomizeconfig.yaml"):
            continue
        found.extend(load_yaml_documents(path))
    return found


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def kustomization(directory: Path) -> Manifest:
    (document,) = load_yaml_documents(directory / "kustomization.yaml")
    return document


def env_file_values(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def unescape_table_list(include_list: str) -> list[tuple[str, str]]:
    """Debezium's table.include.list (escaped regexes `schema\\.table`) as (schema, table)."""
    tables = []
    for entry in include_list.split(","):
        schema, table = re.sub(r"\\(.)", r"\1", entry.strip()).split(".")
        tables.append((schema, table))
    return tables


def committed_files(directory: Path) -> list[Path]:
    """The files under `directory` that git would commit (tracked or untracked but not ignored);
    every file when git is not available."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
            cwd=directory,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return [p for p in directory.rglob("*") if p.is_file()]
    return [
        directory / name for name in listing.split("\0") if name and (directory / name).exists()
    ]


def git_ignores(path: Path) -> bool | None:
    """Whether git ignores `path` (None when git is not available)."""
    try:
        result = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", str(path)], cwd=ROOT, check=False
        )
    except OSError:
        return None
    return {0: True, 1: False}.get(result.returncode)


def pod_containers(deployment: Manifest) -> Iterator[Manifest]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container_env(container: Manifest) -> dict[str, str]:
    """The literal `env` values of a container (not those from ConfigMaps or Secrets)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a label selector (`matchLabels` only, as these manifests write them) matches."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())
