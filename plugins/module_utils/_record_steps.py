# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the backup record's steps, started -> finished (or thawed). Not a public API.

What the role's ``backup_record`` tasks do around the freeze: ``start`` writes the record
(InProgress) and the hook plan before any hook runs; ``finish`` folds the hook results, the export
and any failure into the final phase, logs and files; ``thaw`` marks a killed run after the thaw
playbook ran its post hooks.  No kubernetes import: this runs before and after the freeze.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time
import uuid

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils import _hook_results
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import totals, velero_log_entry
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

ANNOTATION_RUN_ID = _record.ANNOTATION_PREFIX + "run-id"
FINAL_PHASES = (_record.PHASE_COMPLETED, _record.PHASE_PARTIALLY_FAILED, _record.PHASE_FAILED)
FINISHED_POD_PHASES = ("Succeeded", "Failed")


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------

def resolve_backup_dir(params):
    return _layout.resolve_backup_dir(params["name"], params.get("backup_dir"), params.get("storage_dir"),
                                      params.get("cluster"), params.get("api_host"))


def hooked_pods(plan):
    """The plan entries of pods that have any hook (valid or invalid), in plan order."""
    return [pod for pod in plan or [] if pod.get("pre") or pod.get("post") or pod.get("errors")]


def frozen_pod_names(plan):
    """``ns/name`` of the pods whose pre hooks run (pods already Succeeded/Failed are skipped)."""
    return sorted(set("%s/%s" % (pod.get("namespace"), pod.get("name")) for pod in plan or []
                      if pod.get("pre") and pod.get("phase") not in FINISHED_POD_PHASES))


def totals_from_entries(entries):
    """hook totals from log entries (their ``status``), counted as hook results are."""
    return totals([e for e in entries if "hookCommand" in e])


def hook_error_messages(hook_results):
    """One error dict (namespace, message) per failed hook result."""
    return [{"namespace": result.get("namespace"),
             "message": "pod %s/%s: %s hook %s in container %s failed: %s" % (
                 result.get("namespace"), result.get("pod"), result.get("phase"), json.dumps(result.get("command")),
                 result.get("container"), result.get("error") or "exit code %s" % result.get("exit_code"))}
            for result in hook_results or [] if result.get("status") == "failed"]


def export_log_entries(export_result, failure_reason=None, when=None):
    """Log entries for the export: one per resource type, the pods left out, errors, warnings."""
    stamp = _record.timestamp(when) if when is not None else None
    entries = []
    if export_result:
        for resource, count in sorted((export_result.get("counts") or {}).items()):
            entries.append({"level": "info", "msg": "Backed up %d items of resource %s" % (count, resource),
                            "resource": resource, "count": count})
        for pod in export_result.get("excluded_pods") or []:
            namespace, _slash, name = pod.partition("/")
            entries.append({"level": "warning", "msg": "Pod left out of the backup: a pre hook with on-error "
                            "Fail failed", "namespace": namespace, "pod": name, "resource": "pods"})
        for error in export_result.get("errors") or []:
            entries.append({"level": "error", "msg": error.get("message"), "resource": error.get("resource"),
                            "namespace": error.get("namespace")})
        for warning in export_result.get("warning_messages") or []:
            entries.append({"level": "warning", "msg": str(warning)})
        entries.append({"level": "info", "msg": "Export finished: %s of %s items backed up"
                        % (export_result.get("items_backed_up", 0), export_result.get("total_items", 0)),
                        "itemsBackedUp": export_result.get("items_backed_up", 0),
                        "totalItems": export_result.get("total_items", 0)})
    elif failure_reason:
        entries.append({"level": "error", "msg": "Export failed: %s" % failure_reason})
    if stamp:
        for entry in entries:
            entry["time"] = stamp
    return entries


def phase_entry(record, phase):
    status = record.get("status") or {}
    messages = {
        _record.PHASE_COMPLETED: "Backup completed",
        _record.PHASE_PARTIALLY_FAILED: "Backup completed with errors",
        _record.PHASE_FAILED: "Backup failed",
    }
    entry = {"level": "info" if phase == _record.PHASE_COMPLETED else "error",
             "msg": messages.get(phase, "Backup phase %s" % phase), "phase": phase,
             "hooksAttempted": (status.get("hookStatus") or {}).get("hooksAttempted", 0),
             "hooksFailed": (status.get("hookStatus") or {}).get("hooksFailed", 0),
             "itemsBackedUp": (status.get("progress") or {}).get("itemsBackedUp", 0),
             "totalItems": (status.get("progress") or {}).get("totalItems", 0)}
    window = ((record.get("metadata") or {}).get("annotations") or {}).get(_record.ANNOTATION_FREEZE_WINDOW)
    if window is not None:
        entry["freezeWindowSeconds"] = float(window)
    if status.get("failureReason"):
        entry["failureReason"] = status["failureReason"]
    return entry


