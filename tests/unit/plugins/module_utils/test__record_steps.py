"""_record_steps: pure helpers, and the started -> finished / thawed steps over a temporary storage dir."""
import gzip
import json
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils import _record_steps as br

FREEZE = ["/sbin/fsfreeze", "--freeze", "/data"]
UNFREEZE = ["/sbin/fsfreeze", "--unfreeze", "/data"]


def hook(command, **extra):
    body = {"source": "annotation", "name": "<from-annotation>", "container": "fsfreeze", "command": command,
            "on_error": "Fail", "timeout": 30, "index": 0}
    body.update(extra)
    return body


def pod(name, pre=(), post=(), errors=(), phase="Running", namespace="ns"):
    return {"namespace": namespace, "name": name, "phase": phase, "pre": list(pre), "post": list(post),
            "errors": list(errors)}


def result(pod_name, phase, status, command, on_error="Fail", **extra):
    body = {"namespace": "ns", "pod": pod_name, "container": "fsfreeze", "command": command, "source": "annotation",
            "name": "<from-annotation>", "phase": phase, "on_error": on_error, "timeout": 30, "status": status,
            "exit_code": 0 if status == "succeeded" else (1 if status == "failed" else None), "stdout": "",
            "stderr": "", "truncated": False, "duration": 0.1, "error": "exit code 1" if status == "failed" else None,
            "reason": None}
    body.update(extra)
    return body


def params(state, storage, **extra):
    base = dict(state=state, name="b1", backup_dir=None, storage_dir=str(storage), cluster=None, api_host=None,
                plan=[], included_namespaces=[], excluded_namespaces=[], included_resources=[], excluded_resources=[],
                label_selectors=[], include_cluster_resources=None, hooks=[], ttl=None, run_id=None, hook_results=[],
                hook_log=None, export=None, failure_reason=None, errors=[],
                freeze_window=None, capture=None)
    base.update(extra)
    return base


def export_result(bdir, name="b1", **extra):
    body = {"path": os.path.join(bdir, name + ".tar.gz"),
            "resource_list_path": os.path.join(bdir, name + "-resource-list.json.gz"),
            "counts": {"pods": 2, "configmaps": 1}, "items_backed_up": 3, "total_items": 3, "excluded_pods": [],
            "skipped": {}, "errors": [], "warning_messages": [], "finished_at": 1795597000.0}
    body.update(extra)
    return body


def read_log(bdir, name="b1"):
    return _record.read_log(_layout.log_path(bdir, name))


# --- pure helpers ---------------------------------------------------------------------------

def test_plan_keeps_pods_with_hooks_and_frozen_pods_are_those_with_pre_hooks():
    plan = [pod("none"), pod("pre", pre=[hook(FREEZE)]), pod("post", post=[hook(UNFREEZE)]),
            pod("bad", errors=[{"phase": "pre", "message": "x"}]), pod("done", pre=[hook(FREEZE)], phase="Succeeded")]
    assert [p["name"] for p in br.hooked_pods(plan)] == ["pre", "post", "bad", "done"]
    assert br.frozen_pod_names(plan) == ["ns/pre"]


def test_export_log_entries():
    entries = br.export_log_entries({"counts": {"pods": 2}, "excluded_pods": ["ns/bad"],
                                     "errors": [{"resource": "secrets", "namespace": "ns", "message": "Forbidden"}],
                                     "warning_messages": ["group skipped"], "items_backed_up": 2, "total_items": 3},
                                    when=0)
    assert [e["level"] for e in entries] == ["info", "warning", "error", "warning", "info"]
    assert entries[0]["msg"] == "Backed up 2 items of resource pods"
    assert entries[1]["pod"] == "bad" and entries[1]["namespace"] == "ns"
    assert entries[-1]["itemsBackedUp"] == 2 and entries[-1]["totalItems"] == 3
    assert all(e["time"] == "1970-01-01T00:00:00Z" for e in entries)
    assert br.export_log_entries(None, "disk full") == [{"level": "error", "msg": "Export failed: disk full"}]


