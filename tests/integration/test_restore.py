"""Restore against the real local cluster: back up a walkthrough-like namespace (deployment + PVC +
service + configmap + secret), delete it, restore it, and see the deployment Available again with the
same objects; restore into a mapped namespace while the original runs; the existing-resource policy
both ways; a truncated archive; check mode; memory and progress over 200 and 2,000 objects."""
import gzip
import json
import os
import shutil
import uuid

import pytest

from localcluster.api import ApiError
from modrun import admin_api as api
from modrun import run_module
from modrun import wait_for as wait

pytestmark = pytest.mark.real_node


def get_or_none(path):
    try:
        return api().get(path)
    except ApiError:
        return None


def deployment_available(namespace, name="web"):
    dep = get_or_none("/apis/apps/v1/namespaces/%s/deployments/%s" % (namespace, name)) or {}
    return any(c.get("type") == "Available" and c.get("status") == "True"
               for c in (dep.get("status") or {}).get("conditions") or [])


def delete_namespace(name, timeout=120):
    try:
        api().delete("/api/v1/namespaces/%s" % name)
    except ApiError:
        return
    wait(lambda: get_or_none("/api/v1/namespaces/%s" % name) is None, timeout, "namespace %s to go" % name)


def make_workload(namespace, cluster, claim):
    a = api()
    base = "/api/v1/namespaces/%s" % namespace
    a.create(base + "/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                    "data": {"greeting": "hello", "n": "1"}})
    a.create(base + "/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                                 "type": "Opaque", "stringData": {"password": "s3cret"}})
    a.create(base + "/services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}})
    a.create("/apis/apps/v1/namespaces/%s/deployments" % namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": cluster.node_name},
                                       "terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "main", "image": cluster.node_image,
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "command": ["sleep", "infinity"],
                                                       "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                       "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}}})
    wait(lambda: deployment_available(namespace), 120, "deployment web Available")


def backup(cluster, namespace, storage, name):
    result = run_module("resource_export", {"kubeconfig": cluster.kubeconfig, "name": name, "storage_dir": storage,
                                            "cluster": "c1", "included_namespaces": [namespace]})
    assert not result.get("failed"), result
    assert result["counts"].get("persistentvolumes") == 1, result["counts"]   # the claim's PV came along
    return result


def restore(cluster, storage, backup_name, check_mode=False, **kwargs):
    args = {"kubeconfig": cluster.kubeconfig, "backup": backup_name, "storage_dir": storage, "cluster": "c1"}
    args.update(kwargs)
    return run_module("restore_resources", args, check_mode=check_mode, timeout=600)


def cleaned(obj):
    """What must survive a restore: the user's fields, without server-set metadata, status and restore labels."""
    obj = json.loads(json.dumps(obj))
    metadata = obj.get("metadata") or {}
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "namespace",
                "annotations", "ownerReferences"):
        metadata.pop(key, None)
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if not k.startswith("velero.io/")}
    metadata["labels"] = labels
    obj.pop("status", None)
    spec = obj.get("spec") or {}
    spec.pop("clusterIP", None)
    spec.pop("clusterIPs", None)
    return obj


def objects(namespace):
    base = "/api/v1/namespaces/%s" % namespace
    return {
        "configmap": cleaned(api().get(base + "/configmaps/cfg")),
        "secret": cleaned(api().get(base + "/secrets/creds")),
        "service": cleaned(api().get(base + "/services/web")),
        "deployment": cleaned(api().get("/apis/apps/v1/namespaces/%s/deployments/web" % namespace)),
        "pvc_spec": {k: v for k, v in api().get(base + "/persistentvolumeclaims/data")["spec"].items()
                     if k != "volumeName"},
    }


def read_gz_json(path):
    with gzip.open(path) as handle:
        return json.loads(handle.read())


@pytest.fixture
def workload(cluster, namespace, pvc):
    claim, _path = pvc("data")
    make_workload(namespace, cluster, claim)
    return namespace


