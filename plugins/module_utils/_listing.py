# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: listing and showing backups, like ``velero backup get`` / ``logs``. Not a public API.

What backup_info returns: one row per backup (Velero's columns plus this collection's counters),
the table as velero prints it, one backup with its files, results, hook plan and log entries
(those of ``<name>-logs.gz``, then the hook lines of a run in progress or killed that are not
copied there yet).  Reads files only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools
import json
import os
import re
import tarfile
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _hook_results, _layout, _record, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import format_label_selector

_TIMESTAMP_SUFFIX = re.compile(r"-[0-9]{14}\Z")
COLUMNS = (("NAME", "name"), ("STATUS", "status"), ("ERRORS", "errors"), ("WARNINGS", "warnings"),
           ("CREATED", "created"), ("EXPIRES", "expires"), ("STORAGE LOCATION", "storage_location"),
           ("SELECTOR", "selector"))


# --------------------------------------------------------------------------------------------
# Time, as velero shows it
# --------------------------------------------------------------------------------------------

def short_human_duration(seconds):
    """apimachinery's ShortHumanDuration: ``45s``, ``12m``, ``5h``, ``29d``, ``2y``."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    seconds = int(seconds)
    if seconds < 60:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 60:
        return "%dm" % minutes
    hours = minutes // 60
    if hours < 24:
        return "%dh" % hours
    if hours < 24 * 365:
        return "%dd" % (hours // 24)
    return "%dy" % (hours // (24 * 365))


def expires_text(expiration, now=None):
    """``velero backup get``'s EXPIRES column: ``29d``, ``3h ago`` or ``n/a``."""
    when = _record.parse_timestamp(expiration)
    if when is None:
        return "n/a"
    now = time.time() if now is None else now
    if when >= now:
        return short_human_duration(when - now)
    return "%s ago" % short_human_duration(now - when)


def velero_time(text):
    """``2026-11-25T09:10:02Z`` -> ``2026-11-25 09:10:02 +0000 UTC`` (how velero prints times)."""
    if not text:
        return "<nil>"
    seconds = _record.parse_timestamp(text)
    if seconds is None:
        return str(text)
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(seconds))


# --------------------------------------------------------------------------------------------
# Listing, like `velero backup get`
# --------------------------------------------------------------------------------------------

def _velero_order(left, right):
    """Velero's sortBackupsByPrefixAndTimestamp: by name, but scheduled ones newest first."""
    a, b = left["name"], right["name"]
    ma, mb = _TIMESTAMP_SUFFIX.search(a), _TIMESTAMP_SUFFIX.search(b)
    if ma and mb and a[:ma.start()] == b[:mb.start()]:
        return -1 if a[ma.start():] > b[mb.start():] else (1 if a[ma.start():] < b[mb.start():] else 0)
    return -1 if a < b else (1 if a > b else 0)


def summarize(record, bdir=None, now=None):
    """One ``velero backup get`` row as a dict, plus this collection's counters."""
    metadata = record.get("metadata") or {}
    spec = record.get("spec") or {}
    status = record.get("status") or {}
    annotations = metadata.get("annotations") or {}
    expiration = status.get("expiration")
    raw_selectors = annotations.get(_record.ANNOTATION_LABEL_SELECTORS)
    try:
        selector = ",".join(json.loads(raw_selectors)) if raw_selectors else format_label_selector(
            spec.get("labelSelector"))
    except ValueError:
        selector = format_label_selector(spec.get("labelSelector"))
    hook_status = status.get("hookStatus") or {}
    progress = status.get("progress") or {}
    return {
        "name": metadata.get("name"),
        "status": status.get("phase") or _record.PHASE_NEW,
        "errors": int(status.get("errors") or 0),
        "warnings": int(status.get("warnings") or 0),
        "created": status.get("startTimestamp") or metadata.get("creationTimestamp"),
        "expires": expires_text(expiration, now),
        "storage_location": spec.get("storageLocation") or _record.DEFAULT_LOCATION,
        "selector": selector or "<none>",
        "cluster": annotations.get(_record.ANNOTATION_CLUSTER),
        "hooks_attempted": int(hook_status.get("hooksAttempted") or 0),
        "hooks_failed": int(hook_status.get("hooksFailed") or 0),
        "items_backed_up": int(progress.get("itemsBackedUp") or 0),
        "total_items": int(progress.get("totalItems") or 0),
        "completed": status.get("completionTimestamp"),
        "expiration": expiration,
        "path": bdir,
    }


def list_records(storage, cluster=None, now=None):
    """Summaries (see :func:`summarize`) of every backup in ``storage`` (or of one cluster's).

    Sorted by cluster, then as ``velero backup get`` sorts.  A directory whose record cannot be
    read is listed with status ``Unknown`` and an ``error``.
    """
    rows = []
    for cluster_name, root in _layout.list_location_roots(storage, cluster):
        found = []
        for name, bdir in _layout.subdirectories(os.path.join(root, _layout.BACKUPS_DIR)):
            try:
                row = summarize(_record.load_record(bdir), bdir, now)
            except KubehooksError as exc:
                row = {"name": name, "status": "Unknown", "errors": 0, "warnings": 0, "created": None,
                       "expires": "n/a", "storage_location": _record.storage_location(cluster_name),
                       "selector": "<none>", "path": bdir, "error": str(exc)}
            row["cluster"] = cluster_name
            found.append(row)
        found.sort(key=functools.cmp_to_key(_velero_order))
        rows.extend(found)
    return rows