def test_totals_from_entries_count_like_velero():
    entries = [{"hookCommand": ["a"], "status": s} for s in ("succeeded", "failed", "not_run", "skipped")]
    entries.append({"msg": "not a hook", "status": "failed"})
    assert br.totals_from_entries(entries) == {"hooks_attempted": 3, "hooks_failed": 1}


def test_split_thaw_entries_drops_the_thaws_own_lines_once():
    from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import velero_log_entry
    pre = velero_log_entry(result("a", "pre", "succeeded", FREEZE))
    thaw = [result("a", "post", "succeeded", UNFREEZE)]
    logged = velero_log_entry(thaw[0])
    earlier, entries = br.split_thaw_entries([pre, logged], thaw, "b1")
    assert earlier == [pre] and len(entries) == 1 and entries[0]["hookCommand"] == UNFREEZE
    earlier, entries = br.split_thaw_entries([pre, logged], [], "b1")
    assert earlier == [pre] and entries == [logged]


# --- the steps on disk ------------------------------------------------------------------------

def test_started_writes_the_plan_and_an_in_progress_record_before_anything_runs(tmp_path):
    plan = [pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)]), pod("idle")]
    out = br.start(params("started", tmp_path, api_host="https://10.0.0.1:6443", plan=plan,
                          included_namespaces=["ns"], label_selectors=["app=db"], ttl="1h"), False)
    bdir = out["backup_dir"]
    assert bdir == str(tmp_path / "10.0.0.1_6443" / "backups" / "b1")
    assert out["plan"] == plan[:1] and out["frozen_pods"] == ["ns/a"] and out["phase"] == "InProgress"
    with open(os.path.join(bdir, "b1-hook-plan.json")) as handle:
        assert json.load(handle) == plan[:1]
    record = _record.load_record(bdir)
    assert record["status"]["phase"] == "InProgress" and record["spec"]["includedNamespaces"] == ["ns"]
    assert record["spec"]["labelSelector"] == {"matchLabels": {"app": "db"}} and record["spec"]["ttl"] == "1h0m0s"
    assert record["metadata"]["annotations"][br.ANNOTATION_RUN_ID] == out["run_id"]
    assert out["hook_log"] == os.path.join(bdir, "b1-hooks.jsonl")
    assert os.stat(bdir).st_mode & 0o777 == 0o700
    with pytest.raises(KubehooksError, match="already exists"):
        br.start(params("started", tmp_path, api_host="https://10.0.0.1:6443"), False)


def test_started_in_check_mode_writes_nothing(tmp_path):
    out = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)])]), True)
    assert out["frozen_pods"] == ["ns/a"] and not os.path.exists(str(tmp_path / "backups"))


def test_finished_completes_the_record_logs_in_order_and_is_idempotent(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)])]), False)
    bdir = started["backup_dir"]
    from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import append_jsonl, velero_log_entry
    pre, post = [result("a", "pre", "succeeded", FREEZE)], [result("a", "post", "succeeded", UNFREEZE)]
    append_jsonl(started["hook_log"], [velero_log_entry(r, backup="b1") for r in pre + post])
    with gzip.open(os.path.join(bdir, "b1-resource-list.json.gz"), "wt") as handle:
        json.dump({"v1/Pod": ["ns/a"]}, handle)
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=pre + post,
                            export=export_result(bdir), freeze_window=1.25), False)
    assert done["phase"] == "Completed" and done["changed"]
    assert (done["hooks_attempted"], done["hooks_failed"], done["items_backed_up"]) == (2, 0, 3)
    assert done["freeze_window_seconds"] == 1.25
    record = _record.load_record(bdir)
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    assert record["status"]["completionTimestamp"] and record["status"]["errors"] == 0
    entries = read_log(bdir)
    phases = [e.get("hookPhase") or e["msg"].split(" ")[0] for e in entries]
    assert phases == ["pre", "Backed", "Backed", "Export", "post", "Backup"]
    assert entries[0]["hookCommand"] == FREEZE and entries[0]["backup"] == "velero/b1"
    assert entries[-1]["msg"] == "Backup completed" and entries[-1]["freezeWindowSeconds"] == 1.25
    assert _record.read_results(bdir, "b1") == {"errors": {}, "warnings": {}}
    # The hook log's lines are the same hooks: counted as copied, not shown again as pending.
    assert record["metadata"]["annotations"][_record.ANNOTATION_LOG_COPIED] == "2"
    assert done["summary"][:2] == ["Backup b1: Completed", "Hooks: 2 attempted, 0 failed (1 pods with pre hooks)"]
    # Again: nothing changes, the log is not appended twice.
    again = br.finish(params("finished", tmp_path, run_id=started["run_id"], export=export_result(bdir)), False)
    assert not again["changed"] and len(read_log(bdir)) == len(entries)
    with pytest.raises(KubehooksError, match="another run"):
        br.finish(params("finished", tmp_path, run_id="someone-else"), False)
    # A later run that failed before it started (same name): reported Failed, the backup untouched.
    before = open(_layout.record_path(bdir)).read()
    other = br.finish(params("finished", tmp_path, failure_reason="API unreachable"), False)
    assert other["phase"] == "Failed" and not other["changed"] and other["backup_dir"] is None
    assert "already exists" in other["error_messages"][0] and "(phase Completed)" in other["error_messages"][0]
    assert "API unreachable" in other["error_messages"][0]
    assert open(_layout.record_path(bdir)).read() == before


