"""CSI snapshots in a backup (backup_capture snapshot_volumes) on the real node: the local cluster's real
snapshot-controller, csi-snapshotter and csi-provisioner around the project's test CSI driver, a real
application on a CSI-provisioned claim, frozen and thawed with fsfreeze hooks.

The application appends one numbered, timestamped line every 20 ms and syncs; a write issued during the
freeze blocks until the thaw.  The snapshot must hold exactly what was written before the freeze (a byte
prefix of the live file), none of the blocked write, and the pods must be thawed as soon as the snapshot
is cut."""
import gzip
import json
import os
import time

import pytest
from modrun import auth_args, run_module
from test_csi import SNAP, _bound_pv, _gone, _pvc, _sh, _thaw_volume, _wait
from test_role_create import archive_members, backup_dir_of, load, log_entries, output, run_create
import test_least_privilege
from test_least_privilege import shipped, token_auth

from ansible_collections.kubehooks.backup.plugins.module_utils import _record
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import read_volumes_index
from localcluster import config as lc_config
from localcluster import csi as lc_csi
from localcluster.api import Api, ApiError

pytestmark = pytest.mark.real_node

cluster_role = test_least_privilege.cluster_role  # the fixture, for the tests here

WRITER = ("i=0; while true; do i=$((i+1)); echo \"$i $(date +%s.%N)\" >> /data/log; "
          "sync /data/log 2>/dev/null || sync; sleep 0.02; done")
HOOKS = {"pre.hook.backup.velero.io/container": "main",
         "pre.hook.backup.velero.io/command": '["/sbin/fsfreeze", "--freeze", "/data"]',
         "post.hook.backup.velero.io/container": "main",
         "post.hook.backup.velero.io/command": '["/sbin/fsfreeze", "--unfreeze", "/data"]'}


@pytest.fixture(scope="module")
def cfg(cluster):
    cfg = lc_config.load()
    if not cfg.csi:
        pytest.fail("KUBEHOOKS_CSI=0: the CSI stack is off, but these tests need it", pytrace=False)
    return cfg


@pytest.fixture
def api(cfg):
    return Api.admin(cfg, timeout=30)


@pytest.fixture
def app(cfg, api, namespace, pods):
    """``make(claim_annotations=None)``: a CSI claim ``data`` and the writer pod ``app`` with fsfreeze hooks.

    Cleanup thaws the claim's volume from the host (with a time limit), whatever the test did."""
    made = []

    def make(claim_annotations=None):
        _pvc(api, namespace, "data")
        if claim_annotations:
            api.patch(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data",
                      {"metadata": {"annotations": claim_annotations}})
        pv = _bound_pv(api, namespace, "data")
        made.append(cfg.csi_dir / "volumes" / f"{pv['spec']['csi']['volumeHandle']}.img")
        pods.real_pod("app", command=("sh", "-c", WRITER), privileged=True, pvc="data", mount_path="/data",
                      annotations=HOOKS)
        return pv
    yield make
    for volume_file in made:
        _thaw_volume(cfg, volume_file)
    drop_snapshots(api, namespace)


def drop_snapshots(api, namespace):
    """The backups keep their snapshots (contents set to Retain, as Velero): delete this test's, files included."""
    try:
        for snap in api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots")["items"]:
            api.delete(f"{SNAP}/namespaces/{namespace}/volumesnapshots/{snap['metadata']['name']}")
    except ApiError:
        pass
    for content in api.get(f"{SNAP}/volumesnapshotcontents")["items"]:
        if (content["spec"].get("volumeSnapshotRef") or {}).get("namespace", "").startswith(namespace):
            path = f"{SNAP}/volumesnapshotcontents/{content['metadata']['name']}"
            try:
                api.patch(path, {"spec": {"deletionPolicy": "Delete"}})
                api.delete(path)
            except ApiError:
                pass  # gone meanwhile


