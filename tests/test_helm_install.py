"""`helm install` of the chart against a real Kubernetes API server (tests/support/kube.py).

Every profile installs into its own namespace enforcing the `restricted` Pod Security level, all
at once in one control plane; every Deployment and StatefulSet reaches Ready n/n on kwok's fake
nodes, every claim binds, `helm test` runs each component's readiness pod, `helm upgrade` rolls
out changed values and `helm uninstall` leaves nothing behind. kwok runs no container: a pod is
Ready (and a test pod Succeeded) because its stage says so, so these tests prove what the API
server decides — validation, admission, RBAC, scheduling, controllers, volume binding — and not
that the images start. The collector agent (hostPath, uid 0) runs in a namespace of its own at
level `privileged`, as the values offer it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.timing import wait_until

from .conftest import ROOT
from .helm_support import CHART, PROFILES, helm, profile_args
from .support.kube import PROVISIONER, Cluster, control_plane

RELEASE = "obs"
AGENT_NAMESPACE = "obs-default-agent"
#: The default profile runs the agent in a namespace the chart creates; the others without it.
PROFILE_SETS = {"default": [f"collector.agent.namespace.name={AGENT_NAMESPACE}",
                            "collector.agent.namespace.create=true"]}
WORKLOAD_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
#: Namespaced kinds a release may leave behind, and where the API lists them.
NAMESPACED = {"pods": "/api/v1", "services": "/api/v1", "configmaps": "/api/v1",
              "serviceaccounts": "/api/v1", "persistentvolumeclaims": "/api/v1",
              "deployments": "/apis/apps/v1", "statefulsets": "/apis/apps/v1", "daemonsets": "/apis/apps/v1",
              "networkpolicies": "/apis/networking.k8s.io/v1",
              "poddisruptionbudgets": "/apis/policy/v1", "roles": "/apis/rbac.authorization.k8s.io/v1",
              "rolebindings": "/apis/rbac.authorization.k8s.io/v1"}
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"


def namespace_of(profile: str) -> str:
    return f"obs-{profile}"


def values_of(profile: str) -> dict[str, Any]:
    """The profile's values over the chart's defaults (enough to know which Secrets it names)."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    if profile != "default":
        _merge(merged, yaml.safe_load((CHART / "ci" / f"{profile}-values.yaml").read_text()))
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def named_secrets(values: dict[str, Any]) -> dict[str, set[str]]:
    """Secret name → keys, for every existing Secret the values refer to."""
    wanted: dict[str, set[str]] = {}
    if values["grafana"]["enabled"]:
        wanted.setdefault(values["grafana"]["admin"]["existingSecret"], set()).add(
            values["grafana"]["admin"]["passwordKey"])
    for ref in values["alertmanager"]["secretFiles"].values():
        if ref["existingSecret"]:
            wanted.setdefault(ref["existingSecret"], set()).add(ref["key"])
    es = values["jaeger"]["elasticsearch"]
    if es["existingSecret"]:
        wanted.setdefault(es["existingSecret"], set()).update({es["usernameKey"], es["passwordKey"]})
    stack = yaml.safe_load((ROOT / "rendered" / values["environment"] / "kubernetes/stack.yaml").read_text())
    tokens = {*stack["vmauth_token_env"].values(), *stack["collector_token_files"]}
    if tokens:
        wanted.setdefault(values["tenants"]["existingSecret"], set()).update(tokens)
    return wanted


def install_args(profile: str) -> list[str]:
    sets = PROFILE_SETS.get(profile, ["collector.agent.enabled=false"])
    sets = [*sets, "global.persistentVolumeClaimRetention.whenDeleted=Delete"]
    return [*profile_args(profile), *(a for s in sets for a in ("--set", s))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("kube")) as running:
        running.add_fake_nodes(2)
        yield running


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


def kube_helm(cluster: Cluster, scratch: Path, *args: str):
    return helm(*args, tmp=scratch, kubeconfig=cluster.kubeconfig)


def _prepare(cluster: Cluster, profile: str) -> None:
    namespace = namespace_of(profile)
    cluster.create_namespace(namespace, "restricted")
    values = values_of(profile)
    for name, keys in named_secrets(values).items():
        cluster.create_secret(namespace, name, {key: secrets.token_hex(8) for key in keys})
    storage_class = values["global"]["storageClass"]
    if storage_class:
        cluster.create("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": storage_class}, "provisioner": PROVISIONER,
            "volumeBindingMode": "Immediate"})


@pytest.fixture(scope="module")
def installed(cluster: Cluster, scratch: Path) -> dict[str, Any]:
    """Every profile installed (with --wait) at once; profile → helm's result."""
    for profile in PROFILES:
        _prepare(cluster, profile)

    def install(profile: str):
        return kube_helm(cluster, scratch, "install", RELEASE, str(CHART), "-n", namespace_of(profile),
                         *install_args(profile), "--wait", "--timeout", "150s")

    with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
        return dict(zip(PROFILES, pool.map(install, PROFILES), strict=True))


