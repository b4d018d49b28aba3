# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply's decisions: create, existing-resource policy none/update, per-item errors, namespaces,
service-account merge, static PVs, the stage hook point, check mode.

The API is the in-memory ``FakeApi`` below, a stand-in for ``_api.api_caller``'s ``call``: these tests
are about which request the apply decides to make for which answer (pure decision logic), and some
answers (a 500 on one create, a 422 on an update, a namespace that cannot be created) cannot be made
on demand by the real API server.  The same code runs against the real cluster in
tests/integration/test_restore.py (round trip, mapped namespace, both policies, check mode).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_apply as ra
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_plan as rp
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError

from discovery_docs import entry


NS = entry("", "v1", "namespaces", "Namespace", namespaced=False)
CM = entry("", "v1", "configmaps", "ConfigMap")
SECRET = entry("", "v1", "secrets", "Secret")
SA = entry("", "v1", "serviceaccounts", "ServiceAccount")
POD = entry("", "v1", "pods", "Pod")
PVC = entry("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PV = entry("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
DEPLOY = entry("apps", "v1", "deployments", "Deployment")
RESOURCES = [NS, CM, SECRET, SA, POD, PVC, PV, DEPLOY]


def obj(resource, name, namespace=None, **extra):
    metadata = {"name": name, "uid": "u-" + name, "resourceVersion": "7"}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(extra.pop("metadata", {}))
    out = {"apiVersion": resource["api_version"], "kind": resource["kind"], "metadata": metadata}
    out.update(extra)
    return out


class FakeApi(object):
    """In-memory objects by REST path, answering like the API server: 404, 409 AlreadyExists, merge
    patches.  ``fail[(method, path)]`` makes one request fail with that ApiRequestError."""

    def __init__(self, objects=()):
        self.objects = dict((path, copy.deepcopy(o)) for path, o in objects)
        self.requests = []
        self.fail = {}

    def __call__(self, method, path, body=None, query=None, content_type=None):
        self.requests.append((method, path, copy.deepcopy(body), content_type))
        if (method, path) in self.fail:
            raise self.fail[(method, path)]
        if method == "GET":
            if path not in self.objects:
                raise ApiRequestError(404, "not found")
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            one = path + "/" + body["metadata"]["name"]
            if one in self.objects:
                raise ApiRequestError(409, "already exists")
            self.objects[one] = copy.deepcopy(body)
            return copy.deepcopy(body)
        if method == "PATCH":
            assert content_type == ra.MERGE_PATCH
            self.objects[path] = apply_merge_patch(self.objects[path], body)
            return copy.deepcopy(self.objects[path])
        if method == "PUT":
            self.objects[path] = copy.deepcopy(body)
            return body
        raise AssertionError(method)

    def writes(self):
        return [(m, p) for m, p, _b, _c in self.requests if m != "GET"]


def apply_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


class FakeArchive(object):
    """The archive part the apply reads: additional items and the Namespace objects."""

    def __init__(self, items=()):
        self.items = dict(((r["group_resource"], o["metadata"].get("namespace") or "", o["metadata"]["name"]), o)
                          for r, o in items)

    def exists(self, group_resource, namespace, name):
        return (group_resource, namespace, name) in self.items

    def load(self, group_resource, namespace, name):
        return copy.deepcopy(self.items[(group_resource, namespace, name)])

    def load_or_none(self, group_resource, namespace, name):
        return self.load(group_resource, namespace, name) if self.exists(group_resource, namespace, name) else None

    def relative(self, group_resource, namespace, name):
        return "resources/%s/%s/%s.json" % (group_resource, namespace or "cluster", name)


def plan_of(items, mappings=None):
    out = []
    for resource, item in items:
        namespace = item["metadata"].get("namespace") or ""
        e = {"group_resource": resource["group_resource"], "namespace": namespace,
             "target_namespace": (mappings or {}).get(namespace, namespace), "name": item["metadata"]["name"],
             "path": "x", "stage": rp.stage_of(resource["group_resource"])}
        out.append((e, copy.deepcopy(item)))
    return out


def applier(api, items=(), policy=None, dry_run=False, mappings=None, **kwargs):
    options = rp.RestoreOptions("r1", "b1", existing_resource_policy=policy,
                                namespace_mappings=mappings).resolve(RESOURCES)
    outcomes = []
    app = ra.Applier(api, options, FakeArchive(items), RESOURCES, on_item=outcomes.append, dry_run=dry_run,
                     sleep=lambda _s: None, **kwargs)
    return app, outcomes


def outcome_of(outcomes, name):
    return [o["outcome"] for o in outcomes if o["name"] == name]


SHOP = "/api/v1/namespaces/shop"
CFG = obj(CM, "cfg", "shop", data={"greeting": "hello"})


def existing_cfg(data):
    live = obj(CM, "cfg", "shop", data=data)
    live["metadata"].update(uid="live", resourceVersion="99", managedFields=[{"manager": "kubectl"}])
    return (SHOP + "/configmaps/cfg", live)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------

def test_merge_patch_is_rfc7386():
    assert ra.merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 1, "b": {"c": 3}, "e": [1]}) == \
        {"b": {"c": 3, "d": None}, "e": [1]}
    assert ra.merge_patch({"a": 1}, {"a": 1}) is None


