# -*- coding: utf-8 -*-
"""Unit tests for _csi_snapshot: the class as Velero chooses it, the plan, the cut and the readiness.

The API is a FAKE (``FakeApi``: claims, PVs, classes and a scripted snapshot controller).  A real
snapshot taken while an application is frozen, a missing class and a snapshot never cut are in
tests/integration/test_csi_snapshot.py; what cannot be made for real there is a snapshot cut but not
ready yet (the local test driver answers readyToUse at the cut), so the order "thaw at the cut, then
wait for readyToUse" and the timeout of a cut snapshot are shown here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot as csi
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._critical import (
    Options,
    ThawState,
    plan_groups,
    run_critical_section,
)

DRIVER = "csi.example.com"


def klass(name, driver=DRIVER, labels=None, annotations=None):
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}, "driver": driver}


# --- choose_class -----------------------------------------------------------------------------

def test_the_claim_annotation_wins_then_the_label_then_the_default_then_the_only_one():
    labelled = klass("labelled", labels={csi.LABEL_CLASS: "true"})
    default = klass("default", annotations={csi.ANNOTATION_DEFAULT_CLASS: "true"})
    other = klass("other")
    assert csi.choose_class(DRIVER, [other, default, labelled], {csi.ANNOTATION_PVC_CLASS: "other"}) == ("other", None)
    assert csi.choose_class(DRIVER, [other, default, labelled]) == ("labelled", None)
    assert csi.choose_class(DRIVER, [other, default]) == ("default", None)
    assert csi.choose_class(DRIVER, [other, klass("x", driver="else")]) == ("other", None)
    # Velero reads the label's presence, not its value
    assert csi.choose_class(DRIVER, [other, klass("l", labels={csi.LABEL_CLASS: ""})]) == ("l", None)


def test_no_class_names_the_driver_and_the_label():
    name, error = csi.choose_class(DRIVER, [klass("x", driver="else")])
    assert name is None
    assert "no VolumeSnapshotClass for CSI driver csi.example.com" in error and "velero.io/csi-volumesnapshot-class=true" in error


def test_several_unlabelled_classes_are_named():
    name, error = csi.choose_class(DRIVER, [klass("b"), klass("a")])
    assert name is None and "2 VolumeSnapshotClasses for CSI driver csi.example.com (a, b)" in error


def test_an_annotation_naming_a_missing_class_or_another_drivers_class_is_an_error():
    labelled = klass("labelled", labels={csi.LABEL_CLASS: "true"})
    assert "which does not exist" in csi.choose_class(DRIVER, [labelled], {csi.ANNOTATION_PVC_CLASS: "gone"})[1]
    assert "for driver else, not csi.example.com" in csi.choose_class(
        DRIVER, [labelled, klass("e", driver="else")], {csi.ANNOTATION_PVC_CLASS: "e"})[1]


def test_label_value_as_velero():
    assert csi.label_value("short") == "short"
    long_name = "b" * 70
    assert len(csi.label_value(long_name)) == 63 and csi.label_value(long_name).startswith("b" * 57)


@pytest.mark.parametrize("text,value", [("32Mi", 32 << 20), ("1Gi", 1 << 30), ("1G", 10 ** 9), ("1048576", 1048576),
                                        ("x", None), (None, None)])
def test_quantity_bytes(text, value):
    assert csi.quantity_bytes(text) == value


# --- the fake API -----------------------------------------------------------------------------

class FakeApi(object):
    """Claims, PVs, classes; VolumeSnapshots that are cut after ``cut_after`` GETs and ready after
    ``ready_after`` GETs (None: never).  ``calls`` records (method, path)."""

    def __init__(self, claims=None, pvs=None, classes=None, cut_after=1, ready_after=1, status_error=None):
        self.claims = claims or {}
        self.pvs = pvs or {}
        self.classes = classes
        self.cut_after, self.ready_after, self.status_error = cut_after, ready_after, status_error
        self.snapshots = {}
        self.retained = []
        self.calls = []
        self.events = []

    def __call__(self, method, path, body=None, query=None, content_type=None):
        self.calls.append((method, path))
        parts = path.strip("/").split("/")
        if path.startswith("/api/v1/namespaces/") and parts[4] == "persistentvolumeclaims":
            return self._found(self.claims, (parts[3], parts[5]))
        if path.startswith("/api/v1/persistentvolumes/"):
            return self._found(self.pvs, parts[3])
        if path == csi.classes_path():
            if self.classes is None:
                raise ApiRequestError(404, "the server could not find the requested resource")
            return {"items": self.classes}
        if "/volumesnapshotcontents/" in path:
            if method == "PATCH":
                assert content_type == csi.MERGE_PATCH and body == {"spec": {"deletionPolicy": "Retain"}}
                self.retained.append(parts[-1])
                return {}
            policy = "Retain" if parts[-1] in self.retained else "Delete"
            return {"spec": {"deletionPolicy": policy}, "status": {"snapshotHandle": "handle-" + parts[-1]}}
        if "/volumesnapshots" in path:
            namespace = parts[4]
            if method == "POST":
                name = body["metadata"]["generateName"] + "x%d" % len(self.snapshots)
                self.snapshots[(namespace, name)] = dict(body, gets=0, metadata=dict(body["metadata"], name=name))
                self.events.append(("create", name, time.monotonic()))
                return self.snapshots[(namespace, name)]
            key = (namespace, parts[-1])
            if method == "DELETE":
                self.snapshots.pop(key)
                self.events.append(("delete", key[1], time.monotonic()))
                return {}
            snap = self._found(self.snapshots, key)
            snap["gets"] += 1
            status = {}
            if self.cut_after is not None and snap["gets"] >= self.cut_after:
                status.update(boundVolumeSnapshotContentName="content-" + key[1],
                              creationTime="2026-11-30T10:00:00Z", readyToUse=False)
                if self.ready_after is not None and snap["gets"] >= self.ready_after:
                    status.update(readyToUse=True, restoreSize="32Mi")
                    self.events.append(("ready", key[1], time.monotonic()))
            if self.status_error:
                status["error"] = {"message": self.status_error}
            return dict(snap, status=status)
        raise AssertionError("unexpected call %s %s" % (method, path))

    @staticmethod
    def _found(store, key):
        if key not in store:
            raise ApiRequestError(404, "not found")
        return store[key]


def claim(name, pv, phase="Bound", annotations=None):
    return {"metadata": {"name": name, "annotations": annotations or {}}, "spec": {"volumeName": pv},
            "status": {"phase": phase}}


def pv(name, driver=DRIVER):
    spec = {"csi": {"driver": driver, "volumeHandle": "h-" + name}} if driver else {"local": {"path": "/x"}}
    return {"metadata": {"name": name}, "spec": spec}


def pod_object(name, claims, namespace="ns"):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"volumes": [{"name": "v-" + c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
                     + [{"name": "tmp", "emptyDir": {}}]}}


# --- plan_snapshots ---------------------------------------------------------------------------

def test_plan_snapshots_csi_claims_skips_others_once_per_claim_fs_copy_wins():
    api = FakeApi(claims={("ns", "a"): claim("a", "pv-a"), ("ns", "b"): claim("b", "pv-b"),
                          ("ns", "local"): claim("local", "pv-l"), ("ns", "pending"): claim("pending", None, "Pending"),
                          ("ns", "fs"): claim("fs", "pv-f")},
                  pvs={"pv-a": pv("pv-a"), "pv-b": pv("pv-b"), "pv-l": pv("pv-l", driver=None), "pv-f": pv("pv-f")},
                  classes=[klass("snap", labels={csi.LABEL_CLASS: "true"})])
    pods = [("ns/p1", pod_object("p1", ["a", "local", "pending", "fs"])), ("ns/p2", pod_object("p2", ["a", "b"])),
            ("ns/gone", None)]
    items, skipped = csi.plan_snapshots(api, pods, {"ns/p1": ["v-fs"]})
    assert [(i["volume"], i["pvc"], i["pv"], i["driver"], i["volume_snapshot_class"], i["error"], i["method"])
            for i in items["ns/p1"]] == [("v-a", "a", "pv-a", DRIVER, "snap", None, "csi-snapshot")]
    assert [i["pvc"] for i in items["ns/p2"]] == ["b"]
    reasons = dict((s["pvc"] if s["pod"] == "p1" else "p2:" + s["pvc"], s["reason"]) for s in skipped)
    assert "pv-l is not a CSI volume" in reasons["local"]
    assert "not bound (phase Pending)" in reasons["pending"]
    assert "file-system copy" in reasons["fs"]
    assert reasons["p2:a"] == "claim a is snapshotted with pod ns/p1"
    assert [c for c in api.calls if c[1] == csi.classes_path()] == [("GET", csi.classes_path())]  # listed once


def test_plan_snapshots_without_a_class_or_without_the_crds_is_a_per_volume_error():
    base = dict(claims={("ns", "a"): claim("a", "pv-a")}, pvs={"pv-a": pv("pv-a")})
    items = csi.plan_snapshots(FakeApi(classes=[], **base), [("ns/p", pod_object("p", ["a"]))])[0]
    [item] = items["ns/p"]
    assert item["error"].startswith("pod ns/p volume v-a (claim a): no VolumeSnapshotClass for CSI driver")
    items = csi.plan_snapshots(FakeApi(classes=None, **base), [("ns/p", pod_object("p", ["a"]))])[0]
    assert "the VolumeSnapshot API is not installed" in items["ns/p"][0]["error"]


def test_plan_snapshots_a_claim_that_cannot_be_read_is_a_per_volume_error():
    items = csi.plan_snapshots(FakeApi(classes=[]), [("ns/p", pod_object("p", ["missing"]))])[0]
    assert "get claim ns/missing" in items["ns/p"][0]["error"] and "404" in items["ns/p"][0]["error"]


# --- cut_snapshots and wait_ready ---------------------------------------------------------------

ITEM = dict(volume="v-a", pvc="a", kind="persistentVolumeClaim", method="csi-snapshot", driver=DRIVER, pv="pv-a",
            volume_snapshot_class="snap", error=None)


def test_cut_creates_a_labelled_snapshot_and_returns_at_the_cut_before_ready():
    api = FakeApi(cut_after=2, ready_after=4)
    [entry] = csi.cut_snapshots(api, [("ns", "p", ITEM)], "b" * 70, time.monotonic() + 5, sleep=lambda s: None)
    assert entry["status"] == "cut" and entry["ready_to_use"] is False
    assert entry["volume_snapshot"].startswith("velero-a-") and entry["volume_snapshot_content"].startswith("content-")
    snap = api.snapshots[("ns", entry["volume_snapshot"])]
    assert snap["metadata"]["labels"] == {"velero.io/backup-name": csi.label_value("b" * 70)}
    assert snap["spec"] == {"volumeSnapshotClassName": "snap", "source": {"persistentVolumeClaimName": "a"}}
    csi.wait_ready(api, [entry], 5, sleep=lambda s: None)
    assert entry["status"] == "succeeded" and entry["ready_to_use"] is True and entry["restore_size"] == 32 << 20
    assert entry["snapshot_handle"] == "handle-" + entry["volume_snapshot_content"]
    assert entry["deletion_policy"] == "Retain" and entry["class_deletion_policy"] == "Delete"
    assert api.retained == [entry["volume_snapshot_content"]]
    assert entry["error"] is None and entry["bytes"] == 0


def test_a_snapshot_not_cut_in_time_is_deleted_and_fails_with_the_controllers_error():
    api = FakeApi(cut_after=None, status_error="failed to get snapshotter credentials")
    clock = iter(range(100)).__next__
    [entry] = csi.cut_snapshots(api, [("ns", "p", ITEM)], "b1", 3, clock=clock, sleep=lambda s: None)
    assert entry["status"] == "failed" and "was not cut" in entry["error"]
    assert "failed to get snapshotter credentials" in entry["error"] and "it was deleted" in entry["error"]
    assert entry["error"].startswith("pod ns/p volume v-a: ")
    assert api.snapshots == {}


def test_an_item_with_an_error_or_a_refused_create_fails_without_a_snapshot():
    class Refusing(FakeApi):
        def __call__(self, method, path, body=None, query=None, content_type=None):
            if method == "POST":
                raise ApiRequestError(403, "forbidden")
            return FakeApi.__call__(self, method, path, body, query, content_type)
    bad = dict(ITEM, error="pod ns/p volume v-a (claim a): no VolumeSnapshotClass")
    entries = csi.cut_snapshots(Refusing(), [("ns", "p", bad), ("ns", "p", ITEM)], "b1", time.monotonic() + 1)
    assert [e["status"] for e in entries] == ["failed", "failed"]
    assert entries[0]["error"] == bad["error"]
    assert "Forbidden" in entries[1]["error"] and "create on volumesnapshots.snapshot.storage.k8s.io" in entries[1]["error"]


def test_a_cut_snapshot_never_ready_fails_after_the_timeout_and_is_kept():
    api = FakeApi(cut_after=1, ready_after=None)
    [entry] = csi.cut_snapshots(api, [("ns", "p", ITEM)], "b1", time.monotonic() + 5, sleep=lambda s: None)
    now = iter([entry["created_at"] + t for t in (1, 2, 7, 8)]).__next__
    csi.wait_ready(api, [entry], 5, now=now, sleep=lambda s: None)
    assert entry["status"] == "failed"
    assert "was cut but not readyToUse within csi_snapshot_timeout=5s" in entry["error"]
    assert ("ns", entry["volume_snapshot"]) in api.snapshots


# --- in the critical section: the thaw comes at the cut, readiness after it ----------------------

def test_the_post_hooks_run_at_the_cut_and_ready_is_awaited_after_the_thaw(tmp_path):
    api = FakeApi(cut_after=3, ready_after=8)
    events = api.events

    def fake_exec(api_client, namespace, pod_name, container, argv, timeout, output_cap=None):
        events.append((argv[0], pod_name, time.monotonic()))
        return dict(status="succeeded", exit_code=0, duration=0.0)

    def capture(group, deadline):
        jobs = [("ns", "p", ITEM)]
        entries = csi.cut_snapshots(api, jobs, "b1", time.monotonic() + 5, sleep=lambda s: None)
        events.append(("cut", "p", time.monotonic()))
        return entries

    hook = dict(source="annotation", name="h", container="app", on_error="Fail", timeout=30, index=0)
    plan = [dict(namespace="ns", name="p", phase="Running", pre=[dict(hook, command=["freeze"])],
                 post=[dict(hook, command=["thaw"])], errors=[])]
    groups = plan_groups(plan, volumes_by_pod={"ns/p": [ITEM]})
    marks = ThawState(str(tmp_path / "state.jsonl")).create()
    result = run_critical_section(groups, object, capture, Options(), marks, exec_fn=fake_exec)
    csi.wait_ready(api, result["volumes"], 5, sleep=lambda s: None)
    order = [e[0] for e in events]
    assert order == ["freeze", "create", "cut", "thaw", "ready"], order
    assert result["volumes"][0]["status"] == "succeeded"


# --- Velero's files -----------------------------------------------------------------------------

def test_velero_documents_hold_the_objects_and_the_volume_info():
    api = FakeApi(cut_after=1, ready_after=1, classes=[klass("snap"), klass("other")])
    entries = csi.cut_snapshots(api, [("ns", "p", ITEM), ("ns", "p", dict(ITEM, pvc="b", error="no class"))], "b1",
                                time.monotonic() + 5, sleep=lambda s: None)
    csi.wait_ready(api, entries, 5, sleep=lambda s: None)
    skipped = [dict(namespace="ns", pod="p", volume="l", pvc="local", method="csi-snapshot", reason="not CSI")]
    docs, problems = csi.velero_documents(api, entries, skipped)
    assert problems == []
    assert [o["metadata"]["name"] for o in docs["csi_volumesnapshots"]] == [entries[0]["volume_snapshot"]]
    assert [o["status"]["snapshotHandle"] for o in docs["csi_volumesnapshotcontents"]] == [entries[0]["snapshot_handle"]]
    assert [o["metadata"]["name"] for o in docs["csi_volumesnapshotclasses"]] == ["snap"]
    ok, failed, skip = docs["volumeinfo"]
    assert ok["backupMethod"] == "CSISnapshot" and ok["result"] == "succeeded" and ok["pvName"] == "pv-a"
    assert ok["csiSnapshotInfo"] == {"snapshotHandle": entries[0]["snapshot_handle"], "size": 32 << 20,
                                     "driver": DRIVER, "vscName": entries[0]["volume_snapshot_content"],
                                     "operationID": "", "readyToUse": True}
    assert ok["startTimestamp"].endswith("Z") and "completionTimestamp" in ok
    assert failed["result"] == "failed" and failed["pvcName"] == "b"
    assert skip == {"pvcName": "local", "pvcNamespace": "ns", "backupMethod": "", "snapshotDataMoved": False,
                    "skipped": True, "skippedReason": "not CSI", "preserveLocalSnapshot": False}


def test_archive_items_as_velero_adds_them():
    api = FakeApi(cut_after=1, ready_after=1, classes=[klass("snap"), klass("other")])
    entries = csi.cut_snapshots(api, [("ns", "p", ITEM), ("ns", "p", dict(ITEM, pvc="b", error="no class"))], "b1",
                                time.monotonic() + 5, sleep=lambda s: None)
    csi.wait_ready(api, entries, 5, sleep=lambda s: None)
    problems = []
    items = list(csi.archive_items(api, entries, problems))
    assert [item[0] for item in items] == [csi.SNAPSHOTS, csi.CONTENTS, csi.CLASSES] and problems == []
    annotations = items[0][1]["metadata"]["annotations"]
    assert annotations[csi.ANNOTATION_HANDLE] == entries[0]["snapshot_handle"]
    assert annotations[csi.ANNOTATION_DRIVER] == DRIVER
    assert annotations[csi.ANNOTATION_VSC_DELETION_POLICY] == "Delete"  # the class's, kept as Velero keeps it
    api.snapshots.clear()  # gone since: a problem, not an exception
    assert list(csi.archive_items(api, entries, problems)) == []
    assert "VolumeSnapshot ns/velero-a-x0 or its content" in problems[0]


# --- restore --------------------------------------------------------------------------------------

def test_restore_sources_are_the_ready_snapshots_with_a_handle():
    ok = dict(namespace="ns", pvc="a", method="csi-snapshot", status="succeeded", snapshot_handle="h",
              volume_snapshot="velero-a-1")
    entries = [ok, dict(ok, pvc="b", status="failed"), dict(ok, pvc="c", snapshot_handle=None),
               dict(ok, pvc="d", method="fs-copy")]
    assert csi.restore_sources(entries) == {("ns", "a"): ok}


def test_claim_from_snapshot_and_the_preprovisioned_objects():
    entry = dict(namespace="ns", pvc="a", volume_snapshot="velero-a-1", snapshot_handle="h", driver=DRIVER,
                 volume_snapshot_class="snap")
    claim = {"spec": {"volumeName": "pv-1", "dataSourceRef": {"kind": "x"}, "resources": {}}}
    assert csi.claim_from_snapshot(claim, entry)["spec"] == {
        "resources": {}, "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                        "name": "velero-a-1"}}
    content, snap = csi.preprovisioned(entry, "other", "r1", {"l": "v"})
    assert content["metadata"]["name"] == csi.content_name(entry, "other", "r1") != csi.content_name(entry, "ns", "r1")
    assert content["spec"] == {"deletionPolicy": "Retain", "driver": DRIVER, "source": {"snapshotHandle": "h"},
                               "volumeSnapshotClassName": "snap",
                               "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1",
                                                     "kind": "VolumeSnapshot", "namespace": "other",
                                                     "name": "velero-a-1"}}
    assert snap["metadata"] == {"name": "velero-a-1", "namespace": "other", "labels": {"l": "v"}}
    assert snap["spec"] == {"source": {"volumeSnapshotContentName": content["metadata"]["name"]},
                            "volumeSnapshotClassName": "snap"}


# ---------------------------------------------------------------------------------------------
# Deleting a backup's snapshots (velero backup delete).  The API is a FAKE ``call`` only because no
# cluster was available when this was written; the real deletion (the driver's snapshot file removed)
# is tests/integration/test_csi_snapshot.py::test_backup_delete_deletes_the_csi_snapshots.

SNAP_PATH = "/apis/snapshot.storage.k8s.io/v1/namespaces/db/volumesnapshots/velero-data-abcde"
CONTENT_PATH = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/snapcontent-1"


class DeleteApi(object):
    """Records every call; ``objects`` {path: object} answer GET and DELETE (absent: 404); ``fail``
    {(method, path): ApiRequestError}."""

    def __init__(self, objects=None, fail=None):
        self.calls, self.objects, self.fail = [], dict(objects or {}), dict(fail or {})

    def __call__(self, method, path, body=None, query=None, content_type=None):
        self.calls.append((method, path, body, content_type))
        if (method, path) in self.fail:
            raise self.fail[(method, path)]
        if path not in self.objects:
            raise ApiRequestError(404, "not found")
        if method == "DELETE":
            return self.objects.pop(path)
        return self.objects[path]


def owned_entry(**extra):
    item = dict(volume="data", pvc="data", driver=DRIVER, pv="pv-1", volume_snapshot_class="csi-class")
    fields = dict(volume_snapshot="velero-data-abcde", volume_snapshot_content="snapcontent-1")
    fields.update(extra)
    return csi.entry("db", "app-0", item, "succeeded", **fields)


def own_snapshot(backup="b1"):
    return {"metadata": {"name": "velero-data-abcde", "namespace": "db", "labels": {csi.LABEL_BACKUP_NAME: backup}}}


def test_delete_sets_the_policy_back_to_delete_then_deletes_the_snapshot_then_the_content():
    api = DeleteApi({SNAP_PATH: own_snapshot(), CONTENT_PATH: {"spec": {"deletionPolicy": "Retain"}}})
    out = csi.delete_snapshots(api, [owned_entry(), dict(method="fs-copy", volume="x")], "b1")
    assert out == [dict(namespace="db", name="velero-data-abcde", content="snapcontent-1", outcome="deleted",
                        error=None)]
    assert [(m, p) for m, p, _b, _c in api.calls] == [
        ("PATCH", CONTENT_PATH), ("GET", SNAP_PATH), ("DELETE", SNAP_PATH), ("DELETE", CONTENT_PATH)]
    assert api.calls[0][2:] == ({"spec": {"deletionPolicy": "Delete"}}, csi.MERGE_PATCH)


def test_delete_of_snapshots_already_gone_is_fine():
    api = DeleteApi()  # everything answers 404
    out = csi.delete_snapshots(api, [owned_entry()], "b1")
    assert [(o["outcome"], o["error"]) for o in out] == [("already gone", None)]
    assert [m for m, _p, _b, _c in api.calls] == ["PATCH", "GET", "DELETE"]
    # the snapshot gone (its namespace deleted), the Retain content left: the content is deleted
    api = DeleteApi({CONTENT_PATH: {"spec": {"deletionPolicy": "Retain"}}})
    assert csi.delete_snapshots(api, [owned_entry()], "b1")[0]["outcome"] == "deleted"
    assert [(m, p) for m, p, _b, _c in api.calls] == [("PATCH", CONTENT_PATH), ("GET", SNAP_PATH),
                                                      ("DELETE", CONTENT_PATH)]


def test_delete_leaves_a_snapshot_of_the_same_name_that_is_not_the_backups():
    """A restore into the same namespace re-creates a VolumeSnapshot of the backup's name: not ours."""
    api = DeleteApi({SNAP_PATH: own_snapshot("restored-by-someone"), CONTENT_PATH: {}})
    assert csi.delete_snapshots(api, [owned_entry()], "b1")[0]["outcome"] == "deleted"
    assert ("DELETE", SNAP_PATH) not in [(m, p) for m, p, _b, _c in api.calls]
    assert SNAP_PATH in api.objects and CONTENT_PATH not in api.objects


