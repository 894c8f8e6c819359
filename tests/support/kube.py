"""A real Kubernetes control plane on 127.0.0.1 for the chart's install tests.

etcd, kube-apiserver (token authentication, RBAC, PodSecurity admission), kube-controller-manager
and kube-scheduler, all built by ``make tools`` from the pinned modules, plus kwok, which plays
the kubelet of fake nodes: it marks nodes Ready and moves pods through the phases its stage file
(``kwok-stages.yaml``) gives them, without running any container. A tiny provisioner thread binds
every pending PersistentVolumeClaim to a PersistentVolume made for it and removes released ones.

``control_plane(root)`` starts everything, waits until each component answers its health
endpoint, writes ``root/kubeconfig`` (what Helm uses), yields a :class:`Cluster` and stops the
processes afterwards. Ports 17000-17005.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from theodore_bench.logstore import rss_mib
from theodore_obs.timing import wait_until
from theodore_obs.tools import binary_path

PORTS = {"etcd": 17000, "etcd-peer": 17001, "kube-apiserver": 17002,
         "kube-controller-manager": 17003, "kube-scheduler": 17004, "kwok": 17005}
STAGES = Path(__file__).with_name("kwok-stages.yaml")
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
STORAGE_CLASS = "fixture-local"
PROVISIONER = "theodore.test/fixture-provisioner"
SERVICE_CIDR = "10.96.0.0/16"


class KubeError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Cluster:
    """The running control plane: its API address, an admin token and the kubeconfig Helm reads."""

    root: Path
    server: str
    token: str
    ca: Path
    kubeconfig: Path
    logs: Path
    _context: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(cafile=str(self.ca))

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        """One API call; the decoded JSON answer (``KubeError`` for any non-2xx status)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type,
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=30) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise KubeError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def items(self, path: str) -> list[dict[str, Any]]:
        return self.get(path)["items"]

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", path, obj)

    def delete(self, path: str) -> None:
        with contextlib.suppress(KubeError):
            self.request("DELETE", path)

    def create_namespace(self, name: str, pod_security: str) -> None:
        """A namespace whose PodSecurity admission enforces ``pod_security`` (restricted, privileged)."""
        labels = {f"pod-security.kubernetes.io/{mode}": pod_security for mode in ("enforce", "warn")}
        labels["pod-security.kubernetes.io/enforce-version"] = "latest"
        self.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": name, "labels": labels}})
        wait_until(lambda: self._has_default_service_account(name), timeout=30,
                   what=f"the default ServiceAccount of namespace {name}")

    def _has_default_service_account(self, namespace: str) -> bool:
        try:
            self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
        except KubeError:
            return False
        return True

    def delete_namespace(self, name: str, timeout: float = 60) -> None:
        self.delete(f"/api/v1/namespaces/{name}")
        wait_until(lambda: not self._exists(f"/api/v1/namespaces/{name}"), timeout=timeout,
                   what=f"namespace {name} deleted")

    def _exists(self, path: str) -> bool:
        try:
            self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.create(f"/api/v1/namespaces/{namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})

    def add_fake_nodes(self, count: int, prefix: str = "kwok-node") -> list[str]:
        """``count`` nodes that kwok manages (Ready within seconds, room for many pods)."""
        names = [f"{prefix}-{i}" for i in range(count)]
        for name in names:
            self.create("/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                             "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok"}},
                "status": {"capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                           "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"}}})
        wait_until(lambda: self.ready_nodes() >= set(names), timeout=60,
                   what=lambda: f"nodes {names} Ready (ready: {sorted(self.ready_nodes())})")
        return names

    def ready_nodes(self) -> set[str]:
        return {node["metadata"]["name"] for node in self.items("/api/v1/nodes")
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in node.get("status", {}).get("conditions", []))}


class _Provisioner(threading.Thread):
    """Binds each pending PVC to a hostPath PV made for it; deletes PVs whose claim is gone."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True, name="pv-provisioner")
        self.cluster = cluster
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                self._provision()
            except (KubeError, OSError) as exc:
                self.errors.append(str(exc))

    def _provision(self) -> None:
        for pv in self.cluster.items("/api/v1/persistentvolumes"):
            if pv.get("status", {}).get("phase") in ("Released", "Failed"):
                self.cluster.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
        for claim in self.cluster.items("/api/v1/persistentvolumeclaims"):
            if claim["spec"].get("volumeName") or claim.get("status", {}).get("phase") != "Pending":
                continue
            meta = claim["metadata"]
            digest = hashlib.sha256(f"{meta['namespace']}/{meta['name']}/{meta['uid']}".encode())
            name = f"pv-{digest.hexdigest()[:16]}"
            with contextlib.suppress(KubeError):  # made on an earlier pass, not bound yet
                self.cluster.create("/api/v1/persistentvolumes", {
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": {"theodore.test/provisioned": "true"}},
                    "spec": {
                        "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                        "accessModes": claim["spec"]["accessModes"],
                        "storageClassName": claim["spec"].get("storageClassName") or "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": f"/var/lib/fixture-volumes/{name}"},
                        "claimRef": {"namespace": meta["namespace"], "name": meta["name"],
                                     "uid": meta["uid"]}}})


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


def _certificates(pki: Path) -> None:
    """A CA, the API server's serving certificate (127.0.0.1, localhost) and the service-account keys."""
    pki.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=fixture-ca", cwd=pki)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out",
             "apiserver.csr", "-subj", "/CN=kube-apiserver", cwd=pki)
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,"
                                 "DNS:kubernetes,DNS:kubernetes.default.svc\n")
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "2", "-extfile", "san.ext", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fixture",
        "clusters": [{"name": "fixture", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "fixture", "context": {"cluster": "fixture", "user": user}}]}))
    path.chmod(0o600)
    return path