def error_text(entry):
    return entry.get("message") if isinstance(entry, dict) else str(entry)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def annotation(record, key, default=None):
    return ((record.get("metadata") or {}).get("annotations") or {}).get(key, default)


def hook_log_lines(params, bdir, record):
    """How many lines of the JSON-lines hook log the record accounts for once finished.

    The record's hook entries come from the results the executor returned; the hook log holds the
    same hooks (it exists to rebuild what a killed run did), so all its complete lines count as
    copied.  An unreadable log never stops the record.
    """
    copied = int(annotation(record, _record.ANNOTATION_LOG_COPIED, "0") or 0)
    path = params.get("hook_log") or _layout.hook_log_path(bdir, params["name"])
    return max(_hook_results.read_jsonl(path, skip=copied, quiet=True)[1], copied)


def _hook_key(entry):
    return (entry.get("namespace"), entry.get("pod"), entry.get("hookPhase"), json.dumps(entry.get("hookCommand")),
            entry.get("hookName"), entry.get("hookContainer"))


def split_thaw_entries(uncopied, thaw_results, name):
    """(entries of the interrupted run, entries of the thaw) for state=thawed.

    With ``thaw_results`` the thaw's entries are built from them, and uncopied log lines that are the
    same hooks (the thaw also logged to the hook log) are dropped once each.  Without them, the
    uncopied post entries are the thaw's.
    """
    if not thaw_results:
        return ([e for e in uncopied if e.get("hookPhase") != "post"],
                [e for e in uncopied if e.get("hookPhase") == "post"])
    thaw = [velero_log_entry(r, backup=name) for r in thaw_results]
    pending = {}
    for entry in thaw:
        pending[_hook_key(entry)] = pending.get(_hook_key(entry), 0) + 1
    earlier = []
    for entry in uncopied:
        key = _hook_key(entry)
        if entry.get("hookPhase") == "post" and pending.get(key):
            pending[key] -= 1
            continue
        earlier.append(entry)
    return earlier, thaw


def describe(bdir, name, record, **extra):
    status = record.get("status") or {}
    window = annotation(record, _record.ANNOTATION_FREEZE_WINDOW)
    result = dict(
        backup_dir=bdir, record=record, phase=status.get("phase") or _record.PHASE_NEW,
        run_id=annotation(record, ANNOTATION_RUN_ID), frozen_pods=_record.frozen_pods(record),
        hook_log=_layout.hook_log_path(bdir, name), files=_layout.files_of(bdir, name), time=time.time(),
        hooks_attempted=int((status.get("hookStatus") or {}).get("hooksAttempted") or 0),
        hooks_failed=int((status.get("hookStatus") or {}).get("hooksFailed") or 0),
        items_backed_up=int((status.get("progress") or {}).get("itemsBackedUp") or 0),
        total_items=int((status.get("progress") or {}).get("totalItems") or 0),
        freeze_window_seconds=float(window) if window is not None else None,
        excluded_pods=json.loads(annotation(record, _record.ANNOTATION_EXCLUDED_PODS, "[]")),
        volumes=_record.json_annotation(record, _record.ANNOTATION_VOLUMES),
        freeze_windows=_record.json_annotation(record, _record.ANNOTATION_FREEZE_WINDOWS, []),
        not_thawed=_record.json_annotation(record, _record.ANNOTATION_NOT_THAWED, []),
        thawed=_record.json_annotation(record, _record.ANNOTATION_THAWED),
    )
    result.update(extra)
    result["summary"] = summary_lines(name, result)
    return result


_PHASE_NOTES = {
    _record.PHASE_PARTIALLY_FAILED: " - the backup is usable but incomplete, see the errors below",
    _record.PHASE_FAILED: " - see the errors below",
    _record.PHASE_NEW: " - check mode, nothing was frozen, exported or written",
    _record.PHASE_IN_PROGRESS: " - pods may still be frozen: run the thaw playbook",
}
MAX_ERROR_LINES = 20


