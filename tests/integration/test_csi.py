"""The local cluster's CSI stack: the real snapshot-controller, csi-snapshotter and csi-provisioner
around the project's test CSI driver (localcluster/csidriver), on the real node.

These are also the driver's own tests: registration with the kubelet, provisioning, stage/publish on a
real pod, a snapshot taken while the filesystem is frozen, a volume restored from it, deletion of
volumes and snapshots, and a request it must refuse."""
import subprocess
import time
from pathlib import Path

import pytest
from test_cluster import exec_status

from localcluster import config as lc_config
from localcluster import csi as lc_csi
from localcluster import storage as lc_storage
from localcluster.api import Api, ApiError

SNAP = f"/apis/{lc_csi.SNAPSHOT_GROUP}/v1"


@pytest.fixture(scope="module")
def cfg(cluster):
    cfg = lc_config.load()
    if not cfg.csi:
        pytest.fail("KUBEHOOKS_CSI=0: the CSI stack is off, but these tests need it", pytrace=False)
    return cfg


@pytest.fixture
def api(cfg):
    return Api.admin(cfg, timeout=30)


def _wait(check, what, timeout=120, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)


def _gone(api, path):
    try:
        api.get(path)
        return False
    except ApiError as exc:
        return exc.status == 404


def _pvc(api, namespace, name, size="32Mi", access="ReadWriteOnce", data_source=None):
    spec = {"accessModes": [access], "storageClassName": lc_csi.STORAGE_CLASS,
            "resources": {"requests": {"storage": size}}}
    if data_source:
        spec["dataSource"] = {"apiGroup": lc_csi.SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": data_source}
    api.create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
               {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec},
               exist_ok=False)


def _bound_pv(api, namespace, name, timeout=120):
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
    _wait(lambda: api.get(path).get("status", {}).get("phase") == "Bound", f"PVC {name} Bound", timeout)
    return api.get(f"/api/v1/persistentvolumes/{api.get(path)['spec']['volumeName']}")


def _volume_mounts(cfg, volume_file):
    """Host mount points of the loop device backed by this CSI volume file (staging and pod mounts)."""
    devices = {dev for dev, back in lc_storage.our_loop_devices(cfg) if back == str(volume_file)}
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - " in line and line.split(" - ", 1)[1].split()[1] in devices:
                found.append(line.split()[4])
    return found