def test_object_path_core_group_and_named():
    assert ra.object_path(CM, "shop", "cfg") == "/api/v1/namespaces/shop/configmaps/cfg"
    assert ra.object_path(DEPLOY, "shop") == "/apis/apps/v1/namespaces/shop/deployments"
    assert ra.object_path(PV, None, "pv 1") == "/api/v1/persistentvolumes/pv%201"


# --------------------------------------------------------------------------------------------
# Create, namespaces
# --------------------------------------------------------------------------------------------

def test_missing_namespace_is_created_from_the_archive_then_the_item():
    api = FakeApi()
    ns = obj(NS, "shop", metadata={"labels": {"team": "a"}})
    app, outcomes = applier(api, items=[(NS, ns)])
    app.run(plan_of([(CM, CFG)]))
    assert api.writes() == [("POST", "/api/v1/namespaces"), ("POST", SHOP + "/configmaps")]
    assert api.objects["/api/v1/namespaces/shop"]["metadata"]["labels"]["team"] == "a"
    created = api.objects[SHOP + "/configmaps/cfg"]
    assert "uid" not in created["metadata"] and "resourceVersion" not in created["metadata"]
    assert created["metadata"]["labels"] == {rp.BACKUP_NAME_LABEL: "b1", rp.RESTORE_NAME_LABEL: "r1"}
    assert [(o["group_resource"], o["outcome"]) for o in outcomes] == [
        ("namespaces", "created"), ("configmaps", "created")]
    assert outcomes[1]["resource_key"] == "v1/ConfigMap" and not app.errors


def test_mapped_namespace_receives_the_item():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop"))])
    app, outcomes = applier(api, mappings={"shop": "shop-copy"})
    app.run(plan_of([(CM, CFG)], mappings={"shop": "shop-copy"}))
    assert "/api/v1/namespaces/shop-copy/configmaps/cfg" in api.objects
    assert api.objects["/api/v1/namespaces/shop-copy"]["metadata"]["name"] == "shop-copy"
    assert outcomes[-1]["target_namespace"] == "shop-copy" and outcomes[-1]["namespace"] == "shop"