def table(rows):
    """``velero backup get``'s table: columns padded to the widest cell plus three spaces."""
    cells = [[title for title, _key in COLUMNS]]
    for row in rows:
        line = []
        for _title, key in COLUMNS:
            value = row.get(key)
            line.append(velero_time(value) if key == "created" else ("" if value is None else str(value)))
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return [("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line))).rstrip() for line in cells]


# --------------------------------------------------------------------------------------------
# One backup, like `velero backup describe` / `logs`
# --------------------------------------------------------------------------------------------

def find_backup(storage, name, cluster=None):
    """The directory of backup ``name``: in ``cluster``, or in the only location root that has it."""
    _layout.check_backup_name(name)
    if cluster is not None:
        bdir = _layout.backup_dir(storage, name, cluster)
        if not os.path.isdir(bdir):
            raise KubehooksError("no backup %s for cluster %s in %s" % (name, cluster, storage))
        return bdir
    found = [row for row in list_records(storage) if row.get("name") == name]
    if not found:
        raise KubehooksError("no backup %s in %s" % (name, storage))
    if len(found) > 1:
        raise KubehooksError("backup %s exists for several clusters (%s): give cluster"
                             % (name, ", ".join(str(row.get("cluster")) for row in found)))
    return found[0]["path"]


VOLUME_FILES_CAP = 1000


def volume_files(path, cap=VOLUME_FILES_CAP):
    """The member names of a captured volume's ``.tar.gz`` (streamed), at most ``cap``; (names, truncated)."""
    names = []
    try:
        with tarfile.open(path, "r:gz") as tar:  # r|gz reads one gzip member only
            for member in tar:
                if len(names) >= cap:
                    return names, True
                names.append(member.name + ("/" if member.isdir() and not member.name.endswith("/") else ""))
    except (tarfile.TarError, IOError, OSError, EOFError) as exc:
        raise KubehooksError("cannot read the volume archive %s: %s" % (path, exc))
    return names, False


def show_volumes(bdir, name, with_files=False):
    """The volumes index of a backup (``[]`` without one); with ``with_files``, each captured volume's
    ``members`` (its archive's member names, at most VOLUME_FILES_CAP; ``members_truncated``)."""
    path = _layout.volumes_index(bdir, name)
    if not os.path.exists(path):
        return []
    entries = _volumes.read_volumes_index(path)
    if with_files:
        for entry in entries:
            if entry.get("status") == "succeeded" and entry.get("path"):
                entry["members"], entry["members_truncated"] = volume_files(os.path.join(bdir, entry["path"]))
    return entries


def show_backup(bdir, logs=False, hooks_only=False, expected_name=None, volume_files_list=False):
    """backup_info's result for one backup directory."""
    record = _record.load_record(bdir)
    name = (record.get("metadata") or {}).get("name") or os.path.basename(bdir)
    if expected_name and expected_name != name:
        raise KubehooksError("%s holds backup %s, not %s" % (bdir, name, expected_name))
    row = summarize(record, bdir)
    annotations = (record.get("metadata") or {}).get("annotations") or {}
    window = annotations.get(_record.ANNOTATION_FREEZE_WINDOW)
    thawed = annotations.get(_record.ANNOTATION_THAWED)
    backup = dict(row, freeze_window_seconds=float(window) if window is not None else None,
                  frozen_pods=_record.frozen_pods(record),
                  thawed=json.loads(thawed) if thawed and thawed.startswith("{") else thawed,
                  failure_reason=(record.get("status") or {}).get("failureReason"))
    files = _layout.files_of(bdir, name)
    result = dict(changed=False, backups=[row], table=table([row]), backup=backup, record=record,
                  messages=_record.read_results(bdir, name), hook_plan=_record.read_hook_plan(bdir, name),
                  hook_log=files["hook_log"], volumes=show_volumes(bdir, name, volume_files_list),
                  hook_plan_problem=(_layout.untrusted_file_problem(files["hook_plan"])
                                     if os.path.exists(files["hook_plan"]) else None),
                  files=dict((k, v) for k, v in files.items() if os.path.exists(v)))
    if logs or hooks_only:
        entries = _record.read_log(files["logs"], hooks_only=hooks_only)
        copied = int(annotations.get(_record.ANNOTATION_LOG_COPIED) or 0)
        entries.extend(e for e in _hook_results.read_jsonl(files["hook_log"], skip=copied, quiet=True)[0]
                       if not hooks_only or _record.is_hook_entry(e))
        result["logs"] = entries
        result["log_lines"] = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in entries]
    return result