def _thaw_volume(cfg, volume_file):
    """Best-effort thaw of this test's own volume from the host, with a time limit."""
    for mnt in _volume_mounts(cfg, volume_file):
        try:
            subprocess.run(["fsfreeze", "--unfreeze", mnt], capture_output=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            pass


def _sh(core_v1, namespace, pod, script):
    status, out, err = exec_status(core_v1, namespace, pod, ["sh", "-c", script])
    assert status == {"metadata": {}, "status": "Success"}, (script, status, err)
    return out


def test_stack_is_installed_and_the_driver_registered(cfg, api):
    node = api.get(f"/apis/storage.k8s.io/v1/csinodes/{cfg.node_name}")
    assert [d["nodeID"] for d in node["spec"]["drivers"] if d["name"] == lc_csi.DRIVER] == [cfg.node_name]
    assert api.get(f"/apis/storage.k8s.io/v1/csidrivers/{lc_csi.DRIVER}")["spec"]["attachRequired"] is False
    assert api.get(f"/apis/storage.k8s.io/v1/storageclasses/{lc_csi.STORAGE_CLASS}")["provisioner"] == lc_csi.DRIVER
    klass = api.get(f"{SNAP}/volumesnapshotclasses/{lc_csi.SNAPSHOT_CLASS}")
    assert klass["driver"] == lc_csi.DRIVER
    assert klass["metadata"]["labels"]["velero.io/csi-volumesnapshot-class"] == "true"
    # the sockets are where the kubelet and the sidecars expect them
    for sock in (lc_csi.controller_socket(cfg), lc_csi.node_socket(cfg), lc_csi.registration_socket(cfg)):
        assert Path(sock).is_socket(), sock


@pytest.mark.real_node
def test_snapshot_while_frozen_restores_the_same_bytes(cfg, api, core_v1, namespace, pods):
    # a PVC of the CSI class, mounted by a real pod on the real node, with data written and synced
    _pvc(api, namespace, "source")
    pv = _bound_pv(api, namespace, "source")
    assert pv["spec"]["csi"]["driver"] == lc_csi.DRIVER
    volume_file = cfg.csi_dir / "volumes" / f"{pv['spec']['csi']['volumeHandle']}.img"
    assert volume_file.is_file()  # a loop file under the cluster dir, never a device of the machine
    pods.real_pod("writer", privileged=True, pvc="source", mount_path="/data")
    digest = _sh(core_v1, namespace, "writer",
                 "head -c 1048576 /dev/urandom > /data/blob && echo kept > /data/note && sync && "
                 "sha256sum /data/blob /data/note").split()
    mounts = _volume_mounts(cfg, volume_file)
    assert mounts and set(mounts) <= set(lc_storage.our_loop_mounts(cfg))  # what cleanup thaws/unmounts

    # the snapshot is taken while the filesystem is frozen (as a backup's pre hook does), thawed after
    snapshot = {"apiVersion": f"{lc_csi.SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": "snap"},
                "spec": {"volumeSnapshotClassName": lc_csi.SNAPSHOT_CLASS,
                         "source": {"persistentVolumeClaimName": "source"}}}
    try:
        _sh(core_v1, namespace, "writer", "fsfreeze --freeze /data")
        api.create(f"{SNAP}/namespaces/{namespace}/volumesnapshots", snapshot, exist_ok=False)
        snap_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots/snap"
        _wait(lambda: (api.get(snap_path).get("status") or {}).get("readyToUse"), "VolumeSnapshot readyToUse", 120)
        snap = api.get(snap_path)
    finally:
        try:
            exec_status(core_v1, namespace, "writer", ["fsfreeze", "--unfreeze", "/data"], timeout=15)
        finally:
            _thaw_volume(cfg, volume_file)
    content = api.get(f"{SNAP}/volumesnapshotcontents/{snap['status']['boundVolumeSnapshotContentName']}")
    handle = content["status"]["snapshotHandle"]
    assert (cfg.csi_dir / "snapshots" / f"{handle}.img").is_file()
    assert snap["status"]["restoreSize"] == "32Mi"

    # a new PVC from the snapshot, mounted by another pod, sees the same bytes
    _pvc(api, namespace, "restored", data_source="snap")
    restored = _bound_pv(api, namespace, "restored")
    assert restored["spec"]["csi"]["volumeHandle"] != pv["spec"]["csi"]["volumeHandle"]
    pods.real_pod("reader", pvc="restored", mount_path="/data")
    assert _sh(core_v1, namespace, "reader", "sha256sum /data/blob /data/note").split() == digest
    assert _sh(core_v1, namespace, "reader", "cat /data/note") == "kept\n"

    # deleting the snapshot and the claims deletes their files (DeleteSnapshot, DeleteVolume)
    api.delete(f"{SNAP}/namespaces/{namespace}/volumesnapshots/snap")
    _wait(lambda: not (cfg.csi_dir / "snapshots" / f"{handle}.img").exists(), "snapshot file removed", 60)
    # (the claims go first, while the pods still run: the driver refuses to delete a volume in use,
    # and the provisioner retries until the kubelet has unstaged it)
    for claim in ("source", "restored"):
        api.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    for pod in ("writer", "reader"):
        core_v1.delete_namespaced_pod(pod, namespace)
    for claim, volume in (("source", pv), ("restored", restored)):
        _wait(lambda v=volume: _gone(api, f"/api/v1/persistentvolumes/{v['metadata']['name']}"),
              f"PV of {claim} deleted", 120)
        volume_file = cfg.csi_dir / "volumes" / f"{volume['spec']['csi']['volumeHandle']}.img"
        assert not volume_file.exists()
        assert not _volume_mounts(cfg, volume_file)


def test_driver_refuses_a_multi_node_claim(cfg, api, namespace):
    """The driver serves single-node volumes only: a ReadWriteMany claim stays Pending, and the
    provisioner's event carries the driver's InvalidArgument message."""
    _pvc(api, namespace, "shared", access="ReadWriteMany")

    def refused():
        events = api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        return [e["message"] for e in events if e.get("reason") == "ProvisioningFailed"]

    messages = _wait(refused, "ProvisioningFailed event", 60)
    assert any("only single-node modes" in m for m in messages), messages
    claim = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/shared")
    assert claim["status"]["phase"] == "Pending"


@pytest.mark.real_node
def test_a_volume_in_use_is_not_deleted_under_its_mount(cfg, api, core_v1, namespace, pods):
    """Claim and pod removed at once (the pod forcibly): the PV goes only after the kubelet has
    unstaged the volume, because the driver refuses to delete a volume whose loop device exists
    (FailedPrecondition, retried by the provisioner). Without that, its file went while mounted."""
    _pvc(api, namespace, "busy", size="16Mi")
    pv = _bound_pv(api, namespace, "busy")
    volume_file = cfg.csi_dir / "volumes" / f"{pv['spec']['csi']['volumeHandle']}.img"
    pods.real_pod("user", pvc="busy", mount_path="/data")
    assert _volume_mounts(cfg, volume_file)
    core_v1.delete_namespaced_pod("user", namespace, grace_period_seconds=0)
    api.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/busy")
    _wait(lambda: _gone(api, f"/api/v1/persistentvolumes/{pv['metadata']['name']}"), "PV deleted", 120, 0.1)
    assert not _volume_mounts(cfg, volume_file)
    assert not volume_file.exists()
