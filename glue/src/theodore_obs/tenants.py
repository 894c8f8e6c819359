"""Tenants: who may write which telemetry, and where each tenant's data lands.

The log store's tenant (``log_store.tenant``) writes to the collector's main OTLP ports; every
other tenant gets OTLP ports of its own (``tenants.<name>.ports``). Each tenant's receivers feed
pipelines that set ``theodore.tenant`` themselves and write its logs into its VictoriaLogs
AccountID/ProjectID, so a writer cannot choose another tenant by an attribute or a header. A
tenant with a ``token_file`` has its receivers require ``Authorization: Bearer <token>``.

No imports from the rest of the package: the spec loader checks tenants
with :func:`problems` before anything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TENANT_ATTRIBUTE = "theodore.tenant"
"""Resource attribute the collector sets on every span, metric and log record it receives."""

TENANT_LABEL = "theodore_tenant"
"""The Prometheus label ``theodore.tenant`` becomes (promoted resource attribute)."""


@dataclass(frozen=True)
class Tenant:
    name: str
    account_id: int
    project_id: int
    otlp_grpc: int
    otlp_http: int
    token_file: str | None
    main: bool
    """Whether it writes to the collector's main OTLP ports (the log store's tenant)."""

    @property
    def suffix(self) -> str:
        """The part after ``/`` of its collector component names ("" for the main tenant)."""
        return "" if self.main else f"/{self.name}"


def tenants(spec: dict[str, Any]) -> list[Tenant]:
    """Every tenant, the log store's own first."""
    main = spec["log_store"]["tenant"]
    found = []
    for name, tenant in spec["tenants"].items():
        ports = spec["ports"] if name == main else tenant["ports"]
        found.append(Tenant(name, tenant.get("account_id", 0), tenant.get("project_id", 0),
                            ports["otlp_grpc"], ports["otlp_http"], tenant.get("token_file"),
                            name == main))
    return sorted(found, key=lambda t: not t.main)


def tenant_named(spec: dict[str, Any], name: str) -> Tenant:
    """The tenant ``name``; KeyError naming the defined ones if there is none."""
    for tenant in tenants(spec):
        if tenant.name == name:
            return tenant
    raise KeyError(f"no tenant {name!r} (defined: {', '.join(sorted(spec['tenants']))})")


def token_files(spec: dict[str, Any]) -> list[str]:
    """The secret files of the tenants' tokens and of the auditors' token."""
    files = [t.token_file for t in tenants(spec) if t.token_file]
    return [*files, spec["audit"]["reader_token_file"]]


def problems(spec: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """What the schema cannot check about tenants: (keys, message) for each problem."""
    main = spec["log_store"]["tenant"]
    found: list[tuple[list[Any], str]] = []
    taken = {port: f"ports.{key}" for key, port in spec["ports"].items()}
    spaces: dict[tuple[int, int], str] = {}
    secret_names = {spec["audit"]["reader_token_file"]: "audit.reader_token_file"}
    unknown = sorted(set(spec["audit"]["copy_to_app_logs"]) - set(spec["audit"]["categories"]))
    if unknown:
        found.append((["audit", "copy_to_app_logs"], f"{', '.join(unknown)}: not in audit.categories"))
    for name, tenant in spec["tenants"].items():
        space = (tenant.get("account_id", 0), tenant.get("project_id", 0))
        if space in spaces:
            found.append((["tenants", name, "account_id"],
                          f"AccountID {space[0]}, ProjectID {space[1]} is tenant {spaces[space]}'s too"))
        spaces[space] = name
        token = tenant.get("token_file")
        if token is not None:
            if token in secret_names:
                found.append((["tenants", name, "token_file"], f"{token!r} is {secret_names[token]} too"))
            secret_names[token] = f"tenants.{name}.token_file"
        if name == main:
            if "ports" in tenant:
                found.append((["tenants", name, "ports"], "the log store's tenant writes to the main "
                              "OTLP ports (ports.otlp_grpc, ports.otlp_http): remove these"))
            continue
        if "ports" not in tenant:
            found.append((["tenants", name, "ports"], "required: the collector's OTLP ports for this "
                          "tenant's writers (otlp_grpc, otlp_http)"))
            continue
        if token is None:
            found.append((["tenants", name, "token_file"], "required: every tenant but the log "
                          "store's own authenticates its writers and readers with a token"))
        for key, port in tenant["ports"].items():
            if port in taken:
                found.append((["tenants", name, "ports", key], f"port {port} is {taken[port]} too"))
            taken[port] = f"tenants.{name}.ports.{key}"
    return found
