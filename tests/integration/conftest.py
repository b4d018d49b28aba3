"""Integration fixtures: the project's local cluster (localcluster/), one namespace per test.

Fixtures
  cluster      (session) the running cluster, started with ``python3 -m localcluster up`` when it is not
               healthy; a ``Cluster``: kubeconfig, host, ca_cert, token (admin), kubectl, node_name,
               node_image, fake_nodes, cluster_dir, plus ``as_dict()`` and ``kubectl_run(*args)``
  api_client   (session) kubernetes.client.ApiClient from the admin kubeconfig
  core_v1      (session) kubernetes.client.CoreV1Api on api_client
  namespace    (test)    a fresh namespace (its default ServiceAccount exists), deleted afterwards
  pods         (test)    a ``Pods`` helper bound to ``namespace``: real_pod(), fake_pods(), wait_running()
  pvc          (test)    ``pvc(name="data", size="50Mi")`` -> (claim name, host path of the bound PV)
  sa_token     (test)    ``sa_token(namespace, rules, name=None)`` -> {host, token, ca_cert, namespace,
                         service_account}: a least-privilege ServiceAccount token (Role + RoleBinding +
                         TokenRequest)

Markers: ``real_node`` (needs the real node: real exec, real fsfreeze), ``lifecycle`` (stops and
starts the cluster; such tests run last in the session and leave the cluster up) and ``fault`` (stops
the API server for a few seconds; run just before the lifecycle tests).
"""
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from localcluster import cluster as lc_cluster  # noqa: E402
from localcluster import config as lc_config  # noqa: E402
from localcluster import fake as lc_fake  # noqa: E402
from localcluster import pki as lc_pki  # noqa: E402
from localcluster import storage as lc_storage  # noqa: E402
from localcluster.api import Api  # noqa: E402
from localcluster.token import mint_token  # noqa: E402

MARKERS = {
    "real_node": "needs the real node (containerd + runc + kubelet): real exec, real fsfreeze",
    "lifecycle": "stops/starts the local cluster; runs last and leaves the cluster up",
    "fault": "stops the API server for a few seconds (localcluster stop/start kube-apiserver); runs late, "
             "before the lifecycle tests, and restarts it in a finally",
}