def _arguments(root: Path, kubeconfigs: dict[str, Path]) -> dict[str, list[str]]:
    pki = root / "pki"
    serving = ["--bind-address=127.0.0.1", f"--cert-dir={root}/serving"]
    return {
        "etcd": [
            f"--data-dir={root}/etcd", "--name=fixture",
            f"--listen-client-urls=http://127.0.0.1:{PORTS['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{PORTS['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{PORTS['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{PORTS['etcd-peer']}",
            f"--initial-cluster=fixture=http://127.0.0.1:{PORTS['etcd-peer']}",
            "--unsafe-no-fsync", "--log-level=warn"],
        "kube-apiserver": [
            f"--etcd-servers=http://127.0.0.1:{PORTS['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['kube-apiserver']}",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
            f"--token-auth-file={root}/tokens.csv", "--anonymous-auth=false",
            "--authorization-mode=RBAC", "--enable-admission-plugins=PodSecurity",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--allow-privileged=true", "--profiling=false", "--v=1"],
        "kube-controller-manager": [
            f"--kubeconfig={kubeconfigs['system:kube-controller-manager']}",
            f"--authentication-kubeconfig={kubeconfigs['system:kube-controller-manager']}",
            f"--authorization-kubeconfig={kubeconfigs['system:kube-controller-manager']}",
            *serving, f"--secure-port={PORTS['kube-controller-manager']}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            f"--service-account-private-key-file={pki}/sa.key", f"--root-ca-file={pki}/ca.crt",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false", "--v=1"],
        "kube-scheduler": [
            f"--kubeconfig={kubeconfigs['system:kube-scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['system:kube-scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['system:kube-scheduler']}",
            *serving, f"--secure-port={PORTS['kube-scheduler']}", "--leader-elect=false",
            "--profiling=false", "--v=1"],
        "kwok": [
            f"--kubeconfig={kubeconfigs['kwok']}", f"--config={STAGES}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{PORTS['kwok']}"],
    }


def _health_urls() -> dict[str, str]:
    return {"etcd": f"http://127.0.0.1:{PORTS['etcd']}/health",
            "kube-apiserver": f"https://127.0.0.1:{PORTS['kube-apiserver']}/readyz",
            "kube-controller-manager": f"https://127.0.0.1:{PORTS['kube-controller-manager']}/healthz",
            "kube-scheduler": f"https://127.0.0.1:{PORTS['kube-scheduler']}/healthz",
            "kwok": f"http://127.0.0.1:{PORTS['kwok']}/healthz"}


def _answers(url: str, token: str, ca: Path) -> bool:
    """True once ``url`` answers 200 (self-signed components' certificates are not checked)."""
    if url.startswith("https://127.0.0.1:" + str(PORTS["kube-apiserver"])):
        context = ssl.create_default_context(cafile=str(ca))
    else:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=context, timeout=3) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _name, proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _name, proc in reversed(processes):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def control_plane(root: Path, timeout: float = 120) -> Iterator[Cluster]:
    """Start the control plane under ``root``; yield the :class:`Cluster`; stop it."""
    _certificates(root / "pki")
    users = {"admin": "system:masters", "system:kube-controller-manager": "",
             "system:kube-scheduler": "", "kwok": "system:masters"}
    tokens = {user: secrets.token_hex(16) for user in users}
    (root / "tokens.csv").write_text("".join(
        f'{tokens[u]},{u},{u},"{g}"\n' if g else f"{tokens[u]},{u},{u}\n" for u, g in users.items()))
    server = f"https://127.0.0.1:{PORTS['kube-apiserver']}"
    ca = root / "pki" / "ca.crt"
    kubeconfigs = {user: _kubeconfig(root / ("kubeconfig" if user == "admin" else f"{user}.kubeconfig"),
                                     server, ca, user, token) for user, token in tokens.items()}
    arguments = _arguments(root, kubeconfigs)
    logs = root / "logs"
    logs.mkdir()
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    provisioner: _Provisioner | None = None
    try:
        for name, args in arguments.items():
            with (logs / f"{name}.log").open("wb") as log:
                proc = subprocess.Popen([str(binary_path(name)), *args], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env={**os.environ, "HOME": str(root)})
            processes.append((name, proc))
            _wait_healthy(name, proc, _health_urls()[name], tokens["admin"], ca, logs, timeout)
        cluster = Cluster(root=root, server=server, token=tokens["admin"], ca=ca,
                          kubeconfig=kubeconfigs["admin"], logs=logs)
        cluster.create("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain"})
        provisioner = _Provisioner(cluster)
        provisioner.start()
        yield cluster
        assert provisioner.errors == [], provisioner.errors[:5]
    finally:
        if provisioner:
            provisioner.stopped.set()
            provisioner.join(timeout=5)
        _stop(processes)


