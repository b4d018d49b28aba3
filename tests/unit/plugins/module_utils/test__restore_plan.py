# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore plan: order, selection, namespace mapping, per-kind cleaning, archive reading."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import io
import json
import os
import tarfile

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _export as ex
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_plan as rp
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError, ScopeError

from discovery_docs import entry


POD = entry("", "v1", "pods", "Pod")
PVC = entry("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PV = entry("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
NS = entry("", "v1", "namespaces", "Namespace", namespaced=False)
CM = entry("", "v1", "configmaps", "ConfigMap")
SVC = entry("", "v1", "services", "Service")
EVENT = entry("", "v1", "events", "Event")
DEPLOY = entry("apps", "v1", "deployments", "Deployment")
RS = entry("apps", "v1", "replicasets", "ReplicaSet")
CROLE = entry("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)


def obj(name, namespace=None, labels=None, **extra):
    metadata = {"name": name, "uid": "u-" + name, "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    metadata.update(extra.pop("metadata", {}))
    out = {"metadata": metadata, "spec": {}, "status": {"phase": "Active"}}
    out.update(extra)
    return out


ITEMS = [
    (POD, obj("web-1", "shop", {"app": "web"}, spec={"nodeName": "n1"}, status={"phase": "Running"})),
    (POD, obj("done", "shop", status={"phase": "Succeeded"})),
    (PVC, obj("logs", "shop", {"app": "web"}, spec={"volumeName": "pv-1"}, status={"phase": "Bound"})),
    (PV, obj("pv-1", spec={"claimRef": {"namespace": "shop", "name": "logs", "uid": "x"},
                           "persistentVolumeReclaimPolicy": "Retain"})),
    (CM, obj("cfg", "shop")),
    (CM, obj("cfg", "db")),
    (SVC, obj("web", "shop", {"app": "web"}, spec={"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"]})),
    (EVENT, obj("e1", "shop")),
    (DEPLOY, obj("web", "shop", {"app": "web"})),
    (RS, obj("web-abc", "shop", {"app": "web"})),
    (CROLE, obj("reader")),
    (NS, obj("shop", labels={"team": "a", "kubernetes.io/metadata.name": "shop"})),
    (NS, obj("db")),
]


@pytest.fixture
def archive(tmp_path):
    """An archive written by the collection's own writer, extracted."""
    path = str(tmp_path / "b.tar.gz")
    writer = ex.ArchiveWriter(path, None, mtime=1700000000)
    for resource, item in ITEMS:
        writer.add(resource, dict(item, apiVersion=resource["api_version"], kind=resource["kind"]))
    writer.close()
    dest = str(tmp_path / "x")
    info = rp.extract_archive(path, dest)
    assert info["format_version"] == "1.1.0"
    return rp.ArchiveDir(dest)


def options(**kwargs):
    kwargs.setdefault("restore_name", "r1")
    kwargs.setdefault("backup_name", "b1")
    return rp.RestoreOptions(**kwargs)


def planned(archive, **kwargs):
    """The plan as tuples; resource names resolved through these discovery entries."""
    opts = options(**kwargs).resolve([POD, PVC, PV, NS, CM, SVC, EVENT, DEPLOY, RS, CROLE])
    return [(e["group_resource"], e["namespace"], e["target_namespace"], e["name"], e["stage"])
            for e, _obj in rp.iter_plan(archive, opts)]


# --------------------------------------------------------------------------------------------
# Order
# --------------------------------------------------------------------------------------------

def test_order_is_velero_priorities_then_alphabetical_then_low_priorities():
    present = ["widgets.example.com", "deployments.apps", "services", "pods", "clusters.cluster.x-k8s.io",
               "persistentvolumeclaims", "persistentvolumes", "namespaces", "secrets", "configmaps",
               "replicasets.apps", "clusterroles.rbac.authorization.k8s.io", "customresourcedefinitions.apiextensions.k8s.io",
               "storageclasses.storage.k8s.io", "endpoints", "aaa.example.com"]
    assert rp.ordered_resources(present) == [
        "customresourcedefinitions.apiextensions.k8s.io", "namespaces", "storageclasses.storage.k8s.io",
        "persistentvolumes", "persistentvolumeclaims", "clusterroles.rbac.authorization.k8s.io", "secrets",
        "configmaps", "pods", "replicasets.apps", "endpoints", "services",
        "aaa.example.com", "deployments.apps", "widgets.example.com",
        "clusters.cluster.x-k8s.io"]


def test_stages_split_before_pods():
    assert rp.stage_of("persistentvolumeclaims") == rp.STAGE_RESOURCES
    assert rp.stage_of("configmaps") == rp.STAGE_RESOURCES
    assert rp.stage_of("clusterroles.rbac.authorization.k8s.io") == rp.STAGE_RESOURCES
    for name in ("pods", "replicasets.apps", "deployments.apps", "services", "jobs.batch"):
        assert rp.stage_of(name) == rp.STAGE_WORKLOADS


# --------------------------------------------------------------------------------------------
# Selection and namespaces
# --------------------------------------------------------------------------------------------

def test_full_plan_in_order_without_events(archive):
    plan = planned(archive)
    assert plan == [
        ("namespaces", "", "", "db", "resources"), ("namespaces", "", "", "shop", "resources"),
        ("persistentvolumes", "", "", "pv-1", "resources"),
        ("persistentvolumeclaims", "shop", "shop", "logs", "resources"),
        ("clusterroles.rbac.authorization.k8s.io", "", "", "reader", "resources"),
        ("configmaps", "db", "db", "cfg", "resources"), ("configmaps", "shop", "shop", "cfg", "resources"),
        ("pods", "shop", "shop", "done", "workloads"), ("pods", "shop", "shop", "web-1", "workloads"),
        ("replicasets.apps", "shop", "shop", "web-abc", "workloads"),
        ("services", "shop", "shop", "web", "workloads"),
        ("deployments.apps", "shop", "shop", "web", "workloads"),
    ]


def test_namespace_subset_leaves_cluster_scoped_items_out_and_maps(archive):
    plan = planned(archive, included_namespaces=["shop"], namespace_mappings={"shop": "shop-copy"})
    assert [p[0] for p in plan] == ["persistentvolumeclaims", "configmaps", "pods", "pods", "replicasets.apps",
                                    "services", "deployments.apps"]
    assert set(p[2] for p in plan) == {"shop-copy"} and set(p[1] for p in plan) == {"shop"}


def test_cluster_resources_true_and_false(archive):
    with_true = planned(archive, included_namespaces=["shop"], include_cluster_resources=True)
    assert ("persistentvolumes", "", "", "pv-1", "resources") in with_true
    assert ("namespaces", "", "", "shop", "resources") in with_true
    assert ("namespaces", "", "", "db", "resources") not in with_true     # outside the namespace scope
    with_false = planned(archive, include_cluster_resources=False)
    assert not [p for p in with_false if not p[1]]


def test_label_selector_resources_and_excludes(archive):
    plan = planned(archive, label_selectors=["app=web"], excluded_resources=["replicasets"],
                   excluded_namespaces=["db"])
    assert [(p[0], p[3]) for p in plan] == [("persistentvolumeclaims", "logs"), ("pods", "web-1"),
                                            ("services", "web"), ("deployments.apps", "web")]
    assert [p[0] for p in planned(archive, included_resources=["configmap", "deploy*"])] == \
        ["configmaps", "configmaps", "deployments.apps"]


def test_non_restorable_resources_cannot_be_included():
    with pytest.raises(ScopeError, match="events are non-restorable"):
        options(included_resources=["events"])


@pytest.mark.parametrize("mappings, message", [
    ({"shop": "Shop"}, "'Shop' is not a namespace name"),
    ({"a": "x", "b": "x"}, "a and b are both mapped to x"),
    (["shop"], "must be a mapping"),
])
def test_namespace_mappings_are_validated(mappings, message):
    with pytest.raises(ScopeError, match=message):
        options(namespace_mappings=mappings)


def test_invalid_policy_and_scope():
    with pytest.raises(KubehooksError, match="existing_resource_policy must be none or update"):
        options(existing_resource_policy="overwrite")
    with pytest.raises(ScopeError):
        options(excluded_namespaces=["*"])
    with pytest.raises(ScopeError):
        options(label_selectors=["a in ("])


def test_restore_spec_is_velero_shaped():
    spec = options(included_namespaces=["shop"], namespace_mappings={"shop": "x"}, include_cluster_resources=False,
                   existing_resource_policy="update", restore_status=["widgets"]).spec()
    assert spec["backupName"] == "b1" and spec["namespaceMapping"] == {"shop": "x"}
    assert spec["includedResources"] == ["*"] and "events" in spec["excludedResources"]
    assert spec["existingResourcePolicy"] == "update" and spec["includeClusterResources"] is False
    assert spec["restoreStatus"] == {"includedResources": ["widgets"]}


def test_additional_items():
    pod = obj("p", "shop", spec={"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "logs"}},
                                             {"name": "e", "emptyDir": {}}], "priorityClassName": "high"})
    assert rp.additional_items("pods", pod) == [("persistentvolumeclaims", "shop", "logs"),
                                                ("priorityclasses.scheduling.k8s.io", "", "high")]
    bound = obj("c", "shop", spec={"volumeName": "pv-1"}, status={"phase": "Bound"})
    assert rp.additional_items("persistentvolumeclaims", bound) == [("persistentvolumes", "", "pv-1")]
    assert rp.additional_items("persistentvolumeclaims", obj("c", "shop", status={"phase": "Pending"})) == []
    opts = options(included_namespaces=["shop"])
    assert rp.additional_allowed(opts, "persistentvolumes", "")          # despite the namespace subset
    assert not rp.additional_allowed(options(include_cluster_resources=False), "persistentvolumes", "")
    assert not rp.additional_allowed(opts, "persistentvolumeclaims", "db")


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------

def clean(group_resource, item, archive=None, target=None, **kwargs):
    e = {"group_resource": group_resource, "namespace": (item.get("metadata") or {}).get("namespace") or "",
         "name": item["metadata"]["name"]}
    e["target_namespace"] = target if target is not None else e["namespace"]
    return rp.clean_item(e, item, options(**kwargs), archive)


def test_every_item_loses_server_metadata_and_status_and_gets_restore_labels():
    item = obj("cfg", "shop", metadata={"ownerReferences": [{"uid": "o"}], "managedFields": [{}], "generation": 3,
                                        "generateName": "cfg-", "selfLink": "/x", "annotations": {"a": "b"}})
    cleaned, status, skip = clean("configmaps", item, target="copy")
    assert skip is None and status == {"phase": "Active"}
    assert cleaned["metadata"] == {"name": "cfg", "namespace": "copy", "annotations": {"a": "b"},
                                   "labels": {"velero.io/backup-name": "b1", "velero.io/restore-name": "r1"}}
    assert "status" not in cleaned and item["metadata"]["uid"] == "u-cfg"   # the input is untouched


def test_long_names_become_valid_label_values():
    value = rp.valid_label_value("x" * 70)
    assert len(value) == 63 and value.startswith("x" * 57)


def test_pod_without_node_priority_and_token_volumes():
    pod = obj("p", "shop", spec={
        "nodeName": "n1", "priority": 5, "serviceAccountName": "app",
        "volumes": [{"name": "app-token-abcde", "secret": {}}, {"name": "data", "persistentVolumeClaim": {}},
                    {"name": "kube-api-access-x1", "projected": {"sources": [{"serviceAccountToken": {}}]}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "data"}, {"name": "kube-api-access-x1"},
                                                      {"name": "app-token-abcde"}]}],
        "initContainers": [{"name": "i", "volumeMounts": [{"name": "app-token-abcde"}]}]},
        status={"phase": "Running"})
    cleaned, _status, skip = clean("pods", pod)
    spec = cleaned["spec"]
    assert skip is None and "nodeName" not in spec and "priority" not in spec
    assert spec["volumes"] == [{"name": "data", "persistentVolumeClaim": {}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "data"}]
    assert spec["initContainers"][0]["volumeMounts"] == []


