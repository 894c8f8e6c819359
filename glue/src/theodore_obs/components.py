"""The one registry of the stack's components: each one's facts in one place.

Everything that names a component's host, ports, readiness path, version API, data directory,
config mounts, Kubernetes workload or native program reads :data:`COMPONENTS`: ``render``
(container hosts, data dirs, the health endpoints blackbox probes, the compose services and
``kubernetes/stack.yaml``, which is all the Helm chart reads), ``endpoints`` (readiness and version
URLs), ``clients.addresses`` (backend base URLs) and ``native`` (the supervisord programs). A
component's command line is built from the spec by ``container_args`` (containers) and
``native.programs`` (processes), both from the same flags builders.

No imports from the rest of the package: any module may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VersionFormat = Literal["build_info", "vm_metrics"]
"""How a component names its version: a JSON build-info API (``version`` or
``versionInfo.version``, maybe under ``data``), or VictoriaMetrics' ``vm_app_version`` line on
``/metrics``."""


@dataclass(frozen=True)
class Mount:
    """A rendered file or folder (relative to ``rendered/<env>/``) and where a container reads it."""

    source: str
    target: str
    kubernetes_only: bool = False
    """Only the Helm chart mounts it (e.g. Prometheus's Kubernetes service discovery files)."""


@dataclass(frozen=True)
class Component:
    """One component of the stack.

    ``port``, ``health_port`` and ``metrics_port`` are keys of the spec's ``ports``; the host
    key is what templates write as ``hosts.<key>`` (the name, unless the spec's port keys use a
    shorter one, as ``collector``)."""

    name: str
    """Compose service, Kubernetes workload key, native program, ``status`` component name."""
    versions_key: str
    """Its entry under ``components:`` in versions.yaml."""
    host: str
    """Host name in container runtimes (compose service = Kubernetes Service)."""
    port: str
    """The main API port (the one the CLI and the other components talk to)."""
    health_port: str
    health_path: str
    """Readiness path on ``health_port``: 200 when ready."""
    metrics_port: str
    kubernetes_kind: str
    """Kind of its Kubernetes workload in the Helm chart."""
    host_key: str | None = None
    version_path: str | None = None
    """Path on ``port`` that names the running version (None: no such API)."""
    version_format: VersionFormat = "build_info"
    data_dir: str | None = None
    """Where its container keeps data (a named volume, a PersistentVolumeClaim or emptyDir)."""
    binary: str | None = None
    """Binary (from versions.yaml's ``binaries``) of its native program; None: not run natively."""
    blackbox_probed: bool = True
    """Whether blackbox probes its health endpoint (not blackbox itself)."""
    mounts: tuple[Mount, ...] = ()
    """Its rendered config files and folders, read-only in its container (compose and Helm)."""

    @property
    def key(self) -> str:
        return self.host_key or self.name

    @property
    def program(self) -> str | None:
        """Its supervisord program name in the native runtime, or None."""
        return self.name if self.binary else None

    def mount_target(self, source: str) -> str:
        """Where its container reads the rendered ``source``."""
        return next(m.target for m in self.mounts if m.source == source)

    def base_url(self, ports: dict[str, int], host: str) -> str:
        return f"http://{host}:{ports[self.port]}"

    def health_url(self, ports: dict[str, int], host: str) -> str:
        return f"http://{host}:{ports[self.health_port]}{self.health_path}"

    def version_url(self, ports: dict[str, int], host: str) -> str | None:
        return None if self.version_path is None else self.base_url(ports, host) + self.version_path


COMPONENTS: tuple[Component, ...] = (
    Component("prometheus", "prometheus", "prometheus", port="prometheus", health_port="prometheus",
              health_path="/-/ready", metrics_port="prometheus", kubernetes_kind="StatefulSet",
              version_path="/api/v1/status/buildinfo", data_dir="/prometheus", binary="prometheus",
              mounts=(Mount("prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"),
                      Mount("prometheus/rules", "/etc/prometheus/rules"),
                      Mount("prometheus/kubernetes", "/etc/prometheus/kubernetes", kubernetes_only=True))),
    Component("alertmanager", "alertmanager", "alertmanager", port="alertmanager",
              health_port="alertmanager", health_path="/-/ready", metrics_port="alertmanager",
              kubernetes_kind="StatefulSet", version_path="/api/v2/status", data_dir="/alertmanager",
              binary="alertmanager",
              mounts=(Mount("alertmanager/alertmanager.yml", "/etc/alertmanager/alertmanager.yml"),
                      Mount("alertmanager/templates", "/etc/alertmanager/templates"))),
    Component("victorialogs", "victorialogs", "victorialogs", port="victorialogs",
              health_port="victorialogs", health_path="/health", metrics_port="victorialogs",
              kubernetes_kind="StatefulSet", version_path="/metrics", version_format="vm_metrics",
              data_dir="/victoria-logs-data", binary="victoria-logs"),
    # The audit trail's own store (stack.yaml `audit:`): its own retention, written by the
    # collector alone.
    Component("victorialogs-audit", "victorialogs", "victorialogs-audit", port="victorialogs_audit",
              health_port="victorialogs_audit", health_path="/health",
              metrics_port="victorialogs_audit", kubernetes_kind="StatefulSet",
              host_key="victorialogs_audit", version_path="/metrics", version_format="vm_metrics",
              data_dir="/victoria-logs-data", binary="victoria-logs"),
    # The read gateway of both log stores: each tenant's token (and the auditors') reaches only
    # its own VictoriaLogs space, on /select/ paths (vmauth/auth.yml, tokens from the environment).
    Component("vmauth", "vmauth", "vmauth", port="vmauth", health_port="vmauth", health_path="/health",
              metrics_port="vmauth", kubernetes_kind="Deployment", version_path="/metrics",
              version_format="vm_metrics", binary="vmauth",
              mounts=(Mount("vmauth/auth.yml", "/etc/vmauth/auth.yml"),)),
    Component("vmalert", "vmalert", "vmalert", port="vmalert", health_port="vmalert",
              health_path="/health", metrics_port="vmalert", kubernetes_kind="Deployment",
              version_path="/metrics", version_format="vm_metrics", binary="vmalert",
              mounts=(Mount("vmalert/rules", "/etc/vmalert/rules"),)),
    Component("jaeger", "jaeger", "jaeger", port="jaeger_query", health_port="jaeger_health",
              health_path="/status", metrics_port="jaeger_telemetry", kubernetes_kind="StatefulSet",
              data_dir="/var/lib/jaeger", binary="jaeger",
              mounts=(Mount("jaeger/config.yaml", "/etc/jaeger/config.yaml"),)),
    # The gateway; the chart also runs the node agents (a DaemonSet) from the same image.
    Component("otel-collector", "otelcol", "otel-collector", port="otlp_http",
              health_port="collector_health", health_path="/", metrics_port="collector_telemetry",
              kubernetes_kind="StatefulSet", host_key="collector", data_dir="/var/lib/otelcol",
              binary="otelcol-theodore",
              mounts=(Mount("otel-collector/config.yaml", "/etc/otelcol/config.yaml"),)),
    # Grafana does not run natively; its container serves the UI on grafana.url.
    Component("grafana", "grafana", "grafana", port="grafana", health_port="grafana",
              health_path="/api/health", metrics_port="grafana", kubernetes_kind="Deployment",
              data_dir="/var/lib/grafana",
              mounts=(Mount("grafana/provisioning", "/etc/grafana/provisioning"),
                      Mount("grafana/dashboards", "/var/lib/grafana/dashboards"))),
    Component("blackbox", "blackbox_exporter", "blackbox", port="blackbox", health_port="blackbox",
              health_path="/-/healthy", metrics_port="blackbox", kubernetes_kind="Deployment",
              binary="blackbox_exporter", blackbox_probed=False,
              mounts=(Mount("prometheus/blackbox.yml", "/etc/blackbox/blackbox.yml"),)),
)

KUBERNETES_AGENT = "otel-collector-agent"
"""The chart's node-agent collectors (a DaemonSet from the collector's image): a workload with no
component of its own."""

KUBERNETES_AGENT_MOUNTS = (
    Mount("otel-collector/agent.yaml", "/etc/otelcol/agent.yaml", kubernetes_only=True),)

KUBERNETES_ONLY_HOSTS = {"collector_gateway": "otel-collector-gateway"}
"""Hosts with no component of their own: the headless Service of the collector gateway the node
agents feed."""

TOOL_ONLY = frozenset({"promtool", "amtool", "helm", "telemetrygen"})
"""Binaries versions.yaml builds that are tools (validation, the chart, the drills' load client),
not stack components."""

BY_NAME = {c.name: c for c in COMPONENTS}


def component(name: str) -> Component:
    return BY_NAME[name]


def native_components() -> tuple[Component, ...]:
    return tuple(c for c in COMPONENTS if c.binary)


def kubernetes_order() -> tuple[Component, ...]:
    """The components in the order ``kubernetes/stack.yaml`` lists them: the collector (where
    telemetry enters) first, then the registry's order."""
    return tuple(sorted(COMPONENTS, key=lambda c: c.name != "otel-collector"))