def _wait_healthy(name: str, proc: subprocess.Popen[bytes], url: str, token: str, ca: Path,
                  logs: Path, timeout: float) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        return _answers(url, token, ca)

    wait_until(healthy, timeout=timeout, every=0.3, what=f"{name} healthy at {url}")


def scale_figure(root: Path, nodes: int, gateways: int) -> dict[str, Any]:
    """Install the chart (agent in its own namespace) on ``nodes`` fake nodes; what it took."""
    chart = Path(__file__).resolve().parents[2] / "helm" / "theodore-observability"
    with control_plane(root) as cluster:
        cluster.add_fake_nodes(nodes)
        cluster.create_namespace("observability", "restricted")
        cluster.create_secret("observability", "grafana-admin", {"admin-password": secrets.token_hex(8)})
        apiserver = next(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                         and (p / "cmdline").read_bytes().startswith(str(binary_path("kube-apiserver")).encode()))
        before = rss_mib(apiserver)
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HELM_CONFIG_HOME": str(root / "helm"),
               "HELM_CACHE_HOME": str(root / "helm"), "HELM_DATA_HOME": str(root / "helm")}
        started = time.monotonic()
        subprocess.run([str(binary_path("helm")), "install", "obs", str(chart), "-n", "observability",
                        "--set", "collector.agent.namespace.name=otel-agent",
                        "--set", "collector.agent.namespace.create=true",
                        "--set", f"collector.gateway.replicas={gateways}"],
                       env=env, check=True, capture_output=True)
        peak = before

        def agents_ready() -> bool:
            nonlocal peak
            peak = max(peak, rss_mib(apiserver))
            ds = cluster.get("/apis/apps/v1/namespaces/otel-agent/daemonsets/otel-collector-agent")
            gw = cluster.get("/apis/apps/v1/namespaces/observability/statefulsets/otel-collector-gateway")
            return (ds["status"].get("numberReady") == nodes
                    and gw["status"].get("readyReplicas") == gateways)

        wait_until(agents_ready, timeout=600, every=1, what="the agents and gateways ready")
        counts = {kind: len(cluster.items(path)) for kind, path in {
            "pods": "/api/v1/pods", "nodes": "/api/v1/nodes", "leases": "/apis/coordination.k8s.io/v1/leases",
            "persistentvolumeclaims": "/api/v1/persistentvolumeclaims",
            "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices"}.items()}
        return {"nodes": nodes, "gateways": gateways, "seconds_to_ready": round(time.monotonic() - started, 1),
                "apiserver_rss_mib": {"before_install": round(before), "peak": round(peak)}, "objects": counts}


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.kube DIR`` keeps a control plane running in DIR (Ctrl-C stops it);
    ``... DIR --scale 200`` prints the chart's scale figure on 200 fake nodes and stops."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.kube")
    parser.add_argument("root", type=Path, help="an empty directory for the control plane's state")
    parser.add_argument("--nodes", type=int, default=2, help="fake nodes (default 2)")
    parser.add_argument("--scale", type=int, metavar="NODES", help="print the scale figure on NODES nodes")
    parser.add_argument("--gateways", type=int, default=4, help="gateway replicas for --scale (default 4)")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    if any(args.root.iterdir()):
        parser.error(f"{args.root}: not empty")
    if args.scale:
        print(json.dumps(scale_figure(args.root, args.scale, args.gateways), indent=2))
        return 0
    with control_plane(args.root) as cluster:
        cluster.add_fake_nodes(args.nodes)
        print(f"KUBECONFIG={cluster.kubeconfig}  (logs in {cluster.logs}; Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["PORTS", "STORAGE_CLASS", "Cluster", "KubeError", "control_plane", "scale_figure"]