def test_finished_after_a_failed_export_is_failed_with_the_reason(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)])]), False)
    pre, post = [result("a", "pre", "succeeded", FREEZE)], [result("a", "post", "succeeded", UNFREEZE)]
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=pre + post,
                            export={"failed": True, "msg": "cannot write the backup archive: No space left on device"}),
                     False)
    record = _record.load_record(done["backup_dir"])
    assert done["phase"] == "Failed" and "No space left" in record["status"]["failureReason"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    entries = read_log(done["backup_dir"])
    assert [e.get("hookPhase") for e in entries if "hookCommand" in e] == ["pre", "post"]
    assert any(e["msg"].startswith("Export failed") for e in entries) and entries[-1]["msg"] == "Backup failed"


def test_finished_with_hook_failures_and_a_post_task_that_could_not_run(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)])]), False)
    pre = [result("a", "pre", "failed", FREEZE)]
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=pre,
                            errors=["the post hooks could not run: Unauthorized"],
                            export=export_result(started["backup_dir"], excluded_pods=["ns/a"])), False)
    assert done["phase"] == "PartiallyFailed"
    assert any("ns/a" in m and "pre hook" in m for m in done["error_messages"])
    assert any("post hooks could not run: Unauthorized" in m for m in done["error_messages"])
    record = _record.load_record(done["backup_dir"])
    assert json.loads(record["metadata"]["annotations"][_record.ANNOTATION_EXCLUDED_PODS]) == ["ns/a"]
    assert record["status"]["errors"] == 2
    results = _record.read_results(done["backup_dir"], "b1")
    assert results["errors"]["namespaces"]["ns"] and results["errors"]["velero"]


def test_finished_records_what_ran_when_the_hook_log_was_never_written(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)])]), False)
    bdir = started["backup_dir"]
    pre, post = [result("a", "pre", "succeeded", FREEZE)], [result("a", "post", "failed", UNFREEZE)]
    assert not os.path.exists(started["hook_log"])
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=pre + post,
                            export=export_result(bdir)), False)
    assert (done["phase"], done["hooks_attempted"], done["hooks_failed"]) == ("PartiallyFailed", 2, 1)
    assert [(e["hookPhase"], e["status"]) for e in read_log(bdir) if "hookCommand" in e] == \
        [("pre", "succeeded"), ("post", "failed")]
    assert _record.load_record(bdir)["metadata"]["annotations"][_record.ANNOTATION_LOG_COPIED] == "0"


def test_hook_entries_carry_the_time_each_hook_ended(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)])]), False)
    pre = [result("a", "pre", "succeeded", FREEZE, finished_at=1795596000.0)]
    br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=pre,
                     export=export_result(started["backup_dir"])), False)
    entry = [e for e in read_log(started["backup_dir"]) if "hookCommand" in e][0]
    assert entry["time"] == _record.timestamp(1795596000.0)


