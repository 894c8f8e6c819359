"""The Helm chart: lint, every profile valid for two Kubernetes versions, configs identical to compose's."""

from __future__ import annotations

import copy
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.chart import chart_problems
from theodore_obs.kubeschema import KUBERNETES_SCHEMAS, validator_for
from theodore_obs.render import CONTAINER_HOSTS, secret_files
from theodore_obs.spec import SpecError, environments, load_spec
from theodore_obs.versions import load_versions

from .conftest import ROOT, run_cli
from .helm_support import (
    CHART,
    KUBERNETES_ONLY,
    PROFILES,
    WORKLOADS,
    by_kind,
    compose_bind_mounts,
    expected_files,
    helm,
    mounted_files,
    pod_spec,
    profile_args,
    template,
)

ENVS = environments()
VERSION_KEYS = {"otel-collector-agent": "otelcol", "otel-collector-gateway": "otelcol",
                "prometheus": "prometheus", "alertmanager": "alertmanager",
                "victorialogs": "victorialogs", "victorialogs-audit": "victorialogs", "vmauth": "vmauth",
                "vmalert": "vmalert", "jaeger": "jaeger", "grafana": "grafana", "blackbox": "blackbox_exporter"}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def rendered(scratch: Path):
    """``helm template`` output per profile (or per environment), rendered once per module."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def get(profile: str = "default", env: str | None = None) -> list[dict[str, Any]]:
        key = f"{profile}/{env}"
        if key not in cache:
            extra = ["--set", f"environment={env}"] if env else []
            cache[key] = template(scratch, *profile_args(profile), *extra)
        return cache[key]

    return get


def workloads(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in POD_KINDS]


# --- lint and schemas -------------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_strict_passes(profile: str, scratch: Path) -> None:
    result = helm("lint", "--strict", str(CHART), *profile_args(profile), tmp=scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kubernetes", KUBERNETES_SCHEMAS)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_manifest_matches_the_kubernetes_api_strictly(profile: str, kubernetes: str,
                                                            rendered) -> None:
    """Each rendered object against the pinned API schemas; unknown fields are errors."""
    manifests = rendered(profile)
    validator = validator_for(kubernetes)
    errors = [error for manifest in manifests for error in validator.errors(manifest)]
    assert not errors, "\n".join(errors)
    assert len(manifests) > 20


@pytest.mark.parametrize("env", ENVS)
def test_every_environment_renders_valid_manifests(env: str, rendered) -> None:
    validator = validator_for(KUBERNETES_SCHEMAS[-1])
    errors = [e for m in rendered("default", env) for e in validator.errors(m)]
    assert not errors, "\n".join(errors)


def test_the_validator_rejects_unknown_fields_and_wrong_types(rendered) -> None:
    """The strict check can fail: a misspelt field and a wrong type are both reported by path."""
    deployment = copy.deepcopy(by_kind(rendered())[("StatefulSet", "otel-collector-gateway")])
    container = pod_spec(deployment)["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True
    deployment["spec"]["replicas"] = "two"
    errors = validator_for(KUBERNETES_SCHEMAS[0]).errors(deployment)
    assert any("securityContext" in e and "readOnlyRootFileSystem" in e for e in errors), errors
    assert any(e.endswith("spec.replicas: 'two' is not of type 'integer'") for e in errors), errors
    unknown = {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert "does not serve Deployment in apps/v1beta1" in validator_for(KUBERNETES_SCHEMAS[0]).errors(unknown)[0]


def test_instrumentation_matches_the_operator_crd(rendered) -> None:
    manifests = rendered("integrations")
    instrumentation = by_kind(manifests)[("Instrumentation", "theodore-python")]
    validator = validator_for(KUBERNETES_SCHEMAS[0])
    assert validator.errors(instrumentation) == []
    assert instrumentation["spec"]["exporter"]["endpoint"] == "http://otel-collector.observability.svc:4318"
    assert instrumentation["spec"]["sampler"] == {"type": "parentbased_traceidratio",
                                                  "argument": str(load_spec("prod").data["sampling"]["head_ratio"])}
    broken = copy.deepcopy(instrumentation)
    broken["spec"]["sampler"]["type"] = "sometimes"
    broken["spec"]["pyhton"] = {}
    errors = validator.errors(broken)
    assert any("spec.sampler.type" in e for e in errors) and any("pyhton" in e for e in errors), errors


def test_operator_objects_render_only_where_the_api_exists(scratch: Path) -> None:
    without = template(scratch, *profile_args("integrations"), apis=False)
    kinds = {m["kind"] for m in without}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "Instrumentation"}


def test_service_and_pod_monitors_match_their_crds(rendered) -> None:
    manifests = rendered("integrations")
    monitors = [m for m in manifests if m["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert {m["kind"] for m in monitors} == {"ServiceMonitor", "PodMonitor"}
    assert all(validator_for(KUBERNETES_SCHEMAS[1]).errors(m) == [] for m in monitors)


# --- parity with compose ----------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_every_workload_sees_the_files_compose_mounts_byte_for_byte(env: str, rendered) -> None:
    """Container path → content in the chart equals compose's bind mounts of rendered/<env>/."""
    manifests = rendered("default", env)
    for workload, service in WORKLOADS.items():
        mounts = compose_bind_mounts(env, service)
        extra = list(KUBERNETES_ONLY.get(workload, {}).items())
        expected = expected_files(env, mounts + extra)
        seen = mounted_files(manifests, workload)
        assert seen.keys() == expected.keys(), (workload, sorted(seen), sorted(expected))
        for path, content in expected.items():
            assert seen[path] == content, f"{workload} {path} differs from rendered/{env}"


CHECKED_NOT_MOUNTED = ("prometheus/tests/",)
"""Rendered for `theodore-obs validate` (promtool unit tests), mounted by no runtime."""


