# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: restore records next to the backups, in Velero's shape. Not a public API.

Layout (Velero's ``pkg/persistence/object_store_layout.go`` under a backup storage location root):

    <storage>/<cluster>/restores/<restore-name>/velero-restore.json                the Restore object
                                                restore-<name>-logs.gz               gzipped JSON lines
                                                restore-<name>-results.gz            {"errors": ..., "warnings": ...}
                                                restore-<name>-resource-list.json.gz {"v1/Pod": ["ns/name(created)"]}

The log, results and resource list names are Velero's.  Velero keeps the Restore object in the
cluster only; here it is the file ``velero-restore.json`` (the sibling of ``velero-backup.json``).
The resource list has each item's outcome as ``velero restore describe --details`` shows it:
``created``, ``updated``, ``skipped`` or ``failed``.  Files are 0600, directories 0700.

The Restore object follows ``pkg/apis/velero/v1/restore_types.go``: phase New, InProgress,
Completed, PartiallyFailed (any error) or Failed (the restore could not run: archive unreadable,
API unreachable); ``progress`` {totalItems, itemsRestored}; ``warnings``/``errors`` counts (the
messages, per namespace, in the results file).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import format_label_selector

KIND = "Restore"
ANNOTATION_BACKUP_DIR = _record.ANNOTATION_PREFIX + "backup-dir"
PHASE_NEW = _record.PHASE_NEW
PHASE_IN_PROGRESS = _record.PHASE_IN_PROGRESS
PHASE_COMPLETED = _record.PHASE_COMPLETED
PHASE_PARTIALLY_FAILED = _record.PHASE_PARTIALLY_FAILED
PHASE_FAILED = _record.PHASE_FAILED


# --------------------------------------------------------------------------------------------
# Names (the paths are _layout's)
# --------------------------------------------------------------------------------------------

def default_name(backup, now=None):
    """Velero's default restore name: ``<backup>-<UTC %Y%m%d%H%M%S>``."""
    return "%s-%s" % (backup, time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() if now is None else now)))


# --------------------------------------------------------------------------------------------
# The Restore object
# --------------------------------------------------------------------------------------------

def new_record(name, spec, cluster=None, backup_dir=None, now=None):
    """A Velero Restore object in phase New with ``spec`` (``RestoreOptions.spec()``)."""
    annotations = {}
    if cluster:
        annotations[_record.ANNOTATION_CLUSTER] = cluster
    if backup_dir:
        annotations[ANNOTATION_BACKUP_DIR] = backup_dir
    return {
        "apiVersion": _record.API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": _record.VELERO_NAMESPACE,
                     "creationTimestamp": _record.timestamp(now), "annotations": annotations},
        "spec": spec,
        "status": {"phase": PHASE_NEW},
    }


def mark_started(record, total_items=0, now=None):
    status = record.setdefault("status", {})
    status["phase"] = PHASE_IN_PROGRESS
    status["startTimestamp"] = _record.timestamp(now)
    status["progress"] = {"totalItems": int(total_items), "itemsRestored": 0}
    return record


def set_progress(record, items_restored, total_items):
    """Velero's item counters; other keys of ``status.progress`` (the volume bytes) are kept."""
    record.setdefault("status", {}).setdefault("progress", {}).update(
        totalItems=int(total_items), itemsRestored=int(items_restored))
    return record


def phase_for(errors, fatal=False):
    if fatal:
        return PHASE_FAILED
    return PHASE_PARTIALLY_FAILED if errors else PHASE_COMPLETED


def finish_record(record, errors=(), warnings=(), failure_reason=None, now=None):
    status = record.setdefault("status", {})
    status["phase"] = phase_for(errors, bool(failure_reason))
    status.setdefault("startTimestamp", _record.timestamp(now))
    status["completionTimestamp"] = _record.timestamp(now)
    status["errors"] = len(errors) + (1 if failure_reason else 0)
    status["warnings"] = len(warnings)
    if failure_reason:
        status["failureReason"] = failure_reason
    return record


def write_record(rdir, record):
    """Write ``velero-restore.json`` atomically (owner-only); returns its path."""
    return _record.write_object(_layout.restore_file(rdir, None, "record"), record, "the restore record")


def load_record(rdir):
    """The Restore object in ``rdir``; KubehooksError when missing or unreadable."""
    return _record.load_object(_layout.restore_file(rdir, None, "record"), KIND, "restore record")


