# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _export: Velero's archive layout, resource filters, and the streaming writer.

The writer is fed a tiny generator of dicts; the end-to-end tests use an in-memory fake of the
API's GET endpoints (discovery documents and paginated LISTs) behind export()'s ``get_json`` seam.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import json
import os
import stat
import tarfile
import tracemalloc

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _export as ex
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import (
    ExportError,
    KubehooksError,
    ScopeError,
)
from discovery_docs import GROUPS
from fake_api import FakeApi


# --------------------------------------------------------------------------------------------
# Fixtures: discovery documents
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resources():
    return ex.preferred_resources(GROUPS)


def by_name(resources, name):
    return [r for r in resources if r["group_resource"] == name][0]


# --------------------------------------------------------------------------------------------
# Names and paths
# --------------------------------------------------------------------------------------------

def test_item_paths_namespaced_match_velero():
    assert ex.item_paths("pods", "nginx-example", "nginx-1", "v1") == (
        "resources/pods/namespaces/nginx-example/nginx-1.json",
        "resources/pods/v1-preferredversion/namespaces/nginx-example/nginx-1.json")


def test_item_paths_cluster_scoped_match_velero():
    assert ex.item_paths("clusterroles.rbac.authorization.k8s.io", "", "system:controller:x", "v1") == (
        "resources/clusterroles.rbac.authorization.k8s.io/cluster/system:controller:x.json",
        "resources/clusterroles.rbac.authorization.k8s.io/v1-preferredversion/cluster/system:controller:x.json")


def test_item_path_without_version_dir():
    assert ex.item_path("deployments.apps", "foo", "bar") == "resources/deployments.apps/namespaces/foo/bar.json"


@pytest.mark.parametrize("args, expected", [
    (("", "v1", "pods", None), "/api/v1/pods"),
    (("", "v1", "pods", "db"), "/api/v1/namespaces/db/pods"),
    (("apps", "v1", "deployments", "db"), "/apis/apps/v1/namespaces/db/deployments"),
    (("rbac.authorization.k8s.io", "v1", "clusterroles", None), "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
])
def test_list_path(args, expected):
    assert ex.list_path(*args) == expected


def test_resource_list_key_and_entry():
    assert ex.resource_list_key("v1", "Pod") == "v1/Pod"
    assert ex.resource_list_key("apps/v1", "Deployment") == "apps/v1/Deployment"
    assert ex.resource_list_entry("ns", "a") == "ns/a"
    assert ex.resource_list_entry("", "node-1") == "node-1"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", None])
def test_archive_name_must_be_a_plain_file_name(name):
    with pytest.raises(ExportError):
        ex.check_archive_name(name)


# --------------------------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("active, label_match, has_selector, all_ns, in_scope, has_items, expected", [
    (True, False, False, False, True, False, True),     # named in scope
    (True, False, False, False, False, False, False),   # out of scope
    (False, False, False, False, True, False, False),   # terminating
    (False, False, False, False, False, True, True),    # holds exported items
    (True, True, True, True, True, False, True),        # all + selector: labels match
    (True, False, True, True, True, False, False),      # all + selector: no match, no items
    (True, False, True, True, True, True, True),        # all + selector: holds items
    (True, False, True, False, True, False, True),      # named + selector: in scope
])
def test_include_namespace_object(active, label_match, has_selector, all_ns, in_scope, has_items, expected):
    assert ex.include_namespace_object("ns", active, label_match, has_selector, all_ns, in_scope,
                                       has_items) is expected


@pytest.mark.parametrize("given", [[("db", "p")], ["db/p"], [{"namespace": "db", "name": "p"}],
                                   [{"namespace": "db", "pod": "p"}]])
def test_normalize_pod_set(given):
    assert ex.normalize_pod_set(given) == {("db", "p")}


# --------------------------------------------------------------------------------------------
# The archive writer on a fake item stream
# --------------------------------------------------------------------------------------------

POD = {"group": "", "version": "v1", "api_version": "v1", "resource": "pods", "group_resource": "pods",
       "kind": "Pod", "namespaced": True}