@pytest.mark.parametrize("item, reason", [
    (obj("p", "shop", status={"phase": "Succeeded"}), "complete"),
    (obj("p", "shop", metadata={"annotations": {"kubernetes.io/config.mirror": "x"}}, status={}), "mirror"),
])
def test_finished_and_mirror_pods_are_skipped(item, reason):
    cleaned, _status, skip = clean("pods", item)
    assert cleaned is None and reason in skip


def test_service_loses_cluster_ips_and_automatic_node_ports():
    svc = obj("s", "shop", spec={"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                                 "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001},
                                           {"port": 81, "protocol": "TCP", "nodePort": 30002}]},
              metadata={"managedFields": [{"fieldsV1": {"f:spec": {"f:ports": {
                  'k:{"port":81,"protocol":"TCP"}': {"f:nodePort": {}}}}}}]})
    spec = clean("services", svc)[0]["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
    assert spec["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "nodePort": 30002}]
    kept = clean("services", svc, preserve_node_ports=True)[0]["spec"]["ports"]
    assert [p.get("nodePort") for p in kept] == [30001, 30002]
    headless = clean("services", obj("h", "shop", spec={"clusterIP": "None"}))[0]["spec"]
    assert headless["clusterIP"] == "None"


def test_service_node_ports_from_last_applied_configuration():
    applied = json.dumps({"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30080}]}})
    svc = obj("s", "shop", spec={"ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                           {"name": "x", "port": 90, "nodePort": 30090}]},
              metadata={"annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}})
    ports = clean("services", svc)[0]["spec"]["ports"]
    assert [p.get("nodePort") for p in ports] == [30080, None]


def test_pvc_keeps_its_volume_and_loses_binding_annotations():
    pvc = obj("logs", "shop", spec={"volumeName": "pv-1"}, status={"phase": "Bound"}, metadata={"annotations": {
        "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
        "volume.kubernetes.io/selected-node": "n1", "volume.beta.kubernetes.io/storage-provisioner": "p",
        "keep": "me"}})
    cleaned = clean("persistentvolumeclaims", pvc)[0]
    assert cleaned["spec"]["volumeName"] == "pv-1"
    assert cleaned["metadata"]["annotations"] == {"keep": "me"}


def test_pvc_of_a_delete_policy_pv_is_provisioned_anew(tmp_path):
    class Archive(object):
        def load_or_none(self, group_resource, namespace, name):
            return {"spec": {"persistentVolumeReclaimPolicy": "Delete"}}
    pvc = obj("logs", "shop", spec={"volumeName": "pv-1"}, status={"phase": "Bound"})
    assert "volumeName" not in clean("persistentvolumeclaims", pvc, Archive())[0]["spec"]


def test_pv_claim_ref_is_mapped_and_reset_or_skipped_with_delete_policy():
    pv = obj("pv-1", spec={"claimRef": {"namespace": "shop", "name": "logs", "uid": "x", "resourceVersion": "1"},
                           "persistentVolumeReclaimPolicy": "Retain"},
             metadata={"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}})
    cleaned = clean("persistentvolumes", pv, namespace_mappings={"shop": "copy"})[0]
    assert cleaned["spec"]["claimRef"] == {"namespace": "copy", "name": "logs"}
    assert "annotations" not in cleaned["metadata"] and "namespace" not in cleaned["metadata"]
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Delete"
    assert "reclaim policy Delete" in clean("persistentvolumes", pv)[2]


def test_job_controller_labels_and_completed_jobs():
    job = obj("j", "shop", spec={"selector": {"matchLabels": {"controller-uid": "1", "app": "j"}},
                                 "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "1",
                                                                      "controller-uid": "1", "app": "j"}}}})
    spec = clean("jobs.batch", job)[0]["spec"]
    assert spec["selector"]["matchLabels"] == {"app": "j"}
    assert spec["template"]["metadata"]["labels"] == {"app": "j"}
    assert clean("jobs.batch", obj("j", "shop", status={"completionTime": "2026-01-01T00:00:00Z"}))[2]


def test_service_account_secrets_and_token_secrets():
    sa = obj("app", "shop", secrets=[{"name": "app-token-abcde"}, {"name": "other"}])
    assert clean("serviceaccounts", sa)[0]["secrets"] == [{"name": "other"}]
    auto = obj("app-token-abcde", "shop", type="kubernetes.io/service-account-token",
               metadata={"annotations": {"kubernetes.io/service-account.name": "app"}})
    assert "created by the controller" in clean("secrets", auto)[2]
    manual = obj("app-long-lived", "shop", type="kubernetes.io/service-account-token", data={"token": "t", "ca.crt": "c", "x": "y"},
                 metadata={"annotations": {"kubernetes.io/service-account.name": "app",
                                           "kubernetes.io/service-account.uid": "u"}})
    cleaned = clean("secrets", manual)[0]
    assert cleaned["data"] == {"x": "y"}
    assert cleaned["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "app"}


def test_binding_subjects_are_mapped():
    binding = obj("b", "shop", subjects=[{"kind": "ServiceAccount", "name": "a", "namespace": "shop"},
                                         {"kind": "User", "name": "u"}])
    cleaned = clean("rolebindings.rbac.authorization.k8s.io", binding, namespace_mappings={"shop": "copy"})[0]
    assert cleaned["subjects"][0]["namespace"] == "copy" and "namespace" not in cleaned["subjects"][1]


def test_namespace_object_from_the_archive_under_its_new_name(archive):
    ns = rp.namespace_object(archive, "shop", "shop-copy")
    assert ns["metadata"] == {"name": "shop-copy",
                              "labels": {"team": "a", "kubernetes.io/metadata.name": "shop-copy"}}
    assert rp.namespace_object(archive, "absent", "absent")["metadata"] == {"name": "absent"}


def test_restore_status_filter_and_annotation():
    opts = options(restore_status=["widgets.example.com"])
    assert opts.restores_status("widgets.example.com", obj("w", "shop"))
    assert not opts.restores_status("pods", obj("p", "shop"))
    annotated = obj("p", "shop", metadata={"annotations": {"velero.io/restore-status": "true"}})
    assert options().restores_status("pods", annotated)


# --------------------------------------------------------------------------------------------
# Reading archives
# --------------------------------------------------------------------------------------------

def good_archive(tmp_path):
    path = str(tmp_path / "good.tar.gz")
    writer = ex.ArchiveWriter(path, None)
    writer.add(CM, dict(obj("cfg", "shop"), apiVersion="v1", kind="ConfigMap"))
    writer.close()
    return path


def test_truncated_archive_is_a_clear_error(tmp_path):
    data = open(good_archive(tmp_path), "rb").read()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(rp.ArchiveError, match="truncated or malformed"):
        rp.extract_archive(str(path), str(tmp_path / "x"))


def test_an_archive_cut_anywhere_is_refused(tmp_path):
    """tarfile's own stream mode ends quietly at a cut between two members: the gzip check does not."""
    data = open(good_archive(tmp_path), "rb").read()
    for index, cut in enumerate(range(10, len(data) - 1, max(1, len(data) // 25))):
        path = tmp_path / ("cut%d.tar.gz" % index)
        path.write_bytes(data[:cut])
        with pytest.raises(rp.ArchiveError):
            rp.extract_archive(str(path), str(tmp_path / ("x%d" % index)))


@pytest.mark.parametrize("content", [b"", b"not a gzip file", gzip.compress(b"not a tar stream" * 40)])
def test_malformed_archive_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(content)
    with pytest.raises(rp.ArchiveError):
        rp.extract_archive(str(path), str(tmp_path / "x"))


def tar_with(tmp_path, members):
    path = str(tmp_path / "crafted.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name, data=b"1.1.0\n", kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("name, kind, message", [
    ("../escape.json", tarfile.REGTYPE, "leaves the archive"),
    ("/abs.json", tarfile.REGTYPE, "leaves the archive"),
    ("resources/a/link.json", tarfile.SYMTYPE, "not a regular file"),
])
def test_unsafe_entries_are_refused(tmp_path, name, kind, message):
    path = tar_with(tmp_path, [member("metadata/version"), member(name, kind=kind)])
    with pytest.raises(rp.ArchiveError, match=message):
        rp.extract_archive(path, str(tmp_path / "x"))
    assert not (tmp_path / "escape.json").exists()


def test_archive_without_version_or_with_unknown_version(tmp_path):
    with pytest.raises(rp.ArchiveError, match="no metadata/version"):
        rp.extract_archive(tar_with(tmp_path, [member("resources/x.json", b"{}")]), str(tmp_path / "x"))
    with pytest.raises(rp.ArchiveError, match="format version '2.0.0'"):
        rp.extract_archive(tar_with(tmp_path, [member("metadata/version", b"2.0.0\n")]), str(tmp_path / "y"))


def test_missing_archive(tmp_path):
    with pytest.raises(rp.ArchiveError, match="does not exist"):
        rp.extract_archive(str(tmp_path / "none.tar.gz"), str(tmp_path / "x"))


def test_extracted_files_are_owner_only(tmp_path):
    dest = tmp_path / "x"
    rp.extract_archive(good_archive(tmp_path), str(dest))
    item = dest / "resources" / "configmaps" / "namespaces" / "shop" / "cfg.json"
    assert oct(item.stat().st_mode & 0o777) == "0o600"
    assert oct((dest / "resources").stat().st_mode & 0o777) == "0o700"


def test_undecodable_item_is_yielded_with_an_error(archive):
    bad = os.path.join(archive.root, "resources", "configmaps", "namespaces", "db", "cfg.json")
    with open(bad, "w") as handle:
        handle.write("{not json")
    found = [(e, o) for e, o in rp.iter_plan(archive, options()) if e["group_resource"] == "configmaps"]
    assert found[0][1] is None and "error decoding 'resources/configmaps/namespaces/db/cfg.json'" in found[0][0]["error"]
    assert found[1][1]["metadata"]["name"] == "cfg"