def summary_lines(name, result):
    """The lines the role prints at the end of a run, from this module's result."""
    window = result.get("freeze_window_seconds")
    phase = result.get("phase") or _record.PHASE_FAILED
    files = result.get("files") or {}
    lines = [
        "Backup %s: %s%s" % (name, phase, _PHASE_NOTES.get(phase, "")),
        "Hooks: %d attempted, %d failed (%d pods with pre hooks)" % (
            result.get("hooks_attempted") or 0, result.get("hooks_failed") or 0, len(result.get("frozen_pods") or [])),
        "Items: %d of %d backed up" % (result.get("items_backed_up") or 0, result.get("total_items") or 0),
        "Freeze window: %s%s" % ("%.2f s" % float(window) if window is not None else "none (nothing was frozen)",
                                 freeze_window_detail(result.get("freeze_windows"))),
        "Files: %s" % (result.get("backup_dir") or "none"),
        "Logs: %s (Velero's fields: zcat | grep hookCommand), %s" % (
            os.path.basename(files.get("logs") or _layout.log_path("", name)),
            os.path.basename(files.get("hook_log") or _layout.hook_log_path("", name))),
        "Archive: %s" % ("%s, %s" % (os.path.basename(_layout.archive_path("", name)),
                                     os.path.basename(_layout.resource_list_path("", name)))
                         if phase in (_record.PHASE_COMPLETED, _record.PHASE_PARTIALLY_FAILED) else "none"),
    ]
    volumes = result.get("volumes")
    if volumes and volumes.get("volumes"):
        lines.append("Volumes: %d of %d captured, %s in %d files (%s)" % (
            volumes.get("succeeded") or 0, volumes.get("volumes") or 0, human_bytes(volumes.get("bytes")),
            volumes.get("files") or 0, os.path.basename(_layout.volumes_index("", name))))
    if result.get("not_thawed"):
        lines.append("NOT THAWED (may still be frozen): %s - run the thaw playbook for backup %s"
                     % (", ".join(result["not_thawed"]), name))
    thawed = result.get("thawed")
    if isinstance(thawed, dict) and thawed.get("by") == "watchdog":
        lines.append("Thawed by the watchdog (%s)" % (thawed.get("reason") or "the run stopped"))
    if result.get("excluded_pods"):
        lines.append("Not in the archive (a pre hook with on-error Fail failed): %s"
                     % ", ".join(result["excluded_pods"]))
    errors = list(result.get("error_messages") or [])
    lines.extend("Error: %s" % text for text in errors[:MAX_ERROR_LINES])
    if len(errors) > MAX_ERROR_LINES:
        lines.append("... and %d more errors in %s" % (len(errors) - MAX_ERROR_LINES,
                                                       os.path.basename(_layout.results_path("", name))))
    return lines


def human_bytes(count):
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % (count or 0)


def freeze_window_detail(windows):
    """`` (per group: ns/a 0.51 s, ns/b+ns/c 0.73 s)`` when more than one group was frozen."""
    windows = [w for w in windows or [] if isinstance(w, dict) and w.get("seconds") is not None]
    if len(windows) < 2:
        return ""
    return " (per group: %s)" % ", ".join("%s %.2f s" % ("+".join(w.get("pods") or []), float(w["seconds"]))
                                          for w in windows)


def spec_record(params, cluster):
    return _record.new_record(
        params["name"], included_namespaces=params["included_namespaces"],
        excluded_namespaces=params["excluded_namespaces"], included_resources=params["included_resources"],
        excluded_resources=params["excluded_resources"], label_selectors=params["label_selectors"],
        include_cluster_resources=params["include_cluster_resources"], hooks=params["hooks"],
        cluster=cluster, ttl=params.get("ttl"))


# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------

def start(params, check_mode):
    bdir, cluster = resolve_backup_dir(params)
    name = params["name"]
    plan = hooked_pods(params["plan"])
    record = spec_record(params, cluster)
    _record.set_annotation(record, ANNOTATION_RUN_ID, str(uuid.uuid4()))
    _record.mark_started(record, frozen_pod_names(plan))
    if check_mode:
        if os.path.exists(bdir):
            raise KubehooksError("backup %s already exists in %s: choose another name" % (name, os.path.dirname(bdir)))
        return describe(bdir, name, record, changed=True, plan=plan)
    _layout.claim_backup_dir(bdir, name)
    _record.write_hook_plan(bdir, name, plan)  # the plan first: a thaw can always find it
    _record.write_record(bdir, record)
    return describe(bdir, name, record, changed=True, plan=plan)