@pytest.mark.parametrize("env", ENVS)
def test_every_rendered_config_ships_in_the_chart(env: str, rendered) -> None:
    """No rendered file of a component folder is left out of the chart's ConfigMaps."""
    manifests = rendered("default", env)
    shipped = [content for m in manifests if m["kind"] == "ConfigMap" for content in m["data"].values()]
    base = ROOT / "rendered" / env
    components = ["otel-collector", "prometheus", "alertmanager", "vmalert", "vmauth", "jaeger", "grafana"]
    files = [p for c in components for p in (base / c).rglob("*")
             if p.is_file() and not p.relative_to(base).as_posix().startswith(CHECKED_NOT_MOUNTED)]
    assert files
    missing = [str(p.relative_to(base)) for p in files if p.read_text() not in shipped]
    assert not missing, f"rendered files not in any ConfigMap: {missing}"
    assert len(shipped) == len(files)


def test_the_agent_mounts_its_rendered_config(rendered) -> None:
    manifests = rendered()
    agent = ("DaemonSet", "otel-collector-agent")
    expected = expected_files("prod", list(KUBERNETES_ONLY[agent].items()))
    assert mounted_files(manifests, agent) == expected
    args = pod_spec(by_kind(manifests)[agent])["containers"][0]["args"]
    assert args == ["--config=/etc/otelcol/agent.yaml"]


def test_the_chart_reads_the_repository_render_not_a_copy() -> None:
    link = CHART / "files" / "rendered"
    assert link.is_symlink() and link.resolve() == (ROOT / "rendered").resolve()