def test_round_trip_deleted_namespace_comes_back_available_with_the_same_objects(cluster, workload, tmp_path):
    storage = str(tmp_path / "storage")
    before = objects(workload)
    volume = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % workload)["spec"]["volumeName"]
    backup(cluster, workload, storage, "b1")
    delete_namespace(workload)

    result = restore(cluster, storage, "b1", name="r1")
    assert not result.get("failed"), result
    assert result["phase"] == "Completed", result["error_messages"]
    assert result["outcomes"]["failed"] == 0 and result["outcomes"]["created"] >= 7
    wait(lambda: deployment_available(workload), 180, "restored deployment Available")
    after = objects(workload)
    for kind in before:
        assert after[kind] == before[kind], kind

    def bound_claim():
        claim = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % workload)
        return claim if claim.get("status", {}).get("phase") == "Bound" else None
    claim = wait(bound_claim, 90, "claim Bound")
    rdir = os.path.join(storage, "c1", "restores", "r1")
    listing = read_gz_json(os.path.join(rdir, "restore-r1-resource-list.json.gz"))
    pv_outcome = listing["v1/PersistentVolume"][0]
    if pv_outcome == "%s(updated)" % volume:      # the Released PV given back to its claim
        assert claim["spec"]["volumeName"] == volume
    assert "%s/cfg(created)" % workload in listing["v1/ConfigMap"]
    assert "%s/web(created)" % workload in listing["apps/v1/Deployment"]
    record = json.load(open(os.path.join(rdir, "velero-restore.json")))
    assert record["kind"] == "Restore" and record["status"]["phase"] == "Completed"
    assert record["status"]["progress"]["itemsRestored"] == record["status"]["progress"]["totalItems"] > 0
    assert read_gz_json(os.path.join(rdir, "restore-r1-results.gz"))["errors"] == {}
    with gzip.open(os.path.join(rdir, "restore-r1-logs.gz")) as handle:
        log = [json.loads(line) for line in handle.read().decode().splitlines()]
    assert any("Restored" in e.get("msg", "") and e.get("restore") == "velero/r1" for e in log)
    assert oct(os.stat(rdir).st_mode & 0o777) == "0o700"
    restored_cm = api().get("/api/v1/namespaces/%s/configmaps/cfg" % workload)
    assert restored_cm["metadata"]["labels"] == {"velero.io/backup-name": "b1", "velero.io/restore-name": "r1"}

    shown = run_module("restore_info", {"storage_dir": storage, "cluster": "c1", "name": "r1", "details": True})
    assert shown["restore"]["status"] == "Completed" and shown["resource_list"]["v1/ConfigMap"]


def test_mapped_namespace_while_the_original_runs(cluster, workload, tmp_path):
    storage = str(tmp_path / "storage")
    volume = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % workload)["spec"]["volumeName"]
    backup(cluster, workload, storage, "b1")
    copy = "%s-copy" % workload[:50]
    try:
        result = restore(cluster, storage, "b1", name="to-copy", namespace_mappings={workload: copy})
        assert not result.get("failed"), result
        assert result["phase"] == "Completed", result["error_messages"]
        assert any("bound to claim %s/data" % workload in w for w in result["warning_messages"])
        claim = api().get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % copy)
        assert claim["spec"].get("volumeName") != volume
        assert api().get("/api/v1/namespaces/%s/configmaps/cfg" % copy)["data"] == {"greeting": "hello", "n": "1"}
        assert deployment_available(workload)                      # the original is untouched
        assert api().get("/api/v1/persistentvolumes/%s" % volume)["spec"]["claimRef"]["namespace"] == workload
    finally:
        delete_namespace(copy)


def test_existing_resource_policy_none_and_update(cluster, workload, tmp_path):
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "b1")
    api().patch("/api/v1/namespaces/%s/configmaps/cfg" % workload, {"data": {"greeting": "changed"}})

    kept = restore(cluster, storage, "b1", name="keep", included_namespaces=[workload])
    assert kept["phase"] == "Completed" and kept["outcomes"]["created"] == 0
    assert any("ConfigMap 'cfg' already exists" in w for w in kept["warning_messages"]), kept["warning_messages"]
    assert api().get("/api/v1/namespaces/%s/configmaps/cfg" % workload)["data"]["greeting"] == "changed"

    updated = restore(cluster, storage, "b1", name="update", included_namespaces=[workload],
                      existing_resource_policy="update")
    assert updated["outcomes"]["updated"] >= 1
    cm = api().get("/api/v1/namespaces/%s/configmaps/cfg" % workload)
    assert cm["data"] == {"greeting": "hello", "n": "1"}
    assert cm["metadata"]["labels"]["velero.io/restore-name"] == "update"
    listing = read_gz_json(os.path.join(storage, "c1", "restores", "update", "restore-update-resource-list.json.gz"))
    assert "%s/cfg(updated)" % workload in listing["v1/ConfigMap"]
    assert deployment_available(workload)