DEPLOY = {"group": "apps", "version": "v1", "api_version": "apps/v1", "resource": "deployments",
          "group_resource": "deployments.apps", "kind": "Deployment", "namespaced": True}
PV = {"group": "", "version": "v1", "api_version": "v1", "resource": "persistentvolumes",
      "group_resource": "persistentvolumes", "kind": "PersistentVolume", "namespaced": False}


def obj(name, namespace=None, **extra):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(extra.pop("metadata", {}))
    out = {"metadata": metadata, "spec": {"x": name}}
    out.update(extra)
    return out


def fake_stream():
    yield POD, obj("web-1", "shop")
    yield POD, obj("db-0", "shop")           # its pre hook failed with Fail
    yield POD, obj("old", "shop", metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"})
    yield POD, obj("opted-out", "shop", metadata={"labels": {"velero.io/exclude-from-backup": "true"}})
    yield DEPLOY, obj("web", "shop")
    yield PV, obj("pv-1")


def members(path):
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def run_writer(tmp_path, stream, **kwargs):
    path = str(tmp_path / "b.tar.gz")
    listing = str(tmp_path / "b-resource-list.json.gz")
    writer = ex.ArchiveWriter(path, listing, mtime=1700000000)
    state = ex.write_archive(writer, stream, **kwargs)
    writer.close()
    return path, listing, state


def test_archive_layout(tmp_path):
    path, _listing, _state = run_writer(tmp_path, fake_stream(), exclude_pods=[("shop", "db-0")])
    files = members(path)
    assert files["metadata/version"] == b"1.1.0\n"
    assert sorted(files) == sorted([
        "metadata/version",
        "resources/pods/namespaces/shop/web-1.json",
        "resources/pods/v1-preferredversion/namespaces/shop/web-1.json",
        "resources/deployments.apps/namespaces/shop/web.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json",
        "resources/persistentvolumes/cluster/pv-1.json",
        "resources/persistentvolumes/v1-preferredversion/cluster/pv-1.json",
    ])
    assert list(files)[0] == "metadata/version"


def test_archive_items_carry_api_version_and_kind_and_both_copies_are_equal(tmp_path):
    path, _listing, _state = run_writer(tmp_path, fake_stream())
    files = members(path)
    deploy = json.loads(files["resources/deployments.apps/namespaces/shop/web.json"])
    assert deploy["apiVersion"] == "apps/v1" and deploy["kind"] == "Deployment"
    assert deploy["metadata"] == {"name": "web", "namespace": "shop"} and deploy["spec"] == {"x": "web"}
    assert files["resources/deployments.apps/namespaces/shop/web.json"] == \
        files["resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"]
    pv = json.loads(files["resources/persistentvolumes/cluster/pv-1.json"])
    assert pv["apiVersion"] == "v1" and pv["kind"] == "PersistentVolume"


def test_archive_counts_excluded_and_skipped(tmp_path):
    _path, _listing, state = run_writer(tmp_path, fake_stream(), exclude_pods=["shop/db-0"])
    assert state["counts"] == {"pods": 1, "deployments.apps": 1, "persistentvolumes": 1}
    assert state["items_backed_up"] == 3
    assert state["total_items"] == 4          # the excluded pod was in scope
    assert state["excluded_pods"] == ["shop/db-0"]
    assert state["skipped"] == {"being_deleted": 1, "exclude_label": 1}
    assert state["namespaces_with_items"] == {"shop"}


def test_excluded_pods_only_apply_to_pods(tmp_path):
    _path, _listing, state = run_writer(tmp_path, fake_stream(), exclude_pods=[("shop", "web")])
    assert state["counts"]["deployments.apps"] == 1 and state["excluded_pods"] == []


def test_resource_list_is_velero_format(tmp_path):
    _path, listing, _state = run_writer(tmp_path, fake_stream(), exclude_pods=[("shop", "db-0")])
    with gzip.open(listing) as handle:
        data = json.loads(handle.read())
    assert data == {"v1/Pod": ["shop/web-1"], "apps/v1/Deployment": ["shop/web"],
                    "v1/PersistentVolume": ["pv-1"]}


def test_empty_stream_gives_a_valid_archive_and_list(tmp_path):
    path, listing, state = run_writer(tmp_path, iter(()))
    assert list(members(path)) == ["metadata/version"]
    with gzip.open(listing) as handle:
        assert json.loads(handle.read()) == {}
    assert state["items_backed_up"] == 0


def test_archive_files_are_owner_only_and_no_partial_is_left(tmp_path):
    path, listing, _state = run_writer(tmp_path, fake_stream())
    for name in (path, listing):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert sorted(os.listdir(str(tmp_path))) == ["b-resource-list.json.gz", "b.tar.gz"]


def test_abort_removes_partial_files(tmp_path):
    writer = ex.ArchiveWriter(str(tmp_path / "b.tar.gz"), str(tmp_path / "b-resource-list.json.gz"))
    writer.add(POD, obj("a", "ns"))
    writer.abort()
    assert os.listdir(str(tmp_path)) == []


def test_writer_consumes_items_one_at_a_time(tmp_path):
    """Each object is written before the next is produced: nothing accumulates."""
    produced = []
    written_when_produced = []

    class Spy(ex.ArchiveWriter):
        written = 0

        def add(self, resource, obj):
            super(Spy, self).add(resource, obj)
            Spy.written += 1

    def stream():
        for i in range(50):
            written_when_produced.append(Spy.written)
            produced.append(i)
            yield POD, obj("p%d" % i, "ns")

    writer = Spy(str(tmp_path / "b.tar.gz"))
    ex.write_archive(writer, stream())
    writer.close()
    assert written_when_produced == list(range(50))


def test_writer_memory_does_not_grow_with_the_number_of_objects(tmp_path):
    """Peak memory for 3000 objects stays close to that for 300 (tarfile's member list is dropped)."""
    def peak(count, directory):
        directory.mkdir()
        tracemalloc.start()
        try:
            writer = ex.ArchiveWriter(str(directory / "b.tar.gz"), str(directory / "b-resource-list.json.gz"))
            ex.write_archive(writer, ((POD, obj("pod-%06d" % i, "ns-%d" % (i % 7))) for i in range(count)))
            writer.close()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    small, large = peak(300, tmp_path / "small"), peak(3000, tmp_path / "large")
    assert large < small * 1.3 + 64 * 1024, (small, large)


def test_progress_callback(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "PROGRESS_EVERY", 2)
    events = []
    stream = ((POD, obj("p%d" % i, "ns")) for i in range(5))
    run_writer(tmp_path, stream, progress=events.append)
    assert [e["items"] for e in events] == [2, 4, 5]
    assert events[-1] == {"resource": "pods", "items": 5, "items_backed_up": 5, "done": True}


def test_unwritable_directory_raises_export_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text(u"not a directory")
    with pytest.raises(ExportError, match="cannot write the backup archive"):
        ex.ArchiveWriter(str(blocker / "b.tar.gz"))


def test_export_into_unwritable_directory_fails_before_any_api_call(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text(u"not a directory")
    calls = []
    with pytest.raises(ExportError, match="cannot create the backup directory"):
        ex.export(None, "b", str(blocker / "sub"), get_json=lambda path, query=None: calls.append(path))
    assert calls == []


# --------------------------------------------------------------------------------------------
# export() end to end over an in-memory fake of the API's GET endpoints
# --------------------------------------------------------------------------------------------

def namespace(name, labels=None, phase="Active"):
    return {"metadata": {"name": name, "labels": labels or {}}, "status": {"phase": phase}}


CLUSTER = {
    ("", "namespaces"): [namespace("shop", {"team": "a"}), namespace("db", {"team": "b"}),
                         namespace("kube-system"), namespace("dying", phase="Terminating")],
    ("", "pods"): [obj("web-1", "shop", metadata={"labels": {"app": "web"}}),
                   obj("web-2", "shop", metadata={"labels": {"app": "web"}}),
                   obj("db-0", "db", metadata={"labels": {"app": "db"}}),
                   obj("coredns", "kube-system")],
    ("", "configmaps"): [obj("cfg", "shop"), obj("cfg", "db")],
    ("", "persistentvolumes"): [obj("pv-1")],
    ("", "events"): [obj("e1", "shop")],
    ("events.k8s.io", "events"): [obj("e1", "shop")],
    ("apps", "deployments"): [obj("web", "shop", metadata={"labels": {"app": "web"}})],
    ("rbac.authorization.k8s.io", "clusterroles"): [obj("admin")],
    ("snapshot.storage.k8s.io", "volumesnapshots"): [obj("snap", "db")],
}


def run_export(tmp_path, api=None, **kwargs):
    api = api or FakeApi(CLUSTER)
    result = ex.export(None, "nightly", str(tmp_path), get_json=api, **kwargs)
    return api, result, members(result["path"])


def names(files, prefix="resources/"):
    return sorted(n for n in files if n.startswith(prefix) and "-preferredversion" not in n)


# Keys Ansible gives a meaning of its own in a task result, which resource_export passes on as they
# are (a non-empty "skipped" marks the task skipped, "results" is renamed).  The module itself
# turns "warnings" into "warning_messages".
ANSIBLE_RESULT_KEYS = {"skipped", "failed", "changed", "results", "invocation", "ansible_facts", "exception"}


def test_export_full_cluster(tmp_path):
    api, result, files = run_export(tmp_path)
    assert not ANSIBLE_RESULT_KEYS & set(result), "the module would pass these keys on to Ansible"
    assert result["skipped_items"] == {"being_deleted": 0, "exclude_label": 0}
    assert names(files) == sorted([
        "resources/pods/namespaces/shop/web-1.json", "resources/pods/namespaces/shop/web-2.json",
        "resources/pods/namespaces/db/db-0.json", "resources/pods/namespaces/kube-system/coredns.json",
        "resources/configmaps/namespaces/shop/cfg.json", "resources/configmaps/namespaces/db/cfg.json",
        "resources/persistentvolumes/cluster/pv-1.json",
        "resources/events/namespaces/shop/e1.json",
        "resources/deployments.apps/namespaces/shop/web.json",
        "resources/clusterroles.rbac.authorization.k8s.io/cluster/admin.json",
        "resources/namespaces/cluster/shop.json", "resources/namespaces/cluster/db.json",
        "resources/namespaces/cluster/kube-system.json",
    ])
    # events.k8s.io cohabits with core events; volumesnapshots are auto-excluded; "dying" is Terminating
    assert result["counts"]["pods"] == 4 and "events.events.k8s.io" not in result["counts"]
    assert result["path"] == str(tmp_path / "nightly.tar.gz")
    assert result["errors"] == [] and result["items_backed_up"] == 13
    # paginated: every LIST carries a limit, and pods took two pages
    lists = [(p, q) for p, q in api.calls if q]
    assert all(q["limit"] == ex.DEFAULT_PAGE_SIZE for _p, q in lists)
    assert [q.get("continue") for p, q in lists if p == "/api/v1/pods"] == [None, "2"]
    ns = json.loads(files["resources/namespaces/cluster/shop.json"])
    assert ns["apiVersion"] == "v1" and ns["kind"] == "Namespace"


def test_export_resource_list_file(tmp_path):
    _api, result, _files = run_export(tmp_path, included_namespaces=["shop"])
    with gzip.open(result["resource_list_path"]) as handle:
        listing = json.loads(handle.read())
    assert listing["v1/Pod"] == ["shop/web-1", "shop/web-2"]
    assert listing["v1/Namespace"] == ["shop"]
    assert result["resource_list_path"] == str(tmp_path / "nightly-resource-list.json.gz")


def test_export_namespace_subset_leaves_out_cluster_resources(tmp_path):
    api, result, files = run_export(tmp_path, included_namespaces=["shop"])
    assert names(files) == sorted([
        "resources/pods/namespaces/shop/web-1.json", "resources/pods/namespaces/shop/web-2.json",
        "resources/configmaps/namespaces/shop/cfg.json", "resources/events/namespaces/shop/e1.json",
        "resources/deployments.apps/namespaces/shop/web.json", "resources/namespaces/cluster/shop.json",
    ])
    # plain names: one LIST per namespace, never cluster-wide
    assert "/api/v1/pods" not in [p for p, _q in api.calls]
    assert "/api/v1/namespaces/shop/pods" in [p for p, _q in api.calls]


def test_export_namespace_subset_with_cluster_resources_true(tmp_path):
    _api, _result, files = run_export(tmp_path, included_namespaces=["db"], include_cluster_resources=True)
    assert "resources/persistentvolumes/cluster/pv-1.json" in files
    assert "resources/clusterroles.rbac.authorization.k8s.io/cluster/admin.json" in files
    assert "resources/namespaces/cluster/db.json" in files
    assert "resources/namespaces/cluster/shop.json" not in files


def test_export_cluster_resources_false_has_no_namespace_objects(tmp_path):
    _api, _result, files = run_export(tmp_path, include_cluster_resources=False)
    assert not [n for n in files if "/cluster/" in n]
    assert "resources/pods/namespaces/db/db-0.json" in files


def test_export_excluded_namespaces_and_globs(tmp_path):
    _api, _result, files = run_export(tmp_path, included_namespaces=["*"], excluded_namespaces=["kube-*"])
    assert "resources/pods/namespaces/kube-system/coredns.json" not in files
    assert "resources/namespaces/cluster/kube-system.json" not in files
    # excludes present: not "everything", so cluster-scoped resources stay out (auto)
    assert "resources/persistentvolumes/cluster/pv-1.json" not in files


def test_export_included_resources_and_label_selector(tmp_path):
    _api, result, files = run_export(tmp_path, included_resources=["po", "deploy"], label_selector="app=web")
    assert names(files) == sorted([
        "resources/pods/namespaces/shop/web-1.json", "resources/pods/namespaces/shop/web-2.json",
        "resources/deployments.apps/namespaces/shop/web.json",
    ])
    assert result["counts"] == {"pods": 2, "deployments.apps": 1}


def test_export_label_selector_namespace_objects_follow_items_and_labels(tmp_path):
    _api, _result, files = run_export(tmp_path, label_selector=["app=db"])
    assert "resources/pods/namespaces/db/db-0.json" in files
    assert "resources/namespaces/cluster/db.json" in files          # holds an exported item
    assert "resources/namespaces/cluster/shop.json" not in files
    (tmp_path / "again").mkdir()
    _api, _result, files = run_export(tmp_path / "again", label_selector=["team=a"])
    assert "resources/namespaces/cluster/shop.json" in files        # its labels match


def test_a_finished_archive_is_never_overwritten(tmp_path):
    _api, result, _files = run_export(tmp_path)
    before = open(result["path"], "rb").read()
    with pytest.raises(ExportError, match="already exists: a finished backup is never overwritten"):
        run_export(tmp_path, label_selector=["team=a"])
    assert open(result["path"], "rb").read() == before
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(".partial")]


def test_two_exports_of_one_name_never_interleave(tmp_path):
    first = ex.ArchiveWriter(str(tmp_path / "b.tar.gz"), str(tmp_path / "b-resource-list.json.gz"))
    with pytest.raises(ExportError, match="another export of backup archive .* is running"):
        ex.ArchiveWriter(str(tmp_path / "b.tar.gz"), str(tmp_path / "b-resource-list.json.gz"))
    ex.write_archive(first, iter([(POD, obj("p1", "ns"))]))
    first.close()
    assert "resources/pods/namespaces/ns/p1.json" in members(str(tmp_path / "b.tar.gz"))
    with pytest.raises(ExportError, match="already exists"):
        ex.ArchiveWriter(str(tmp_path / "b.tar.gz"), str(tmp_path / "b-resource-list.json.gz"))


def test_a_partial_archive_left_by_a_killed_export_is_taken_over(tmp_path):
    (tmp_path / "b.tar.gz.partial").write_bytes(b"half an archive")
    writer = ex.ArchiveWriter(str(tmp_path / "b.tar.gz"), str(tmp_path / "b-resource-list.json.gz"))
    ex.write_archive(writer, iter([(POD, obj("p1", "ns"))]))
    writer.close()
    assert "resources/pods/namespaces/ns/p1.json" in members(str(tmp_path / "b.tar.gz"))


def test_export_leaves_out_excluded_pods(tmp_path):
    _api, result, files = run_export(tmp_path, included_namespaces=["shop"], exclude_pods={("shop", "web-2")})
    assert "resources/pods/namespaces/shop/web-2.json" not in files
    assert "resources/pods/v1-preferredversion/namespaces/shop/web-2.json" not in files
    assert result["excluded_pods"] == ["shop/web-2"]
    assert result["total_items"] == result["items_backed_up"] + 1


def test_export_list_error_is_reported_and_the_rest_exported(tmp_path):
    api = FakeApi(CLUSTER)
    api.fail["/api/v1/namespaces/shop/configmaps"] = (403, 'configmaps is forbidden')
    _api, result, files = run_export(tmp_path, api, included_namespaces=["shop"])
    assert result["errors"] == [{"resource": "configmaps", "namespace": "shop",
                                 "message": "Forbidden: the credentials may not list configmaps in namespace "
                                            "shop (RBAC needs that permission): configmaps is forbidden"}]
    assert "resources/pods/namespaces/shop/web-1.json" in files


def test_export_missing_namespace_is_an_error(tmp_path):
    _api, result, _files = run_export(tmp_path, included_namespaces=["shop", "gone"])
    assert [e["message"] for e in result["errors"]] == [
        "namespace gone given in included_namespaces does not exist"]


def test_export_continues_after_an_expired_continue_token(tmp_path):
    api = FakeApi(CLUSTER)
    api.expire_once.add("2")
    _api, result, files = run_export(tmp_path, api)
    assert "resources/pods/namespaces/kube-system/coredns.json" in files
    assert any("newer snapshot" in w for w in result["warning_messages"])


def test_export_invalid_scope_raises_scope_error_before_io(tmp_path):
    with pytest.raises(ScopeError):
        ex.export(None, "b", str(tmp_path), excluded_namespaces=["*"], get_json=FakeApi(CLUSTER))
    with pytest.raises(ScopeError):
        ex.export(None, "b", str(tmp_path), label_selector=["a in (b"], get_json=FakeApi(CLUSTER))
    assert os.listdir(str(tmp_path)) == []


def test_export_rejects_bad_include_cluster_resources(tmp_path):
    with pytest.raises(ExportError):
        ex.export(None, "b", str(tmp_path), include_cluster_resources="yes", get_json=FakeApi(CLUSTER))


def test_export_api_unreachable_leaves_no_partial_archive(tmp_path):
    api = FakeApi(CLUSTER)
    api.fail["/api"] = (0, "connection refused")
    with pytest.raises(ExportError, match="connection refused"):
        ex.export(None, "b", str(tmp_path), get_json=api)
    assert os.listdir(str(tmp_path)) == []


# --------------------------------------------------------------------------------------------
# What resource_export does: progress file, checks, check mode's types
# --------------------------------------------------------------------------------------------

def test_progress_file_is_rewritten_whole_and_throttled(tmp_path):
    clock = iter([100.0, 100.1, 100.2, 101.0, 101.1]).__next__
    path = str(tmp_path / "b-progress.json")
    progress = ex.ProgressFile(path, "b", interval=0.5, clock=clock)  # writes at 100.0
    with open(path) as handle:
        assert json.load(handle)["done"] is False
    progress({"resource": "pods", "items": 200, "items_backed_up": 200, "done": False})  # 100.1: throttled
    with open(path) as handle:
        assert json.load(handle)["items_backed_up"] == 0
    progress({"resource": "pods", "items": 250, "items_backed_up": 250, "done": True})  # 100.2: throttled
    progress({"resource": "configmaps", "items": 3, "items_backed_up": 253, "done": True})  # 101.0: written
    with open(path) as handle:
        state = json.load(handle)
    assert (state["resource"], state["items_backed_up"], state["resource_types_done"]) == ("configmaps", 253, 2)
    progress.finish(total_items=253)  # 101.1: always written
    with open(path) as handle:
        state = json.load(handle)
    assert state["done"] is True and state["total_items"] == 253 and state["elapsed"] == pytest.approx(1.1)
    assert os.stat(path).st_mode & 0o077 == 0 and os.listdir(str(tmp_path)) == ["b-progress.json"]


def test_progress_file_problems_are_a_warning_not_a_failure(tmp_path):
    progress = ex.ProgressFile(str(tmp_path / "missing-dir" / "p.json"), "b")
    progress.finish()
    assert "cannot write the progress file" in progress.warning


@pytest.mark.parametrize("entry", ["nopod", "/x", "ns/", "a/b/c"])
def test_exclude_pods_must_be_namespace_slash_name(entry):
    with pytest.raises(KubehooksError, match="namespace/name"):
        ex.check_exclude_pods([entry])
    ex.check_exclude_pods(["ns/pod"])


def test_planned_types_from_discovery_only():
    documents = {
        "/api": {"versions": ["v1"]},
        "/apis": {"groups": [{"name": "apps", "versions": [{"version": "v1"}], "preferredVersion": {"version": "v1"}}]},
        "/api/v1": {"resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list", "create", "get", "delete"]},
            {"name": "pods/exec", "kind": "PodExecOptions", "namespaced": True, "verbs": ["create"]},
            {"name": "namespaces", "kind": "Namespace", "namespaced": False, "verbs": ["list", "create", "get", "delete"]},
            {"name": "nodes", "kind": "Node", "namespaced": False, "verbs": ["list", "create", "get", "delete"]}]},
        "/apis/apps/v1": {"resources": [
            {"name": "deployments", "kind": "Deployment", "namespaced": True, "shortNames": ["deploy"],
             "verbs": ["list", "create", "get", "delete"]}]},
    }
    params = {"included_resources": [], "excluded_resources": [], "included_namespaces": ["ns"],
              "excluded_namespaces": [], "include_cluster_resources": None}
    types, warnings = ex.planned_types(lambda path, query=None, accept=None: documents[path], params)
    assert types == ["pods", "deployments.apps", "namespaces"] and warnings == []
    params.update(included_namespaces=[], excluded_resources=["deploy"])
    types, _warnings = ex.planned_types(lambda path, query=None, accept=None: documents[path], params)
    assert types == ["pods", "nodes", "namespaces"]