def test_a_changed_rendered_file_rolls_only_the_pods_that_mount_it(scratch: Path, tmp_path: Path) -> None:
    """The checksum annotation follows the mounted files' content, not just their names."""
    shutil.copytree(ROOT / "rendered", tmp_path / "rendered", symlinks=True)
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=True, ignore=shutil.ignore_patterns("rendered"))
    (chart / "files" / "rendered").symlink_to(tmp_path / "rendered")

    def checksums() -> dict[str, str]:
        return {m["metadata"]["name"]: m["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for m in workloads(template(scratch, chart=chart))}

    before = checksums()
    rules = tmp_path / "rendered/prod/vmalert/rules/logs.yml"
    rules.write_text(rules.read_text() + "\n# edited\n")
    after = checksums()
    assert {name for name in before if before[name] != after[name]} == {"vmalert"}


def test_config_maps_fit_the_kubernetes_size_limit(rendered) -> None:
    for env in ENVS:
        for m in rendered("default", env):
            if m["kind"] == "ConfigMap":
                size = sum(len(k) + len(v.encode()) for k, v in m["data"].items())
                assert size < 1024 * 1024, f"{m['metadata']['name']}: {size} bytes"


@pytest.mark.parametrize("env", ENVS)
def test_containers_run_compose_commands(env: str, rendered) -> None:
    manifests = by_kind(rendered("default", env))
    compose = yaml.safe_load((ROOT / "rendered" / env / "compose.yaml").read_text())["services"]
    for workload, service in WORKLOADS.items():
        container = pod_spec(manifests[workload])["containers"][0]
        command = compose[service].get("command")
        if service == "alertmanager":
            continue
        if workload == ("StatefulSet", "otel-collector-gateway"):  # 2 replicas by default
            command = [*command, "--feature-gates=connector.spanmetrics.includeCollectorInstanceID"]
        if workload == ("Deployment", "vmalert"):  # one notifier URL per Alertmanager replica (2)
            command = [u for a in command for u in (
                [f"-notifier.url=http://alertmanager-{i}.alertmanager.observability.svc:9093" for i in range(2)]
                if a.startswith("-notifier.url=") else [a])]
        assert container.get("args") == command, workload


def test_alertmanager_replicas_form_one_cluster(rendered) -> None:
    manifests = by_kind(rendered("ha"))
    statefulset = manifests[("StatefulSet", "alertmanager")]
    args = pod_spec(statefulset)["containers"][0]["args"]
    peers = [a for a in args if a.startswith("--cluster.peer=")]
    assert statefulset["spec"]["replicas"] == 3 and len(peers) == 3
    assert "--cluster.peer=alertmanager-2.alertmanager.observability.svc:9094" in peers
    assert "--cluster.listen-address=0.0.0.0:9094" in args and "--cluster.listen-address=" not in args
    assert manifests[("Service", "alertmanager")]["spec"]["clusterIP"] == "None"
    prometheus = yaml.safe_load((ROOT / "rendered/prod/prometheus/prometheus.yml").read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["dns_sd_configs"][0]["names"] == ["alertmanager"]
    single = pod_spec(by_kind(rendered("minimal"))[("StatefulSet", "alertmanager")])["containers"][0]["args"]
    assert "--cluster.listen-address=" in single


def test_receiver_secret_files_come_from_existing_secrets(rendered) -> None:
    manifests = by_kind(rendered("ha"))
    volumes = {v["name"]: v for v in pod_spec(manifests[("StatefulSet", "alertmanager")])["volumes"]}
    sources = volumes["receiver-secrets"]["projected"]["sources"]
    paths = {s["secret"]["items"][0]["path"]: (s["secret"]["name"], s["secret"]["items"][0]["key"])
             for s in sources}
    assert set(paths) == set(secret_files(load_spec("prod").data))
    assert paths["smtp_password"] == ("alertmanager-smtp", "password")
    assert not [m for m in rendered("ha") if m["kind"] == "Secret"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = schema["properties"]["alertmanager"]["properties"]["secretFiles"]["properties"]
    assert set(documented) == set(secret_files(load_spec("prod").data))


def test_grafana_password_is_a_secret_reference(rendered) -> None:
    container = pod_spec(by_kind(rendered())[("Deployment", "grafana")])["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "grafana-admin", "key": "admin-password"}
    assert env["GF_SECURITY_ADMIN_USER"]["value"] == load_spec("prod").data["grafana"]["admin_user"]
    assert not any("${" in e.get("value", "") for e in env.values())


# --- images, security, resources, probes, labels -------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_images_are_the_versions_yaml_pins(profile: str, rendered) -> None:
    pins = load_versions()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if profile != "default":
        values.setdefault("global", {}).update(
            yaml.safe_load((CHART / "ci" / f"{profile}-values.yaml").read_text()).get("global", {}))
    registry = values["global"]["imageRegistry"]
    for m in workloads(rendered(profile)):
        image = pod_spec(m)["containers"][0]["image"]
        assert image == registry + pins[VERSION_KEYS[m["metadata"]["name"]]].image, m["metadata"]["name"]


@pytest.mark.parametrize("profile", PROFILES)
def test_pods_run_restricted(profile: str, rendered) -> None:
    """Non-root, read-only root, no privilege escalation, every capability dropped, RuntimeDefault."""
    for m in workloads(rendered(profile)):
        name, spec = m["metadata"]["name"], pod_spec(m)
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc.get("privileged") is False, name
            if name == "otel-collector-agent":
                continue
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] > 0, name
        if name != "otel-collector-agent":  # the restricted Pod Security Standard's volume types
            kinds = {key for volume in spec.get("volumes", []) for key in volume if key != "name"}
            assert kinds <= {"configMap", "emptyDir", "projected", "secret", "persistentVolumeClaim"}, name


def test_the_agent_is_the_one_root_pod_and_reads_the_host_read_only(rendered) -> None:
    """uid 0 only to read root-owned node logs: no capabilities, every host path read-only."""
    spec = pod_spec(by_kind(rendered())[("DaemonSet", "otel-collector-agent")])
    assert spec["securityContext"]["runAsUser"] == 0
    host_volumes = {v["name"] for v in spec["volumes"] if "hostPath" in v}
    mounts = spec["containers"][0]["volumeMounts"]
    assert host_volumes == {"varlogpods", "hostfs", "file-storage"}
    assert all(m["readOnly"] for m in mounts if m["name"] in host_volumes - {"file-storage"})
    (queue,) = [m for m in mounts if m["name"] == "file-storage"]  # the one writable host path
    assert queue["mountPath"] == "/var/lib/otelcol/file_storage" and not queue.get("readOnly")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_container_has_resources_and_probes(profile: str, rendered) -> None:
    for m in workloads(rendered(profile)):
        for c in pod_spec(m)["containers"]:
            name = m["metadata"]["name"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), (name, bound)
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = c[probe]["httpGet"]["port"]
                assert port in {p["containerPort"] for p in c["ports"]}, (name, probe)


@pytest.mark.parametrize("profile", PROFILES)
def test_labels_and_selectors(profile: str, rendered) -> None:
    required = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of",
                "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"}
    manifests = rendered(profile)
    for m in manifests:
        labels = m["metadata"].get("labels", {})
        assert required <= set(labels), (m["kind"], m["metadata"]["name"])
        assert all(len(v) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]?", v)
                   for v in labels.values()), labels
    for m in workloads(manifests):
        selector = m["spec"]["selector"]["matchLabels"]
        assert selector.items() <= m["spec"]["template"]["metadata"]["labels"].items()
    pods = {m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"] for m in workloads(manifests)}
    for service in (m for m in manifests if m["kind"] == "Service" and m["spec"].get("type") != "ExternalName"):
        matched = [n for n, labels in pods.items() if service["spec"]["selector"].items() <= labels.items()]
        assert matched, f"Service {service['metadata']['name']} selects no pod"


def test_services_keep_the_host_names_the_configs_use(rendered) -> None:
    services = {m["metadata"]["name"] for m in rendered() if m["kind"] == "Service"}
    assert {"otel-collector", "otel-collector-gateway", "prometheus", "alertmanager", "victorialogs",
            "vmalert", "jaeger", "grafana", "blackbox"} <= services
    agent = yaml.safe_load((ROOT / "rendered/prod/otel-collector/agent.yaml").read_text())
    assert agent["exporters"]["loadbalancing/traces"]["resolver"]["dns"]["hostname"] == "otel-collector-gateway"
    gateway = by_kind(rendered())[("Service", "otel-collector-gateway")]
    assert gateway["spec"]["clusterIP"] == "None"


def test_pod_disruption_budgets_cover_replicated_workloads(rendered) -> None:
    pdbs = {m["metadata"]["name"] for m in rendered("ha") if m["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"otel-collector-gateway", "alertmanager", "vmauth"}
    assert not [m for m in rendered("minimal") if m["kind"] == "PodDisruptionBudget"]


def test_network_policies_select_every_workload(rendered) -> None:
    manifests = rendered()
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    selected = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in policies}
    assert selected == {m["metadata"]["name"] for m in workloads(manifests)}


def test_prometheus_volume_follows_the_rendered_retention(rendered) -> None:
    claims = by_kind(rendered())[("StatefulSet", "prometheus")]["spec"]["volumeClaimTemplates"]
    assert load_spec("prod").data["retention"]["prometheus"]["size"] == "100GB"
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "122880Mi"


# --- values.schema.json ------------------------------------------------------------------------

BAD_VALUES = [
    (["--set", "surprise=1"], "additional properties 'surprise' not allowed"),
    (["--set", "prometheus.retention=30d"], "/prometheus"),
    (["--set", "environment=Prod!"], "/environment"),
    (["--set", "alertmanager.replicas=0"], "/alertmanager/replicas"),
    (["--set", "grafana.admin.existingSecret="], "/grafana/admin/existingSecret"),
    (["--set", "global.imagePullPolicy=Sometimes"], "/global/imagePullPolicy"),
    (["--set", "collector.gateway.resources.limits.memory=lots"], "/collector/gateway/resources/limits/memory"),
    (["--set", "alertmanager.secretFiles.discord_url.existingSecret=x"], "discord_url"),
    (["--set", "victorialogs.objectStorage.existingSecret=s3"], "additional properties 'objectStorage' not allowed"),
    (["--set", "victorialogs.persistence.size=lots"], "/victorialogs/persistence/size"),
    (["--set", "victorialogs.external.selectHost=Bad_Host"], "/victorialogs/external/selectHost"),
    (["--set", "victorialogs.terminationGracePeriodSeconds=0"], "/victorialogs/terminationGracePeriodSeconds"),
    (["--set", "victorialogsAudit.persistence.size=lots"], "/victorialogsAudit/persistence/size"),
    (["--set", "vmauth.replicas=0"], "/vmauth/replicas"),
    (["--set", "tenants.existingSecret=Tenant_Tokens"], "/tenants/existingSecret"),
    (["--set", "networkPolicy.vmauthFromNamespaces.names=ops"], "additional properties 'names' not allowed"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=[a[1] for a, _ in BAD_VALUES])
def test_values_schema_rejects_bad_values_by_name(args: list[str], message: str, scratch: Path) -> None:
    result = helm("template", "obs", str(CHART), *args, tmp=scratch)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_values_schema_rejects_unknown_keys_everywhere() -> None:
    """Every object of the schema either lists its keys or types its free-form values."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                assert child.get("description"), f"{path}.{key} has no description"
                walk(child, f"{path}.{key}")

    walk(schema, "values")


def test_every_value_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z_][\w-]*:", line):
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#"), f"values.yaml:{number + 1}: {line.strip()} has no comment"


def test_an_environment_that_was_not_rendered_is_reported_by_name(scratch: Path) -> None:
    result = helm("template", "obs", str(CHART), "--set", "environment=production", tmp=scratch)
    assert result.returncode != 0
    assert ('environment "production": files/rendered/production/kubernetes/stack.yaml is not in '
            "the chart; run `make render`") in result.stderr


def test_a_missing_render_is_reported_by_name(scratch: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=True, ignore=shutil.ignore_patterns("rendered"))
    (chart / "files" / "rendered").mkdir(parents=True)
    result = helm("template", "obs", str(chart), tmp=scratch)
    assert result.returncode != 0
    assert 'environment "prod": files/rendered/prod/kubernetes/stack.yaml is not in the chart' in result.stderr
    assert "make render" in result.stderr


def test_notes_name_the_secrets_to_create(scratch: Path) -> None:
    result = helm("install", "obs", str(CHART), "--dry-run=client", "--namespace", "observability",
                  tmp=scratch)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "create secret generic grafana-admin" in notes
    assert "create secret generic theodore-tenants --from-literal=audit_reader_token='<token>'" in notes
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability.svc:4318" in notes
    for name in secret_files(load_spec("prod").data):
        assert name in notes


def test_the_packaged_chart_carries_the_rendered_files(scratch: Path, tmp_path: Path) -> None:
    """`helm package` resolves the link: the archive holds real files and installs alone."""
    result = helm("package", str(CHART), "--destination", str(tmp_path), tmp=scratch)
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("theodore-observability-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        config = members["theodore-observability/files/rendered/prod/prometheus/prometheus.yml"]
        assert config.isfile()
        assert tar.extractfile(config).read() == (ROOT / "rendered/prod/prometheus/prometheus.yml").read_bytes()
        assert not [n for n in members if "/apps/" in n]
    packaged = template(scratch, "--set", "environment=prod", chart=archive)
    assert {(m["kind"], m["metadata"]["name"]) for m in packaged} == {
        (m["kind"], m["metadata"]["name"]) for m in template(scratch)}


def _render_environment(tmp_path: Path, name: str, overlay: dict[str, Any]) -> Path:
    """The chart, with rendered/ holding also environment ``name`` (the spec's base + ``overlay``)."""
    spec = yaml.safe_load((ROOT / "stack.yaml").read_text())
    spec["environments"][name] = overlay
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "rendered"))
    assert result.returncode == 0, result.stderr
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=True, ignore=shutil.ignore_patterns("rendered"))
    (chart / "files" / "rendered").symlink_to(tmp_path / "rendered")
    return chart


def test_remote_stores_of_a_cluster_environment(scratch: Path, tmp_path: Path) -> None:
    """An environment with OpenSearch for Jaeger and remote_write for Prometheus: configs and credentials follow."""
    chart = _render_environment(tmp_path, "cluster", {
        "demo": {"enabled": False},
        "jaeger": {"storage": "opensearch",
                   "remote_storage": {"server_urls": ["https://opensearch.storage:9200"], "basic_auth": True}},
        "prometheus": {"remote_write": [{"name": "mimir", "url": "http://mimir.storage:8080/api/v1/push"}]},
    })
    manifests = template(scratch, *profile_args("object-storage"), "--set", "environment=cluster", chart=chart)
    objects = by_kind(manifests)
    victorialogs = objects[("StatefulSet", "victorialogs")]
    assert "env" not in pod_spec(victorialogs)["containers"][0]
    assert victorialogs["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"
    jaeger = objects[("StatefulSet", "jaeger")]
    assert "volumeClaimTemplates" not in jaeger["spec"]
    assert {e["name"] for e in pod_spec(jaeger)["containers"][0]["env"]} == {"ES_USERNAME", "ES_PASSWORD"}
    seen = mounted_files(manifests, ("StatefulSet", "jaeger"))
    assert "opensearch:" in seen["/etc/jaeger/config.yaml"] and "${env:ES_PASSWORD}" in seen["/etc/jaeger/config.yaml"]
    assert "remote_write:" in mounted_files(manifests, ("StatefulSet", "prometheus"))["/etc/prometheus/prometheus.yml"]
    errors = [e for m in manifests for e in validator_for(KUBERNETES_SCHEMAS[0]).errors(m)]
    assert not errors, errors


def test_integration_secrets_and_the_zipkin_port_reach_compose_and_the_gateway(scratch: Path,
                                                                             tmp_path: Path) -> None:
    """An environment with Splunk and Zipkin in: the credential file is a compose secret and a
    projected Secret in the gateway pods; without a Secret named for it the install fails, naming
    the value to set; the Zipkin port is published and served."""
    chart = _render_environment(tmp_path, "cluster", {"demo": {"enabled": False}, "integrations": {
        "splunk": {"enabled": True, "endpoint": "https://splunk.example:8088/services/collector/event"},
        "zipkin": {"receiver": {"enabled": True, "port": 9411}}}})
    compose = yaml.safe_load((tmp_path / "rendered" / "cluster" / "compose.yaml").read_text())
    collector = compose["services"]["otel-collector"]
    assert collector["secrets"] == ["splunk_hec_token"]
    assert compose["secrets"]["splunk_hec_token"] == {"environment": "SPLUNK_HEC_TOKEN"}
    assert "${BIND_ADDRESS:-127.0.0.1}:9411:9411" in collector["ports"]

    refused = helm("template", "obs", str(chart), "--namespace", "observability", "--set",
                   "environment=cluster", tmp=scratch)
    assert refused.returncode != 0
    assert "collector.gateway.secretFiles.splunk_hec_token.existingSecret: name the Secret" in refused.stderr

    manifests = template(scratch, "--set", "environment=cluster",
                         "--set", "collector.gateway.secretFiles.splunk_hec_token.existingSecret=splunk", chart=chart)
    objects = by_kind(manifests)
    gateway = pod_spec(objects[("StatefulSet", "otel-collector-gateway")])
    volume = next(v for v in gateway["volumes"] if v["name"] == "collector-secrets")
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "splunk", "items": [{"key": "splunk_hec_token", "path": "splunk_hec_token"}]}}]
    container = gateway["containers"][0]
    assert {"name": "collector-secrets", "mountPath": "/run/secrets", "readOnly": True} in container["volumeMounts"]
    assert {"name": "zipkin", "containerPort": 9411, "protocol": "TCP"} in container["ports"]
    service = objects[("Service", "otel-collector-gateway")]
    assert {"name": "zipkin", "port": 9411, "targetPort": "zipkin", "protocol": "TCP"} in service["spec"]["ports"]
    config = mounted_files(manifests, ("StatefulSet", "otel-collector-gateway"))["/etc/otelcol/config.yaml"]
    assert "${file:/run/secrets/splunk_hec_token}" in config
    errors = [e for m in manifests for e in validator_for(KUBERNETES_SCHEMAS[0]).errors(m)]
    assert not errors, errors


def test_a_remote_jaeger_store_needs_its_servers(write_spec) -> None:
    spec = yaml.safe_load((ROOT / "stack.yaml").read_text())
    spec["jaeger"] = {"storage": "elasticsearch"}
    with pytest.raises(SpecError, match=r"jaeger \(line \d+\): missing required key: 'remote_storage'"):
        load_spec("prod", write_spec(spec))


def test_validate_checks_the_chart_and_names_what_breaks(monkeypatch, tmp_path: Path) -> None:
    """`theodore-obs validate` lints the chart and validates its manifests for each environment."""
    assert chart_problems("prod") == []
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=True, ignore=shutil.ignore_patterns("rendered"))
    (chart / "files" / "rendered").symlink_to(ROOT / "rendered")
    template_file = chart / "templates" / "blackbox" / "deployment.yaml"
    template_file.write_text(template_file.read_text().replace(
        "imagePullPolicy: {{", "imagePullPolicyy: {{", 1))
    monkeypatch.setattr("theodore_obs.chart.chart_dir", lambda: chart)
    problems = chart_problems("prod")
    assert problems and all("Deployment/blackbox" in p and "'imagePullPolicyy' was unexpected" in p
                            for p in problems), problems
    assert {p.split(":")[0] for p in problems} == {"kubernetes 1.33", "kubernetes 1.34"}