def test_check_mode_is_the_plan_and_creates_nothing(cluster, workload, tmp_path):
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "b1")
    target = "kh-plan-%s" % uuid.uuid4().hex[:6]
    result = restore(cluster, storage, "b1", check_mode=True, name="plan", namespace_mappings={workload: target})
    assert result["phase"] == "New" and not result.get("failed"), result
    plan = result["plan"]
    kinds = [p["group_resource"] for p in plan if p["group_resource"] != "namespaces"]
    order = ["persistentvolumes", "persistentvolumeclaims", "serviceaccounts", "secrets", "configmaps", "pods",
             "replicasets.apps", "services", "deployments.apps"]
    assert [k for k in order if k in kinds] == sorted(set(kinds) & set(order), key=order.index)
    assert all(p["target_namespace"] == target for p in plan if p["namespace"])
    assert {p["outcome"] for p in plan if p["group_resource"] == "configmaps"} == {"create"}
    assert get_or_none("/api/v1/namespaces/%s" % target) is None
    assert not os.path.exists(os.path.join(storage, "c1", "restores", "plan"))


def test_truncated_archive_is_a_clear_error_and_creates_nothing(cluster, workload, tmp_path):
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "b1")
    archive = os.path.join(storage, "c1", "backups", "b1", "b1.tar.gz")
    data = open(archive, "rb").read()
    with open(archive, "wb") as handle:
        handle.write(data[:len(data) // 2])
    target = "kh-trunc-%s" % uuid.uuid4().hex[:6]
    result = restore(cluster, storage, "b1", name="broken", namespace_mappings={workload: target})
    assert result.get("failed") and "truncated or malformed" in result["msg"], result
    assert "Traceback" not in result["msg"]
    assert get_or_none("/api/v1/namespaces/%s" % target) is None
    record = json.load(open(os.path.join(storage, "c1", "restores", "broken", "velero-restore.json")))
    assert record["status"]["phase"] == "Failed" and "truncated" in record["status"]["failureReason"]


@pytest.mark.parametrize("option, value, message", [
    ("volume_parallelism", 0, "volume_parallelism must be a whole number of at least 1, got 0"),
    ("volume_helper_timeout", 0, "volume_helper_timeout must be a positive number of seconds, got 0"),
])
def test_invalid_volume_options_are_refused_before_anything_is_created(cluster, workload, tmp_path, option, value,
                                                                       message):
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "b1")
    target = "kh-opt-%s" % uuid.uuid4().hex[:6]
    result = restore(cluster, storage, "b1", name="bad-option", namespace_mappings={workload: target},
                     **{option: value})
    assert result.get("failed") and message in result["msg"], result
    assert "Traceback" not in result["msg"]
    assert get_or_none("/api/v1/namespaces/%s" % target) is None


def configmaps_backup(cluster, namespace, storage, count, name, start=0):
    a = api()
    for i in range(start, start + count):
        a.create("/api/v1/namespaces/%s/configmaps" % namespace,
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-%05d" % i},
                  "data": {"payload": "x" * 512}})
    result = run_module("resource_export", {"kubeconfig": cluster.kubeconfig, "name": name, "storage_dir": storage,
                                            "cluster": "c1", "included_namespaces": [namespace],
                                            "included_resources": ["configmaps"]})
    assert result["counts"]["configmaps"] >= count
    return result