def test_summary_lines():
    result = dict(phase="PartiallyFailed", hooks_attempted=4, hooks_failed=1, frozen_pods=["ns/a", "ns/b"],
                  items_backed_up=11, total_items=12, freeze_window_seconds=1.234, backup_dir="/s/backups/b1",
                  excluded_pods=["ns/b"], error_messages=["e%d" % i for i in range(22)])
    lines = br.summary_lines("b1", result)
    assert lines[:7] == [
        "Backup b1: PartiallyFailed - the backup is usable but incomplete, see the errors below",
        "Hooks: 4 attempted, 1 failed (2 pods with pre hooks)",
        "Items: 11 of 12 backed up",
        "Freeze window: 1.23 s",
        "Files: /s/backups/b1",
        "Logs: b1-logs.gz (Velero's fields: zcat | grep hookCommand), b1-hooks.jsonl",
        "Archive: b1.tar.gz, b1-resource-list.json.gz"]
    assert lines[7] == "Not in the archive (a pre hook with on-error Fail failed): ns/b"
    assert lines[8] == "Error: e0" and lines[-1] == "... and 2 more errors in b1-results.gz"
    failed = br.summary_lines("b1", dict(phase="Failed", error_messages=["x"]))
    assert failed[0] == "Backup b1: Failed - see the errors below" and "Archive: none" in failed
    assert "Freeze window: none (nothing was frozen)" in failed and failed[-1] == "Error: x"
    assert br.summary_lines("b1", dict(phase="New"))[0] == \
        "Backup b1: New - check mode, nothing was frozen, exported or written"


def test_finished_without_a_started_record_records_the_failure(tmp_path):
    done = br.finish(params("finished", tmp_path, cluster="c1", failure_reason="Discover: invalid rule",
                            included_namespaces=["ns"]), False)
    record = _record.load_record(done["backup_dir"])
    assert done["backup_dir"] == str(tmp_path / "c1" / "backups" / "b1")
    assert record["status"]["phase"] == "Failed" and record["status"]["failureReason"] == "Discover: invalid rule"
    assert record["spec"]["includedNamespaces"] == ["ns"]