# --- VictoriaLogs and vmalert ---------------------------------------------------------------

INSERT = "vlc-victoria-logs-cluster-vlinsert.logs.svc.cluster.local"
SELECT = "vlc-victoria-logs-cluster-vlselect.logs.svc.cluster.local"


def test_an_external_victorialogs_cluster_takes_the_host_names(rendered) -> None:
    """The cluster chart's hosts: no VictoriaLogs here, the collector writes to vlinsert, readers read vlselect."""
    manifests = rendered("external-logs")
    objects = by_kind(manifests)
    logs = [m for m in manifests if m["metadata"]["name"] in ("victorialogs", "victorialogs-insert")]
    assert sorted((m["kind"], m["metadata"]["name"], m["spec"]["type"], m["spec"]["externalName"]) for m in logs) == [
        ("Service", "victorialogs", "ExternalName", SELECT),
        ("Service", "victorialogs-insert", "ExternalName", INSERT)]
    port = load_spec("prod").data["ports"]["victorialogs"]
    assert all(m["spec"]["ports"] == [{"name": "http", "port": port, "protocol": "TCP"}] for m in logs)
    gateway = yaml.safe_load(mounted_files(manifests, ("StatefulSet", "otel-collector-gateway"))["/etc/otelcol/config.yaml"])
    endpoints = [e["logs_endpoint"] for e in gateway["exporters"].values() if "logs_endpoint" in e]
    audit = load_spec("prod").data["ports"]["victorialogs_audit"]  # the audit trail's store stays here
    assert endpoints == [f"http://victorialogs-insert:{port}/insert/opentelemetry/v1/logs",
                         f"http://victorialogs-audit:{audit}/insert/opentelemetry/v1/logs"]
    vmalert = pod_spec(objects[("Deployment", "vmalert")])["containers"][0]["args"]
    assert f"-datasource.url=http://victorialogs:{port}" in vmalert
    datasources = mounted_files(manifests, ("Deployment", "grafana"))[
        "/etc/grafana/provisioning/datasources/datasources.yaml"]
    assert f"url: http://victorialogs:{port}" in datasources
    assert "victorialogs" not in {m["metadata"]["name"] for m in manifests if m["kind"] in ("NetworkPolicy", "ServiceMonitor")}
    assert ("StatefulSet", "victorialogs") not in objects