def load_for_finish(params, check_mode):
    """(backup dir, record, whether it exists, the result to return at once or None)."""
    bdir, cluster = resolve_backup_dir(params)
    name = params["name"]
    run_id = params.get("run_id")
    if not os.path.exists(_layout.record_path(bdir)):
        if run_id and check_mode:
            # The started step ran in check mode too: nothing was frozen, exported or written.
            return bdir, None, False, describe(bdir, name, spec_record(params, cluster), changed=False,
                                               error_messages=[], msg="check mode: nothing was frozen, exported or written")
        if run_id:
            raise KubehooksError("no backup record at %s for run %s" % (_layout.record_path(bdir), run_id))
        record = spec_record(params, cluster)  # the run failed before it could start a record
        _record.mark_started(record, [])
        return bdir, record, False, None
    record = _record.load_record(bdir)
    if not run_id:
        # This run failed before it started its record (bad rules, API unreachable, or this very
        # name taken): report that, and leave the existing backup as it is.
        message = ("backup %s already exists in %s (phase %s) and was left untouched; this run did not "
                   "start: %s" % (name, os.path.dirname(bdir), (record.get("status") or {}).get("phase"),
                                  params.get("failure_reason") or "see the failed task above"))
        return bdir, record, True, dict(
            changed=False, name=name, phase=_record.PHASE_FAILED, backup_dir=None, hooks_attempted=0,
            hooks_failed=0, items_backed_up=0, total_items=0, error_messages=[message],
            summary=summary_lines(name, dict(phase=_record.PHASE_FAILED, error_messages=[message])))
    if annotation(record, ANNOTATION_RUN_ID) != run_id:
        raise KubehooksError("the record %s belongs to another run (run id %s, not %s)"
                             % (_layout.record_path(bdir), annotation(record, ANNOTATION_RUN_ID), run_id))
    if (record.get("status") or {}).get("phase") in FINAL_PHASES:
        return bdir, record, True, describe(bdir, name, record, changed=False, error_messages=[])
    return bdir, record, True, None


def collect(params):
    """What the run reports: the executor's hook results, the export, the run's own errors."""
    export_result = params.get("export") or None
    failure_reason = params.get("failure_reason")
    if export_result is not None and not export_result.get("path"):
        if not failure_reason and export_result.get("msg"):
            failure_reason = "the export failed: %s" % export_result["msg"]
        export_result = None  # a failed task's result
    hook_results = list(params["hook_results"] or [])
    run_errors = list(params["errors"] or [])
    capture = capture_outcome(params.get("capture"), params["name"])
    run_errors.extend(capture["run_errors"])
    hook_results.extend(capture["watchdog_hooks"])
    return dict(export=export_result, failure_reason=failure_reason, run_errors=run_errors,
                hook_results=hook_results, hook_totals=totals(hook_results), capture=capture)