# --------------------------------------------------------------------------------------------
# What the real Velero needs to restore an archive
# --------------------------------------------------------------------------------------------

def test_every_tar_entry_is_0755_as_velero_writes_them(tmp_path):
    """Velero's extractor creates an entry's parent directories with the entry's mode: 0644 breaks it."""
    path, _listing, _state = run_writer(tmp_path, fake_stream())
    with tarfile.open(path, "r:gz") as tar:
        modes = {m.name: stat.S_IMODE(m.mode) for m in tar.getmembers()}
    assert modes and set(modes.values()) == {0o755}


def claim(name, namespace, volume, phase="Bound", **metadata):
    return obj(name, namespace, metadata=metadata, spec={"volumeName": volume}, status={"phase": phase})


def volume(name, claim_ref=None, labels=None):
    return obj(name, metadata={"labels": labels or {}}, spec={"claimRef": claim_ref or {}})


PV_CLUSTER = dict(CLUSTER)
PV_CLUSTER.update({
    ("", "persistentvolumeclaims"): [
        claim("data", "db", "pv-1"),
        claim("logs", "shop", "pv-2"),
        claim("pending", "shop", "pv-9", phase="Pending"),
        claim("going", "shop", "pv-3", deletionTimestamp="2026-01-01T00:00:00Z"),
    ],
    ("", "persistentvolumes"): [volume("pv-1", labels={"app": "db"}), volume("pv-2"), volume("pv-3"),
                                volume("pv-free")],
})