def test_one_failed_item_is_recorded_and_the_rest_goes_on():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop"))])
    api.fail[("POST", SHOP + "/secrets")] = ApiRequestError(500, "etcdserver: request timed out")
    secret = obj(SECRET, "creds", "shop", type="Opaque", data={"p": "eA=="})
    other = obj(CM, "other", "shop", data={"x": "1"})
    app, outcomes = applier(api)
    app.run(plan_of([(CM, CFG), (SECRET, secret), (CM, other)]))
    assert outcome_of(outcomes, "creds") == ["failed"]
    assert outcome_of(outcomes, "cfg") == ["created"] and outcome_of(outcomes, "other") == ["created"]
    assert app.errors == [{"namespace": "shop", "resource": "secrets",
                           "message": "error restoring secrets/shop/creds: etcdserver: request timed out (HTTP 500)"}]


def test_a_namespace_that_cannot_be_created_fails_its_items_only():
    api = FakeApi([("/api/v1/namespaces/db", obj(NS, "db"))])
    api.fail[("POST", "/api/v1/namespaces")] = ApiRequestError(403, "namespaces is forbidden")
    app, outcomes = applier(api)
    app.run(plan_of([(CM, CFG), (CM, obj(CM, "cfg2", "shop")), (CM, obj(CM, "dbcfg", "db"))]))
    assert outcome_of(outcomes, "cfg") == ["failed"] and outcome_of(outcomes, "cfg2") == ["failed"]
    assert outcome_of(outcomes, "dbcfg") == ["created"]
    assert [m for m, p in api.writes()].count("POST") == 2  # the namespace is tried once, then db's item
    assert [e["message"] for e in app.errors] == [
        "error creating namespace shop: namespaces is forbidden (HTTP 403)"]


def test_an_undecodable_item_and_an_unserved_kind_fail_alone():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop"))])
    app, outcomes = applier(api)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}
    plan = plan_of([(CM, CFG)])
    plan.insert(0, ({"group_resource": "configmaps", "namespace": "shop", "target_namespace": "shop",
                     "name": "bad", "path": "x", "stage": "resources", "error": "error decoding x: not JSON"}, None))
    plan.append(({"group_resource": "widgets.example.com", "namespace": "shop", "target_namespace": "shop",
                  "name": "w", "path": "y", "stage": "workloads"}, widget))
    app.run(plan)
    assert [(o["name"], o["outcome"]) for o in outcomes] == [("bad", "failed"), ("shop", "skipped"),
                                                             ("cfg", "created"), ("w", "failed")]
    assert "the cluster does not serve widgets.example.com" in app.errors[-1]["message"]


def test_before_stage_is_called_once_before_the_first_pod():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop"))])
    calls = []
    options = rp.RestoreOptions("r1", "b1").resolve(RESOURCES)

    def before(stage):
        calls.append((stage, sorted(p for p in api.objects if "/namespaces/shop/" in p)))
    app = ra.Applier(api, options, FakeArchive(), RESOURCES, before_stage=before)
    pod = obj(POD, "web", "shop", spec={"containers": [{"name": "c", "image": "i"}]})
    app.run(plan_of([(CM, CFG), (POD, pod), (DEPLOY, obj(DEPLOY, "web", "shop", spec={}))]))
    assert calls == [("workloads", [SHOP + "/configmaps/cfg"])]   # after the config, before the pod
    calls[:] = []
    ra.Applier(FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop"))]), options, FakeArchive(), RESOURCES,
               before_stage=calls.append).run(plan_of([(CM, CFG)]))
    assert calls == ["workloads"]   # reached once even without workloads


# --------------------------------------------------------------------------------------------
# Existing resources
# --------------------------------------------------------------------------------------------

def test_identical_existing_item_is_skipped_under_either_policy():
    for policy in ("none", "update"):
        live = obj(CM, "cfg", "shop", data={"greeting": "hello"},
                   metadata={"labels": {rp.BACKUP_NAME_LABEL: "b1", rp.RESTORE_NAME_LABEL: "r1"}, "uid": "z"})
        api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop")), (SHOP + "/configmaps/cfg", live)])
        app, outcomes = applier(api, policy=policy)
        app.run(plan_of([(CM, CFG)]))
        assert outcome_of(outcomes, "cfg") == ["skipped"] and not app.warnings
        assert api.writes() == [("POST", SHOP + "/configmaps")]