def plan_of(cluster, namespace):
    result = run_module("pod_hooks_info", dict(auth_args(cluster), included_namespaces=[namespace]))
    assert not result.get("failed") and not result["errors"], result
    return result["pods"]


def capture(cluster, namespace, bdir, auth=None, **extra):
    args = dict(auth or auth_args(cluster), plan=plan_of(cluster, namespace), name="snap1", backup_dir=str(bdir),
                snapshot_volumes=True)
    args.update(extra)
    return run_module("backup_capture", args)


def read_gz(path):
    with gzip.open(path, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def lines(text):
    return [line.split() for line in text.splitlines()]


def test_snapshot_cut_while_frozen_and_thawed_at_the_cut(cfg, api, cluster, core_v1, namespace, pods, app, tmp_path):
    app()
    time.sleep(0.5)  # some lines before the freeze
    result = capture(cluster, namespace, tmp_path)
    assert not result.get("failed"), result
    assert [h["status"] for h in result["hooks"]] == ["succeeded", "succeeded"], result["hooks"]
    [entry] = result["volumes"]
    assert entry["method"] == "csi-snapshot" and entry["status"] == "succeeded", entry
    assert entry["pvc"] == "data" and entry["driver"] == lc_csi.DRIVER
    assert entry["volume_snapshot_class"] == lc_csi.SNAPSHOT_CLASS and entry["snapshot_handle"]
    assert entry["volume_snapshot"].startswith("velero-data-") and entry["restore_size"] == 32 << 20
    assert read_volumes_index(str(tmp_path / "snap1-volumes.json.gz")) == result["volumes"]
    # Velero's files: the VolumeSnapshot, its content and class as the API shows them, the volume info
    velero = dict((part, read_gz(tmp_path / f"snap1-{part}.json.gz")) for part in (
        "csi-volumesnapshots", "csi-volumesnapshotcontents", "csi-volumesnapshotclasses", "volumeinfo"))
    assert [o["metadata"]["name"] for o in velero["csi-volumesnapshots"]] == [entry["volume_snapshot"]]
    assert [o["status"]["snapshotHandle"] for o in velero["csi-volumesnapshotcontents"]] == [entry["snapshot_handle"]]
    assert [o["metadata"]["name"] for o in velero["csi-volumesnapshotclasses"]] == [lc_csi.SNAPSHOT_CLASS]
    [info] = velero["volumeinfo"]
    assert info["backupMethod"] == "CSISnapshot" and info["pvcName"] == "data" and info["result"] == "succeeded"
    assert info["csiSnapshotInfo"]["snapshotHandle"] == entry["snapshot_handle"]
    assert result["velero_file_problems"] == []
    [group] = result["groups"]
    # the freeze window ends at the cut: the snapshot was created after the freeze began and the thaw
    # (the controller claiming the pod's post hooks, in the thaw state) came after the cut; readyToUse
    # was seen after the cut (the driver here is ready at the cut, so the unit tests show that the thaw
    # does not wait for readyToUse)
    with open(tmp_path / "snap1-thaw-state.jsonl") as handle:
        events = [json.loads(line) for line in handle]
    [claimed] = [e["time"] for e in events if e.get("event") == "claimed" and e.get("by") == "controller"]
    assert group["started"] <= entry["created_at"] <= entry["cut_at"] <= claimed <= group["ended"], (group, entry)
    assert entry["ready_at"] >= entry["cut_at"]
    snap = api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots/{entry['volume_snapshot']}")
    assert snap["metadata"]["labels"]["velero.io/backup-name"] == "snap1"
    assert snap["status"]["readyToUse"] is True

    # the application went on after the thaw; a claim from the snapshot holds exactly the file at the cut
    time.sleep(0.3)
    live = _sh(core_v1, namespace, "app", "cat /data/log")
    _pvc(api, namespace, "restored", data_source=entry["volume_snapshot"])
    _bound_pv(api, namespace, "restored")
    pods.real_pod("reader", pvc="restored", mount_path="/data")
    restored = _sh(core_v1, namespace, "reader", "cat /data/log")
    assert restored and live.startswith(restored), "the snapshot is not a byte prefix of the live file"
    kept, after = lines(restored), lines(live)[len(lines(restored)):]
    assert [int(line[0]) for line in kept] == list(range(1, len(kept) + 1))  # gapless, every line whole
    # the next write was issued while the pod was frozen (it blocked until the thaw) and is not in
    # the snapshot; every write issued before the freeze is
    assert after and group["started"] - 0.5 < float(after[0][1]) < group["ended"], (after[:2], group)
    assert float(kept[-1][1]) < group["ended"]


def test_a_missing_volume_snapshot_class_is_a_per_volume_error(cfg, api, cluster, namespace, app, tmp_path):
    app(claim_annotations={"velero.io/csi-volumesnapshot-class": "no-such-class"})
    result = capture(cluster, namespace, tmp_path)
    assert not result.get("failed"), result
    [entry] = result["volumes"]
    assert entry["status"] == "failed" and entry["method"] == "csi-snapshot"
    assert "VolumeSnapshotClass no-such-class, which does not exist" in entry["error"], entry
    assert f"pod {namespace}/app volume data" in entry["error"]
    # found before anything was frozen: no snapshot exists, and the hooks still ran (freeze, thaw)
    assert api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots")["items"] == []
    assert [h["status"] for h in result["hooks"]] == ["succeeded", "succeeded"]


def test_a_snapshot_that_is_never_cut_times_out_with_the_pods_thawed(cfg, api, cluster, core_v1, namespace, app,
                                                                     tmp_path):
    """The fault, made for real: a class whose snapshotter secret does not exist, so the csi-snapshotter
    never cuts the snapshot (the content keeps an error)."""
    klass = f"kh-never-{namespace[-6:]}"
    api.create(f"{SNAP}/volumesnapshotclasses", {
        "apiVersion": f"{lc_csi.SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": klass},
        "driver": lc_csi.DRIVER, "deletionPolicy": "Delete",
        "parameters": {"csi.storage.k8s.io/snapshotter-secret-name": "missing",
                       "csi.storage.k8s.io/snapshotter-secret-namespace": namespace}}, exist_ok=False)
    try:
        app(claim_annotations={"velero.io/csi-volumesnapshot-class": klass})
        started = time.monotonic()
        result = capture(cluster, namespace, tmp_path, csi_snapshot_timeout=3)
        took = time.monotonic() - started
        assert not result.get("failed"), result
        [entry] = result["volumes"]
        assert entry["status"] == "failed" and "was not cut" in entry["error"], entry
        assert [h["status"] for h in result["hooks"]] == ["succeeded", "succeeded"]
        [group] = result["groups"]
        assert 3 <= group["freeze_window_seconds"] < 6, group
        assert took < 30, took
        # thawed: a write completes at once
        _sh(core_v1, namespace, "app", "timeout 5 sh -c 'echo after >> /data/after && sync'")
        # the snapshot taken too late was deleted
        _wait(lambda: api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots")["items"] == [],
              "the VolumeSnapshot deleted", 60)
    finally:
        try:
            api.delete(f"{SNAP}/volumesnapshotclasses/{klass}")
        except ApiError:
            pass