def test_restore_memory_is_flat_from_200_to_2000_objects_and_reports_progress(cluster, namespace, tmp_path):
    storage = str(tmp_path / "storage")
    configmaps_backup(cluster, namespace, storage, 200, "small")
    configmaps_backup(cluster, namespace, storage, 1800, "big", start=200)   # the namespace now holds 2,000 (+ kube-root-ca)
    peaks = {}
    targets = []
    try:
        for name in ("small", "big"):
            target = "kh-mem-%s-%s" % (name, uuid.uuid4().hex[:6])
            targets.append(target)
            result = restore(cluster, storage, name, name="r-" + name, namespace_mappings={namespace: target})
            assert result["phase"] == "Completed", result["error_messages"][:5]
            peaks[name] = (result["peak_rss_kib"], result["outcomes"]["created"])
            record = result["record"]
            assert record["status"]["progress"]["itemsRestored"] == record["status"]["progress"]["totalItems"]
            rdir = result["restore_dir"]
            with gzip.open(os.path.join(rdir, "restore-r-%s-logs.gz" % name)) as handle:
                progress = [json.loads(line) for line in handle.read().decode().splitlines()
                            if '"progress"' in line]
            assert len(progress) >= peaks[name][1]
        assert peaks["small"][1] >= 200 and peaks["big"][1] >= 2000
        ratio = peaks["big"][0] / float(peaks["small"][0])
        print("restore peak RSS: 200 objects %d KiB, 2000 objects %d KiB, ratio %.3f"
              % (peaks["small"][0], peaks["big"][0], ratio))
        assert ratio < 1.10, peaks
    finally:
        for target in targets:
            try:
                api().delete("/api/v1/namespaces/%s" % target)
            except ApiError:
                pass


def test_backup_of_the_earlier_release_layout_still_restores(cluster, workload, tmp_path):
    """Today's layout without the PV and with 0644 entries (the earlier writer) restores too."""
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "old")
    bdir = os.path.join(storage, "c1", "backups", "old")
    import tarfile
    source = os.path.join(bdir, "old.tar.gz")
    rewritten = source + ".new"
    with tarfile.open(source, "r:gz") as tar, tarfile.open(rewritten, "w:gz") as out:
        for member in tar.getmembers():
            if member.name.startswith("resources/persistentvolumes/"):
                continue
            data = tar.extractfile(member).read()
            member.mode = 0o644
            import io
            out.addfile(member, io.BytesIO(data))
    shutil.move(rewritten, source)
    target = "kh-old-%s" % uuid.uuid4().hex[:6]
    try:
        result = restore(cluster, storage, "old", name="from-old", included_namespaces=[workload],
                         namespace_mappings={workload: target},
                         excluded_resources=["pods", "replicasets", "deployments"])
        assert result["phase"] == "Completed", result["error_messages"]
        assert api().get("/api/v1/namespaces/%s/configmaps/cfg" % target)["data"]["greeting"] == "hello"
    finally:
        delete_namespace(target)


def shipped_role_rules():
    import yaml
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "files", "rbac", "restore.yml")) as handle:
        shipped = yaml.safe_load(handle)
    assert shipped["kind"] == "List"
    return [d for d in shipped["items"] if d["kind"] == "Role"][0]["rules"]


def test_namespace_restore_runs_under_the_shipped_least_privilege_role(cluster, workload, tmp_path, sa_token):
    storage = str(tmp_path / "storage")
    backup(cluster, workload, storage, "b1")
    for path in ("configmaps/cfg", "secrets/creds", "services/web"):
        api().delete("/api/v1/namespaces/%s/%s" % (workload, path))
    creds = sa_token(workload, shipped_role_rules())
    args = {"host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"], "backup": "b1",
            "storage_dir": storage, "cluster": "c1", "name": "least", "included_namespaces": [workload],
            "include_cluster_resources": False}
    result = run_module("restore_resources", args, timeout=300)
    assert result["phase"] == "Completed", result.get("error_messages") or result
    assert api().get("/api/v1/namespaces/%s/configmaps/cfg" % workload)["data"]["greeting"] == "hello"
    assert api().get("/api/v1/namespaces/%s/services/web" % workload)["spec"]["selector"] == {"app": "web"}
    assert deployment_available(workload)
    # nothing cluster-wide was allowed, nor needed
    assert not [w for w in result["warning_messages"] if "forbidden" in w.lower()]
