"""The CSI stack of the local cluster (on unless KUBEHOOKS_CSI=0): the real Kubernetes CSI machinery
around a small test driver of the project's own.

- snapshot-controller and csi-snapshotter (external-snapshotter), csi-provisioner (external-provisioner),
  built from the Go module proxy, and the VolumeSnapshot CRDs of the same release;
- kubehooks-csi-driver (localcluster/csidriver, a TEST FIXTURE standing in for a cloud driver):
  loop-mounted ext4 files under <cluster dir>/csi, snapshots as copies of those files, and its own
  kubelet plugin registration (node-driver-registrar is not available here);
- CSIDriver (attachRequired false: no external-attacher), StorageClass and VolumeSnapshotClass
  ``kubehooks-csi`` (the class carries Velero's ``velero.io/csi-volumesnapshot-class`` label).

All four run as host processes inside the cluster's netns, like the kubelet, with the admin
kubeconfig (a throwaway cluster). ``ensure`` is idempotent: it starts whatever is not running, so
``up`` on a running cluster adds the stack without a restart.
"""
import time

from . import processes
from .api import ApiError
from .ui import Failure, step

DRIVER = "csi.kubehooks.local"
STORAGE_CLASS = "kubehooks-csi"
SNAPSHOT_CLASS = "kubehooks-csi"
DRIVER_PROCESS = "kubehooks-csi-driver"
SIDECARS = ["snapshot-controller", "csi-snapshotter", "csi-provisioner"]
COMPONENTS = [DRIVER_PROCESS] + SIDECARS
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"


def controller_socket(cfg):
    return cfg.csi_dir / "csi.sock"


def node_socket(cfg):
    return cfg.kubelet_root / "plugins" / DRIVER / "csi.sock"


def registration_socket(cfg):
    return cfg.kubelet_root / "plugins_registry" / f"{DRIVER}-reg.sock"


def argv(cfg):
    sidecars = cfg.bin_dir("csi-sidecars")
    common = ["--kubeconfig", cfg.kubeconfig, "--leader-election=false", "--v=2"]
    csi_address = ["--csi-address", controller_socket(cfg)]
    return {
        DRIVER_PROCESS: [cfg.bin_dir("csi-driver") / DRIVER_PROCESS, "--name", DRIVER, "--node-id", cfg.node_name,
                         "--state-dir", cfg.csi_dir, "--controller-socket", controller_socket(cfg),
                         "--node-socket", node_socket(cfg), "--registration-socket", registration_socket(cfg)],
        "snapshot-controller": [sidecars / "snapshot-controller", *common],
        "csi-snapshotter": [sidecars / "csi-snapshotter", *csi_address, *common],
        "csi-provisioner": [sidecars / "csi-provisioner", *csi_address, *common],
    }


def crds(cfg):
    """The VolumeSnapshot (and VolumeGroupSnapshot) CRDs shipped with the snapshotter's client module."""
    import yaml  # only here: 'down' and 'status' need no YAML
    found = []
    for path in sorted((cfg.bin_dir("csi-sidecars") / "crd").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            found.append(doc)
    if not found:
        raise Failure(f"no CRDs in {cfg.bin_dir('csi-sidecars') / 'crd'} (rebuild: remove that directory)")
    return found


def objects():
    """(API path, object) of the CSIDriver and the StorageClass; the VolumeSnapshotClass needs the CRDs."""
    return [
        ("/apis/storage.k8s.io/v1/csidrivers", {
            "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": DRIVER},
            "spec": {"attachRequired": False, "podInfoOnMount": False, "volumeLifecycleModes": ["Persistent"],
                     "fsGroupPolicy": "File"}}),
        ("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": STORAGE_CLASS},
            "provisioner": DRIVER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": False, "parameters": {"csi.storage.k8s.io/fstype": "ext4"}}),
    ]


def snapshot_class():
    return {"apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": SNAPSHOT_CLASS, "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": DRIVER, "deletionPolicy": "Delete"}


def _established(api, name):
    crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in crd.get("status", {}).get("conditions", []))


def _registered(api, cfg):
    """The kubelet has registered the driver: the node's CSINode lists it."""
    node = api.get(f"/apis/storage.k8s.io/v1/csinodes/{cfg.node_name}")
    return any(d["name"] == DRIVER for d in node.get("spec", {}).get("drivers") or [])


def ensure(cfg, api, wait_for):
    """CRDs, classes, the driver (waiting for its kubelet registration) and the sidecars."""
    with step("CSI: snapshot CRDs, CSIDriver, StorageClass and VolumeSnapshotClass " + STORAGE_CLASS):
        names = []
        for crd in crds(cfg):
            api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            names.append(crd["metadata"]["name"])
        for path, obj in objects():
            api.create(path, obj)
        for name in names:
            wait_for(f"CRD {name} Established", lambda n=name: _established(api, n), cfg, "kube-apiserver",
                     watch=["kube-apiserver"])
        _create_retrying(api, f"/apis/{SNAPSHOT_GROUP}/v1/volumesnapshotclasses", snapshot_class())
    commands = argv(cfg)
    for name in COMPONENTS:  # running an older build (the driver's sources or a version changed)
        rec = processes.record(cfg, name)
        if rec and processes.alive(cfg, name) and rec.get("argv") != [str(commands[name][0])]:
            with step(f"CSI: stopping {name} (pid {rec['pid']}): it runs {rec.get('argv')}"):
                processes.stop(cfg, name)
    if not processes.alive(cfg, DRIVER_PROCESS):
        # the sidecars exit when they lose their driver connection: (re)start them after the driver
        for name in SIDECARS:
            processes.stop(cfg, name)
        with step(f"CSI: starting {DRIVER_PROCESS} (waiting for its kubelet registration)"):
            processes.start(cfg, DRIVER_PROCESS, commands[DRIVER_PROCESS])
            wait_for(f"CSI driver {DRIVER} registered on node {cfg.node_name}", lambda: _registered(api, cfg),
                     cfg, DRIVER_PROCESS, watch=[DRIVER_PROCESS, "kubelet"])
    missing = [n for n in SIDECARS if not processes.alive(cfg, n)]
    if missing:
        with step(f"CSI: starting {', '.join(missing)}"):
            for name in missing:
                processes.start(cfg, name, commands[name])


def _create_retrying(api, path, body, timeout=30):
    """Create, retrying while a just-established CRD's endpoint is not served yet (404)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return api.create(path, body)
        except ApiError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.25)
