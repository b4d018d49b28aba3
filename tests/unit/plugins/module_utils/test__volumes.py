# -*- coding: utf-8 -*-
"""Unit tests for the volume selection (Velero's backup-volumes / -excludes semantics) and the volumes index."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import json
import os
import stat

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import (
    ANNOTATION_BACKUP_VOLUMES,
    ANNOTATION_EXCLUDE_VOLUMES,
    read_volumes_index,
    safe_path_part,
    select_volumes,
    volume_totals,
    write_volumes_index,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._layout import volume_archive, volumes_index


def make_pod(volumes, containers=None, annotations=None, phase="Running", running=None, init_containers=None,
             deleting=False, node="node-1"):
    containers = containers if containers is not None else [
        {"name": "app", "volumeMounts": [{"name": v["name"], "mountPath": "/mnt/" + v["name"]} for v in volumes]}]
    names = [c["name"] for c in containers] + [c["name"] for c in init_containers or []]
    running = names if running is None else running
    statuses = [{"name": n, "state": {"running": {}} if n in running else {"waiting": {"reason": "CrashLoopBackOff"}}}
                for n in names]
    meta = {"name": "p", "namespace": "ns", "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {"containers": containers, "volumes": volumes}
    if node:
        spec["nodeName"] = node
    if init_containers:
        spec["initContainers"] = init_containers
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "containerStatuses": statuses}}


PVC = {"name": "data", "persistentVolumeClaim": {"claimName": "claim-1"}}
EMPTY = {"name": "scratch", "emptyDir": {}}
HOST = {"name": "host", "hostPath": {"path": "/var/log"}}
SECRET = {"name": "creds", "secret": {"secretName": "s"}}
CONFIG = {"name": "conf", "configMap": {"name": "c"}}
TOKEN = {"name": "kube-api-access-x1y2z", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
DOWNWARD = {"name": "podinfo", "downwardAPI": {"items": []}}
NFS = {"name": "share", "nfs": {"server": "s", "path": "/"}}
LEGACY_TOKEN = {"name": "default-token-abcde", "emptyDir": {}}
ALL = [PVC, EMPTY, HOST, SECRET, CONFIG, TOKEN, DOWNWARD, NFS, LEGACY_TOKEN]


def names(items):
    return [i["volume"] for i in items]


def reasons(skipped):
    return dict((s["volume"], s["reason"]) for s in skipped)


# --- opt-in (default_volumes_to_fs_backup false, Velero's default) -------------------------------

def test_opt_in_nothing_without_annotation():
    assert select_volumes(make_pod(ALL)) == ([], [])


def test_opt_in_selects_named_volumes_in_annotation_order():
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: "scratch,data"})
    selected, skipped = select_volumes(pod)
    assert selected == [
        dict(volume="scratch", pvc=None, kind="emptyDir", container="app", mount_path="/mnt/scratch", error=None),
        dict(volume="data", pvc="claim-1", kind="persistentVolumeClaim", container="app", mount_path="/mnt/data",
             error=None),
    ]
    assert skipped == []


def test_opt_in_ignores_excludes_annotation_like_velero():
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: "data", ANNOTATION_EXCLUDE_VOLUMES: "data"})
    assert names(select_volumes(pod)[0]) == ["data"]


def test_opt_in_named_api_state_volumes_are_skipped_with_reason():
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: "host,creds,conf,kube-api-access-x1y2z,podinfo,share"})
    selected, skipped = select_volumes(pod)
    assert selected == []
    why = reasons(skipped)
    assert "hostPath" in why["host"] and "Secret" in why["creds"] and "ConfigMap" in why["conf"]
    assert "projected" in why["kube-api-access-x1y2z"] and "downwardAPI" in why["podinfo"]
    assert "nfs is not supported by the fs-copy method" in why["share"]


@pytest.mark.parametrize("value, volume, fragment", [
    ("data,nope", "nope", "no volume named 'nope' in the pod"),
    ("data, scratch", " scratch", "surrounding spaces"),
    ("data,", "", "empty volume name"),
    ("data,,scratch", "", "empty volume name"),
])
def test_opt_in_bad_names_are_per_volume_errors(value, volume, fragment):
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: value})
    selected, _skipped = select_volumes(pod)
    bad = [s for s in selected if s["error"]]
    assert [b["volume"] for b in bad] == [volume]
    assert fragment in bad[0]["error"] and "pod ns/p" in bad[0]["error"]
    assert bad[0]["container"] is None and bad[0]["mount_path"] is None
    assert "data" in [s["volume"] for s in selected if not s["error"]]


def test_opt_in_duplicate_names_selected_once():
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: "data,data"})
    assert names(select_volumes(pod)[0]) == ["data"]


# --- opt-out (default_volumes_to_fs_backup true) -------------------------------------------------

def test_opt_out_selects_every_pvc_and_emptydir_and_skips_the_rest():
    selected, skipped = select_volumes(make_pod(ALL), default_volumes_to_fs_backup=True)
    assert names(selected) == ["data", "scratch"]
    why = reasons(skipped)
    assert sorted(why) == sorted(["host", "creds", "conf", "kube-api-access-x1y2z", "podinfo", "share",
                                  "default-token-abcde"])
    assert "service-account token" in why["default-token-abcde"]


def test_opt_out_excludes_annotation():
    pod = make_pod(ALL, annotations={ANNOTATION_EXCLUDE_VOLUMES: "scratch,not-a-volume"})
    selected, skipped = select_volumes(pod, default_volumes_to_fs_backup=True)
    assert names(selected) == ["data"]
    assert "opted out" in reasons(skipped)["scratch"]


def test_opt_out_ignores_backup_volumes_annotation():
    pod = make_pod(ALL, annotations={ANNOTATION_BACKUP_VOLUMES: "nope"})
    assert names(select_volumes(pod, default_volumes_to_fs_backup=True)[0]) == ["data", "scratch"]


# --- mounts and pod state ----------------------------------------------------------------------

def test_volume_mounted_nowhere_is_an_error_in_both_modes():
    pod = make_pod([PVC, EMPTY], containers=[{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                   annotations={ANNOTATION_BACKUP_VOLUMES: "data,scratch"})
    for default in (False, True):
        selected, _skipped = select_volumes(pod, default_volumes_to_fs_backup=default)
        by = dict((s["volume"], s) for s in selected)
        assert by["data"]["error"] is None and by["data"]["mount_path"] == "/d"
        assert "mounted by no container" in by["scratch"]["error"]


def test_prefers_a_running_container_with_the_whole_volume():
    containers = [
        {"name": "sub", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "part"}]},
        {"name": "dead", "volumeMounts": [{"name": "data", "mountPath": "/y"}]},
        {"name": "live", "volumeMounts": [{"name": "data", "mountPath": "/z", "readOnly": True}]},
    ]
    pod = make_pod([PVC], containers=containers, running=["sub", "live"],
                   annotations={ANNOTATION_BACKUP_VOLUMES: "data"})
    (item,), _skipped = select_volumes(pod)
    assert (item["container"], item["mount_path"], item["error"]) == ("live", "/z", None)


def test_only_stopped_or_subpath_mounts_are_errors():
    containers = [{"name": "dead", "volumeMounts": [{"name": "data", "mountPath": "/y"}]}]
    pod = make_pod([PVC], containers=containers, running=[], annotations={ANNOTATION_BACKUP_VOLUMES: "data"})
    (item,), _skipped = select_volumes(pod)
    assert "not running: dead (waiting: CrashLoopBackOff)" in item["error"]
    containers = [{"name": "sub", "volumeMounts": [{"name": "data", "mountPath": "/y", "subPathExpr": "$(X)"}]}]
    pod = make_pod([PVC], containers=containers, annotations={ANNOTATION_BACKUP_VOLUMES: "data"})
    (item,), _skipped = select_volumes(pod)
    assert "only through subPath" in item["error"]


def test_native_sidecar_mount_counts():
    sidecar = {"name": "side", "restartPolicy": "Always", "volumeMounts": [{"name": "data", "mountPath": "/s"}]}
    plain_init = {"name": "init", "volumeMounts": [{"name": "data", "mountPath": "/i"}]}
    pod = make_pod([PVC], containers=[{"name": "app"}], init_containers=[plain_init, sidecar],
                   annotations={ANNOTATION_BACKUP_VOLUMES: "data"})
    (item,), _skipped = select_volumes(pod)
    assert (item["container"], item["mount_path"]) == ("side", "/s")


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(phase="Pending"), "not running (phase Pending)"),
    (dict(phase="Succeeded"), "not running (phase Succeeded)"),
    (dict(node=None), "not scheduled"),
    (dict(deleting=True), "being deleted"),
])
def test_pod_not_running_skips_its_volumes_like_velero(kwargs, fragment):
    pod = make_pod([PVC, EMPTY], annotations={ANNOTATION_BACKUP_VOLUMES: "data,scratch"}, **kwargs)
    selected, skipped = select_volumes(pod)
    assert selected == []
    assert [s["volume"] for s in skipped] == ["data", "scratch"]
    assert all(fragment in s["reason"] for s in skipped)


def test_block_volume_skipped():
    containers = [{"name": "app", "volumeDevices": [{"name": "data", "devicePath": "/dev/xvda"}]}]
    pod = make_pod([PVC], containers=containers, annotations={ANNOTATION_BACKUP_VOLUMES: "data"})
    selected, skipped = select_volumes(pod)
    assert selected == [] and "block volume" in skipped[0]["reason"]


def test_paths_and_safe_parts():
    assert volume_archive("/b", "bk", "ns", "p", "v") == "/b/bk-volumes/ns/p/v.tar.gz"
    assert volumes_index("/b", "bk") == "/b/bk-volumes.json.gz"
    assert safe_path_part("data-1")
    for bad in ("", ".", "..", "a/b", None, "a\0b"):
        assert not safe_path_part(bad)


# --- the volumes index and its totals ---------------------------------------------------------

def _entry(volume, status, size=0, files=0):
    return dict(namespace="ns", pod="p", volume=volume, pvc=None, method="fs-copy", status=status, bytes=size,
                files=files, sha256="x" if status == "succeeded" else None, error=None if status == "succeeded"
                else "pod ns/p: no volume named %r" % volume,
                path="bk-volumes/ns/p/%s.tar.gz" % volume if status == "succeeded" else None)


def test_index_round_trip_atomic_private(tmp_path):
    entries = [_entry("a", "succeeded", 5, 2), _entry("b", "failed")]
    path = str(tmp_path / "bk-volumes.json.gz")
    assert read_volumes_index(path) == []
    write_volumes_index(path, entries)
    assert read_volumes_index(path) == entries
    assert json.loads(gzip.open(path).read()) == entries
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(str(tmp_path))) == ["bk-volumes.json.gz"]
    assert volume_totals(entries) == dict(volumes=2, succeeded=1, failed=1, bytes=5, files=2)
    assert volume_totals([]) == dict(volumes=0, succeeded=0, failed=0, bytes=0, files=0)


def test_index_errors(tmp_path):
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(KubehooksError, match="not valid JSON"):
        read_volumes_index(str(bad))
    bad.write_bytes(gzip.compress(b'{"a": 1}'))
    with pytest.raises(KubehooksError, match="not a list"):
        read_volumes_index(str(bad))
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(KubehooksError, match="cannot write the volumes index"):
        write_volumes_index(str(blocker / "x.json.gz"), [])


def test_volume_totals_count_csi_snapshots_attempted_and_completed():
    entries = [dict(method="csi-snapshot", status="succeeded", volume_snapshot="velero-a-1"),
               dict(method="csi-snapshot", status="failed", volume_snapshot="velero-b-1"),
               dict(method="csi-snapshot", status="failed", volume_snapshot=None),  # no class: never attempted
               dict(method="fs-copy", status="succeeded", bytes=3, files=1)]
    totals = volume_totals(entries)
    assert totals == dict(volumes=4, succeeded=2, failed=2, bytes=3, files=1, csi_snapshots=2,
                          csi_snapshots_completed=1)
