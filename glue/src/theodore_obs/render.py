"""Render every component's Jinja templates from the spec of one environment.

Templates live in ``<component>/templates/**.j2``; the output keeps the relative path under
``<out>/<component>/`` (compose's file goes to ``<out>/compose.yaml``, the glue's app-side files
such as the AI price table to ``<out>/apps/``). The same templates serve
two runtimes that differ only in addressing: ``compose`` (one host per component, container
paths; also what the Helm chart ships) and ``native`` (every process on 127.0.0.1, data under
the state directory).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from .collector_context import collector_context
from .components import (
    COMPONENTS,
    KUBERNETES_AGENT,
    KUBERNETES_AGENT_MOUNTS,
    KUBERNETES_ONLY_HOSTS,
    component,
    kubernetes_order,
)
from .dashboards import dashboard_files, prometheus_min_interval
from .integrations import integration_secret_files
from .paths import repo_root, state_root
from .render_check import check_file, spec_paths_holding
from .rule_context import rule_context
from .spec import Spec, log_tenant, observed_services
from .template_filters import FILTERS, Serialized, UnsafeValue, finalize
from .tenant_access import token_env
from .versions import grafana_plugins, load_versions

COMPONENT_DIRS = ("otel-collector", "prometheus", "alertmanager", "vmalert", "vmauth", "jaeger",
                  "grafana", "compose", "glue", "kubernetes")

#: Where a component's output lands inside an environment's folder (default: its own name).
OUTPUT_DIRS = {"compose": ".", "glue": "apps"}

#: Host name of each component in container runtimes (compose service = Kubernetes Service),
#: keyed as templates write ``hosts.<key>``: from the registry, plus the Kubernetes-only hosts.
CONTAINER_HOSTS = {c.key: c.host for c in COMPONENTS} | KUBERNETES_ONLY_HOSTS

#: Where each component's container keeps its data, from the registry.
CONTAINER_DATA = {c.name: c.data_dir for c in COMPONENTS if c.data_dir}


@dataclass(frozen=True)
class Runtime:
    """How components find each other and where they keep data."""

    name: str
    bind: str
    secrets_dir: str
    native: bool
    data_root: Path | None = None
    unconfigured_receivers: frozenset[str] = frozenset()
    """Receivers (keys of ``alerting.receivers``) left out of Alertmanager's config because
    their secret is not there: the native runtime's, decided at ``up``."""

    def host(self, component: str) -> str:
        return "127.0.0.1" if self.native else CONTAINER_HOSTS[component]

    def service_host(self, name: str, spec: dict[str, Any]) -> str:
        return "127.0.0.1" if self.native else spec["services"][name].get("host", name)

    def data_dir(self, component: str) -> str:
        if self.native:
            assert self.data_root is not None
            return str(self.data_root / component)
        return CONTAINER_DATA[component]

    def config_dir(self, component: str) -> str:
        """Where a component reads its rendered files: the state's config folder, or /etc."""
        if self.native:
            assert self.data_root is not None
            return str(self.data_root.parent / "config" / component)
        return f"/etc/{component}"

    def grafana_dashboards(self) -> str:
        """Where Grafana's dashboard provider reads the generated dashboards."""
        if self.native:
            return f"{self.config_dir('grafana')}/dashboards"
        return component("grafana").mount_target("grafana/dashboards")


# Inside a container a server must listen on every interface; compose publishes to 127.0.0.1.
COMPOSE = Runtime(name="compose", bind="0.0.0.0", secrets_dir="/run/secrets", native=False)  # noqa: S104


def native_runtime(state: Path | None = None) -> Runtime:
    state = state or state_root()
    return Runtime(name="native", bind="127.0.0.1", secrets_dir=str(state / "secrets"),
                   native=True, data_root=state / "data")


def secret_files(spec: dict[str, Any]) -> dict[str, str]:
    """Each secret file the receivers read, with the environment variable that fills it."""
    names = [value for receiver in spec["alerting"]["receivers"].values()
             for key, value in receiver.items() if key.endswith("_file")]
    return {name: name.upper() for name in sorted(names)}


def unconfigured_receivers(spec: dict[str, Any], secrets_dir: Path) -> dict[str, list[str]]:
    """Each receiver with a secret file missing from ``secrets_dir``, with the environment
    variables that would fill them natively."""
    missing: dict[str, list[str]] = {}
    for name, receiver in spec["alerting"]["receivers"].items():
        files = [value for key, value in receiver.items() if key.endswith("_file")]
        absent = [file.upper() for file in files if not (secrets_dir / file).is_file()]
        if absent:
            missing[name] = absent
    return missing