def listing_of(result):
    with gzip.open(result["resource_list_path"]) as handle:
        return json.loads(handle.read())


def test_bound_pv_of_a_claim_in_scope_is_in_the_archive_and_list(tmp_path):
    """Velero's PVC backup action adds the bound PV, even when cluster resources are otherwise out."""
    api = FakeApi(PV_CLUSTER)
    _api, result, files = run_export(tmp_path, api, included_namespaces=["shop"])
    pvs = [n for n in names(files) if n.startswith("resources/persistentvolumes/")]
    assert pvs == ["resources/persistentvolumes/cluster/pv-2.json"]    # not pending's, not the dying claim's
    assert "resources/persistentvolumes/v1-preferredversion/cluster/pv-2.json" in files
    assert json.loads(files["resources/persistentvolumes/cluster/pv-2.json"])["kind"] == "PersistentVolume"
    assert listing_of(result)["v1/PersistentVolume"] == ["pv-2"]
    assert result["counts"]["persistentvolumes"] == 1
    assert "/api/v1/persistentvolumes/pv-2" in [p for p, _q in api.calls]
    assert "/api/v1/persistentvolumes" not in [p for p, _q in api.calls]   # only the bound one


def test_bound_pvs_are_not_written_twice_when_every_pv_is_listed(tmp_path):
    _api, result, files = run_export(tmp_path, FakeApi(PV_CLUSTER))
    pvs = [n for n in names(files) if n.startswith("resources/persistentvolumes/")]
    assert len(pvs) == 4 and len(set(pvs)) == 4
    assert sorted(listing_of(result)["v1/PersistentVolume"]) == ["pv-1", "pv-2", "pv-3", "pv-free"]