def capture_outcome(capture, name):
    """What the record takes from the critical section's result (``backup_capture``; for the
    ``create_frozen_tasks`` path the freeze stage's result with the thaw stage's ``not_thawed``,
    ``freeze_window_seconds`` and ``watchdog``).  Its hooks come through ``hook_results``, the one
    door for hooks; the watchdog's, when it acted, are added here.  PURE."""
    out = dict(volumes=[], volume_totals=None, freeze_window=None, freeze_windows=[], not_thawed=[],
               failed_pods=[], watchdog=None, watchdog_hooks=[], run_errors=[], volumes_skipped=[])
    if not capture:
        return out
    if "volumes" not in capture and "hooks" not in capture:  # the task failed before it could run
        out["run_errors"].append("the critical section could not run: %s" % (capture.get("msg") or "failed"))
        return out
    out["volumes"] = [v for v in capture.get("volumes") or [] if isinstance(v, dict)]
    out["volumes_skipped"] = [v for v in capture.get("volumes_skipped") or [] if isinstance(v, dict)]
    out["run_errors"] += ["Velero's CSI snapshot files miss an object: %s" % problem
                          for problem in capture.get("velero_file_problems") or []]
    out["volume_totals"] = dict(capture.get("volume_totals") or _volumes.volume_totals(out["volumes"]))
    out["freeze_window"] = capture.get("freeze_window_seconds")
    out["freeze_windows"] = [dict(group=g.get("id"), pods=list(g.get("pods") or []),
                                  seconds=g.get("freeze_window_seconds"))
                             for g in capture.get("groups") or [] if g.get("frozen")]
    out["not_thawed"] = sorted(set(capture.get("not_thawed") or []))
    out["run_errors"].extend("the critical section %s" % text for text in capture.get("write_errors") or [])
    out["failed_pods"] = sorted(set(capture.get("failed_pods") or []))
    watchdog = capture.get("watchdog") or None
    out["watchdog"] = watchdog
    if out["not_thawed"]:
        out["run_errors"].append("%d pod(s) may still be frozen (their post hooks could not be executed): %s; "
                                 "run the thaw playbook for backup %s" % (len(out["not_thawed"]),
                                                                          ", ".join(out["not_thawed"]), name))
    if watchdog and watchdog.get("acted"):
        out["watchdog_hooks"] = [dict(h, thawed_by="watchdog") for h in watchdog.get("hooks") or []]
        out["run_errors"].append("the watchdog thawed %s (%s)" % (", ".join(watchdog.get("thawed") or []) or "no pod",
                                                                  watchdog.get("reason")))
    return out


def volume_errors(volumes):
    """One error (namespace, message) per volume that was not captured."""
    return [{"namespace": v.get("namespace"),
             "message": "pod %s/%s volume %s: %s: %s" % (
                 v.get("namespace"), v.get("pod"), v.get("volume"), v.get("status"), v.get("error") or "not captured")}
            for v in volumes if v.get("status") != "succeeded"]


def volume_log_entries(volumes, skipped=()):
    """Log entries for the volumes (and the snapshots skipped, as Velero logs them: info)."""
    entries = [{"level": "info", "msg": "Skipping snapshot of volume %s (claim %s) of pod %s/%s: %s" % (
        v.get("volume"), v.get("pvc"), v.get("namespace"), v.get("pod"), v.get("reason")),
        "namespace": v.get("namespace"), "pod": v.get("pod"), "volume": v.get("volume")} for v in skipped]
    for v in volumes:
        if v.get("status") == "succeeded" and v.get("method") == _volumes.CSI_SNAPSHOT_METHOD:
            entries.append({"level": "info", "msg": "Created VolumeSnapshot %s/%s of claim %s (pod %s), ready to use" % (
                v.get("namespace"), v.get("volume_snapshot"), v.get("pvc"), v.get("pod")),
                "namespace": v.get("namespace"), "pod": v.get("pod"), "volume": v.get("volume"),
                "volumeSnapshot": v.get("volume_snapshot"), "volumeSnapshotContent": v.get("volume_snapshot_content"),
                "snapshotHandle": v.get("snapshot_handle")})
        elif v.get("status") == "succeeded":
            entries.append({"level": "info", "msg": "Backed up volume %s of pod %s/%s" % (v.get("volume"),
                            v.get("namespace"), v.get("pod")), "namespace": v.get("namespace"), "pod": v.get("pod"),
                            "volume": v.get("volume"), "bytes": v.get("bytes"), "files": v.get("files"),
                            "sha256": v.get("sha256"), "path": v.get("path")})
        else:
            entries.append({"level": "error", "msg": "Volume %s of pod %s/%s not backed up: %s" % (
                v.get("volume"), v.get("namespace"), v.get("pod"), v.get("error") or v.get("status")),
                "namespace": v.get("namespace"), "pod": v.get("pod"), "volume": v.get("volume"),
                "status": v.get("status")})
    return entries


def decide(outcome):
    """Add the phase, the failure reason of a Failed backup, the errors and warnings to ``outcome``."""
    export_result = outcome["export"]
    capture = outcome.get("capture") or capture_outcome(None, "")
    phase = _record.phase_for(outcome["hook_totals"], export_result, run_errors=outcome["run_errors"],
                              volume_totals=capture["volume_totals"], not_thawed=capture["not_thawed"])
    # Once the thaw playbook thawed the pods left frozen, the record takes the phase the run had reached.
    outcome["phase_after_thaw"] = _record.phase_for(outcome["hook_totals"], export_result,
                                                    run_errors=outcome["run_errors"],
                                                    volume_totals=capture["volume_totals"])
    failure_reason = outcome["failure_reason"]
    if outcome["phase_after_thaw"] == _record.PHASE_FAILED and not failure_reason:
        failure_reason = "nothing was exported"
    errors = hook_error_messages(outcome["hook_results"])
    errors.extend(volume_errors(capture["volumes"]))
    errors.extend((export_result or {}).get("errors") or [])
    errors.extend(outcome["run_errors"])
    if failure_reason and export_result is None:
        errors.append(failure_reason)
    outcome.update(phase=phase, failure_reason=failure_reason, errors=errors,
                   warnings=list((export_result or {}).get("warning_messages") or []))
    return outcome