def prometheus_flags(spec: dict[str, Any], runtime: Runtime, config: str, data: str) -> list[str]:
    retention = spec["retention"]["prometheus"]
    return [
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={retention['time']}",
        f"--storage.tsdb.retention.size={retention['size']}",
        f"--web.listen-address={runtime.bind}:{spec['ports']['prometheus']}",
        "--web.enable-lifecycle",
        "--web.enable-otlp-receiver",
        # vmalert writes its alert state and any log-based recording rules here.
        "--web.enable-remote-write-receiver",
        "--enable-feature=exemplar-storage",
    ]


def victorialogs_flags(spec: dict[str, Any], runtime: Runtime, data: str,
                       store: str = "victorialogs") -> list[str]:
    """VictoriaLogs is configured by flags alone: listen address, storage, retention, flushing.
    ``store`` is ``victorialogs`` (the apps' logs) or ``victorialogs-audit`` (the audit trail,
    with ``retention.audit``)."""
    retention = spec["retention"]["audit" if store == "victorialogs-audit" else "victorialogs"]
    return [
        f"-httpListenAddr={runtime.bind}:{spec['ports'][component(store).port]}",
        f"-storageDataPath={data}",
        f"-retentionPeriod={retention['period']}",
        f"-retention.maxDiskSpaceUsageBytes={retention['max_disk_space']}",
        f"-inmemoryDataFlushInterval={spec['log_store']['flush_interval']}",
    ]


def vmauth_flags(spec: dict[str, Any], runtime: Runtime, config: str) -> list[str]:
    """vmauth reads its users (one bearer token each, ``%{ENV}`` placeholders filled from its
    environment) and their routes from ``config``; health and metrics share the listen port."""
    return [
        f"-auth.config={config}",
        f"-httpListenAddr={runtime.bind}:{spec['ports']['vmauth']}",
    ]


def host_url(spec: dict[str, Any], runtime: Runtime, port: str) -> str:
    """A component's address as an operator's browser reaches it: 127.0.0.1 natively, localhost
    where compose publishes the port."""
    return f"http://{'127.0.0.1' if runtime.native else 'localhost'}:{spec['ports'][port]}"


def vmalert_flags(spec: dict[str, Any], runtime: Runtime, rules: str) -> list[str]:
    """vmalert evaluates the log alert rules (``rules``: a glob) on VictoriaLogs, notifies
    Alertmanager, and keeps its alert state in Prometheus (remote write, read back on restart).
    The rule groups themselves carry the project and environment labels and the tenant headers."""
    def url(name: str) -> str:
        return component(name).base_url(spec["ports"], runtime.host(component(name).key))

    return [
        f"-rule={rules}",
        f"-datasource.url={url('victorialogs')}",
        f"-notifier.url={url('alertmanager')}",
        f"-remoteWrite.url={url('prometheus')}",
        f"-remoteRead.url={url('prometheus')}",
        f"-httpListenAddr={runtime.bind}:{spec['ports']['vmalert']}",
        f"-evaluationInterval={spec['intervals']['evaluation']}",
        # Where its alerts' source links point: vmalert's own UI.
        f"-external.url={host_url(spec, runtime, 'vmalert')}",
    ]


def alertmanager_external_url(spec: dict[str, Any], runtime: Runtime) -> str:
    """Where operators reach Alertmanager: the spec's ``alerting.external_url``, else this runtime's
    address on the host (compose publishes on localhost)."""
    return spec["alerting"].get("external_url", host_url(spec, runtime, "alertmanager")).rstrip("/")


def alertmanager_flags(spec: dict[str, Any], runtime: Runtime, config: str, data: str) -> list[str]:
    return [
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address={runtime.bind}:{spec['ports']['alertmanager']}",
        "--cluster.listen-address=",
        f"--web.external-url={alertmanager_external_url(spec, runtime)}",
        # Each notification attempt as an event, sent to the log store: `alerts timeline` reads them.
        "--enable-feature=event-recorder",
    ]


def health_endpoints(spec: dict[str, Any], runtime: Runtime) -> list[tuple[str, str | None]]:
    """Every health endpoint blackbox probes, with the service it belongs to (None for the
    stack's own): a failing probe's ``service`` label lets Alertmanager inhibit that service's
    other alerts."""
    urls = [c.health_url(spec["ports"], runtime.host(c.key)) for c in COMPONENTS
            if c.blackbox_probed and (c.binary or not runtime.native)]
    return [(url, None) for url in urls] + [
        (f"http://{runtime.service_host(name, spec)}:{svc['port']}{svc['health_path']}", name)
        for name, svc in observed_services(spec).items()]