def test_bound_pv_not_matching_the_label_selector_is_still_added(tmp_path):
    objects = dict(PV_CLUSTER)
    objects[("", "persistentvolumeclaims")] = [claim("data", "db", "pv-1", labels={"app": "db"}),
                                               claim("logs", "shop", "pv-2", labels={"app": "db"})]
    _api, result, files = run_export(tmp_path, FakeApi(objects), label_selector="app=db",
                                     include_cluster_resources=True)
    pvs = [n for n in names(files) if n.startswith("resources/persistentvolumes/")]
    assert pvs == ["resources/persistentvolumes/cluster/pv-1.json", "resources/persistentvolumes/cluster/pv-2.json"]
    assert listing_of(result)["v1/PersistentVolume"] == ["pv-1", "pv-2"]   # one group, each once


@pytest.mark.parametrize("kwargs", [{"include_cluster_resources": False}, {"excluded_resources": ["pv"]}])
def test_bound_pv_is_left_out_when_cluster_resources_or_pvs_are(tmp_path, kwargs):
    _api, result, files = run_export(tmp_path, FakeApi(PV_CLUSTER), included_namespaces=["shop"], **kwargs)
    assert not [n for n in files if n.startswith("resources/persistentvolumes/")]
    assert "resources/persistentvolumeclaims/namespaces/shop/logs.json" in files


def test_bound_pv_that_cannot_be_read_is_an_error_and_the_rest_goes_on(tmp_path):
    api = FakeApi(PV_CLUSTER)
    api.fail["/api/v1/persistentvolumes/pv-2"] = (403, "persistentvolumes is forbidden")
    _api, result, files = run_export(tmp_path, api, included_namespaces=["shop"])
    assert [e["resource"] for e in result["errors"]] == ["persistentvolumes"]
    assert "bound to claim shop/logs" in result["errors"][0]["message"]
    assert "resources/persistentvolumeclaims/namespaces/shop/logs.json" in files
