"""resource_export, backup_record and backup_info as single modules on the local cluster (the role's tests
cover them together: test_role_create.py)."""
import json
import os

from modrun import run_module


def auth(cluster):
    return {"kubeconfig": cluster.kubeconfig}


def test_check_mode_only_discovers_and_writes_nothing(cluster, namespace, tmp_path):
    storage = tmp_path / "storage"
    result = run_module("resource_export", dict(auth(cluster), name="dry", storage_dir=str(storage),
                                                included_namespaces=[namespace], excluded_resources=["secrets"]),
                        check_mode=True)
    assert not result.get("failed"), result
    assert result["resource_types"][0] == "pods" and result["resource_types"][-1] == "namespaces"
    assert "secrets" not in result["resource_types"] and "nodes" not in result["resource_types"]
    assert not os.path.exists(str(storage))


def test_export_leaves_out_given_pods_and_reports_progress(cluster, namespace, pods, tmp_path):
    names = pods.fake_pods(3)
    storage = tmp_path / "storage"
    result = run_module("resource_export", dict(auth(cluster), name="one", storage_dir=str(storage), cluster="c1",
                                                included_namespaces=[namespace], included_resources=["pods"],
                                                exclude_pods=[f"{namespace}/{names[0]}"], page_size=2))
    assert not result.get("failed"), result
    bdir = str(storage / "c1" / "backups" / "one")
    assert result["backup_dir"] == bdir and result["path"] == os.path.join(bdir, "one.tar.gz")
    assert result["counts"] == {"pods": 2}  # included_resources [pods]: not even the Namespace (as Velero)
    assert result["excluded_pods"] == [f"{namespace}/{names[0]}"]
    assert (result["items_backed_up"], result["total_items"]) == (2, 3)
    with open(result["progress_path"]) as handle:
        progress = json.load(handle)
    assert progress["done"] is True and progress["items_backed_up"] == 2

    bad = run_module("resource_export", dict(auth(cluster), name="two", storage_dir=str(storage),
                                             exclude_pods=["no-slash"]))
    assert bad["failed"] and "namespace/name" in bad["msg"]


def test_record_steps_and_info_without_the_cluster(tmp_path):
    storage = str(tmp_path / "storage")
    plan = [{"namespace": "ns", "name": "a", "phase": "Running", "errors": [],
             "pre": [{"source": "annotation", "name": "<from-annotation>", "container": "c", "command": ["/bin/true"],
                      "on_error": "Fail", "timeout": 30, "index": 0}], "post": []}]
    args = {"state": "started", "name": "r1", "storage_dir": storage, "cluster": "c1", "plan": plan}
    # It never contacts a cluster: connection options are not options of it (nor of backup_info).
    refused = run_module("backup_record", dict(args, kubeconfig="/nonexistent"))
    assert refused["failed"] and "Unsupported parameters" in refused["msg"] and "kubeconfig" in refused["msg"]
    started = run_module("backup_record", args)
    assert started["phase"] == "InProgress" and started["frozen_pods"] == ["ns/a"], started
    listing = run_module("backup_info", {"storage_dir": storage})
    assert [(r["name"], r["status"], r["cluster"]) for r in listing["backups"]] == [("r1", "InProgress", "c1")]
    done = run_module("backup_record", {"state": "finished", "name": "r1", "backup_dir": started["backup_dir"],
                                        "run_id": started["run_id"], "failure_reason": "stopped by the test"})
    assert done["phase"] == "Failed" and done["record"]["status"]["failureReason"] == "stopped by the test"
    shown = run_module("backup_info", {"storage_dir": storage, "name": "r1", "logs": True,
                                       "query": "logs[-1].msg"})
    assert shown["backup"]["status"] == "Failed" and shown["query_result"] == "Backup failed"
    bad = run_module("backup_info", {"storage_dir": storage, "query": "backups[?"})
    assert bad["failed"] and "backups[?" in bad["msg"]


def test_aggregated_discovery_of_the_real_server_gives_what_legacy_discovery_gives(api_client):
    """The API server answers /api and /apis with aggregated discovery: two requests give the same resource
    types and versions, groups in the same order, as one request per group version (the CSI snapshot CRDs
    included).  Within a CRD's group the aggregated document lists resources by name, as client-go (and so
    Velero) sees them; the legacy document lists them as the CRDs were registered."""
    from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _resources

    get_json = _api.api_getter(api_client)
    asked = []

    def counted(path, query=None, accept=None):
        asked.append(path)
        answer = get_json(path, query, accept=accept)
        if path in ("/api", "/apis"):
            assert answer["kind"] == _resources.AGGREGATED_KIND
        return answer

    def legacy_only(path, query=None, accept=None):  # a client that never asks for aggregated discovery
        return get_json(path, query)

    warnings = []
    aggregated = _resources.preferred_resources(_resources.discover(counted, warnings))
    legacy = _resources.preferred_resources(_resources.discover(legacy_only, []))
    assert asked == ["/api", "/apis"] and not warnings

    def key(entry):
        return entry["group_resource"]
    assert sorted(aggregated, key=key) == sorted(legacy, key=key)

    def group_order(entries):
        return [group for i, group in enumerate(e["group"] for e in entries) if i == 0 or entries[i - 1]["group"] != group]
    assert group_order(aggregated) == group_order(legacy)
    built_in = [e for e in legacy if "snapshot" not in e["group"]]  # the CSI snapshot groups are the CRDs here
    assert [e for e in aggregated if e in built_in] == built_in  # the built-in groups keep their order
    assert "volumesnapshots.snapshot.storage.k8s.io" in [entry["group_resource"] for entry in aggregated]
