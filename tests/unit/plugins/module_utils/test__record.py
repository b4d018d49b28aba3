# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _record: the Velero Backup object, phase math, logs, listing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import gzip
import json
import os
import stat

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout
from ansible_collections.kubehooks.backup.plugins.module_utils import _record as rec
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError, ScopeError

T0 = 1767225600  # 2026-01-01T00:00:00Z


def claim(storage, name, cluster=None):
    return _layout.claim_backup_dir(_layout.backup_dir(storage, name, cluster), name)


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


# --------------------------------------------------------------------------------------------
# The Backup object
# --------------------------------------------------------------------------------------------

def test_new_record_is_a_velero_backup():
    hooks = [{"name": "freeze", "includedNamespaces": ["db"],
              "pre": [{"exec": {"command": ["/sbin/fsfreeze", "--freeze", "/data"], "timeout": "60s"}}]}]
    record = rec.new_record("nginx-hook-test", included_namespaces=["nginx-example"],
                            excluded_namespaces=["kube-system"], included_resources=["pods"],
                            excluded_resources=["secrets"], label_selectors=["app=nginx"],
                            include_cluster_resources=False, hooks=hooks, cluster="prod", now=T0)
    assert record["apiVersion"] == "velero.io/v1" and record["kind"] == "Backup"
    assert record["metadata"]["name"] == "nginx-hook-test"
    assert record["metadata"]["namespace"] == "velero"
    assert record["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert record["metadata"]["labels"] == {"velero.io/storage-location": "prod"}
    assert record["metadata"]["annotations"]["backup.kubehooks.io/cluster"] == "prod"
    spec = record["spec"]
    assert spec["includedNamespaces"] == ["nginx-example"] and spec["excludedNamespaces"] == ["kube-system"]
    assert spec["includedResources"] == ["pods"] and spec["excludedResources"] == ["secrets"]
    assert spec["labelSelector"] == {"matchLabels": {"app": "nginx"}}
    assert spec["includeClusterResources"] is False
    assert spec["hooks"] == {"resources": [dict(hooks[0], pre=[{"exec": dict(hooks[0]["pre"][0]["exec"], timeout="1m0s")}])]}
    assert spec["storageLocation"] == "prod"
    assert record["status"] == {"version": 1, "formatVersion": "1.1.0", "phase": "New"}


@pytest.mark.parametrize("given, written", [
    (300, "5m0s"), ("300", "5m0s"), (1.5, "1.5s"), ("90s", "1m30s"), ("1h", "1h0m0s"), ("500ms", "500ms"),
])
def test_hook_timeouts_in_the_backup_are_go_durations(given, written):
    """Velero decodes exec.timeout as a metav1.Duration: only a Go duration string decodes."""
    hooks = [{"name": "r", "pre": [{"exec": {"command": ["true"], "timeout": given}}],
              "post": [{"exec": {"command": ["true"], "timeout": given, "onError": "Continue"}}]}]
    spec = rec.new_record("b", hooks=hooks, now=T0)["spec"]
    for phase in ("pre", "post"):
        assert spec["hooks"]["resources"][0][phase][0]["exec"]["timeout"] == written
    assert spec["hooks"]["resources"][0]["post"][0]["exec"]["onError"] == "Continue"
    assert hooks[0]["pre"][0]["exec"]["timeout"] == given   # the caller's rules are not changed


def test_hook_timeout_null_is_left_out_and_missing_stays_missing():
    hooks = [{"name": "r", "pre": [{"exec": {"command": ["true"], "timeout": None}}, {"exec": {"command": ["x"]}}],
              "post": None}]
    rule = rec.new_record("b", hooks=hooks, now=T0)["spec"]["hooks"]["resources"][0]
    assert rule["pre"] == [{"exec": {"command": ["true"]}}, {"exec": {"command": ["x"]}}]
    assert rule["post"] is None


def test_hook_timeout_that_is_no_duration_is_a_clear_error():
    with pytest.raises(KubehooksError, match=r"hooks\[0\]\.pre\[0\]\.exec\.timeout: invalid duration"):
        rec.new_record("b", hooks=[{"name": "r", "pre": [{"exec": {"command": ["true"], "timeout": "soon"}}]}])


def test_new_record_defaults():
    record = rec.new_record("b", now=T0)
    assert record["spec"]["includedNamespaces"] == ["*"]
    assert "includeClusterResources" not in record["spec"]   # nil: auto
    assert "labelSelector" not in record["spec"]
    assert record["spec"]["storageLocation"] == "default"
    assert record["metadata"]["annotations"] == {}


def test_new_record_ttl_sets_expiration():
    record = rec.new_record("b", ttl="720h", now=T0)
    assert record["spec"]["ttl"] == "720h0m0s"
    assert record["status"]["expiration"] == "2026-01-31T00:00:00Z"
    with pytest.raises(KubehooksError, match="ttl"):
        rec.new_record("b", ttl="soon")


def test_invalid_selector_is_a_scope_error():
    with pytest.raises(ScopeError):
        rec.new_record("b", label_selectors=["a in (b"])


def test_mark_started_records_frozen_pods_before_freezing():
    record = rec.mark_started(rec.new_record("b", now=T0), [("db", "pg-0"), "db/pg-1", {"namespace": "a", "name": "x"}],
                              now=T0 + 5)
    assert record["status"]["phase"] == "InProgress"
    assert record["status"]["startTimestamp"] == "2026-01-01T00:00:05Z"
    assert json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/frozen-pods"]) == \
        ["a/x", "db/pg-0", "db/pg-1"]
    assert rec.frozen_pods(record) == ["a/x", "db/pg-0", "db/pg-1"]


def test_finish_record_status():
    record = rec.mark_started(rec.new_record("b", now=T0), [], now=T0)
    export_result = {"path": "/x.tar.gz", "items_backed_up": 41, "total_items": 42, "errors": [],
                     "excluded_pods": ["db/pg-0"]}
    rec.finish_record(record, "PartiallyFailed", {"hooks_attempted": 4, "hooks_failed": 1}, export_result,
                      errors=["pre hook failed"], warnings=["w1", "w2"], freeze_window=12.3456, now=T0 + 60)
    status = record["status"]
    assert status["phase"] == "PartiallyFailed"
    assert status["completionTimestamp"] == "2026-01-01T00:01:00Z"
    assert status["hookStatus"] == {"hooksAttempted": 4, "hooksFailed": 1}
    assert status["progress"] == {"totalItems": 42, "itemsBackedUp": 41}
    assert status["errors"] == 1 and status["warnings"] == 2
    annotations = record["metadata"]["annotations"]
    assert annotations["backup.kubehooks.io/freeze-window-seconds"] == "12.346"
    assert json.loads(annotations["backup.kubehooks.io/excluded-pods"]) == ["db/pg-0"]
    with pytest.raises(KubehooksError):
        rec.finish_record(record, "Done")


def test_finish_record_derives_the_error_count_without_messages():
    record = rec.new_record("b", now=T0)
    rec.finish_record(record, "PartiallyFailed", {"hooks_attempted": 3, "hooks_failed": 2},
                      {"path": "/x", "errors": [{"message": "forbidden"}]}, now=T0)
    assert record["status"]["errors"] == 3 and record["status"]["warnings"] == 0
    rec.finish_record(record, "Failed", failure_reason="API unreachable", now=T0)
    assert record["status"]["errors"] == 1 and record["status"]["failureReason"] == "API unreachable"


# --------------------------------------------------------------------------------------------
# Phase math (_record.phase_for: the one place the phase is decided)
# --------------------------------------------------------------------------------------------

OK_EXPORT = {"path": "/b/b.tar.gz", "errors": [], "excluded_pods": []}


@pytest.mark.parametrize("hooks, export_result, fatal, phase", [
    ({"hooks_attempted": 2, "hooks_failed": 0}, OK_EXPORT, False, "Completed"),
    (None, OK_EXPORT, False, "Completed"),
    ({"hooks_attempted": 0, "hooks_failed": 0}, OK_EXPORT, False, "Completed"),
    ({"hooks_attempted": 2, "hooks_failed": 1}, OK_EXPORT, False, "PartiallyFailed"),
    ({"hooks_attempted": 2, "hooks_failed": 2}, OK_EXPORT, False, "PartiallyFailed"),   # never Failed
    ({"hooks_attempted": 2, "hooks_failed": 1}, dict(OK_EXPORT, excluded_pods=["a/b"]), False, "PartiallyFailed"),
    ({"hooks_failed": 0}, dict(OK_EXPORT, errors=[{"message": "forbidden"}]), False, "PartiallyFailed"),
    ({"hooks_failed": 0}, OK_EXPORT, True, "Failed"),                                  # bad rules, API down
    ({"hooks_failed": 0}, OK_EXPORT, "API unreachable", "Failed"),
    ({"hooks_failed": 0}, None, False, "Failed"),                                      # nothing exported
    ({"hooks_failed": 3}, {"path": None, "errors": []}, False, "Failed"),
])
def test_phase_for(hooks, export_result, fatal, phase):
    assert rec.phase_for(hooks, export_result, fatal) == phase


@pytest.mark.parametrize("totals,export,errors,phase", [
    ({"hooks_failed": 0}, {"path": "x"}, [], "Completed"),
    ({"hooks_failed": 1}, {"path": "x"}, [], "PartiallyFailed"),
    ({"hooks_failed": 0}, {"path": "x", "excluded_pods": ["ns/a"]}, [], "PartiallyFailed"),
    ({"hooks_failed": 0}, {"path": "x", "errors": [{"message": "m"}]}, [], "PartiallyFailed"),
    ({"hooks_failed": 0}, {"path": "x"}, ["post hooks could not run"], "PartiallyFailed"),
    ({"hooks_failed": 5}, None, [], "Failed"),
    ({"hooks_failed": 0}, {"msg": "no space"}, [], "Failed"),
])
def test_phase_for_run_errors(totals, export, errors, phase):
    assert rec.phase_for(totals, export, run_errors=errors) == phase


# --------------------------------------------------------------------------------------------
# Record files
# --------------------------------------------------------------------------------------------

def test_record_round_trip_and_mode(tmp_path):
    bdir = claim(str(tmp_path), "b")
    record = rec.new_record("b", label_selectors=["app=x"], now=T0)
    path = rec.write_record(bdir, record)
    assert path == os.path.join(bdir, "velero-backup.json")
    assert mode(path) == 0o600
    assert rec.load_record(bdir) == record


def test_load_record_errors(tmp_path):
    with pytest.raises(KubehooksError, match="no readable backup record"):
        rec.load_record(str(tmp_path))
    (tmp_path / "velero-backup.json").write_text(u"{not json")
    with pytest.raises(KubehooksError, match="not valid JSON"):
        rec.load_record(str(tmp_path))
    (tmp_path / "velero-backup.json").write_text(u'{"kind": "Restore"}')
    with pytest.raises(KubehooksError, match="not a Velero Backup"):
        rec.load_record(str(tmp_path))


def test_write_resource_list_from_dict(tmp_path):
    path = rec.write_resource_list(str(tmp_path), "b", {"v1/Pod": ["ns/b", "ns/a"], "v1/Node": ["n1"]})
    assert path == str(tmp_path / "b-resource-list.json.gz") and mode(path) == 0o600
    assert rec.read_resource_list(path) == {"v1/Pod": ["ns/a", "ns/b"], "v1/Node": ["n1"]}


def test_write_resource_list_moves_the_exported_file(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    source = work / "b-resource-list.json.gz"
    source.write_bytes(gzip.compress(b'{"v1/Pod":["a/b"]}'))
    bdir = tmp_path / "bdir"
    bdir.mkdir()
    path = rec.write_resource_list(str(bdir), "b", str(source))
    assert not source.exists() and mode(path) == 0o600
    assert rec.read_resource_list(path) == {"v1/Pod": ["a/b"]}
    assert rec.write_resource_list(str(bdir), "b", path) == path  # already in place


def test_read_resource_list_merges_duplicate_keys(tmp_path):
    path = tmp_path / "l.gz"
    path.write_bytes(gzip.compress(b'{"v1/Pod":["a/b"],"v1/Pod":["a/c"]}'))
    assert rec.read_resource_list(str(path)) == {"v1/Pod": ["a/b", "a/c"]}


def test_results_file_is_velero_shaped(tmp_path):
    errors = ["the run could not reach the API",
              {"resource": "configmaps", "namespace": "shop", "message": "forbidden"},
              {"resource": "persistentvolumes", "namespace": None, "message": "forbidden too"}]
    path = rec.write_results(str(tmp_path), "b", errors, ["slow"])
    assert mode(path) == 0o600
    assert rec.read_results(str(tmp_path), "b") == {
        "errors": {"velero": ["the run could not reach the API"], "namespaces": {"shop": ["forbidden"]},
                   "cluster": ["forbidden too"]},
        "warnings": {"velero": ["slow"]},
    }
    assert rec.read_results(str(tmp_path), "other") == {"errors": {}, "warnings": {}}


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------

HOOK_ENTRY = {"level": "info", "msg": "running exec hook", "namespace": "nginx-example", "pod": "nginx-1",
              "hookCommand": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"], "hookContainer": "fsfreeze",
              "hookName": "<from-annotation>", "hookPhase": "pre", "hookSource": "annotation",
              "hookType": "exec", "hookOnError": "Fail", "hookTimeout": "30s"}
EXPORT_ENTRY = {"level": "info", "msg": "export finished", "itemsBackedUp": 12}


def test_append_log_creates_a_multi_member_gzip_read_whole(tmp_path):
    path = str(tmp_path / "b-logs.gz")
    rec.append_log(path, [HOOK_ENTRY], backup="b", now=T0)
    rec.append_log(path, [EXPORT_ENTRY, dict(HOOK_ENTRY, hookPhase="post")], backup="b", now=T0 + 1)
    rec.append_log(path, [])  # nothing: no empty member
    assert mode(path) == 0o600
    with open(path, "rb") as handle:
        assert handle.read().count(b"\x1f\x8b\x08") == 2   # two gzip members
    entries = rec.read_log(path)
    assert [e["msg"] for e in entries] == ["running exec hook", "export finished", "running exec hook"]
    assert entries[0]["time"] == "2026-01-01T00:00:00Z" and entries[1]["time"] == "2026-01-01T00:00:01Z"
    assert entries[0]["backup"] == "velero/b"
    assert entries[0]["hookCommand"] == ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"]
    # the standard library reads the same file whole, as `zcat` and Go's gzip reader do
    with gzip.open(path, "rt") as handle:
        assert len(handle.read().splitlines()) == 3


def test_read_log_hooks_only(tmp_path):
    path = str(tmp_path / "b-logs.gz")
    rec.append_log(path, [HOOK_ENTRY, EXPORT_ENTRY, dict(HOOK_ENTRY, hookPhase="post")])
    assert [e["hookPhase"] for e in rec.read_log(path, hooks_only=True)] == ["pre", "post"]
    assert len(rec.read_log(path)) == 3


def test_read_log_keeps_entries_before_a_truncated_member(tmp_path):
    path = str(tmp_path / "b-logs.gz")
    rec.append_log(path, [HOOK_ENTRY])
    rec.append_log(path, [EXPORT_ENTRY])
    size = os.path.getsize(path)
    rec.append_log(path, [dict(EXPORT_ENTRY, msg=binascii.hexlify(os.urandom(2000)).decode(), n=i)
                          for i in range(20)])
    third = os.path.getsize(path) - size
    assert third > 20000
    with open(path, "r+b") as handle:
        handle.truncate(size + third // 2)   # a run killed in the middle of the third append
    entries = rec.read_log(path)
    assert [e["msg"] for e in entries[:2]] == ["running exec hook", "export finished"]
    assert 2 <= len(entries) < 22                 # the cut really lost entries
    assert all(not e.get("unparsed") for e in entries)  # and no half line came back
    assert [e.get("n") for e in entries[2:]] == list(range(len(entries) - 2))


def test_read_log_missing_file_is_empty(tmp_path):
    assert rec.read_log(str(tmp_path / "none.gz")) == []


def test_read_log_non_json_line(tmp_path):
    path = tmp_path / "b-logs.gz"
    path.write_bytes(gzip.compress(b'{"msg": "ok"}\nplain text\n'))
    assert rec.read_log(str(path)) == [{"msg": "ok"}, {"msg": "plain text", "unparsed": True}]


def test_phase_for_volumes_and_pods_not_thawed():
    export = {"path": "/b/b1.tar.gz"}
    assert rec.phase_for({}, export, volume_totals={"volumes": 2, "failed": 0}) == rec.PHASE_COMPLETED
    assert rec.phase_for({}, export, volume_totals={"volumes": 2, "failed": 1}) == \
        rec.PHASE_PARTIALLY_FAILED
    # Pods that may still be frozen: the run is not over, whatever else happened.
    assert rec.phase_for({}, export, not_thawed=["ns/a"]) == rec.PHASE_IN_PROGRESS
    assert rec.phase_for({}, None, fatal=True, not_thawed=["ns/a"]) == rec.PHASE_IN_PROGRESS


def test_finish_record_in_progress_has_no_completion_time_and_keeps_the_phase_after_thaw():
    record = rec.mark_started(rec.new_record("b1"), [])
    rec.finish_record(record, rec.PHASE_IN_PROGRESS, volume_totals={"volumes": 0}, not_thawed=["ns/a"],
                      phase_after_thaw=rec.PHASE_PARTIALLY_FAILED,
                      freeze_windows=[{"group": 0, "pods": ["ns/a"], "seconds": 1.0}])
    assert "completionTimestamp" not in record["status"]
    assert rec.json_annotation(record, rec.ANNOTATION_NOT_THAWED) == ["ns/a"]
    assert rec.json_annotation(record, rec.ANNOTATION_PHASE_AFTER_THAW) is None  # a plain string
    assert record["metadata"]["annotations"][rec.ANNOTATION_PHASE_AFTER_THAW] == "PartiallyFailed"
    assert rec.json_annotation(record, rec.ANNOTATION_FREEZE_WINDOWS)[0]["seconds"] == 1.0


def test_csi_snapshot_counters_as_velero():
    record = rec.new_record("b", now=T0)
    totals = {"volumes": 2, "succeeded": 1, "failed": 1, "bytes": 0, "files": 0, "csi_snapshots": 2,
              "csi_snapshots_completed": 1}
    rec.finish_record(record, rec.PHASE_PARTIALLY_FAILED, export_result={"path": "x"}, volume_totals=totals)
    assert record["status"]["csiVolumeSnapshotsAttempted"] == 2
    assert record["status"]["csiVolumeSnapshotsCompleted"] == 1
    plain = rec.new_record("b", now=T0)
    rec.finish_record(plain, rec.PHASE_COMPLETED, export_result={"path": "x"},
                      volume_totals={"volumes": 1, "succeeded": 1, "failed": 0, "bytes": 1, "files": 1})
    assert "csiVolumeSnapshotsAttempted" not in plain["status"]