def test_a_local_volume_is_skipped_with_a_note(cluster, namespace, pods, pvc, tmp_path):
    claim = pvc("local")[0]
    pods.real_pod("app", pvc=claim, privileged=True, annotations=HOOKS)
    result = capture(cluster, namespace, tmp_path)
    assert not result.get("failed"), result
    assert result["volumes"] == [] and result["volume_totals"]["failed"] == 0
    [note] = result["volumes_skipped"]
    assert note["pvc"] == "local" and "is not a CSI volume" in note["reason"], note
    assert json.dumps(result["hooks"])  # the pod was still frozen and thawed


def test_snapshots_under_exactly_the_shipped_rbac(api, cluster, namespace, app, sa_token, cluster_role, tmp_path):
    app()
    creds = sa_token(namespace, shipped("Role")["rules"])
    cluster_role(creds)
    result = capture(cluster, namespace, tmp_path, auth=token_auth(creds))
    assert not result.get("failed"), result
    [entry] = result["volumes"]
    assert entry["status"] == "succeeded" and entry["snapshot_handle"], entry
    assert [h["status"] for h in result["hooks"]] == ["succeeded", "succeeded"]


def test_the_role_records_the_snapshot_and_exports_the_volume_snapshot(cluster, namespace, app, tmp_path):
    """Through the role (ansible-playbook): the record counts the snapshot as Velero does, the log names it,
    the archive holds the VolumeSnapshot, and the backup is Completed."""
    app()
    proc = run_create(cluster, tmp_path / "storage", "rolesnap", included_namespaces=[namespace],
                      csi_snapshot_timeout=60)
    assert proc.returncode == 0, output(proc)
    bdir = backup_dir_of(tmp_path / "storage", "rolesnap")
    status = load(bdir)["status"]
    assert status["phase"] == "Completed", status
    assert status["csiVolumeSnapshotsAttempted"] == 1 and status["csiVolumeSnapshotsCompleted"] == 1
    [entry] = read_volumes_index(f"{bdir}/rolesnap-volumes.json.gz")
    assert entry["method"] == "csi-snapshot" and entry["status"] == "succeeded"
    messages = [e["msg"] for e in log_entries(bdir, "rolesnap")]
    assert f"Created VolumeSnapshot {namespace}/{entry['volume_snapshot']} of claim data (pod app), ready to use" \
        in messages
    # the archive holds what Velero's CSI actions add: the VolumeSnapshot (annotated with the handle and
    # the driver, which Velero's restore reads), its content and its class
    members = archive_members(bdir, "rolesnap")
    snap = json.loads(members[f"resources/volumesnapshots.snapshot.storage.k8s.io/namespaces/{namespace}/"
                              f"{entry['volume_snapshot']}.json"])
    assert snap["metadata"]["annotations"]["velero.io/csi-volumesnapshot-handle"] == entry["snapshot_handle"]
    assert snap["metadata"]["annotations"]["velero.io/csi-driver-name"] == lc_csi.DRIVER
    content = json.loads(members[f"resources/volumesnapshotcontents.snapshot.storage.k8s.io/cluster/"
                                 f"{entry['volume_snapshot_content']}.json"])
    assert content["status"]["snapshotHandle"] == entry["snapshot_handle"]
    assert f"resources/volumesnapshotclasses.snapshot.storage.k8s.io/cluster/{lc_csi.SNAPSHOT_CLASS}.json" in members


