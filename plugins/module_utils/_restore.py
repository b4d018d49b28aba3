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
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_plan as rp
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_record as rr
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, api_caller
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

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
    from ansible_collections.kubehooks.backup.plugins.module_utils._export import discover, preferred_resources
    warnings = []

    def get_json(path, query=None):
        return call("GET", path, query=query)
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

    def flush_log(self):
        if self.pending and self.rdir:
            rr.append_log(self.rdir, self.name, self.pending)
        self.pending = []


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
    rdir = os.path.join(root, _layout.RESTORES_DIR, restore_name)
    archive_file = _layout.archive_path(bdir, params["backup"])
    if not os.path.isdir(bdir):
        raise KubehooksError("backup %s not found: no directory %s" % (params["backup"], bdir))
    if os.path.exists(rdir):  # checked before the archive is read; claimed (race-free) below
        raise KubehooksError("restore %s already exists in %s: choose another name" % (restore_name, os.path.dirname(rdir)))
    record = rr.new_record(restore_name, options.spec(), cluster, bdir)
    result = dict(name=restore_name, backup=params["backup"], backup_dir=bdir, restore_dir=rdir,
                  files=_layout.restore_files_of(rdir, restore_name))

    if not check_mode:
        _layout.claim_backup_dir(rdir, restore_name, what="restore")
        rr.write_record(rdir, record)
    workdir = tempfile.mkdtemp(prefix="kubehooks-restore-")
    progress = _Progress(None if check_mode else rdir, restore_name, record, 0)
    planned, applier, fatal = [], None, None
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
                if check_mode and len(planned) < PLAN_LIMIT:
                    planned.append(dict((k, item[k]) for k in (
                        "group_resource", "namespace", "target_namespace", "name", "stage", "outcome", "message")))

            def before_stage(stage):
                progress.log("info", "resources restored; next stage: %s (volume data and restore hooks go here)"
                             % stage)

            applier = ra.Applier(call, options, archive, resources, on_item=on_item, before_stage=before_stage,
                                 dry_run=check_mode, terminating_timeout=params.get("terminating_timeout") or 600)
            applier.run(rp.iter_plan(archive, options))
            applier.warnings.extend({"message": w} for w in discovery_warnings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    errors = list(applier.errors) if applier else []
    warnings = list(applier.warnings) if applier else []
    counts = progress.outcomes.counts
    result.update(total_items=progress.total, items_restored=progress.outcomes.restored, outcomes=counts,
                  peak_rss_kib=peak_rss_kib(), duration=round(time.time() - started, 3),
                  error_messages=[e["message"] for e in errors] + ([fatal] if fatal else []),
                  warning_messages=[w["message"] for w in warnings])
    if check_mode:
        result.update(changed=bool(planned), phase=rr.PHASE_NEW, record=record, plan=planned,
                      plan_truncated=progress.total > PLAN_LIMIT)
        return result
    rr.finish_record(record, errors, warnings, failure_reason=fatal)
    rr.set_progress(record, progress.outcomes.restored, max(progress.total, progress.outcomes.restored))
    progress.log("error" if fatal else "info", "restore failed: %s" % fatal if fatal else "restore completed")
    progress.flush_log()
    rr.write_results(rdir, restore_name, errors + ([{"message": fatal}] if fatal else []), warnings)
    progress.outcomes.write(rdir, restore_name)
    rr.write_record(rdir, record)
    result.update(changed=True, phase=record["status"]["phase"], record=record)
    if fatal:
        result.update(failed=True, msg="restore %s Failed: %s" % (restore_name, fatal))
    return result