def write_results(rdir, name, errors=(), warnings=()):
    """``restore-<name>-results.gz``: messages per namespace (``cluster`` for cluster-scoped items)."""
    return _record.write_results(rdir, _layout.restore_stem(name), list(errors), list(warnings))


def read_results(rdir, name):
    return _record.read_results(rdir, _layout.restore_stem(name))


class Outcomes(object):
    """Each item's outcome, as Velero's restored resource list: ``{"v1/Pod": ["ns/name(created)"]}``."""

    def __init__(self):
        self.by_key = {}
        self.counts = dict((k, 0) for k in ("created", "updated", "skipped", "failed"))

    def add(self, item):
        name = "%s/%s" % (item["target_namespace"], item["name"]) if item.get("target_namespace") else item["name"]
        self.by_key.setdefault(item["resource_key"], []).append("%s(%s)" % (name, item["outcome"]))
        self.counts[item["outcome"]] = self.counts.get(item["outcome"], 0) + 1

    @property
    def restored(self):
        return sum(self.counts.values())

    def write(self, rdir, name):
        return _record.write_resource_list(rdir, _layout.restore_stem(name), self.by_key)


def read_resource_list(rdir, name):
    path = _layout.restore_file(rdir, name, "resource_list")
    if not os.path.exists(path):
        return {}
    return _record.read_resource_list(path)


def append_log(rdir, name, entries):
    """Append Velero-shaped log entries (``restore: velero/<name>``) as one gzip member."""
    stamped = []
    for entry in entries:
        entry = dict(entry)
        entry.setdefault("restore", "%s/%s" % (_record.VELERO_NAMESPACE, name))
        entry.setdefault("level", "info")
        stamped.append(entry)
    return _record.append_log(_layout.restore_file(rdir, name, "logs"), stamped)


# --------------------------------------------------------------------------------------------
# Listing and describing, like `velero restore get/describe/logs`
# --------------------------------------------------------------------------------------------

def summarize(record, rdir=None):
    """One ``velero restore get`` row: NAME BACKUP STATUS STARTED COMPLETED ERRORS WARNINGS CREATED SELECTOR."""
    metadata = record.get("metadata") or {}
    spec = record.get("spec") or {}
    status = record.get("status") or {}
    progress = status.get("progress") or {}
    return {
        "name": metadata.get("name"),
        "backup": spec.get("backupName"),
        "status": status.get("phase") or PHASE_NEW,
        "started": status.get("startTimestamp"),
        "completed": status.get("completionTimestamp"),
        "errors": int(status.get("errors") or 0),
        "warnings": int(status.get("warnings") or 0),
        "created": metadata.get("creationTimestamp"),
        "selector": format_label_selector(spec.get("labelSelector")) if spec.get("labelSelector")
        else ",".join(spec.get("labelSelectors") or []) or "<none>",
        "total_items": int(progress.get("totalItems") or 0),
        "items_restored": int(progress.get("itemsRestored") or 0),
        "cluster": (metadata.get("annotations") or {}).get(_record.ANNOTATION_CLUSTER),
        "path": rdir,
    }


def list_records(storage, cluster=None):
    """Rows (see :func:`summarize`) of every restore in ``storage`` (or of one cluster's), by cluster and name."""
    rows = []
    for _cluster, root in _layout.list_location_roots(storage, cluster):
        for name, rdir in _layout.subdirectories(os.path.join(root, _layout.RESTORES_DIR)):
            try:
                rows.append(summarize(load_record(rdir), rdir))
            except KubehooksError as exc:
                rows.append({"name": name, "status": "Unknown", "errors": 0, "warnings": 0, "path": rdir,
                             "error": str(exc)})
    return rows


def find_restore(storage, name, cluster=None):
    """The directory of restore ``name``: in ``cluster``, or in the only location root that has it."""
    _layout.check_backup_name(name, "restore")
    found = [_layout.restore_dir(storage, root_cluster, name)
             for root_cluster, _root in _layout.list_location_roots(storage, cluster)]
    found = [rdir for rdir in found if os.path.isdir(rdir)]
    if not found:
        where = storage if cluster is None else _layout.restores_root(storage, cluster)
        raise KubehooksError("no restore %s in %s" % (name, where))
    if len(found) > 1:
        raise KubehooksError("restore %s exists for several clusters (%s): give cluster"
                             % (name, ", ".join(os.path.basename(os.path.dirname(os.path.dirname(d))) for d in found)))
    return found[0]