def test_one_external_host_for_insert_and_select_keeps_the_configs_byte_for_byte(scratch: Path) -> None:
    """vmauth in front of the cluster serves both paths: one ExternalName, the rendered config as is."""
    manifests = template(scratch, "--set", f"victorialogs.external.insertHost={SELECT}",
                         "--set", f"victorialogs.external.selectHost={SELECT}")
    logs = [(m["kind"], m["metadata"]["name"]) for m in manifests
            if m["metadata"]["name"] in ("victorialogs", "victorialogs-insert")]
    assert logs == [("Service", "victorialogs")]
    seen = mounted_files(manifests, ("StatefulSet", "otel-collector-gateway"))["/etc/otelcol/config.yaml"]
    assert seen == (ROOT / "rendered/prod/otel-collector/config.yaml").read_text()


def test_an_external_victorialogs_needs_both_hosts(scratch: Path) -> None:
    result = helm("template", "obs", str(CHART), "--set", f"victorialogs.external.selectHost={SELECT}", tmp=scratch)
    assert result.returncode != 0
    assert "victorialogs.external: set both insertHost and selectHost" in result.stderr


@pytest.mark.parametrize(("env", "size"), [("prod", "122880Mi"), ("staging", "12288Mi"), ("local", "1228Mi")])
def test_victorialogs_volume_follows_the_rendered_disk_limit(env: str, size: str, rendered) -> None:
    """The rendered -retention.maxDiskSpaceUsageBytes (stack.yaml's max_disk_space) plus a fifth."""
    limit = load_spec(env).data["retention"]["victorialogs"]["max_disk_space"]
    statefulset = by_kind(rendered("default", env))[("StatefulSet", "victorialogs")]
    assert f"-retention.maxDiskSpaceUsageBytes={limit}" in pod_spec(statefulset)["containers"][0]["args"]
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == size