def kubernetes_components(images: dict[str, str]) -> list[dict[str, Any]]:
    """What ``kubernetes/stack.yaml`` lists per workload (image, readiness, data dir), from the
    registry."""
    return [{"name": c.name, "image": images[c.versions_key], "health_port": c.health_port,
             "health_path": c.health_path, "has_data": c.data_dir is not None}
            for c in kubernetes_order()]


def container_args(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Each component's command line in its container (compose's ``command``, the chart's ``args``),
    reading the configs where the registry mounts them."""
    def config(name: str, source: str) -> str:
        return component(name).mount_target(source)

    return {
        "otel-collector": [f"--config={config('otel-collector', 'otel-collector/config.yaml')}"],
        "prometheus": prometheus_flags(spec, COMPOSE, config("prometheus", "prometheus/prometheus.yml"),
                                       CONTAINER_DATA["prometheus"]),
        "alertmanager": alertmanager_flags(spec, COMPOSE,
                                           config("alertmanager", "alertmanager/alertmanager.yml"),
                                           CONTAINER_DATA["alertmanager"]),
        "victorialogs": victorialogs_flags(spec, COMPOSE, CONTAINER_DATA["victorialogs"]),
        "victorialogs-audit": victorialogs_flags(spec, COMPOSE, CONTAINER_DATA["victorialogs-audit"],
                                                 "victorialogs-audit"),
        "vmalert": vmalert_flags(spec, COMPOSE, f"{config('vmalert', 'vmalert/rules')}/*.yml"),
        "vmauth": vmauth_flags(spec, COMPOSE, config("vmauth", "vmauth/auth.yml")),
        "jaeger": [f"--config={config('jaeger', 'jaeger/config.yaml')}"],
        "blackbox": [f"--config.file={config('blackbox', 'prometheus/blackbox.yml')}",
                     f"--web.listen-address=:{spec['ports']['blackbox']}"],
        "grafana": [],
    }


def grafana_environment(spec: dict[str, Any]) -> dict[str, str]:
    """Grafana's settings from the spec, the same in compose and the chart (its admin password and
    plugins are passed by each runtime its own way)."""
    return {"GF_SECURITY_ADMIN_USER": spec["grafana"]["admin_user"],
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false"}


def container_workloads(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per container workload (each component, and the chart's node agents): its args and its
    config mounts, what compose and ``kubernetes/stack.yaml`` both write."""
    args = container_args(spec)
    workloads = {c.name: {"args": args[c.name], "mounts": list(c.mounts)} for c in kubernetes_order()}
    workloads[KUBERNETES_AGENT] = {"args": [f"--config={KUBERNETES_AGENT_MOUNTS[0].target}"],
                                   "mounts": list(KUBERNETES_AGENT_MOUNTS)}
    return workloads


def component_scrape_targets(spec: dict[str, Any], runtime: Runtime) -> list[tuple[str, str]]:
    """(job, host:port) of each component's own metrics that Prometheus scrapes: every one that
    runs natively too (Grafana's UI is not scraped)."""
    ports = spec["ports"]
    return [(c.name, f"{runtime.host(c.key)}:{ports[c.metrics_port]}") for c in COMPONENTS if c.binary]


def healthcheck_urls(spec: dict[str, Any]) -> dict[str, str]:
    """Each component's readiness URL from inside its own container (compose healthchecks)."""
    return {c.name: c.health_url(spec["ports"], "127.0.0.1") for c in COMPONENTS}