def test_thawed_marks_an_interrupted_run_failed_and_logs_both_phases(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)])]), False)
    from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import append_jsonl, velero_log_entry
    pre = [result("a", "pre", "succeeded", FREEZE)]
    append_jsonl(started["hook_log"], [velero_log_entry(r, backup="b1") for r in pre])  # then the run was killed
    thaw = [result("a", "post", "succeeded", UNFREEZE)]
    append_jsonl(started["hook_log"], [velero_log_entry(r, backup="b1") for r in thaw])  # the thaw logs there too
    out = br.thaw(params("thawed", tmp_path, hook_results=thaw), False)
    record = _record.load_record(out["backup_dir"])
    assert out["phase"] == "Failed" and "thawed afterwards" in record["status"]["failureReason"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    thawed = json.loads(record["metadata"]["annotations"][_record.ANNOTATION_THAWED])
    assert thawed["hooksAttempted"] == 1 and thawed["hooksFailed"] == 0
    entries = read_log(out["backup_dir"])
    assert [(e.get("hookPhase"), e.get("status")) for e in entries if "hookCommand" in e] == \
        [("pre", "succeeded"), ("post", "succeeded")]
    assert entries[-1]["msg"] == "Backup failed"


def test_the_module_starts_without_the_kubernetes_client():
    import subprocess
    import sys
    code = ("import sys; from ansible_collections.kubehooks.backup.plugins.modules import backup_record, backup_info; "
            "print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.strip() == "False"


# --- the critical section's result (capture) ----------------------------------------------------

def volume(pod_name, name, status="succeeded", **extra):
    body = {"namespace": "ns", "pod": pod_name, "volume": name, "pvc": None, "bytes": 2048, "files": 3,
            "sha256": "ab" * 32 if status == "succeeded" else None, "method": "fs-copy", "status": status,
            "path": "b1-volumes/ns/%s/%s.tar.gz" % (pod_name, name) if status == "succeeded" else None,
            "error": None if status == "succeeded" else "pod ns/%s volume %s: tar exit 2" % (pod_name, name),
            "tar_bytes": 4096, "duration": 0.2}
    body.update(extra)
    return body


def capture(volumes=(), not_thawed=(), watchdog=None, window=1.5):
    return {"stage": "all", "hooks": [], "volumes": list(volumes), "not_thawed": list(not_thawed),
            "failed_pods": [], "freeze_window_seconds": window, "watchdog": watchdog or {"acted": False},
            "groups": [{"id": 0, "pods": ["ns/a"], "frozen": True, "started": 1.0, "ended": 2.0,
                        "freeze_window_seconds": 1.0},
                       {"id": 1, "pods": ["ns/b"], "frozen": True, "started": 1.2, "ended": 2.5,
                        "freeze_window_seconds": 1.3}]}


def started_run(tmp_path):
    started = br.start(params("started", tmp_path, plan=[pod("a", pre=[hook(FREEZE)], post=[hook(UNFREEZE)])]), False)
    hooks = [result("a", "pre", "succeeded", FREEZE), result("a", "post", "succeeded", UNFREEZE)]
    return started, hooks


def test_finished_folds_volumes_and_freeze_windows_into_the_record(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=hooks,
                            export=export_result(bdir), capture=capture([volume("a", "data")])), False)
    assert done["phase"] == "Completed", done["error_messages"]
    record = _record.load_record(bdir)
    annotations = record["metadata"]["annotations"]
    assert json.loads(annotations[_record.ANNOTATION_VOLUMES]) == {"volumes": 1, "succeeded": 1, "failed": 0,
                                                                   "bytes": 2048, "files": 3}
    assert [w["seconds"] for w in json.loads(annotations[_record.ANNOTATION_FREEZE_WINDOWS])] == [1.0, 1.3]
    assert annotations[_record.ANNOTATION_FREEZE_WINDOW] == "1.500"  # the capture's overall window
    assert json.loads(annotations[_record.ANNOTATION_NOT_THAWED]) == []
    # Velero's own fields stay valid: nothing of ours under status.
    assert set(record["status"]) <= {"version", "formatVersion", "phase", "startTimestamp", "completionTimestamp",
                                     "hookStatus", "progress", "errors", "warnings", "expiration", "failureReason"}
    messages = [e["msg"] for e in read_log(bdir)]
    assert messages.index("Backed up volume data of pod ns/a") < next(
        i for i, m in enumerate(messages) if m.startswith("Export finished"))
    assert "Volumes: 1 of 1 captured, 2.0 KiB in 3 files (b1-volumes.json.gz)" in done["summary"]
    assert "Freeze window: 1.50 s (per group: ns/a 1.00 s, ns/b 1.30 s)" in done["summary"]


def test_a_volume_not_captured_makes_the_backup_partially_failed_and_is_named(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    volumes = [volume("a", "data"), volume("a", "logs", status="failed"),
               volume("a", "cache", status="abandoned", error="abandoned: the freeze deadline passed")]
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=hooks,
                            export=export_result(bdir), capture=capture(volumes)), False)
    assert done["phase"] == "PartiallyFailed"
    assert any("volume logs" in m and "tar exit 2" in m for m in done["error_messages"])
    assert any("volume cache" in m and "abandoned" in m for m in done["error_messages"])
    assert done["volumes"]["failed"] == 2 and done["volumes"]["succeeded"] == 1
    assert _record.read_results(bdir, "b1")["errors"]["namespaces"]["ns"]


def test_pods_not_thawed_keep_the_record_in_progress_until_the_thaw_playbook(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=hooks[:1],
                            export=export_result(bdir), capture=capture(not_thawed=["ns/a"])), False)
    assert done["phase"] == "InProgress" and done["not_thawed"] == ["ns/a"]
    record = _record.load_record(bdir)
    assert "completionTimestamp" not in record["status"]
    assert json.loads(record["metadata"]["annotations"][_record.ANNOTATION_NOT_THAWED]) == ["ns/a"]
    assert any(line.startswith("NOT THAWED (may still be frozen): ns/a") for line in done["summary"])
    assert done["summary"][0].startswith("Backup b1: InProgress - pods may still be frozen")
    # The thaw playbook thawed it: the record takes the phase the run had reached (an error: PartiallyFailed).
    thawed = br.thaw(dict(params("thawed", tmp_path), hook_results=[hooks[1]]), False)
    assert thawed["phase"] == "PartiallyFailed" and thawed["not_thawed"] == []
    assert thawed["thawed"]["by"] == "thaw playbook" and thawed["thawed"]["hooksAttempted"] == 1
    assert _record.load_record(bdir)["status"]["completionTimestamp"]