def write_finished(bdir, name, record, outcome, adopt):
    """Claim the directory when the run never started one, then the log, resource list, results, record."""
    if adopt:
        _layout.claim_backup_dir(bdir, name, adopt_unrecorded=True)
    export_result = outcome["export"]
    hook_entries = [velero_log_entry(result, backup=name) for result in outcome["hook_results"]]
    pre = [e for e in hook_entries if e.get("hookPhase") != "post"]
    post = [e for e in hook_entries if e.get("hookPhase") == "post"]
    capture = outcome.get("capture") or {}
    export_entries = export_log_entries(export_result, outcome["failure_reason"],
                                        (export_result or {}).get("finished_at"))
    if capture.get("volume_totals") is not None:  # the critical section: the export ran after the thaw
        entries = pre + volume_log_entries(capture.get("volumes") or [], capture.get("volumes_skipped") or []) + post \
            + export_entries
    else:  # pre hooks, export, post hooks as separate tasks
        entries = pre + export_entries + post
    entries.extend({"level": "error", "msg": text} for text in outcome["run_errors"])
    entries.append(phase_entry(record, outcome["phase"]))
    _record.append_log(_layout.log_path(bdir, name), entries, backup=name)
    if export_result and export_result.get("resource_list_path") and \
            os.path.exists(export_result["resource_list_path"]):
        _record.write_resource_list(bdir, name, export_result["resource_list_path"])
    _record.write_results(bdir, name, outcome["errors"], outcome["warnings"])
    _record.write_record(bdir, record)


def finish(params, check_mode):
    """state=finished: load -> collect -> decide the phase -> write."""
    bdir, record, exists, early = load_for_finish(params, check_mode)
    if early is not None:
        return early
    name = params["name"]
    outcome = decide(collect(params))
    phase = outcome["phase"]
    capture = outcome["capture"]
    freeze_window = params.get("freeze_window")
    if freeze_window is None:
        freeze_window = capture["freeze_window"]
    after = outcome["phase_after_thaw"]
    _record.finish_record(record, phase, outcome["hook_totals"], outcome["export"], errors=outcome["errors"],
                          warnings=outcome["warnings"], freeze_window=freeze_window,
                          failure_reason=outcome["failure_reason"] if _record.PHASE_FAILED in (phase, after) else None,
                          volume_totals=capture["volume_totals"], freeze_windows=capture["freeze_windows"],
                          not_thawed=capture["not_thawed"] if params.get("capture") else None,
                          phase_after_thaw=after if phase == _record.PHASE_IN_PROGRESS else None)
    watchdog = capture["watchdog"]
    if watchdog and watchdog.get("acted"):
        set_thawed(record, "watchdog", time.time(), totals(capture["watchdog_hooks"]), reason=watchdog.get("reason"))
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED,
                           str(hook_log_lines(params, bdir, record) if exists else 0))
    if not check_mode:
        write_finished(bdir, name, record, outcome, adopt=not exists)
    return describe(bdir, name, record, changed=True, error_messages=[error_text(e) for e in outcome["errors"]])


def set_thawed(record, by, now, thaw_totals, reason=None, not_thawed=None):
    """The annotation ``backup.kubehooks.io/thawed``: when, by whom (``thaw playbook``, ``watchdog``), hooks."""
    value = {"time": _record.timestamp(now), "by": by, "hooksAttempted": thaw_totals["hooks_attempted"],
             "hooksFailed": thaw_totals["hooks_failed"]}
    if reason:
        value["reason"] = reason
    if not_thawed:
        value["notThawed"] = sorted(not_thawed)
    _record.set_annotation(record, _record.ANNOTATION_THAWED, json.dumps(value, sort_keys=True))