def test_a_victorialogs_volume_size_value_wins(scratch: Path) -> None:
    manifests = template(scratch, "--set", "victorialogs.persistence.size=500Gi")
    claims = by_kind(manifests)[("StatefulSet", "victorialogs")]["spec"]["volumeClaimTemplates"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "500Gi"


def test_victorialogs_runs_non_root_on_its_own_volume_and_stops_gracefully(rendered) -> None:
    statefulset = by_kind(rendered())[("StatefulSet", "victorialogs")]
    spec = pod_spec(statefulset)
    security = spec["securityContext"]
    assert security["runAsUser"] > 0 and security["fsGroup"] == security["runAsGroup"] == security["runAsUser"]
    assert spec["terminationGracePeriodSeconds"] == 60
    assert statefulset["spec"]["replicas"] == 1
    container = spec["containers"][0]
    data_dir = yaml.safe_load((ROOT / "rendered/prod/kubernetes/stack.yaml").read_text())["data_dirs"]["victorialogs"]
    assert {"name": "data", "mountPath": data_dir} in container["volumeMounts"]
    assert f"-storageDataPath={data_dir}" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9428}


def test_vmalert_is_one_stateless_replica_notifying_every_alertmanager(rendered) -> None:
    for profile, replicas in (("default", 2), ("ha", 3), ("minimal", 1)):
        deployment = by_kind(rendered(profile))[("Deployment", "vmalert")]
        spec = pod_spec(deployment)
        assert deployment["spec"]["replicas"] == 1
        assert not [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        container = spec["containers"][0]
        assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8880}
        notifiers = [a for a in container["args"] if a.startswith("-notifier.url=")]
        if replicas == 1:
            assert notifiers == ["-notifier.url=http://alertmanager:9093"], profile
        else:
            assert notifiers == [f"-notifier.url=http://alertmanager-{i}.alertmanager.observability.svc:9093"
                                 for i in range(replicas)], profile
    rules = mounted_files(rendered(), ("Deployment", "vmalert"))
    assert rules.keys() == {"/etc/vmalert/rules/logs.yml"}
    assert "type: vlogs" in rules["/etc/vmalert/rules/logs.yml"]


def test_grafana_installs_the_pinned_logs_plugin_once(rendered) -> None:
    plugins = yaml.safe_load((ROOT / "rendered/prod/kubernetes/stack.yaml").read_text())["grafana_plugins"]
    assert plugins.startswith("victoriametrics-logs-datasource@")
    env = pod_spec(by_kind(rendered())[("Deployment", "grafana")])["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "GF_PLUGINS_PREINSTALL_SYNC"] == [plugins]


def test_only_the_stack_pods_that_use_them_reach_victorialogs_and_vmalert(rendered) -> None:
    policies = {m["metadata"]["name"]: m for m in rendered() if m["kind"] == "NetworkPolicy"}

    def sources(name: str, port: int | None = None) -> list[str]:
        rule = policies[name]["spec"]["ingress"][0]
        assert rule.get("ports") == ([{"protocol": "TCP", "port": port}] if port else None), name
        (peer,) = rule["from"]
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "obs",
                                                      "app.kubernetes.io/part-of": "theodore-observability"}
        (expression,) = peer["podSelector"]["matchExpressions"]
        assert expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In"
        return sorted(expression["values"])

    assert sources("victorialogs") == ["alertmanager", "blackbox", "grafana", "otel-collector-gateway",
                                       "prometheus", "readiness-test", "vmalert", "vmauth"]  # alertmanager: its events
    assert len(policies["victorialogs"]["spec"]["ingress"]) == 1
    assert sources("vmalert") == ["blackbox", "prometheus", "readiness-test"]
    # The audit trail: written by the gateway alone, read by vmauth and Grafana, on its port only.
    assert sources("victorialogs-audit", 9429) == ["blackbox", "grafana", "otel-collector-gateway",
                                                   "prometheus", "readiness-test", "vmauth"]
    assert len(policies["victorialogs-audit"]["spec"]["ingress"]) == 1
    assert sources("vmauth", 8427) == ["blackbox", "grafana", "prometheus", "readiness-test"]
    internal = policies["alertmanager"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert "matchExpressions" not in internal  # vmalert notifies it, like Prometheus


def test_service_monitors_cover_victorialogs_and_vmalert(rendered) -> None:
    monitors = {m["metadata"]["name"]: m for m in rendered("integrations") if m["kind"] == "ServiceMonitor"}
    assert {"victorialogs", "vmalert"} <= monitors.keys()
    assert monitors["vmalert"]["spec"]["endpoints"][0]["port"] == "http"


def test_span_metrics_of_each_gateway_replica_are_their_own_series(rendered) -> None:
    """Several gateways each count the spans routed to them: one writer per series."""
    gate = "--feature-gates=connector.spanmetrics.includeCollectorInstanceID"
    several = pod_spec(by_kind(rendered("ha"))[("StatefulSet", "otel-collector-gateway")])
    single = pod_spec(by_kind(rendered("minimal"))[("StatefulSet", "otel-collector-gateway")])
    assert gate in several["containers"][0]["args"]
    assert gate not in single["containers"][0]["args"]


def test_every_host_the_configs_address_is_a_service_with_that_port(rendered) -> None:
    """`prometheus:9090`, `jaeger:14317`, … in the rendered configs reach a chart Service port."""
    manifests = rendered()
    ports = {m["metadata"]["name"]: {p["port"] for p in m["spec"]["ports"]}
             for m in manifests if m["kind"] == "Service"}
    addressed = set()
    for path in (ROOT / "rendered" / "prod").rglob("*"):
        if path.is_file() and path.name != "compose.yaml" and "kubernetes" not in path.parts:
            addressed |= {(h, int(p)) for h, p in re.findall(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d{2,5})\b",
                                                             path.read_text())
                          if h in set(CONTAINER_HOSTS.values())}
    assert ("otel-collector-gateway", 4317) in addressed and ("jaeger", 14317) in addressed
    missing = sorted((h, p) for h, p in addressed if p not in ports.get(h, set()))
    assert not missing, f"addressed by rendered/prod but not served by a Service: {missing}"


