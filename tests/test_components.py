"""The component registry (``components.py``) against everything that used to repeat its facts:
the spec's ports, versions.yaml, the rendered compose, Kubernetes and Prometheus files, the
native programs and the operator CLI's addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.clients import backends_from_spec
from theodore_obs.components import (
    COMPONENTS,
    KUBERNETES_ONLY_HOSTS,
    TOOL_ONLY,
    native_components,
)
from theodore_obs.endpoints import stack_endpoints
from theodore_obs.native import State, programs
from theodore_obs.paths import repo_root
from theodore_obs.render import COMPOSE, CONTAINER_HOSTS, native_runtime
from theodore_obs.spec import environments, load_spec
from theodore_obs.versions import load_versions

ENVIRONMENTS = environments()


def _rendered(env: str, relative: str) -> Any:
    return yaml.safe_load((repo_root() / "rendered" / env / relative).read_text())


def test_names_hosts_and_keys_are_unique() -> None:
    for attribute in ("name", "host", "key"):
        values = [getattr(c, attribute) for c in COMPONENTS]
        assert len(values) == len(set(values)), attribute
    assert not set(KUBERNETES_ONLY_HOSTS) & {c.key for c in COMPONENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_port_key_is_a_spec_port(env: str) -> None:
    ports = load_spec(env).data["ports"]
    for c in COMPONENTS:
        for key in (c.port, c.health_port, c.metrics_port):
            assert key in ports, f"{c.name}: port key {key!r} not in stack.yaml ports ({env})"


def test_versions_components_with_a_module_are_registered_or_tools() -> None:
    registered = {c.versions_key: c for c in COMPONENTS}
    versions = load_versions()
    for name, pinned in versions.items():
        if not pinned.module:
            continue
        if name in registered:
            binary = registered[name].binary
            assert binary is None or binary in pinned.binaries, f"{name}: no binary {binary!r}"
        else:
            assert set(pinned.binaries) <= TOOL_ONLY, f"{name}: neither a registry entry nor a tool"
    for c in COMPONENTS:
        assert c.versions_key in versions, f"{c.name}: no versions.yaml entry {c.versions_key!r}"
        assert versions[c.versions_key].image, f"{c.name}: no image in versions.yaml"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_compose_hosts_and_healthchecks_are_the_registrys(env: str) -> None:
    ports = load_spec(env).data["ports"]
    services = _rendered(env, "compose.yaml")["services"]
    for c in COMPONENTS:
        assert c.host in services, f"{c.name}: no compose service {c.host!r}"
        service = services[c.host]
        assert service["image"] == load_versions()[c.versions_key].image
        if "healthcheck" in service:  # the collector's image has no shell: blackbox probes it
            assert service["healthcheck"]["test"][-1] == c.health_url(ports, "127.0.0.1")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_kubernetes_stack_is_the_registrys(env: str) -> None:
    stack = _rendered(env, "kubernetes/stack.yaml")
    versions = load_versions()
    assert stack["images"] == {c.name: versions[c.versions_key].image for c in COMPONENTS}
    assert stack["health"] == {c.name: {"port": c.health_port, "path": c.health_path} for c in COMPONENTS}
    assert stack["data_dirs"] == {c.name: c.data_dir for c in COMPONENTS if c.data_dir}
    for c in COMPONENTS:
        assert stack["ports"][c.health_port] == load_spec(env).data["ports"][c.health_port]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_prometheus_probes_and_scrapes_the_registrys_addresses(env: str) -> None:
    ports = load_spec(env).data["ports"]
    config = _rendered(env, "prometheus/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    probed = jobs["blackbox-health"]["static_configs"][0]["targets"]
    assert probed == [c.health_url(ports, c.host) for c in COMPONENTS if c.blackbox_probed]
    for c in native_components():
        assert jobs[c.name]["static_configs"][0]["targets"] == [f"{c.host}:{ports[c.metrics_port]}"]


def test_container_hosts_come_from_the_registry() -> None:
    assert CONTAINER_HOSTS == {c.key: c.host for c in COMPONENTS} | KUBERNETES_ONLY_HOSTS
    assert all(COMPOSE.host(c.key) == c.host for c in COMPONENTS)
    assert all(native_runtime(Path("/state")).host(c.key) == "127.0.0.1" for c in COMPONENTS)


def test_native_programs_are_the_registrys_native_components(tmp_path: Path) -> None:
    found = programs(load_spec("local").data, State(tmp_path))
    native = native_components()
    assert list(found) == [c.name for c in native]
    for c in native:
        assert c.binary is not None and Path(found[c.name][0]).name == c.binary
    assert [e.component for e in stack_endpoints(load_spec("local").data)] == [c.name for c in native]
    assert "grafana" not in found  # Grafana runs only in containers


def test_stack_endpoints_and_backends_use_the_registrys_ports() -> None:
    spec = load_spec("local").data
    ports = spec["ports"]
    by_name = {e.component: e for e in stack_endpoints(spec)}
    assert by_name["jaeger"].ready_url == f"http://127.0.0.1:{ports['jaeger_health']}/status"
    assert by_name["victorialogs"].version_url == f"http://127.0.0.1:{ports['victorialogs']}/metrics"
    assert by_name["victorialogs"].version_format == "vm_metrics"
    assert by_name["prometheus"].version_format == "build_info"
    backends = backends_from_spec(spec)
    assert backends.jaeger == f"http://127.0.0.1:{ports['jaeger_query']}"
    assert backends.alertmanager == f"http://127.0.0.1:{ports['alertmanager']}"