def test_policy_none_keeps_a_different_existing_item_with_velero_warning():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop")), existing_cfg({"greeting": "changed"})])
    app, outcomes = applier(api, policy="none")
    app.run(plan_of([(CM, CFG)]))
    assert outcome_of(outcomes, "cfg") == ["skipped"]
    assert api.objects[SHOP + "/configmaps/cfg"]["data"] == {"greeting": "changed"}
    assert [m for m, _p in api.writes()] == ["POST"]
    assert app.warnings == [{"namespace": "shop", "resource": "configmaps", "message":
                             "could not restore, ConfigMap 'cfg' already exists. Warning: the in-cluster version "
                             "is different than the backed-up version"}]
    assert not app.errors


def test_policy_update_patches_a_different_existing_item_to_the_backup():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop")), existing_cfg({"greeting": "changed", "extra": "x"})])
    app, outcomes = applier(api, policy="update")
    app.run(plan_of([(CM, CFG)]))
    assert outcome_of(outcomes, "cfg") == ["updated"]
    method, path, patch, content_type = api.requests[-1]
    assert (method, path, content_type) == ("PATCH", SHOP + "/configmaps/cfg", ra.MERGE_PATCH)
    assert patch["data"] == {"greeting": "hello", "extra": None}
    assert patch["metadata"] == {"labels": {rp.BACKUP_NAME_LABEL: "b1", rp.RESTORE_NAME_LABEL: "r1"}}
    live = api.objects[SHOP + "/configmaps/cfg"]
    assert live["data"] == {"greeting": "hello"} and live["metadata"]["uid"] == "live"
    assert not app.warnings and not app.errors


def test_policy_update_refused_sets_the_restore_labels_and_warns():
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop")), existing_cfg({"greeting": "changed"})])
    path = SHOP + "/configmaps/cfg"
    refused = {"n": 0}

    def refuse_first_patch(method, p, body=None, query=None, content_type=None):
        if method == "PATCH" and refused["n"] == 0:
            refused["n"] += 1
            api.requests.append((method, p, body, content_type))
            raise ApiRequestError(422, "field is immutable")
        return api(method, p, body, query, content_type)
    options = rp.RestoreOptions("r1", "b1", existing_resource_policy="update").resolve(RESOURCES)
    outcomes = []
    app = ra.Applier(refuse_first_patch, options, FakeArchive(), RESOURCES, on_item=outcomes.append)
    app.run(plan_of([(CM, CFG)]))
    assert outcome_of(outcomes, "cfg") == ["skipped"]
    assert api.requests[-1][2] == {"metadata": {"labels": {rp.BACKUP_NAME_LABEL: "b1", rp.RESTORE_NAME_LABEL: "r1"}}}
    assert api.objects[path]["data"] == {"greeting": "changed"}
    assert "could not update configmaps/shop/cfg: field is immutable (HTTP 422)" in app.warnings[0]["message"]
    assert not app.errors


def test_service_account_is_merged_whatever_the_policy():
    live = obj(SA, "app", "shop", secrets=[{"name": "app-token-live"}], metadata={"labels": {"keep": "me"}})
    backed = obj(SA, "app", "shop", secrets=[{"name": "app-token-live"}, {"name": "extra"}],
                 imagePullSecrets=[{"name": "registry"}], metadata={"labels": {"from": "backup"}})
    api = FakeApi([("/api/v1/namespaces/shop", obj(NS, "shop")), (SHOP + "/serviceaccounts/app", live)])
    app, outcomes = applier(api, policy="none")
    app.run(plan_of([(SA, backed)]))
    assert outcome_of(outcomes, "app") == ["updated"]
    merged = api.objects[SHOP + "/serviceaccounts/app"]
    assert [s["name"] for s in merged["secrets"]] == ["app-token-live", "extra"]
    assert merged["imagePullSecrets"] == [{"name": "registry"}]
    assert merged["metadata"]["labels"]["keep"] == "me" and merged["metadata"]["labels"]["from"] == "backup"
    assert merged["metadata"]["labels"][rp.RESTORE_NAME_LABEL] == "r1"