def test_the_agent_skips_its_own_log_files(rendered) -> None:
    agent = yaml.safe_load((ROOT / "rendered/prod/otel-collector/agent.yaml").read_text())
    container = pod_spec(by_kind(rendered())[("DaemonSet", "otel-collector-agent")])["containers"][0]
    assert agent["receivers"]["filelog/pods"]["exclude"] == [f"/var/log/pods/*/{container['name']}/*.log"]


@pytest.mark.parametrize(("env", "limit", "ok"), [("prod", "2Gi", False), ("prod", "2049Mi", True),
                                                  ("local", "268435456", False), ("local", "300M", True)])
def test_gateway_memory_limit_stays_above_the_rendered_memory_limiter(env: str, limit: str, ok: bool,
                                                                      scratch: Path) -> None:
    result = helm("template", "obs", str(CHART), "--set", f"environment={env}",
                  "--set", f"collector.gateway.resources.limits.memory={limit}", tmp=scratch)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        mib = load_spec(env).data["collector"]["memory_limit_mib"]
        assert (f"collector.gateway.resources.limits.memory ({limit}) must be above the gateway's "
                f"rendered memory_limiter limit, {mib} MiB") in result.stderr


# --- tenants, the audit trail's store and vmauth ----------------------------------------------

TEAM_A = {"description": "Team A", "account_id": 7, "project_id": 0, "token_file": "team_a_token",
          "ports": {"otlp_grpc": 4417, "otlp_http": 4418}}


@pytest.fixture(scope="module")
def tenant_chart(tmp_path_factory) -> Path:
    """The chart with an environment `tenants` holding a second tenant, team-a, beside prod's."""
    return _render_environment(tmp_path_factory.mktemp("tenants"), "tenants",
                               {"demo": {"enabled": False}, "tenants": {"team-a": TEAM_A}})


def test_a_tenant_writes_to_its_own_ports_with_its_token_in_compose(tenant_chart: Path) -> None:
    """The collector publishes the tenant's OTLP ports and reads its token from a compose secret;
    vmauth and Grafana get every reader token, each from the environment, never a value."""
    compose = yaml.safe_load((tenant_chart / "files/rendered/tenants/compose.yaml").read_text())
    services = compose["services"]
    collector = services["otel-collector"]
    assert {"${BIND_ADDRESS:-127.0.0.1}:4417:4417", "${BIND_ADDRESS:-127.0.0.1}:4418:4418"} <= set(collector["ports"])
    assert collector["secrets"] == ["team_a_token"]
    assert collector["depends_on"]["victorialogs-audit"] == {"condition": "service_healthy"}
    assert compose["secrets"]["team_a_token"] == {"environment": "TEAM_A_TOKEN"}
    assert compose["secrets"]["audit_reader_token"] == {"environment": "AUDIT_READER_TOKEN"}
    assert services["vmauth"]["environment"] == {
        "TEAM_A_TOKEN": "${TEAM_A_TOKEN:?set TEAM_A_TOKEN to the token of team_a_token}",
        "AUDIT_READER_TOKEN": "${AUDIT_READER_TOKEN:?set AUDIT_READER_TOKEN to the token of audit_reader_token}"}
    assert services["vmauth"]["volumes"] == ["./vmauth/auth.yml:/etc/vmauth/auth.yml:ro"]
    assert sorted(services["grafana"]["secrets"]) == ["audit_reader_token", "team_a_token"]
    audit = services["victorialogs-audit"]
    assert audit["volumes"] == ["victorialogs-audit-data:/victoria-logs-data"]
    assert audit["stop_grace_period"] == "30s" and "victorialogs-audit-data" in compose["volumes"]
    assert "-retentionPeriod=365d" in audit["command"]