def test_a_snapshot_that_cannot_be_deleted_is_a_clear_failure_naming_it():
    api = DeleteApi({SNAP_PATH: own_snapshot(), CONTENT_PATH: {}},
                    fail={("DELETE", SNAP_PATH): ApiRequestError(403, "forbidden", b'{"message": "no delete"}')})
    other = owned_entry(volume_snapshot="velero-data-zzzzz", volume_snapshot_content="snapcontent-2")
    out = csi.delete_snapshots(api, [owned_entry(), other], "b1")
    assert out[0]["outcome"] == "failed"
    assert "VolumeSnapshot db/velero-data-abcde (content snapcontent-1): Forbidden" in out[0]["error"]
    assert "delete on volumesnapshots.snapshot.storage.k8s.io" in out[0]["error"] and "no delete" in out[0]["error"]
    assert CONTENT_PATH in api.objects  # not deleted after the failure
    assert out[1]["outcome"] != "failed"  # the others are still tried
    unreachable = DeleteApi(fail={("PATCH", CONTENT_PATH): ApiRequestError(0, "connection refused")})
    out = csi.delete_snapshots(unreachable, [owned_entry()], "b1")
    assert out[0]["outcome"] == "failed" and "connection refused" in out[0]["error"]
    assert len(unreachable.calls) == 1


def test_delete_in_check_mode_calls_nothing():
    def call(*args, **kwargs):
        raise AssertionError("check mode called the API: %r" % (args,))

    out = csi.delete_snapshots(call, [owned_entry()], "b1", check_mode=True)
    assert [o["outcome"] for o in out] == ["would delete"]


def test_only_entries_naming_a_snapshot_are_owned():
    never_created = owned_entry(volume_snapshot=None, volume_snapshot_content=None)
    no_content = owned_entry(volume_snapshot_content=None)  # deleted at the cut (not cut in time)
    assert csi.owned_snapshots([never_created, no_content, dict(method="fs-copy")]) == [no_content]
    api = DeleteApi({SNAP_PATH: own_snapshot()})
    assert csi.delete_snapshots(api, [no_content], "b1")[0]["outcome"] == "deleted"
    assert [(m, p) for m, p, _b, _c in api.calls] == [("GET", SNAP_PATH), ("DELETE", SNAP_PATH)]