FAKE_TOLERATIONS = [dict(lc_fake.TOLERATION)]
FAKE_NODE_SELECTOR = dict(lc_fake.NODE_SELECTOR)


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``lifecycle`` stop and restart the cluster: run them after everything else; tests marked
    ``fault`` (a short API server outage) just before them."""
    items.sort(key=lambda item: (item.get_closest_marker("lifecycle") is not None,
                                 item.get_closest_marker("fault") is not None))


@dataclass
class Cluster:
    kubeconfig: str
    host: str
    ca_cert: str
    token: str
    kubectl: str
    node_name: str
    node_image: str
    fake_nodes: list = field(default_factory=list)
    cluster_dir: str = ""

    def as_dict(self):
        return asdict(self)

    def kubectl_run(self, *args, check=True, timeout=60):
        return subprocess.run([self.kubectl, "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                              text=True, check=check, timeout=timeout)


def ensure_cluster_up():
    """Start (or reuse) the local cluster through the tool itself; fail with its output."""
    cfg = lc_config.load()
    if not lc_cluster.healthy(cfg):
        proc = subprocess.run([sys.executable, "-m", "localcluster", "up"], cwd=REPO, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"python3 -m localcluster up failed:\n{proc.stderr[-4000:]}", pytrace=False)
    return cfg


@pytest.fixture(scope="session")
def cluster():
    cfg = ensure_cluster_up()
    yield Cluster(kubeconfig=str(cfg.kubeconfig), host=cfg.server, ca_cert=str(cfg.pki_dir / "ca.crt"),
                  token=lc_pki.token(cfg, "admin"), kubectl=str(cfg.kubectl), node_name=cfg.node_name,
                  node_image=cfg.node_image,
                  fake_nodes=[lc_fake.node_name(i) for i in range(cfg.fake_nodes)],
                  cluster_dir=str(cfg.cluster_dir))


@pytest.fixture(scope="session")
def api_client(cluster):
    from kubernetes import config as kconfig
    return kconfig.new_client_from_config(config_file=cluster.kubeconfig)


@pytest.fixture(scope="session")
def core_v1(api_client):
    from kubernetes import client
    return client.CoreV1Api(api_client)


def _admin_api():
    return Api.admin(lc_config.load(), timeout=30)


@pytest.fixture
def namespace(cluster, request):
    """A fresh namespace for this test, deleted (without waiting) afterwards."""
    api = _admin_api()
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"kh-{base}-{uuid.uuid4().hex[:6]}"
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": {"kubehooks.local/test": "true"}}},
               exist_ok=False)
    _wait(lambda: _exists(api, f"/api/v1/namespaces/{name}/serviceaccounts/default"), 60,
          f"default ServiceAccount in {name}")
    yield name
    try:
        api.delete(f"/api/v1/namespaces/{name}")
    except OSError:
        pass  # the lifecycle test may have stopped the cluster


def _exists(api, path):
    try:
        api.get(path)
        return True
    except Exception:  # noqa: BLE001 - not found or not reachable yet: keep polling
        return False


def _wait(check, timeout, what, interval=0.25):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Pods:
    """Create pods in one namespace on the real node or on kwok fake nodes, and wait for them."""

    def __init__(self, core_v1, namespace, cluster):
        self.core = core_v1
        self.namespace = namespace
        self.cluster = cluster

    def real_pod(self, name, containers=None, command=("sleep", "infinity"), privileged=False,
                 pvc=None, mount_path="/data", labels=None, annotations=None, wait=True, timeout=120):
        """A pod on the real node running the local node image (nginx-light, fsfreeze, coreutils).

        Without ``containers``: one container "main" running ``command``; ``pvc`` mounts that claim at
        ``mount_path`` in every container. Returns the pod (API JSON dict) once Running when ``wait``.
        """
        if containers is None:
            containers = [{"name": "main", "command": list(command)}]
        spec_containers = []
        for c in containers:
            c = {"image": self.cluster.node_image, "imagePullPolicy": "IfNotPresent", **c}
            if privileged:
                c.setdefault("securityContext", {"privileged": True})
            if pvc:
                c.setdefault("volumeMounts", [{"name": "data", "mountPath": mount_path}])
            spec_containers.append(c)
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": self.cluster.node_name},
                     "terminationGracePeriodSeconds": 1, "containers": spec_containers,
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}] if pvc else []},
        }
        self.core.create_namespaced_pod(self.namespace, body)
        if wait:
            self.wait_running([name], timeout)
        return self.get(name)

    def fake_pods(self, count, prefix="fake", containers=None, labels=None, annotations=None, wait=True,
                  timeout=180):
        """``count`` pods on kwok fake nodes (selector type=kwok + the kwok toleration). Exec there runs
        on the host: give them harmless hook commands only (true, echo, sleep)."""
        names = [f"{prefix}-{i}" for i in range(count)]
        for name in names:
            self.core.create_namespaced_pod(self.namespace, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
                "spec": {"nodeSelector": FAKE_NODE_SELECTOR, "tolerations": FAKE_TOLERATIONS,
                         "containers": containers or [{"name": "main", "image": "fake-image"}]}})
        if wait:
            self.wait_running(names, timeout)
        return names

    def get(self, name):
        resp = self.core.read_namespaced_pod(name, self.namespace, _preload_content=False)
        return json.loads(resp.data)

    def wait_running(self, names, timeout=120):
        """Wait until every named pod of the namespace is Running (fails early on a Failed pod)."""
        want = set(names)
        deadline = time.monotonic() + timeout
        while True:
            resp = self.core.list_namespaced_pod(self.namespace, _preload_content=False)
            phases = {p["metadata"]["name"]: p.get("status", {}).get("phase")
                      for p in json.loads(resp.data)["items"]}
            failed = [n for n in want if phases.get(n) in ("Failed", "Succeeded")]
            if failed:
                raise AssertionError(f"pods ended instead of running: {failed}")
            waiting = sorted(n for n in want if phases.get(n) != "Running")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} pods not Running after {timeout}s: {waiting[:5]}")
            time.sleep(0.5)


@pytest.fixture
def pods(core_v1, namespace, cluster):
    return Pods(core_v1, namespace, cluster)


def claim_pvc(namespace, name="data", size="50Mi", timeout=90):
    """Create a PVC like the walkthrough's (no storageClassName, RWO) and wait until it is bound to a
    pool PV. Returns (claim name, host path of the PV's mount: freeze-observable from the host)."""
    api = _admin_api()
    lc_storage.recycle_released(api)
    api.create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}},
        exist_ok=False)
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"

    def bound():
        lc_storage.recycle_released(api)  # claims of finished tests free their PVs meanwhile
        return api.get(path).get("status", {}).get("phase") == "Bound"

    _wait(bound, timeout, f"PVC {namespace}/{name} to bind (pool of {lc_config.load().pv_count} PVs)", 0.5)
    pv = api.get(f"/api/v1/persistentvolumes/{api.get(path)['spec']['volumeName']}")
    return name, pv["spec"]["local"]["path"]


@pytest.fixture
def pvc(namespace):
    def make(name="data", size="50Mi"):
        return claim_pvc(namespace, name, size)
    return make


@pytest.fixture
def sa_token(cluster):
    """mint(namespace, rules, name=None) -> {host, token, ca_cert, namespace, service_account}."""
    def mint(namespace, rules, name=None):
        return mint_token(namespace, name or f"sa-{uuid.uuid4().hex[:6]}", rules,
                          create_namespace=False)
    return mint


def kubectl_path():
    """The kubectl built with the cluster (matches its version); env KUBEHOOKS_KUBECTL overrides."""
    return os.environ.get("KUBEHOOKS_KUBECTL") or str(lc_config.load().kubectl)