def workloads(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [{**w, "kind": kind} for kind, plural in WORKLOAD_KINDS.items()
            for w in cluster.items(f"/apis/apps/v1/namespaces/{namespace}/{plural}")]


def not_ready(workload: dict[str, Any]) -> str | None:
    """``kind/name ready/wanted`` unless every replica (every node's pod) is ready."""
    status = workload.get("status", {})
    if workload["kind"] == "DaemonSet":
        wanted, ready = status.get("desiredNumberScheduled", -1), status.get("numberReady", 0)
    else:
        wanted, ready = workload["spec"]["replicas"], status.get("readyReplicas", 0)
    return None if wanted == ready and wanted > 0 else f"{workload['kind']}/{workload['metadata']['name']} {ready}/{wanted}"


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_installs_under_restricted_pod_security(profile: str, installed, cluster: Cluster) -> None:
    """The API server accepts every object and PodSecurity `restricted` admits every pod."""
    result = installed[profile]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "violate PodSecurity" not in result.stderr
    pods = cluster.items(f"/api/v1/namespaces/{namespace_of(profile)}/pods")
    assert pods and all(p["status"].get("phase") == "Running" for p in pods), \
        [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_workload_is_ready_on_the_fake_nodes(profile: str, installed, cluster: Cluster) -> None:
    namespaces = [namespace_of(profile)] + ([AGENT_NAMESPACE] if profile in PROFILE_SETS else [])
    found = [w for namespace in namespaces for w in workloads(cluster, namespace)]
    kinds = {w["kind"] for w in found}
    assert {"Deployment", "StatefulSet"} <= kinds
    assert ("DaemonSet" in kinds) == (profile in PROFILE_SETS)
    assert [message for w in found if (message := not_ready(w))] == []


@pytest.mark.parametrize("profile", PROFILES)
def test_every_claim_binds(profile: str, installed, cluster: Cluster) -> None:
    claims = cluster.items(f"/api/v1/namespaces/{namespace_of(profile)}/persistentvolumeclaims")
    names = {c["metadata"]["name"] for c in claims}
    assert {"data-prometheus-0", "file-storage-otel-collector-gateway-0", "data-victorialogs-audit-0"} <= names
    assert [c["metadata"]["name"] for c in claims if c["status"].get("phase") != "Bound"] == []


def test_the_agent_runs_in_its_own_privileged_namespace(installed, cluster: Cluster) -> None:
    namespace = cluster.get(f"/api/v1/namespaces/{AGENT_NAMESPACE}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    agents = cluster.items(f"/api/v1/namespaces/{AGENT_NAMESPACE}/pods")
    assert sorted(p["spec"]["nodeName"] for p in agents) == ["kwok-node-0", "kwok-node-1"]
    service = cluster.get(f"/api/v1/namespaces/{AGENT_NAMESPACE}/services/otel-collector")
    assert service["spec"]["internalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_test_runs_a_readiness_pod_per_component(profile: str, installed, cluster: Cluster,
                                                       scratch: Path) -> None:
    """Each hook pod is admitted under `restricted`, scheduled and reaches the phase kwok gives it."""
    result = kube_helm(cluster, scratch, "test", RELEASE, "-n", namespace_of(profile), "--timeout", "60s")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    suites = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
              if line.startswith("TEST SUITE:")]
    phases = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
              if line.startswith("Phase:")]
    expected = {"otel-collector-gateway", "prometheus", "alertmanager", "vmalert", "jaeger",
                "victorialogs-audit", "vmauth"}
    values = values_of(profile)
    expected |= {"grafana"} if values["grafana"]["enabled"] else set()
    expected |= {"blackbox"} if values["blackbox"]["enabled"] else set()
    expected |= set() if values["victorialogs"]["external"]["insertHost"] else {"victorialogs"}
    assert sorted(suites) == sorted(f"test-{c}-ready" for c in expected)
    assert phases and set(phases) == {"Succeeded"}


def test_upgrade_with_changed_values_rolls_out(installed, cluster: Cluster, scratch: Path) -> None:
    """More replicas: the new pods are ready and their new claims bound."""
    namespace = namespace_of("minimal")
    result = kube_helm(cluster, scratch, "upgrade", RELEASE, str(CHART), "-n", namespace,
                       *install_args("minimal"), "--set", "collector.gateway.replicas=2",
                       "--set", "alertmanager.replicas=2", "--wait", "--timeout", "120s")
    assert result.returncode == 0, result.stderr[-3000:]
    sets = {w["metadata"]["name"]: w for w in workloads(cluster, namespace)}
    assert sets["otel-collector-gateway"]["spec"]["replicas"] == 2
    assert sets["alertmanager"]["status"]["readyReplicas"] == 2
    assert [m for w in sets.values() if (m := not_ready(w))] == []
    claims = {c["metadata"]["name"]: c["status"]["phase"]
              for c in cluster.items(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")}
    assert claims["file-storage-otel-collector-gateway-1"] == "Bound"
    assert claims["data-alertmanager-1"] == "Bound"
    history = kube_helm(cluster, scratch, "history", RELEASE, "-n", namespace, "-o", "yaml")
    assert [r["status"] for r in yaml.safe_load(history.stdout)] == ["superseded", "deployed"]


def leftovers(cluster: Cluster, namespace: str) -> list[str]:
    """Every object of the release (or pod, or claim) still in ``namespace``, and its cluster roles."""
    found = []
    for plural, api in NAMESPACED.items():
        selector = "" if plural in ("pods", "persistentvolumeclaims") else f"?labelSelector={INSTANCE}"
        found += [f"{plural}/{o['metadata']['name']}"
                  for o in cluster.items(f"{api}/namespaces/{namespace}/{plural}{selector}")]
    for plural in ("clusterroles", "clusterrolebindings"):
        found += [f"{plural}/{o['metadata']['name']}"
                  for o in cluster.items(f"/apis/rbac.authorization.k8s.io/v1/{plural}?labelSelector={INSTANCE}")
                  if o["metadata"]["name"].startswith(f"{namespace}-")]
    return found


@pytest.mark.parametrize("profile", PROFILES)
def test_uninstall_leaves_nothing_behind(profile: str, installed, cluster: Cluster, scratch: Path) -> None:
    namespace = namespace_of(profile)
    assert leftovers(cluster, namespace)  # the check sees the release while it is there
    result = kube_helm(cluster, scratch, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "90s")
    assert result.returncode == 0, result.stderr[-2000:]
    wait_until(lambda: not leftovers(cluster, namespace), timeout=60,
               what=lambda: f"{namespace} still holds {leftovers(cluster, namespace)}")
    secrets_left = {s["metadata"]["name"] for s in cluster.items(f"/api/v1/namespaces/{namespace}/secrets")}
    assert not any(name.startswith(f"sh.helm.release.v1.{RELEASE}.") for name in secrets_left)
    if profile in PROFILE_SETS:
        wait_until(lambda: AGENT_NAMESPACE not in {n["metadata"]["name"]
                                                   for n in cluster.items("/api/v1/namespaces")},
                   timeout=60, what=f"namespace {AGENT_NAMESPACE} deleted")


@pytest.mark.parametrize(("profile", "missing", "field"), [
    ("default", "grafana-admin", "grafana.admin.existingSecret"),
    ("default", "theodore-tenants", "tenants.existingSecret"),
    ("ha", "alertmanager-receivers", "alertmanager.secretFiles.deadmans_switch_url.existingSecret"),
])
def test_a_missing_existing_secret_fails_the_install(profile: str, missing: str, field: str, installed,
                                                     cluster: Cluster, scratch: Path) -> None:
    """The install stops before creating anything, naming the value and the Secret."""
    namespace = f"obs-nosecret-{missing}"
    cluster.create_namespace(namespace, "restricted")
    for name, keys in named_secrets(values_of(profile)).items():
        if name != missing:
            cluster.create_secret(namespace, name, {key: "x" for key in keys})
    result = kube_helm(cluster, scratch, "install", RELEASE, str(CHART), "-n", namespace,
                       *install_args(profile))
    assert result.returncode != 0
    assert f'{field}: Secret "{missing}" does not exist in namespace "{namespace}"' in result.stderr
    assert cluster.items(f"/apis/apps/v1/namespaces/{namespace}/statefulsets") == []


def test_restricted_admission_refuses_the_agent_in_the_release_namespace(installed, cluster: Cluster,
                                                                          scratch: Path) -> None:
    """PodSecurity is enforced: the agent (hostPath, uid 0) gets no pod under `restricted`."""
    namespace = "obs-agent-restricted"
    cluster.create_namespace(namespace, "restricted")
    for name, keys in named_secrets(values_of("default")).items():
        cluster.create_secret(namespace, name, {key: "x" for key in keys})
    result = kube_helm(cluster, scratch, "install", RELEASE, str(CHART), "-n", namespace)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "would violate PodSecurity" in result.stderr and "restricted:latest" in result.stderr

    def refused() -> list[str]:
        return [e["message"] for e in cluster.items(f"/api/v1/namespaces/{namespace}/events")
                if e["reason"] == "FailedCreate" and e["involvedObject"]["name"] == "otel-collector-agent"]

    assert "violates PodSecurity" in wait_until(refused, timeout=30, what="the agent's FailedCreate")[0]
    agents = cluster.items(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/name%3Dotel-collector-agent")
    assert agents == []