def context(spec: Spec, runtime: Runtime) -> dict[str, Any]:
    data = spec.data
    images = {name: c.image for name, c in load_versions().items() if c.image}
    return {
        **data,
        "environment": spec.environment,
        "runtime": runtime.name,
        "bind": runtime.bind,
        "secrets_dir": runtime.secrets_dir,
        "hosts": {component: runtime.host(component) for component in CONTAINER_HOSTS},
        "images": images,
        "kubernetes_components": kubernetes_components(images),
        "workloads": container_workloads(data),
        "grafana_environment": grafana_environment(data),
        "healthcheck_urls": healthcheck_urls(data),
        "grafana_plugins": grafana_plugins(),
        "log_tenant": dict(zip(("account_id", "project_id"), log_tenant(data), strict=True)),
        "health_endpoints": health_endpoints(data, runtime),
        "component_scrape_targets": component_scrape_targets(data, runtime),
        "secret_files": secret_files(data),
        "alert_receivers": {name: receiver for name, receiver in data["alerting"]["receivers"].items()
                            if name not in runtime.unconfigured_receivers},
        "collector_secret_files": integration_secret_files(data),
        "compose_secrets": secret_files(data) | integration_secret_files(data),
        "vmauth_token_env": token_env(data),
        "data_dir": runtime.data_dir,
        "config_dir": runtime.config_dir,
        "service_host": lambda name: runtime.service_host(name, data),
        "prometheus_flags": lambda cfg, d: prometheus_flags(data, runtime, cfg, d),
        "alertmanager_flags": lambda cfg, d: alertmanager_flags(data, runtime, cfg, d),
        "victorialogs_flags": lambda d: victorialogs_flags(data, runtime, d),
        "vmalert_flags": lambda rules: vmalert_flags(data, runtime, rules),
        **rule_context(data),
        "grafana_dashboards_dir": runtime.grafana_dashboards(),
        "prometheus_min_interval": prometheus_min_interval(data),
        **collector_context(spec, runtime),
    }


def templates(root: Path | None = None) -> dict[str, Path]:
    """Output path (relative to the environment's folder) → template path (relative to root)."""
    root = root or repo_root()
    found: dict[str, Path] = {}
    for folder in COMPONENT_DIRS:
        base = root / folder / "templates"
        for template in sorted(base.rglob("*.j2")):
            relative = template.relative_to(base).with_suffix("")
            out = Path(OUTPUT_DIRS.get(folder, folder)) / relative
            found[str(out)] = template.relative_to(root)
    return found


def header(template: Path, spec: Spec) -> str:
    return (f"# Rendered from {template} for environment '{spec.environment}' by `make render`.\n"
            f"# Do not edit: change stack.yaml or the template, then run `make render`.\n")


class RenderError(ValueError):
    """A template could not turn the spec into a file safely: names the template and spec path."""


def _template_line(exc: BaseException, template: Path) -> str:
    """``template:line`` of the deepest frame of ``exc`` inside the template."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(str(template)):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{template}:{line}" if line else str(template)


class _Environment(jinja2.Environment):
    """Jinja for config files: strict about undefined names, every ``{{ }}`` through
    ``template_filters.finalize``, and the serialized values of the last render noted."""

    def __init__(self, root: Path) -> None:
        super().__init__(loader=jinja2.FileSystemLoader(str(root)), undefined=jinja2.StrictUndefined,
                         keep_trailing_newline=True, finalize=self._finalize, autoescape=True)
        self.filters.update(FILTERS)
        self.serialized: list[Serialized] = []

    def _finalize(self, value: Any) -> Any:
        written = finalize(value)
        if isinstance(written, Serialized):
            self.serialized.append(written)
        return written

    def render_file(self, template: Path, ctx: dict[str, Any]) -> str:
        self.serialized = []
        return self.get_template(template.as_posix()).render(ctx)


@functools.cache
def _environment(root: Path) -> _Environment:
    """One environment per template root, so each template compiles once per process."""
    return _Environment(root)


def render_files(spec: Spec, runtime: Runtime) -> dict[str, str]:
    """Every output file of one environment, as text, keyed by relative path; each checked by
    ``render_check`` to parse back to what the spec said."""
    root = repo_root()
    env = _environment(root)
    ctx = context(spec, runtime)
    files = {}
    for out, template in templates(root).items():
        try:
            text = env.render_file(template, ctx)
        except UnsafeValue as exc:
            where = spec_paths_holding(spec.data, exc.value)
            raise RenderError(f"{_template_line(exc, template)}: {exc}"
                              + (f" (from {where})" if where else "")) from exc
        except jinja2.TemplateError as exc:  # e.g. a spec value naming something that is not there
            where = spec_paths_holding(spec.data, str(exc), plain_too=True)
            raise RenderError(f"{_template_line(exc, template)}: {exc}"
                              + (f" (check {where})" if where else "")) from exc
        problem = check_file(out, text, env.serialized, spec.data)
        if problem:
            raise RenderError(f"{template} → {problem.file}: {problem.message}"
                              + (f" (from {problem.spec_path})" if problem.spec_path else ""))
        prefix = header(template, spec) if out.endswith((".yaml", ".yml")) else ""
        files[out] = prefix + text
    files.update(dashboard_files({**spec.data, "environment": spec.environment}))
    return files


def write_tree(files: dict[str, str], dest: Path) -> None:
    """Write ``files`` under ``dest`` atomically: all of them replace the old tree, or none."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        old = dest.with_name(f".{dest.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.rename(dest, old)
        os.rename(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
