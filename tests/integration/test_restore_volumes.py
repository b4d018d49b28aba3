"""Volume data on restore, against the real node: a deployment whose claim holds files of several
owners, modes and kinds is captured by the real capture (backup_capture), exported, deleted with its
data, and restored - into the same namespace (the Released PV given back) and into a mapped one (a
fresh pool PV) - and every file's sha256, owner and mode come back before the pod starts.  A corrupted
archive of one of two claims is reported by name and the other claim is restored."""
import json
import os
import subprocess
import time
import uuid

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._exec import exec_hook

from localcluster import storage as lc_storage
from fstree import tree
from modrun import admin_api as api
from modrun import run_module
from modrun import wait_for as wait
from test_restore import delete_namespace, deployment_available, get_or_none, shipped_role_rules

pytestmark = pytest.mark.real_node

FILL = r"""
set -e
cd "$1"
find . -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
mkdir -p sub/deeper
printf 'hello\n' > hello.txt
: > empty
printf 'spaced\n' > 'with space.txt'
head -c 3000000 /dev/urandom > big.bin
seq 1 20000 > sub/deeper/numbers.txt
ln -s hello.txt link-to-hello
printf '%s\n' "$2" > "marker-$2"
chown 1234:5678 sub/deeper/numbers.txt
chmod 0640 sub/deeper/numbers.txt
chown 33:33 sub
chmod 0750 sub
sync
"""


def auth(cluster):
    return {"kubeconfig": cluster.kubeconfig}


def restored_into(path, before):
    """Every backed-up entry is in the volume as it was (a reused pool PV may hold older files besides)."""
    after = tree(path)
    assert {k: after.get(k) for k in before} == before


def fill(path):
    marker = uuid.uuid4().hex[:8]
    subprocess.run(["sh", "-c", FILL, "sh", path, marker], check=True)
    return marker


def host_path_of(namespace, claim):
    name = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (namespace, claim))["spec"]["volumeName"]
    return api().get("/api/v1/persistentvolumes/%s" % name)["spec"]["local"]["path"]


def make_app(cluster, namespace, name, claim):
    """A one-replica deployment mounting ``claim`` at /data, its volume opted in for the capture."""
    api().create("/apis/apps/v1/namespaces/%s/deployments" % namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name},
                                           "annotations": {"backup.velero.io/backup-volumes": "data"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": cluster.node_name},
                                       "terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "main", "image": cluster.node_image,
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "command": ["sleep", "infinity"],
                                                       "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                       "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}}})


def take_backup(cluster, namespace, storage, name="b1"):
    bdir = os.path.join(storage, "c1", "backups", name)
    plan = run_module("pod_hooks_info", dict(auth(cluster), included_namespaces=[namespace]))
    assert not plan.get("failed"), plan
    captured = run_module("backup_capture", dict(auth(cluster), plan=plan["pods"], name=name, backup_dir=bdir))
    assert not captured.get("failed"), captured
    assert all(v["status"] == "succeeded" for v in captured["volumes"]), captured["volumes"]
    exported = run_module("resource_export", dict(auth(cluster), name=name, storage_dir=storage, cluster="c1",
                                                  included_namespaces=[namespace]))
    assert not exported.get("failed"), exported
    return bdir, captured["volumes"]


def restore(cluster, storage, name, check_mode=False, **kwargs):
    args = dict(auth(cluster), backup="b1", storage_dir=storage, cluster="c1", name=name,
                volume_helper_image=cluster.node_image, volume_helper_timeout=120)
    args.update(kwargs)
    return run_module("restore_resources", args, check_mode=check_mode, timeout=600)


def wipe_from_pod(api_client, namespace, app):
    """Empty the app's volume from inside its pod: once the namespace is gone its Released PV may be
    recycled for another test's claim at once, so it is not touched from the host then."""
    listed = api().get("/api/v1/namespaces/%s/pods?labelSelector=app%%3D%s" % (namespace, app))["items"]
    pod = listed[0]["metadata"]["name"]
    wiped = exec_hook(api_client, namespace, pod, "main", ["find", "/data", "-mindepth", "1", "-maxdepth", "1", "!",
                                                           "-name", "lost+found", "-exec", "rm", "-rf", "{}", "+"], 30)
    assert wiped["status"] == "succeeded", wiped


def helpers_left(namespace):
    return [p["metadata"]["name"] for p in api().get("/api/v1/namespaces/%s/pods" % namespace)["items"]
            if "kubehooks.backup/restore-helper" in (p["metadata"].get("labels") or {})]