def test_a_deleted_namespace_is_restored_with_its_claim_from_the_snapshot(cfg, api, cluster, core_v1, namespace, pods,
                                                                          app, tmp_path):
    """Velero's CSI restore: the claim comes back with the snapshot as its dataSource, the VolumeSnapshot
    re-created from the handle (a content of its own, Retain), before the pods; the data is the snapshot's."""
    app()
    time.sleep(0.5)
    storage = tmp_path / "storage"
    proc = run_create(cluster, storage, "drsnap", included_namespaces=[namespace])
    assert proc.returncode == 0, output(proc)
    bdir = backup_dir_of(storage, "drsnap")
    assert load(bdir)["status"]["phase"] == "Completed"
    [entry] = read_volumes_index(f"{bdir}/drsnap-volumes.json.gz")
    content = api.get(f"{SNAP}/volumesnapshotcontents/{entry['volume_snapshot_content']}")
    assert content["spec"]["deletionPolicy"] == "Retain" and entry["class_deletion_policy"] == "Delete"
    seen = _sh(core_v1, namespace, "app", "cat /data/log")  # after the backup: holds the snapshot's lines

    api.delete(f"/api/v1/namespaces/{namespace}")
    _wait(lambda: _gone(api, f"/api/v1/namespaces/{namespace}"), "namespace deleted", 180)
    assert (cfg.csi_dir / "snapshots" / f"{entry['snapshot_handle']}.img").is_file()  # Retain: the data stayed

    cluster_dir = os.path.basename(os.path.dirname(os.path.dirname(bdir)))
    result = run_module("restore_resources", {"kubeconfig": cluster.kubeconfig, "backup": "drsnap",
                                              "storage_dir": str(storage), "cluster": cluster_dir, "name": "r1",
                                              "excluded_resources": ["pods"]}, timeout=600)
    assert not result.get("failed"), result
    assert result["phase"] == "Completed", result["error_messages"]
    claim = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data")
    assert claim["spec"]["dataSource"] == {"apiGroup": lc_csi.SNAPSHOT_GROUP, "kind": "VolumeSnapshot",
                                           "name": entry["volume_snapshot"]}
    snap = api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots/{entry['volume_snapshot']}")
    restored_content = api.get(f"{SNAP}/volumesnapshotcontents/{snap['spec']['source']['volumeSnapshotContentName']}")
    assert restored_content["spec"]["source"]["snapshotHandle"] == entry["snapshot_handle"]
    assert restored_content["spec"]["deletionPolicy"] == "Retain"
    _bound_pv(api, namespace, "data")
    pods.real_pod("reader", pvc="data", mount_path="/data")
    restored = _sh(core_v1, namespace, "reader", "cat /data/log")
    assert restored and seen.startswith(restored), "the restored volume is not the snapshot's byte prefix"
    kept = lines(restored)
    assert [int(line[0]) for line in kept] == list(range(1, len(kept) + 1))