def test_the_watchdog_completes_the_record_of_a_dead_run(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import append_jsonl, velero_log_entry
    append_jsonl(started["hook_log"], [velero_log_entry(hooks[0], backup="b1")])  # the dead run's pre hook
    append_jsonl(started["hook_log"], [dict(velero_log_entry(hooks[1], backup="b1"), thawedBy="watchdog")])
    out = br.watchdog_thawed(bdir, "b1", [hooks[1]], started["hook_log"], "ansible-playbook died", [])
    assert out["phase"] == "Failed" and out["thawed"]["by"] == "watchdog"
    assert out["thawed"]["reason"] == "ansible-playbook died"
    record = _record.load_record(bdir)
    assert "watchdog" in record["status"]["failureReason"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    post = [e for e in read_log(bdir) if e.get("hookPhase") == "post"]
    assert [(e["hookCommand"], e.get("thawedBy")) for e in post] == [(UNFREEZE, "watchdog")]  # once
    assert "Thawed by the watchdog (ansible-playbook died)" in out["summary"]
    # A finished record is left alone; a directory without a record too.
    assert br.watchdog_thawed(bdir, "b1", [], None, "controller died", []) is None
    assert br.watchdog_thawed(str(tmp_path / "nothing"), "b1", [], None, "controller died", []) is None


def test_a_capture_that_acted_on_its_deadline_and_one_that_could_not_run(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    dog = {"acted": True, "reason": "deadline", "thawed": ["ns/a"], "hooks": [hooks[1]]}
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=hooks[:1],
                            export=export_result(bdir), capture=capture(watchdog=dog)), False)
    assert done["phase"] == "PartiallyFailed" and done["thawed"]["by"] == "watchdog"
    assert any("the watchdog thawed ns/a (deadline)" in m for m in done["error_messages"])
    assert done["hooks_attempted"] == 2  # the watchdog's post hook is recorded
    failed = br.capture_outcome({"failed": True, "msg": "max_freeze_seconds must be a number"}, "b1")
    assert failed["run_errors"] == ["the critical section could not run: max_freeze_seconds must be a number"]


def test_csi_snapshots_and_skipped_volumes_are_recorded(tmp_path):
    started, hooks = started_run(tmp_path)
    bdir = started["backup_dir"]
    snap = dict(volume("a", "data"), pvc="data", method="csi-snapshot", path=None, bytes=0, files=0, sha256=None,
                volume_snapshot="velero-data-abcde", volume_snapshot_content="snapcontent-1", snapshot_handle="h1")
    late = dict(snap, volume="logs", volume_snapshot="velero-logs-fghij", status="failed",
                error="pod ns/a volume logs: VolumeSnapshot ns/velero-logs-fghij was cut but not readyToUse within "
                      "csi_snapshot_timeout=5s of its creation (the snapshot is kept)")
    note = dict(namespace="ns", pod="a", volume="local", pvc="pvc-l", method="csi-snapshot", reason="not a CSI volume")
    section = dict(capture([snap, late]), volumes_skipped=[note])
    done = br.finish(params("finished", tmp_path, run_id=started["run_id"], hook_results=hooks,
                            export=export_result(bdir), capture=section), False)
    assert done["phase"] == "PartiallyFailed"
    assert any("not readyToUse within csi_snapshot_timeout=5s" in m for m in done["error_messages"])
    record = _record.load_record(bdir)
    assert record["status"]["csiVolumeSnapshotsAttempted"] == 2
    assert record["status"]["csiVolumeSnapshotsCompleted"] == 1
    messages = [e["msg"] for e in read_log(bdir)]
    assert "Skipping snapshot of volume local (claim pvc-l) of pod ns/a: not a CSI volume" in messages
    assert "Created VolumeSnapshot ns/velero-data-abcde of claim data (pod a), ready to use" in messages
