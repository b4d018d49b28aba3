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

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
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
    )
    result.update(extra)
    result["summary"] = summary_lines(name, result)
    return result


_PHASE_NOTES = {
    _record.PHASE_PARTIALLY_FAILED: " - the backup is usable but incomplete, see the errors below",
    _record.PHASE_FAILED: " - see the errors below",
    _record.PHASE_NEW: " - check mode, nothing was frozen, exported or written",
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
        "Freeze window: %s" % ("%.2f s" % float(window) if window is not None else "none (nothing was frozen)"),
        "Files: %s" % (result.get("backup_dir") or "none"),
        "Logs: %s (Velero's fields: zcat | grep hookCommand), %s" % (
            os.path.basename(files.get("logs") or _layout.log_path("", name)),
            os.path.basename(files.get("hook_log") or _layout.hook_log_path("", name))),
        "Archive: %s" % ("%s, %s" % (os.path.basename(_layout.archive_path("", name)),
                                     os.path.basename(_layout.resource_list_path("", name)))
                         if phase in (_record.PHASE_COMPLETED, _record.PHASE_PARTIALLY_FAILED) else "none"),
    ]
    if result.get("excluded_pods"):
        lines.append("Not in the archive (a pre hook with on-error Fail failed): %s"
                     % ", ".join(result["excluded_pods"]))
    errors = list(result.get("error_messages") or [])
    lines.extend("Error: %s" % text for text in errors[:MAX_ERROR_LINES])
    if len(errors) > MAX_ERROR_LINES:
        lines.append("... and %d more errors in %s" % (len(errors) - MAX_ERROR_LINES,
                                                       os.path.basename(_layout.results_path("", name))))
    return lines


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
    return dict(export=export_result, failure_reason=failure_reason, run_errors=list(params["errors"] or []),
                hook_results=hook_results, hook_totals=totals(hook_results))


def decide(outcome):
    """Add the phase, the failure reason of a Failed backup, the errors and warnings to ``outcome``."""
    export_result = outcome["export"]
    phase = _record.phase_for(outcome["hook_totals"], export_result, run_errors=outcome["run_errors"])
    failure_reason = outcome["failure_reason"]
    if phase == _record.PHASE_FAILED and not failure_reason:
        failure_reason = "nothing was exported"
    errors = hook_error_messages(outcome["hook_results"])
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
    entries = pre + export_log_entries(export_result, outcome["failure_reason"],
                                       (export_result or {}).get("finished_at")) + post
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
    _record.finish_record(record, phase, outcome["hook_totals"], outcome["export"], errors=outcome["errors"],
                          warnings=outcome["warnings"], freeze_window=params.get("freeze_window"),
                          failure_reason=outcome["failure_reason"] if phase == _record.PHASE_FAILED else None)
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED,
                           str(hook_log_lines(params, bdir, record) if exists else 0))
    if not check_mode:
        write_finished(bdir, name, record, outcome, adopt=not exists)
    return describe(bdir, name, record, changed=True, error_messages=[error_text(e) for e in outcome["errors"]])


def thaw(params, check_mode):
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
    _record.set_annotation(record, _record.ANNOTATION_THAWED, json.dumps(
        {"time": _record.timestamp(now), "hooksAttempted": thaw_totals["hooks_attempted"],
         "hooksFailed": thaw_totals["hooks_failed"]}, sort_keys=True))
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED, str(max(count, copied)))
    entries = earlier + thaw_entries
    if status.get("phase") not in FINAL_PHASES:
        status["phase"] = _record.PHASE_FAILED
        status["completionTimestamp"] = _record.timestamp(now)
        status["failureReason"] = ("the backup run stopped before it finished; the pods of its hook plan were "
                                   "thawed afterwards (%d post hooks attempted, %d failed)"
                                   % (thaw_totals["hooks_attempted"], thaw_totals["hooks_failed"]))
        status["errors"] = int(status.get("errors") or 0) + 1 + earlier_totals["hooks_failed"] \
            + thaw_totals["hooks_failed"]
        entries.append(phase_entry(record, _record.PHASE_FAILED))
    else:
        entries.append({"level": "info", "msg": "Pods thawed after the backup (%d post hooks attempted, %d failed)"
                        % (thaw_totals["hooks_attempted"], thaw_totals["hooks_failed"])})
    if not check_mode:
        _record.append_log(_layout.log_path(bdir, name), entries, backup=name)
        _record.write_record(bdir, record)
    return describe(bdir, name, record, changed=True)