# --------------------------------------------------------------------------------------------
# Static volumes
# --------------------------------------------------------------------------------------------

CLAIM = obj(PVC, "data", "shop", spec={"volumeName": "pv-1", "accessModes": ["ReadWriteOnce"]},
            status={"phase": "Bound"})
VOLUME = obj(PV, "pv-1", spec={"claimRef": {"namespace": "shop", "name": "data", "uid": "old"},
                               "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/pv/1"}},
             status={"phase": "Bound"})


def test_released_volume_of_the_same_claim_is_given_back_to_it():
    live = copy.deepcopy(VOLUME)
    live["status"] = {"phase": "Released"}
    api = FakeApi([("/api/v1/persistentvolumes/pv-1", live)])
    app, outcomes = applier(api, items=[(PV, VOLUME)])
    app.run(plan_of([(PVC, CLAIM)]))
    assert outcome_of(outcomes, "pv-1") == ["updated"] and outcome_of(outcomes, "data") == ["created"]
    assert api.objects["/api/v1/persistentvolumes/pv-1"]["spec"]["claimRef"] == {"namespace": "shop", "name": "data"}
    assert api.objects[SHOP + "/persistentvolumeclaims/data"]["spec"]["volumeName"] == "pv-1"


def test_volume_bound_to_another_claim_is_left_and_the_claim_restored_without_it():
    live = copy.deepcopy(VOLUME)
    live["spec"]["claimRef"]["uid"] = "running"
    api = FakeApi([("/api/v1/persistentvolumes/pv-1", live)])
    app, outcomes = applier(api, items=[(PV, VOLUME)], mappings={"shop": "shop-copy"})
    app.run(plan_of([(PVC, CLAIM)], mappings={"shop": "shop-copy"}))
    assert outcome_of(outcomes, "pv-1") == ["skipped"] and outcome_of(outcomes, "data") == ["created"]
    assert api.objects["/api/v1/persistentvolumes/pv-1"] == live     # untouched
    claim = api.objects["/api/v1/namespaces/shop-copy/persistentvolumeclaims/data"]
    assert "volumeName" not in claim["spec"]
    assert [w["resource"] for w in app.warnings] == ["persistentvolumes", "persistentvolumeclaims"]
    assert not app.errors


# --------------------------------------------------------------------------------------------
# Check mode
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, planned", [("none", "skip"), ("update", "update")])
def test_dry_run_only_reads_and_says_what_it_would_do(policy, planned):
    api = FakeApi([existing_cfg({"greeting": "changed"})])
    app, outcomes = applier(api, policy=policy, dry_run=True)
    app.run(plan_of([(CM, CFG), (CM, obj(CM, "new", "shop"))]))
    assert api.writes() == []
    assert [(o["name"], o["outcome"]) for o in outcomes] == [("shop", "create"), ("cfg", planned), ("new", "create")]


# --------------------------------------------------------------------------------------------
# Claims from CSI snapshots (Velero's CSI restore)
# --------------------------------------------------------------------------------------------

SNAP_ENTRY = {"namespace": "shop", "pod": "app", "volume": "data", "pvc": "data", "method": "csi-snapshot",
              "status": "succeeded", "volume_snapshot": "velero-data-abcde", "volume_snapshot_content": "snapcontent-1",
              "snapshot_handle": "handle-1", "driver": "csi.example.com", "volume_snapshot_class": "snap"}
VS_PATH = "/apis/snapshot.storage.k8s.io/v1/namespaces/%s/volumesnapshots/velero-data-abcde"