def test_data_comes_back_byte_for_byte_in_the_same_and_in_a_mapped_namespace(
        cluster, namespace, pvc, tmp_path, api_client):
    storage = str(tmp_path / "storage")
    _claim, path = pvc("data")
    fill(path)
    before = tree(path)
    make_app(cluster, namespace, "app", "data")
    wait(lambda: deployment_available(namespace, "app"), 120, "deployment app Available")
    take_backup(cluster, namespace, storage)

    # 1. Mapped namespace while the original runs: the claim binds to a fresh pool PV, wiped first.
    copy = namespace + "-copy"
    lc_storage.recycle_released(api())   # a free pool PV for the mapped claim
    try:
        plan = restore(cluster, storage, "plan", check_mode=True, namespace_mappings={namespace: copy})
        assert [(v["target_namespace"], v["pvc"], v["status"]) for v in plan["volumes"]] == [(copy, "data", "planned")]
        assert plan["volumes"][0]["archive"].endswith("b1-volumes/%s/%s/data.tar.gz" % (namespace, plan["volumes"][0]["pod"]))
        assert get_or_none("/api/v1/namespaces/%s" % copy) is None
        started = time.monotonic()
        mapped = restore(cluster, storage, "r-copy", namespace_mappings={namespace: copy})
        assert mapped["phase"] == "Completed", mapped["error_messages"]
        (volume,) = mapped["volumes"]
        assert volume["status"] == "succeeded" and volume["written_files"] == volume["files"], volume
        wait(lambda: deployment_available(copy, "app"), 120, "mapped deployment Available")
        print("mapped restore with data: %.1fs" % (time.monotonic() - started))
        restored_into(host_path_of(copy, "data"), before)
        assert helpers_left(copy) == []
    finally:
        delete_namespace(copy)

    # 2. Same namespace: delete it and its data, restore: the Released PV comes back with the files.
    #    The data is wiped from inside the pod first: once the namespace is gone, its Released PV may be
    #    recycled for another test's claim at once (then the restored claim binds to another pool PV).
    wipe_from_pod(api_client, namespace, "app")
    assert tree(path) == {}
    delete_namespace(namespace)
    result = restore(cluster, storage, "r-same")
    assert result["phase"] == "Completed", result["error_messages"]
    assert [v["status"] for v in result["volumes"]] == ["succeeded"], result["volumes"]
    wait(lambda: deployment_available(namespace, "app"), 120, "restored deployment Available")
    restored_path = host_path_of(namespace, "data")
    assert tree(restored_path) == before
    rdir = os.path.join(storage, "c1", "restores", "r-same")
    record = json.load(open(os.path.join(rdir, "velero-restore.json")))
    progress = record["status"]["progress"]
    assert progress["volumeBytesRestored"] == progress["volumeBytesTotal"] > 3000000, progress


def test_a_corrupted_archive_is_that_volumes_error_and_the_other_volume_is_restored(cluster, namespace, pvc,
                                                                                    tmp_path, api_client):
    storage = str(tmp_path / "storage")
    paths, markers = {}, {}
    for claim in ("good", "bad"):
        _name, paths[claim] = pvc(claim)
        markers[claim] = fill(paths[claim])
        make_app(cluster, namespace, claim, claim)
    before = tree(paths["good"])
    for claim in ("good", "bad"):
        wait(lambda: deployment_available(namespace, claim), 120, "deployment %s Available" % claim)
    bdir, volumes = take_backup(cluster, namespace, storage)
    bad = next(v for v in volumes if v["pvc"] == "bad")
    archive = os.path.join(bdir, bad["path"])
    with open(archive, "r+b") as handle:    # one byte flipped in the middle of the archive
        handle.seek(os.path.getsize(archive) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    for claim in ("good", "bad"):
        wipe_from_pod(api_client, namespace, claim)
    delete_namespace(namespace)

    result = restore(cluster, storage, "r-bad")
    assert result["phase"] == "PartiallyFailed", result
    by_claim = {v["pvc"]: v for v in result["volumes"]}
    assert by_claim["good"]["status"] == "succeeded", by_claim
    assert by_claim["bad"]["status"] == "failed"
    error = by_claim["bad"]["error"]
    assert "checksum mismatch" in error and "claim %s/bad" % namespace in error and "nothing written" in error, error
    assert [m for m in result["error_messages"] if "claim %s/bad" % namespace in m] == [error], result["error_messages"]
    wait(lambda: deployment_available(namespace, "good"), 120, "deployment good Available")
    restored_into(host_path_of(namespace, "good"), before)
    assert "marker-" + markers["bad"] not in tree(host_path_of(namespace, "bad"))   # nothing written into it
    assert helpers_left(namespace) == []


def test_volume_data_under_the_shipped_least_privilege_role(cluster, namespace, pvc, tmp_path, api_client, sa_token):
    """The helper pod (create, pods/exec, delete) under exactly files/rbac/restore.yml's Role: the claim and
    its deployment are deleted, the namespace kept; the Released PV is pre-bound to the claim by the admin
    (what the restore does with cluster rights), so that no other test can take it meanwhile."""
    storage = str(tmp_path / "storage")
    _claim, path = pvc("data")
    fill(path)
    before = tree(path)
    make_app(cluster, namespace, "app", "data")
    wait(lambda: deployment_available(namespace, "app"), 120, "deployment app Available")
    take_backup(cluster, namespace, storage)
    wipe_from_pod(api_client, namespace, "app")
    volume_name = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % namespace)["spec"]["volumeName"]
    api().delete("/apis/apps/v1/namespaces/%s/deployments/app" % namespace)
    wait(lambda: not api().get("/api/v1/namespaces/%s/pods" % namespace)["items"], 60, "the app's pods to go")
    api().delete("/api/v1/namespaces/%s/persistentvolumeclaims/data" % namespace)
    wait(lambda: api().get("/api/v1/persistentvolumes/%s" % volume_name)["status"]["phase"] == "Released", 60,
         "the PV to be Released")
    api().patch("/api/v1/persistentvolumes/%s" % volume_name,
                {"spec": {"claimRef": {"uid": None, "resourceVersion": None}}})
    creds = sa_token(namespace, shipped_role_rules())
    result = run_module("restore_resources", {
        "host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"], "backup": "b1",
        "storage_dir": storage, "cluster": "c1", "name": "least", "included_namespaces": [namespace],
        "include_cluster_resources": False, "volume_helper_image": cluster.node_image,
        "volume_helper_timeout": 120}, timeout=300)
    assert result["phase"] == "Completed", result.get("error_messages") or result
    assert [v["status"] for v in result["volumes"]] == ["succeeded"], result["volumes"]
    assert tree(path) == before
    wait(lambda: deployment_available(namespace, "app"), 120, "restored deployment Available")
    assert helpers_left(namespace) == []