def test_backup_delete_deletes_the_csi_snapshots(cfg, api, cluster, namespace, app, tmp_path):
    """kubehooks.backup.backup_delete as velero backup delete: the backup's VolumeSnapshot and its content (Retain
    since the backup) are deleted, the CSI driver deletes the snapshot itself, then the directory; check mode
    changes nothing."""
    app()
    bdir = tmp_path / "snap1"
    bdir.mkdir(mode=0o700)
    result = capture(cluster, namespace, bdir)
    assert not result.get("failed"), result
    [entry] = result["volumes"]
    assert entry["status"] == "succeeded" and entry["deletion_policy"] == "Retain", entry
    assert result["watchdog"]["acted"] is False  # stood down: nothing writes into the directory any more
    snap_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots/{entry['volume_snapshot']}"
    content_path = f"{SNAP}/volumesnapshotcontents/{entry['volume_snapshot_content']}"
    snapshot_file = cfg.csi_dir / "snapshots" / f"{entry['snapshot_handle']}.img"
    assert snapshot_file.is_file()
    record = _record.new_record("snap1")  # the record the role writes at the end (backup_capture writes none)
    record["status"]["phase"] = _record.PHASE_COMPLETED
    _record.write_record(str(bdir), record)
    args = dict(auth_args(cluster), name="snap1", backup_dir=str(bdir))

    check = run_module("backup_delete", args, check_mode=True)
    assert not check.get("failed"), check
    assert [s["outcome"] for s in check["deleted"][0]["snapshots"]] == ["would delete"]
    assert api.get(content_path)["spec"]["deletionPolicy"] == "Retain" and not _gone(api, snap_path)
    assert bdir.is_dir() and snapshot_file.is_file()

    result = run_module("backup_delete", args)
    assert not result.get("failed"), result
    assert result["deleted"][0]["snapshots"] == [dict(namespace=namespace, name=entry["volume_snapshot"],
                                                      content=entry["volume_snapshot_content"], outcome="deleted",
                                                      error=None)]
    assert not bdir.exists()
    _wait(lambda: _gone(api, snap_path) and _gone(api, content_path), "VolumeSnapshot and content deleted", 60)
    _wait(lambda: not snapshot_file.exists(), "the driver deleted the snapshot file", 60)
