# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: one restore run, archive + options -> plan -> apply -> record. Not a public API.

``run`` is what the module ``restore_resources`` does in one module run: find the backup, validate
the options (before anything is written), extract the archive into a private temporary directory
(removed afterwards), discover the API, write the Restore record (InProgress, with the total),
apply the plan item by item (progress in the record at most every second, log entries in batches),
then the results, the resource list with each item's outcome, the logs and the final phase.
Memory holds one object at a time, the per-kind outcome list and the set of namespaces met.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import resource as _resource
import shutil
import sys
import tempfile
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot, _layout, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_apply as ra
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_hooks as rh
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_plan as rp
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_record as rr
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_volumes as rv
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, api_caller
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._args import require_count
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import totals as hook_totals

# The module's options (besides the connection's, ``_args.AUTH_ARG_SPEC``): one spec for the module
# ``restore_resources`` and its action plugin, which may run the same work in the controller's process.
ARGUMENT_SPEC = dict(
    backup=dict(type="str", required=True),
    name=dict(type="str"),
    backup_dir=dict(type="path"),
    storage_dir=dict(type="path"),
    cluster=dict(type="str"),
    included_namespaces=dict(type="list", elements="str", default=[]),
    excluded_namespaces=dict(type="list", elements="str", default=[]),
    included_resources=dict(type="list", elements="str", default=[]),
    excluded_resources=dict(type="list", elements="str", default=[]),
    label_selectors=dict(type="list", elements="str", default=[]),
    namespace_mappings=dict(type="dict", default={}),
    include_cluster_resources=dict(type="bool"),
    existing_resource_policy=dict(type="str", choices=["none", "update"], default="none"),
    restore_status=dict(type="list", elements="str", default=[]),
    preserve_node_ports=dict(type="bool", default=False),
    terminating_timeout=dict(type="int", default=600),
    request_timeout=dict(type="float"),
    volume_data=dict(type="bool", default=True),
    volume_helper_image=dict(type="str"),
    volume_helper_timeout=dict(type="int", default=600),
    volume_parallelism=dict(type="int", default=4),
    hooks=dict(type="list", elements="dict", default=[]),
    hook_wait_timeout=dict(type="str", default="10m"),
    hook_parallelism=dict(type="int", default=8),
)
MODULE_OPTIONS = dict(mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")])

LOG_BATCH = 200          # log entries per gzip member
PROGRESS_INTERVAL = 1.0  # seconds between two progress writes (Velero's ticker)
PLAN_LIMIT = 10000       # check mode returns at most this many planned items


def peak_rss_kib():
    """This process's peak resident set size in KiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)


def resolve_backup(params, api_host=None):
    """``(backup_dir, location_root, cluster)`` from ``backup_dir``, or storage_dir/cluster/backup."""
    bdir, cluster = _layout.resolve_backup_dir(params["backup"], params.get("backup_dir"), params.get("storage_dir"),
                                               params.get("cluster"), api_host)
    return bdir, _layout.location_of_backup_dir(bdir), cluster


def options_from(params, restore_name):
    return rp.RestoreOptions(
        restore_name, params["backup"], included_namespaces=params.get("included_namespaces"),
        excluded_namespaces=params.get("excluded_namespaces"), included_resources=params.get("included_resources"),
        excluded_resources=params.get("excluded_resources"), label_selectors=params.get("label_selectors"),
        namespace_mappings=params.get("namespace_mappings"),
        include_cluster_resources=params.get("include_cluster_resources"),
        existing_resource_policy=params.get("existing_resource_policy"), restore_status=params.get("restore_status"),
        preserve_node_ports=params.get("preserve_node_ports"))


def _discover(call):
    from ansible_collections.kubehooks.backup.plugins.module_utils._resources import discover, preferred_resources
    warnings = []

    def get_json(path, query=None, accept=None):
        return call("GET", path, query=query, accept=accept)
    return preferred_resources(discover(get_json, warnings)), warnings


class _Progress(object):
    """Counts outcomes, writes the record's progress at most every second, batches the log."""

    def __init__(self, rdir, name, record, total, clock=time.monotonic):
        self.rdir, self.name, self.record, self.total = rdir, name, record, total
        self.outcomes = rr.Outcomes()
        self.pending = []
        self.clock = clock
        self.last = clock()

    def __call__(self, item):
        self.outcomes.add(item)
        restored = self.outcomes.restored
        if item["outcome"] == ra.FAILED:
            level = "error"
        else:
            level = "warning" if item.get("message") and item["outcome"] == ra.SKIPPED else "info"
        entry = {"level": level, "resource": item["group_resource"], "namespace": item["target_namespace"],
                 "name": item["name"], "outcome": item["outcome"], "progress": "",
                 "msg": "Restored %d items out of an estimated total of %d (estimate will change throughout the restore)"
                        % (restored, max(self.total, restored))}
        if item.get("message"):
            entry["reason"] = item["message"]
        self.pending.append(entry)
        if len(self.pending) >= LOG_BATCH:
            self.flush_log()
        if self.rdir and self.clock() - self.last >= PROGRESS_INTERVAL:
            self.last = self.clock()
            rr.set_progress(self.record, restored, max(self.total, restored))
            rr.write_record(self.rdir, self.record)

    def log(self, level, msg, **fields):
        self.pending.append(dict(fields, level=level, msg=msg))

    def volume_bytes(self, done, total):
        """Progress of the volume data (plain tar bytes): in the record and the log, at most every second."""
        if self.rdir and (self.clock() - self.last >= PROGRESS_INTERVAL or done >= total):
            self.last = self.clock()
            progress = self.record.setdefault("status", {}).setdefault("progress", {})
            progress["volumeBytesRestored"], progress["volumeBytesTotal"] = int(done), int(total)
            rr.write_record(self.rdir, self.record)
            self.log("info", "Restored %d bytes of volume data out of %d" % (done, total),
                     volumeBytesRestored=int(done), volumeBytesTotal=int(total))

    def flush_log(self):
        if self.pending and self.rdir:
            rr.append_log(self.rdir, self.name, self.pending)
        self.pending = []


def restore_volume_data(params, factory, call, bdir, restore_name, claims, applier, progress, check_mode=False):
    """Write the captured data of the claims this restore created (``_restore_volumes``); the per-volume
    results.  A volume's error joins the restore's errors (PartiallyFailed) and names the volume."""
    backup_name = params["backup"]
    try:
        entries = rv.read_index(bdir, backup_name)
    except KubehooksError as exc:
        applier.errors.append({"namespace": None, "resource": rp.PVCS, "message": str(exc)})
        return []
    jobs, notes = rv.plan_volumes(entries, claims, bdir, backup_name)
    for level, namespace, message in notes:
        if level == "warning":
            applier.warnings.append({"namespace": namespace, "resource": rp.PVCS, "message": message})
        progress.log(level, message)
    image = params.get("volume_helper_image")
    if check_mode:
        return [rv.plan_entry(job, image, restore_name) for job in jobs]
    if not jobs:
        return []
    progress.log("info", "Restoring the data of %d volume(s), %d bytes, through helper pods"
                 % (len(jobs), sum(job["tar_bytes"] for job in jobs)))
    writer = rv.VolumeWriter(call, factory(), restore_name, backup_name, image=image,
                             timeout=params.get("volume_helper_timeout"), progress=progress.volume_bytes,
                             parallelism=params.get("volume_parallelism"))
    results = writer.run(jobs)
    for result in results:
        if result.get("warning"):
            applier.warnings.append({"namespace": result["target_namespace"], "resource": rp.PODS,
                                     "message": result["warning"]})
            progress.log("warning", result["warning"], namespace=result["target_namespace"])
        if result["status"] == rv.SUCCEEDED:
            progress.log("info", "volume %s restored into claim %s/%s: %d files, %d bytes in %ss" % (
                result["volume"], result["target_namespace"], result["pvc"], result["written_files"],
                result["written_bytes"], result["duration"]), namespace=result["target_namespace"],
                persistentVolumeClaim=result["pvc"])
        else:
            applier.errors.append({"namespace": result["target_namespace"], "resource": rp.PVCS,
                                   "message": result["error"]})
            progress.log("error", result["error"], namespace=result["target_namespace"],
                         persistentVolumeClaim=result["pvc"])
    progress.flush_log()
    return results


def run_restore_hooks(params, factory, hook_pods, applier, progress, restore_name):
    """The restored pods' exec hooks (``_restore_hooks``), after every item; each logged with Velero's
    field names; a failed hook joins the restore's errors (PartiallyFailed)."""
    if not hook_pods:
        return []
    progress.log("info", "Running the restore exec hooks of %d pod(s)" % len(hook_pods))
    progress.flush_log()

    def on_result(result):
        progress.pending.append(rh.log_entry(result, restore_name))

    results = rh.run_exec_hooks(hook_pods, factory, parallelism=params.get("hook_parallelism") or 8,
                                on_result=on_result)
    for result in results:
        if result["status"] == "failed":
            applier.errors.append({"namespace": result["namespace"], "resource": rp.PODS,
                                   "message": "restore exec hook %s of pod %s/%s failed: %s" % (
                                       result["name"], result["namespace"], result["pod"], result["error"])})
    progress.flush_log()
    return results


def _check_count(params, key, what):
    """``params[key]``, when given, is a whole number of at least 1 (``what`` says so in the error)."""
    value = params.get(key)
    if value is not None:
        require_count(key, value, what)


def _finish(rdir, restore_name, record, progress, applier, fatal, hook_count=None):
    """The record's last state: phase, counts, hook status (``hook_count``: ``_hook_results.totals``, when hooks
    ran), the last log entries, results and resource list."""
    errors = list(applier.errors) if applier else []
    warnings = list(applier.warnings) if applier else []
    rr.finish_record(record, errors, warnings, failure_reason=fatal)
    if hook_count:
        record["status"]["hookStatus"] = {"hooksAttempted": hook_count["hooks_attempted"],
                                          "hooksFailed": hook_count["hooks_failed"]}
    rr.set_progress(record, progress.outcomes.restored, max(progress.total, progress.outcomes.restored))
    progress.log("error" if fatal else "info", "restore failed: %s" % fatal if fatal else "restore completed")
    progress.flush_log()
    rr.write_results(rdir, restore_name, errors + ([{"message": fatal}] if fatal else []), warnings)
    progress.outcomes.write(rdir, restore_name)
    rr.write_record(rdir, record)


def run(params, factory, check_mode=False, call=None):
    """Restore (or, in check mode, plan); returns the module result.  KubehooksError for bad input.

    ``call``: the API transport (default ``_api.api_caller`` over a client of ``factory``).
    """
    started = time.time()
    api_host = getattr(factory, "host", None)
    bdir, root, cluster = resolve_backup(params, api_host)
    restore_name = params.get("name") or rr.default_name(params["backup"], started)
    _layout.check_backup_name(restore_name, "restore")
    options = options_from(params, restore_name)
    if os.path.isdir(bdir):  # the claims with a CSI snapshot are restored from it
        options.csi_snapshots = _csi_snapshot.restore_sources(
            _volumes.read_volumes_index(_layout.volumes_index(bdir, params["backup"])))
    _check_count(params, "volume_helper_timeout", "a positive number of seconds")
    _check_count(params, "volume_parallelism", "a whole number of at least 1")
    rules = rh.parse_restore_rules(params.get("hooks"))
    wait_timeout = rh.DEFAULT_WAIT_TIMEOUT
    if params.get("hook_wait_timeout") not in (None, ""):
        try:
            wait_timeout = parse_duration(params["hook_wait_timeout"])
        except ValueError as exc:
            raise KubehooksError("hook_wait_timeout: %s" % exc)
    rdir = os.path.join(root, _layout.RESTORES_DIR, restore_name)
    archive_file = _layout.archive_path(bdir, params["backup"])
    if not os.path.isdir(bdir):
        raise KubehooksError("backup %s not found: no directory %s" % (params["backup"], bdir))
    if os.path.exists(rdir):  # checked before the archive is read; claimed (race-free) below
        raise KubehooksError("restore %s already exists in %s: choose another name" % (restore_name, os.path.dirname(rdir)))
    spec = options.spec()
    if params.get("hooks"):
        spec["hooks"] = {"resources": params["hooks"]}
    record = rr.new_record(restore_name, spec, cluster, bdir)
    result = dict(name=restore_name, backup=params["backup"], backup_dir=bdir, restore_dir=rdir,
                  files=_layout.restore_files_of(rdir, restore_name))

    if not check_mode:
        _layout.claim_backup_dir(rdir, restore_name, what="restore")
        rr.write_record(rdir, record)
    workdir = tempfile.mkdtemp(prefix="kubehooks-restore-")
    progress = _Progress(None if check_mode else rdir, restore_name, record, 0)
    planned, applier, fatal = [], None, None
    claims, volumes, hook_pods, hook_results, init_hooks, created_pods = {}, [], [], [], [], set()
    try:
        try:
            info = rp.extract_archive(archive_file, os.path.join(workdir, "archive"))
            archive = rp.ArchiveDir(os.path.join(workdir, "archive"))
            call = call or api_caller(factory(), params.get("request_timeout"))
            resources, discovery_warnings = _discover(call)
            options.resolve(resources)
            progress.total = sum(1 for _entry in rp.iter_plan(archive, options))
        except ApiRequestError as exc:
            raise KubehooksError("cannot read the API discovery documents: %s" % exc)
        except KubehooksError as exc:
            if check_mode:
                raise
            fatal = str(exc)
        if fatal is None:
            rr.mark_started(record, progress.total)
            if not check_mode:
                rr.write_record(rdir, record)
            progress.log("info", "Starting restore of backup velero/%s (archive format %s, %d items planned)"
                         % (params["backup"], info["format_version"], progress.total))

            def on_item(item):
                progress(item)
                if item["group_resource"] == rp.PVCS:
                    claims[(item["namespace"], item["name"])] = (item["target_namespace"], item["outcome"])
                elif item["group_resource"] == rp.PODS and item["outcome"] == ra.CREATED:
                    created_pods.add((item["target_namespace"], item["name"]))
                if check_mode and len(planned) < PLAN_LIMIT:
                    planned.append(dict((k, item[k]) for k in (
                        "group_resource", "namespace", "target_namespace", "name", "stage", "outcome", "message")))

            def before_stage(stage):
                progress.log("info", "resources restored; next stage: %s" % stage)
                if params.get("volume_data", True):
                    volumes.extend(restore_volume_data(params, factory, call, bdir, restore_name, claims, applier,
                                                       progress, check_mode))

            def prepare(entry, cleaned):
                if entry["group_resource"] != rp.PODS:
                    return cleaned
                try:
                    containers, source = rh.init_containers(cleaned, rules)
                except rh.InitHookError as exc:
                    raise KubehooksError(str(exc))
                if containers:
                    rh.add_init_containers(cleaned, containers)
                    init_hooks.append(dict(namespace=cleaned["metadata"].get("namespace"), pod=entry["name"],
                                           source=source, containers=[c.get("name") for c in containers]))
                    progress.log("info", "init hook: %d init container(s) added first to pod %s/%s (%s)" % (
                        len(containers), cleaned["metadata"].get("namespace"), entry["name"], source),
                        hookType="init", hookSource=source, namespace=cleaned["metadata"].get("namespace"),
                        pod=entry["name"], hookContainer=[c.get("name") for c in containers])
                hooks = rh.exec_hooks(cleaned, rules, wait_timeout)
                if hooks["post"] or hooks["errors"]:
                    hook_pods.append(hooks)
                return cleaned

            applier = ra.Applier(call, options, archive, resources, on_item=on_item, before_stage=before_stage,
                                 dry_run=check_mode, terminating_timeout=params.get("terminating_timeout") or 600,
                                 prepare=prepare)
            applier.run(rp.iter_plan(archive, options))
            if not check_mode:
                hook_results.extend(run_restore_hooks(
                    params, factory, [p for p in hook_pods if (p["namespace"], p["name"]) in created_pods], applier,
                    progress, restore_name))
            applier.warnings.extend({"message": w} for w in discovery_warnings)
    except BaseException as exc:
        # Interrupted (a signal, the task's timeout) or an error raised out of the run: the record must not stay
        # New or InProgress, as if the restore were still running.
        if not check_mode:
            reason = str(exc) if isinstance(exc, KubehooksError) else "the restore was interrupted (%s%s)" % (
                type(exc).__name__, ": %s" % exc if str(exc) else "")
            try:
                _finish(rdir, restore_name, record, progress, applier, reason)
            except Exception:  # pylint: disable=broad-except  # best effort: the caller must see the first error
                pass
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    errors = list(applier.errors) if applier else []
    warnings = list(applier.warnings) if applier else []
    counts = progress.outcomes.counts
    result["volumes"] = volumes
    hook_count = hook_totals(hook_results)
    result.update(init_hooks=init_hooks, hooks=hook_results, hooks_attempted=hook_count["hooks_attempted"],
                  hooks_failed=hook_count["hooks_failed"])
    # as the record counts them: the items restored beyond the plan (a namespace created for a mapping, a
    # claim's PV) count in the total too, so a summary never says "11 of 9"
    result.update(total_items=max(progress.total, progress.outcomes.restored), items_restored=progress.outcomes.restored,
                  outcomes=counts,
                  peak_rss_kib=peak_rss_kib(), duration=round(time.time() - started, 3),
                  error_messages=[e["message"] for e in errors] + ([fatal] if fatal else []),
                  warning_messages=[w["message"] for w in warnings])
    if check_mode:
        result["hooks"] = [dict(namespace=p["namespace"], pod=p["name"], hooks=p["post"], errors=p["errors"])
                           for p in hook_pods]
        result.update(changed=bool(planned), phase=rr.PHASE_NEW, record=record, plan=planned,
                      plan_truncated=progress.total > PLAN_LIMIT)
        return result
    _finish(rdir, restore_name, record, progress, applier, fatal, hook_count if hook_results else None)
    result.update(changed=True, phase=record["status"]["phase"], record=record)
    if fatal:
        result.update(failed=True, msg="restore %s Failed: %s" % (restore_name, fatal))
    return result