def snapshot_applier(api, mappings=None, dry_run=False):
    app, outcomes = applier(api, items=[(PV, VOLUME)], mappings=mappings, dry_run=dry_run)
    app.options.csi_snapshots = {("shop", "data"): SNAP_ENTRY}
    return app, outcomes


def test_a_claim_with_a_snapshot_gets_it_as_data_source_and_a_preprovisioned_snapshot():
    api = FakeApi()
    app, outcomes = snapshot_applier(api, mappings={"shop": "shop-copy"})
    app.run(plan_of([(PVC, CLAIM)], mappings={"shop": "shop-copy"}))
    claim = api.objects["/api/v1/namespaces/shop-copy/persistentvolumeclaims/data"]
    assert claim["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                           "name": "velero-data-abcde"}
    assert "volumeName" not in claim["spec"]
    snap = api.objects[VS_PATH % "shop-copy"]
    content = api.objects["/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/%s"
                          % snap["spec"]["source"]["volumeSnapshotContentName"]]
    assert content["spec"]["source"] == {"snapshotHandle": "handle-1"} and content["spec"]["deletionPolicy"] == "Retain"
    assert content["spec"]["volumeSnapshotRef"]["namespace"] == "shop-copy"
    assert content["metadata"]["labels"] == {"velero.io/backup-name": "b1", "velero.io/restore-name": "r1"}
    # the content and the snapshot before the claim; the PV (its additional item) is not restored
    writes = [p for m, p in api.writes()]
    assert writes.index("/apis/snapshot.storage.k8s.io/v1/namespaces/shop-copy/volumesnapshots") < \
        writes.index("/api/v1/namespaces/shop-copy/persistentvolumeclaims")
    assert outcome_of(outcomes, "pv-1") == ["skipped"] and not app.errors


def test_an_existing_snapshot_in_the_target_namespace_is_used():
    api = FakeApi([(VS_PATH % "shop", {"metadata": {"name": "velero-data-abcde"}})])
    app, outcomes = snapshot_applier(api)
    app.run(plan_of([(PVC, CLAIM)]))
    assert outcome_of(outcomes, "velero-data-abcde") == ["skipped"]
    assert [p for m, p in api.writes()] == ["/api/v1/namespaces", "/api/v1/namespaces/shop/persistentvolumeclaims"]


def test_a_snapshot_that_cannot_be_created_fails_the_claim_instead_of_an_empty_volume():
    api = FakeApi()
    api.fail[("POST", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents")] = ApiRequestError(403, "forbidden")
    app, outcomes = snapshot_applier(api)
    app.run(plan_of([(PVC, CLAIM)]))
    assert outcome_of(outcomes, "data") == ["failed"]
    assert "/api/v1/namespaces/shop/persistentvolumeclaims/data" not in api.objects
    assert "error restoring claim shop/data from CSI snapshot handle-1" in app.errors[0]["message"]


def test_dry_run_plans_the_snapshot_objects():
    api = FakeApi()
    app, outcomes = snapshot_applier(api, dry_run=True)
    app.run(plan_of([(PVC, CLAIM)]))
    assert api.writes() == []
    assert outcome_of(outcomes, "velero-data-abcde") == ["create"]


def test_the_archives_own_snapshot_objects_are_not_restored_as_they_are():
    options = rp.RestoreOptions("r1", "b1", csi_snapshots={("shop", "data"): SNAP_ENTRY})
    snap = {"metadata": {"name": "velero-data-abcde", "namespace": "shop"}}
    item = {"namespace": "shop", "name": "velero-data-abcde"}
    assert "re-created from its snapshot handle" in rp.clean_volume_snapshot(snap, item, options, None)[1]
    other = {"metadata": {"name": "mine", "namespace": "shop"}}
    assert rp.clean_volume_snapshot(other, dict(item, name="mine"), options, None)[1] is None
    content = {"metadata": {"name": "snapcontent-1"}}
    assert rp.clean_volume_snapshot_content(content, {"namespace": "", "name": "snapcontent-1"}, options, None)[1]