def thaw(params, check_mode, by="thaw playbook", reason=None, not_thawed=None):
    """state=thawed: the pods of a run that did not finish were thawed (by the thaw playbook, or by the
    watchdog of the critical section, a fork of the module process, when the run died).

    ``not_thawed``: pods that may still be frozen after this thaw (post hooks that could not be
    executed): the record then stays InProgress and names them, so that the next thaw runs.  Else a
    record still InProgress takes the phase its run had reached (``phase-after-thaw``: the run ended
    but could not thaw some pods) or ``Failed`` (the run stopped before it finished, as Velero marks it).
    """
    bdir, _cluster = resolve_backup_dir(params)
    name = params["name"]
    record = _record.load_record(bdir)
    copied = int(annotation(record, _record.ANNOTATION_LOG_COPIED, "0") or 0)
    uncopied, count = _hook_results.read_jsonl(params.get("hook_log") or _layout.hook_log_path(bdir, name), skip=copied)
    earlier, thaw_entries = split_thaw_entries(uncopied, params["hook_results"], name)
    earlier_totals = totals_from_entries(earlier)
    thaw_totals = totals_from_entries(thaw_entries)
    now = time.time()
    status = record.setdefault("status", {})
    hook_status = status.setdefault("hookStatus", {})
    for key, field in (("hooksAttempted", "hooks_attempted"), ("hooksFailed", "hooks_failed")):
        hook_status[key] = int(hook_status.get(key) or 0) + earlier_totals[field] + thaw_totals[field]
    still = sorted(set(not_thawed if not_thawed is not None else params.get("not_thawed") or []))
    set_thawed(record, by, now, thaw_totals, reason=reason, not_thawed=still)
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED, str(max(count, copied)))
    if _record.json_annotation(record, _record.ANNOTATION_NOT_THAWED) is not None or still:
        _record.set_annotation(record, _record.ANNOTATION_NOT_THAWED, json.dumps(still))
    entries = earlier + thaw_entries
    what = "%d post hooks attempted, %d failed" % (thaw_totals["hooks_attempted"], thaw_totals["hooks_failed"])
    if still:
        entries.append({"level": "error", "msg": "Pods thawed by the %s (%s); still possibly frozen: %s"
                        % (by, what, ", ".join(still))})
    elif status.get("phase") not in FINAL_PHASES:
        after = annotation(record, _record.ANNOTATION_PHASE_AFTER_THAW)
        status["completionTimestamp"] = _record.timestamp(now)
        if after in FINAL_PHASES:
            status["phase"] = after
            entries.append({"level": "info", "msg": "Pods thawed by the %s after the run (%s)" % (by, what)})
        else:
            status["phase"] = _record.PHASE_FAILED
            status["failureReason"] = ("the backup run stopped before it finished; the pods of its hook plan were "
                                       "thawed afterwards by the %s (%s)" % (by, what))
            status["errors"] = int(status.get("errors") or 0) + 1 + earlier_totals["hooks_failed"] \
                + thaw_totals["hooks_failed"]
        entries.append(phase_entry(record, status["phase"]))
    else:
        entries.append({"level": "info", "msg": "Pods thawed by the %s after the backup (%s)" % (by, what)})
    if not check_mode:
        _record.append_log(_layout.log_path(bdir, name), entries, backup=name)
        _record.write_record(bdir, record)
    return describe(bdir, name, record, changed=True)


def watchdog_thawed(backup_dir, name, hook_results, hook_log, reason, not_thawed):
    """The watchdog, after its thaw, completes the record as ``state=thawed`` does (``by: watchdog``).

    Only when the backup directory holds a record still InProgress (``backup_capture`` may run
    without one).  Never raises: the watchdog's own record file says what it did either way.
    """
    try:
        if not os.path.exists(_layout.record_path(backup_dir)):
            return None
        record = _record.load_record(backup_dir)
        if (record.get("status") or {}).get("phase") != _record.PHASE_IN_PROGRESS:
            return None
        params = dict(name=name, backup_dir=backup_dir, storage_dir=None, cluster=None, api_host=None,
                      hook_results=[dict(h, thawed_by="watchdog") for h in hook_results or []], hook_log=hook_log)
        return thaw(params, False, by="watchdog", reason=reason, not_thawed=list(not_thawed or []))
    except Exception as exc:  # pylint: disable=broad-except  # the thaw happened; only the record failed
        return dict(error="%s: %s" % (type(exc).__name__, exc))
