"""backup_info (table, lookup by name, one backup) and resource_export's pure parts (progress file, checks)."""
import json
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.modules import backup_info as bi
from ansible_collections.kubehooks.backup.plugins.modules import resource_export as rx


def make_backup(storage, name, cluster=None, phase="Completed", entries=()):
    bdir = _layout.claim_backup_dir(_layout.backup_dir(str(storage), name, cluster), name)
    record = _record.new_record(name, cluster=cluster, now=1795590000)
    _record.mark_started(record, ["ns/a"], now=1795590000)
    if phase != "InProgress":
        _record.finish_record(record, phase, {"hooks_attempted": 2, "hooks_failed": 0},
                              {"path": "x", "items_backed_up": 3, "total_items": 3}, freeze_window=0.5, now=1795590005)
    _record.write_record(bdir, record)
    if entries:
        _record.append_log(_layout.log_path(bdir, name), entries, backup=name)
    with open(os.path.join(bdir, name + "-hook-plan.json"), "w") as handle:
        json.dump([{"namespace": "ns", "name": "a", "pre": [], "post": []}], handle)
    return bdir


def test_velero_time_and_table():
    assert bi.velero_time("2026-11-25T09:10:02Z") == "2026-11-25 09:10:02 +0000 UTC"
    assert bi.velero_time(None) == "<nil>"
    lines = bi.table([{"name": "nginx-hook-test", "status": "Completed", "errors": 0, "warnings": 0,
                       "created": "2026-11-25T09:10:02Z", "expires": "n/a", "storage_location": "default",
                       "selector": "<none>"}])
    assert lines[0].split() == ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE", "LOCATION",
                                "SELECTOR"]
    assert lines[1].split() == ["nginx-hook-test", "Completed", "0", "0", "2026-11-25", "09:10:02", "+0000", "UTC",
                                "n/a", "default", "<none>"]
    assert lines[0].index("STATUS") == lines[1].index("Completed")  # columns line up


def test_find_backup_across_clusters(tmp_path):
    make_backup(tmp_path, "one", cluster="c1")
    make_backup(tmp_path, "both", cluster="c1")
    make_backup(tmp_path, "both", cluster="c2")
    assert bi.find_backup(str(tmp_path), "one") == str(tmp_path / "c1" / "backups" / "one")
    with pytest.raises(KubehooksError, match="several clusters"):
        bi.find_backup(str(tmp_path), "both")
    assert bi.find_backup(str(tmp_path), "both", "c2") == str(tmp_path / "c2" / "backups" / "both")
    with pytest.raises(KubehooksError, match="no backup missing"):
        bi.find_backup(str(tmp_path), "missing")


def test_one_backup_with_hook_entries_only(tmp_path):
    entries = [{"msg": "exec hook succeeded", "hookCommand": ["/bin/true"], "hookPhase": "pre"},
               {"msg": "Backup completed", "level": "info"}]
    bdir = make_backup(tmp_path, "b1", entries=entries)
    out = bi.one_backup(bdir, hooks_only=True)
    assert out["backup"]["status"] == "Completed" and out["backup"]["freeze_window_seconds"] == 0.5
    assert out["backup"]["frozen_pods"] == ["ns/a"]
    assert [e["hookCommand"] for e in out["logs"]] == [["/bin/true"]]
    assert json.loads(out["log_lines"][0])["backup"] == "velero/b1"
    assert out["hook_plan"][0]["name"] == "a" and "archive" not in out["files"]
    assert len(bi.one_backup(bdir, logs=True)["logs"]) == 2
    assert "logs" not in bi.one_backup(bdir)
    with pytest.raises(KubehooksError, match="not other"):
        bi.one_backup(bdir, expected_name="other")


def test_progress_file_is_rewritten_whole_and_throttled(tmp_path):
    clock = iter([100.0, 100.1, 100.2, 101.0, 101.1]).__next__
    path = str(tmp_path / "b-progress.json")
    progress = rx.ProgressFile(path, "b", interval=0.5, clock=clock)  # writes at 100.0
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
    progress = rx.ProgressFile(str(tmp_path / "missing-dir" / "p.json"), "b")
    progress.finish()
    assert "cannot write the progress file" in progress.warning


@pytest.mark.parametrize("entry", ["nopod", "/x", "ns/", "a/b/c"])
def test_exclude_pods_must_be_namespace_slash_name(entry):
    with pytest.raises(KubehooksError, match="namespace/name"):
        rx.check_exclude_pods([entry])
    rx.check_exclude_pods(["ns/pod"])


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
    types, warnings = rx.planned_types(lambda path, query=None: documents[path], params)
    assert types == ["pods", "deployments.apps", "namespaces"] and warnings == []
    params.update(included_namespaces=[], excluded_resources=["deploy"])
    types, _warnings = rx.planned_types(lambda path, query=None: documents[path], params)
    assert types == ["pods", "nodes", "namespaces"]


def test_logs_of_a_run_in_progress_include_the_pending_hook_lines(tmp_path):
    bdir = make_backup(tmp_path, "b2", phase="InProgress")
    with open(os.path.join(bdir, "b2-hooks.jsonl"), "w") as handle:
        handle.write(json.dumps({"hookCommand": ["/sbin/fsfreeze", "--freeze", "/data"], "hookPhase": "pre"}) + "\n")
        handle.write('{"hookCommand": ["cut')  # a line still being written: ignored
    out = bi.one_backup(bdir, hooks_only=True)
    assert out["backup"]["status"] == "InProgress"
    assert [e["hookCommand"][1] for e in out["logs"]] == ["--freeze"]
    record = _record.load_record(bdir)
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED, "1")  # what backup_record does once it copied it
    _record.write_record(bdir, record)
    assert bi.one_backup(bdir, hooks_only=True)["logs"] == []