def test_a_tenant_writes_to_the_gateway_ports_with_its_token_from_the_tenants_secret(
        tenant_chart: Path, scratch: Path) -> None:
    """The gateway serves and opens the tenant's OTLP ports and mounts its token; vmauth and
    Grafana read every reader token from the one Secret; all of it valid for the API."""
    manifests = template(scratch, "--set", "environment=tenants", chart=tenant_chart)
    objects = by_kind(manifests)
    gateway = pod_spec(objects[("StatefulSet", "otel-collector-gateway")])
    container = gateway["containers"][0]
    assert {"name": "grpc-4417", "containerPort": 4417, "protocol": "TCP"} in container["ports"]
    assert {"name": "http-4418", "containerPort": 4418, "protocol": "TCP"} in container["ports"]
    service = objects[("Service", "otel-collector-gateway")]["spec"]["ports"]
    assert {"name": "http-4418", "port": 4418, "targetPort": "http-4418", "protocol": "TCP"} in service
    volume = next(v for v in gateway["volumes"] if v["name"] == "collector-secrets")
    assert volume["projected"]["sources"] == [{"secret": {"name": "theodore-tenants", "items": [
        {"key": "team_a_token", "path": "team_a_token"}]}}]
    assert {"name": "collector-secrets", "mountPath": "/run/secrets", "readOnly": True} in container["volumeMounts"]
    config = yaml.safe_load(mounted_files(manifests, ("StatefulSet", "otel-collector-gateway"))["/etc/otelcol/config.yaml"])
    assert config["extensions"]["bearertokenauth/team-a"]["filename"] == "/run/secrets/team_a_token"
    open_ports = [r for r in by_kind(manifests)[("NetworkPolicy", "otel-collector-gateway")]["spec"]["ingress"]
                  if any(p.get("namespaceSelector") is not None for p in r["from"])]
    assert {4417, 4418} <= {p["port"] for r in open_ports for p in r["ports"]}

    vmauth = pod_spec(objects[("Deployment", "vmauth")])["containers"][0]
    assert vmauth["env"] == [
        {"name": "AUDIT_READER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "theodore-tenants", "key": "audit_reader_token"}}},
        {"name": "TEAM_A_TOKEN", "valueFrom": {"secretKeyRef": {"name": "theodore-tenants", "key": "team_a_token"}}}]
    auth = mounted_files(manifests, ("Deployment", "vmauth"))["/etc/vmauth/auth.yml"]
    assert auth == (tenant_chart / "files/rendered/tenants/vmauth/auth.yml").read_text()
    assert "%{TEAM_A_TOKEN}" in auth
    grafana = pod_spec(objects[("Deployment", "grafana")])
    tokens = next(v for v in grafana["volumes"] if v["name"] == "reader-tokens")["secret"]
    assert tokens["secretName"] == "theodore-tenants"
    assert sorted(i["key"] for i in tokens["items"]) == ["audit_reader_token", "team_a_token"]
    assert {"name": "reader-tokens", "mountPath": "/run/secrets", "readOnly": True} in grafana["containers"][0]["volumeMounts"]
    assert not [m for m in manifests if m["kind"] == "Secret"]
    errors = [e for m in manifests for e in validator_for(KUBERNETES_SCHEMAS[0]).errors(m)]
    assert not errors, errors


def test_tokens_without_the_tenants_secret_fail_naming_the_value(tenant_chart: Path, scratch: Path) -> None:
    result = helm("template", "obs", str(tenant_chart), "--set", "environment=tenants",
                  "--set", "tenants.existingSecret=", tmp=scratch)
    assert result.returncode != 0
    assert "tenants.existingSecret: name the Secret holding the tenants' and auditors' bearer tokens" in result.stderr
    assert "audit_reader_token, team_a_token" in result.stderr


@pytest.mark.parametrize(("env", "size"), [("prod", "122880Mi"), ("staging", "12288Mi"), ("local", "1228Mi")])
def test_the_audit_store_keeps_its_own_retention_on_its_own_volume(env: str, size: str, rendered) -> None:
    """retention.audit, not the apps' retention; the volume follows its own disk limit."""
    retention = load_spec(env).data["retention"]["audit"]
    statefulset = by_kind(rendered("default", env))[("StatefulSet", "victorialogs-audit")]
    spec = pod_spec(statefulset)
    args = spec["containers"][0]["args"]
    assert f"-retentionPeriod={retention['period']}" in args
    assert f"-retention.maxDiskSpaceUsageBytes={retention['max_disk_space']}" in args
    assert "-httpListenAddr=0.0.0.0:9429" in args
    assert statefulset["spec"]["replicas"] == 1 and spec["terminationGracePeriodSeconds"] == 60
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == size
    assert spec["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9429}


def test_the_audit_store_stays_here_with_an_external_victorialogs(rendered) -> None:
    objects = by_kind(rendered("external-logs"))
    assert ("StatefulSet", "victorialogs-audit") in objects
    assert objects[("Service", "victorialogs-audit")]["spec"]["type"] == "ClusterIP"
    egress = objects[("NetworkPolicy", "vmauth")]["spec"]["egress"]
    assert {"ports": [{"protocol": "TCP", "port": 9428}]} in egress  # the cluster's select host, anywhere


def test_vmauth_reaches_only_the_two_log_stores(rendered) -> None:
    policy = by_kind(rendered())[("NetworkPolicy", "vmauth")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    reached = {(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], port["port"])
               for rule in policy["egress"] for peer in rule.get("to", []) for port in rule["ports"]}
    assert reached == {("victorialogs", 9428), ("victorialogs-audit", 9429)}
    (dns,) = [rule for rule in policy["egress"] if "to" not in rule]
    assert {p["port"] for p in dns["ports"]} == {53}
    operators = by_kind(rendered("ha"))[("NetworkPolicy", "vmauth")]["spec"]["ingress"][1]
    assert operators == {"from": [{"namespaceSelector": {"matchLabels": {"theodore.example/log-readers": "true"}}}],
                         "ports": [{"protocol": "TCP", "port": 8427}]}


def test_vmauth_runs_the_compose_command_with_its_config(rendered) -> None:
    deployment = by_kind(rendered("ha"))[("Deployment", "vmauth")]
    assert deployment["spec"]["replicas"] == 2
    container = pod_spec(deployment)["containers"][0]
    assert container["args"] == ["-auth.config=/etc/vmauth/auth.yml", "-httpListenAddr=0.0.0.0:8427"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8427}
    assert [e["valueFrom"]["secretKeyRef"] for e in container["env"]] == [
        {"name": "log-readers", "key": "audit_reader_token"}]
