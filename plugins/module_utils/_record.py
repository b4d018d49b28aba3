# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: backup records in a Velero-shaped backup storage directory. Not a public API.

The files and directories of a backup (names, resolution, claiming, atomic writes) are
:mod:`_layout`'s; this module owns what is IN the record's files.

The Backup object follows Velero's ``pkg/apis/velero/v1/backup_types.go``: ``status.errors`` and
``status.warnings`` are COUNTS (the messages live in ``<name>-results.gz``, Velero's results file);
``status.version`` 1 and ``formatVersion`` ``1.1.0``; ``hookStatus`` {hooksAttempted, hooksFailed};
``progress`` {totalItems, itemsBackedUp}.  This collection's additions are annotations under
``backup.kubehooks.io/``.  Nothing here deletes backups: an expiration (from ``ttl``) is recorded and
shown, never enforced.

Logs: each append writes one gzip member (multi-member files are valid gzip; Python and Go both
read them whole), under an exclusive lock.  A run killed mid-append leaves a truncated last member;
:func:`read_log` returns everything before it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import datetime
import gzip
import json
import os
import shutil
import time
import zlib

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration, parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import selector_object
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

try:
    import fcntl
except ImportError:  # not POSIX: appends are then unlocked
    fcntl = None

API_VERSION = "velero.io/v1"
KIND = "Backup"
VELERO_NAMESPACE = "velero"
DEFAULT_LOCATION = "default"
STORAGE_LOCATION_LABEL = "velero.io/storage-location"
ANNOTATION_PREFIX = "backup.kubehooks.io/"
# How many lines of <name>-hooks.jsonl have been copied into <name>-logs.gz (backup_record, backup_info).
ANNOTATION_LOG_COPIED = ANNOTATION_PREFIX + "hook-log-entries-copied"
ANNOTATION_CLUSTER = ANNOTATION_PREFIX + "cluster"
ANNOTATION_FROZEN_PODS = ANNOTATION_PREFIX + "frozen-pods"
ANNOTATION_FREEZE_WINDOW = ANNOTATION_PREFIX + "freeze-window-seconds"
ANNOTATION_EXCLUDED_PODS = ANNOTATION_PREFIX + "excluded-pods"
ANNOTATION_LABEL_SELECTORS = ANNOTATION_PREFIX + "label-selectors"
ANNOTATION_THAWED = ANNOTATION_PREFIX + "thawed"
# The volume capture (Velero has no field for file-system copy totals): {volumes, succeeded, failed, bytes, files}.
ANNOTATION_VOLUMES = ANNOTATION_PREFIX + "volumes"
# Per group of the critical section: [{"group", "pods", "seconds"}].
ANNOTATION_FREEZE_WINDOWS = ANNOTATION_PREFIX + "freeze-windows"
# Pods that may still be frozen when the run ended (the thaw playbook thaws exactly those).
ANNOTATION_NOT_THAWED = ANNOTATION_PREFIX + "not-thawed"
# The phase a record left InProgress (pods not thawed) takes once the thaw playbook thawed them.
ANNOTATION_PHASE_AFTER_THAW = ANNOTATION_PREFIX + "phase-after-thaw"

PHASE_NEW = "New"
PHASE_IN_PROGRESS = "InProgress"
PHASE_COMPLETED = "Completed"
PHASE_PARTIALLY_FAILED = "PartiallyFailed"
PHASE_FAILED = "Failed"
PHASES = (PHASE_NEW, PHASE_IN_PROGRESS, PHASE_COMPLETED, PHASE_PARTIALLY_FAILED, PHASE_FAILED)


def storage_location(cluster=None):
    return cluster if cluster is not None else DEFAULT_LOCATION


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

def timestamp(now=None):
    """RFC 3339 UTC with second precision, as metav1.Time: ``2026-05-09T07:35:25Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def parse_timestamp(text):
    """Seconds since the epoch for a metav1.Time string, or None."""
    if not text:
        return None
    try:
        return calendar.timegm(datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").timetuple())
    except (ValueError, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# The Backup object
# --------------------------------------------------------------------------------------------

def new_record(name, included_namespaces=None, excluded_namespaces=None, included_resources=None,
               excluded_resources=None, label_selectors=None, include_cluster_resources=None, hooks=None,
               cluster=None, ttl=None, now=None):
    """A Velero Backup object in phase New whose spec mirrors the inputs.

    ``hooks``: the rules (Velero's ``spec.hooks.resources`` items), stored as given.
    ``ttl``: optional Go duration or seconds; sets ``spec.ttl`` and ``status.expiration``.
    """
    _layout.check_backup_name(name)
    if cluster is not None:
        _layout.check_cluster_name(cluster)
    if isinstance(label_selectors, str):
        label_selectors = [label_selectors]
    now = time.time() if now is None else now
    location = storage_location(cluster)
    annotations = {}
    if cluster is not None:
        annotations[ANNOTATION_CLUSTER] = cluster
    selectors = [s for s in label_selectors or [] if s.strip()]
    if selectors:
        annotations[ANNOTATION_LABEL_SELECTORS] = json.dumps(selectors)
    spec = {
        "includedNamespaces": list(included_namespaces or ["*"]),
        "excludedNamespaces": list(excluded_namespaces or []),
        "includedResources": list(included_resources or []),
        "excludedResources": list(excluded_resources or []),
        "hooks": {"resources": velero_hook_rules(hooks)},
        "storageLocation": location,
    }
    selector = selector_object(selectors)
    if selector is not None:
        spec["labelSelector"] = selector
    if include_cluster_resources is not None:
        spec["includeClusterResources"] = bool(include_cluster_resources)
    status = {"version": 1, "formatVersion": _layout.FORMAT_VERSION, "phase": PHASE_NEW}
    if ttl is not None:
        try:
            seconds = parse_duration(ttl)
        except ValueError as exc:
            raise KubehooksError("ttl: %s" % exc)
        spec["ttl"] = format_duration(seconds)
        status["expiration"] = timestamp(now + seconds)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": VELERO_NAMESPACE,
            "creationTimestamp": timestamp(now),
            "labels": {STORAGE_LOCATION_LABEL: location},
            "annotations": annotations,
        },
        "spec": spec,
        "status": status,
    }


def velero_hook_rules(hooks):
    """The hook rules as Velero decodes ``spec.hooks.resources``: each ``exec.timeout`` a Go duration
    string (``300`` or ``"300"`` -> ``5m0s``), a null timeout left out (Velero's default applies).

    Velero reads the timeout as a ``metav1.Duration``: a number, a bare ``"300"`` or null fails its
    decoding of the whole Backup.  Everything else is kept as given.  KubehooksError on a timeout
    that is not a duration (the rules are validated before a record is written, so only a direct
    caller meets it).
    """
    out = []
    for index, rule in enumerate(hooks or []):
        if not isinstance(rule, dict):
            out.append(rule)
            continue
        rule = dict(rule)
        for phase in ("pre", "post"):
            if not isinstance(rule.get(phase), list):
                continue
            entries = []
            for position, entry in enumerate(rule[phase]):
                spec = entry.get("exec") if isinstance(entry, dict) else None
                if isinstance(spec, dict) and "timeout" in spec:
                    spec = dict(spec)
                    if spec["timeout"] is None:
                        del spec["timeout"]
                    else:
                        try:
                            spec["timeout"] = format_duration(parse_duration(spec["timeout"]))
                        except ValueError as exc:
                            raise KubehooksError("hooks[%d].%s[%d].exec.timeout: %s" % (index, phase, position, exc))
                    entry = dict(entry, exec=spec)
                entries.append(entry)
            rule[phase] = entries
        out.append(rule)
    return out


def set_annotation(record, key, value):
    """Set an annotation (values are strings, as in Kubernetes); returns the record."""
    record.setdefault("metadata", {}).setdefault("annotations", {})[key] = value if isinstance(value, str) \
        else json.dumps(value)
    return record


def _pod_names(pods):
    names = []
    for pod in pods or []:
        if isinstance(pod, dict):
            names.append("%s/%s" % (pod.get("namespace"), pod.get("name") or pod.get("pod")))
        elif isinstance(pod, (tuple, list)):
            names.append("%s/%s" % tuple(pod))
        else:
            names.append(str(pod))
    return sorted(set(names))


def mark_started(record, frozen_pods=None, now=None):
    """Phase InProgress, startTimestamp, and the pods about to be frozen (written BEFORE freezing)."""
    status = record.setdefault("status", {})
    status["phase"] = PHASE_IN_PROGRESS
    status["startTimestamp"] = timestamp(now)
    set_annotation(record, ANNOTATION_FROZEN_PODS, json.dumps(_pod_names(frozen_pods)))
    return record


def json_annotation(record, key, default=None):
    """An annotation holding JSON, decoded; ``default`` when absent or unreadable."""
    raw = ((record.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        return default


def frozen_pods(record):
    """The ``ns/name`` list of the frozen-pods annotation ([] when absent or unreadable)."""
    raw = ((record.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_FROZEN_PODS)
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def phase_for(hook_totals=None, export_result=None, fatal=False, run_errors=(), volume_totals=None, not_thawed=()):
    """The phase of a backup at the end of its run: the one place it is decided.  PURE.

    ``InProgress``: pods may still be frozen (``not_thawed``): the run is not over until the thaw
    playbook thawed them.  ``Failed``: ``fatal`` (the run could not proceed: bad rules, API
    unreachable) or nothing was exported (``export_result`` None or without an archive ``path``).
    Else ``PartiallyFailed`` when any hook failed (``hook_totals["hooks_failed"]``), the export
    reported errors or left out pods (their Fail pre hook failed), a volume could not be captured
    (``volume_totals["failed"]``), or the run reported errors of its own (``run_errors``: a hook task
    that could not run at all).  Else ``Completed``.  Hook failures alone never make a backup Failed.
    """
    if list(not_thawed or []):
        return PHASE_IN_PROGRESS
    if fatal or not export_result or not export_result.get("path"):
        return PHASE_FAILED
    hooks_failed = int((hook_totals or {}).get("hooks_failed") or 0)
    volumes_failed = int((volume_totals or {}).get("failed") or 0)
    if hooks_failed > 0 or volumes_failed > 0 or export_result.get("errors") or export_result.get("excluded_pods") \
            or list(run_errors or []):
        return PHASE_PARTIALLY_FAILED
    return PHASE_COMPLETED


def finish_record(record, phase, hook_totals=None, export_result=None, errors=None, warnings=None,
                  freeze_window=None, failure_reason=None, now=None, volume_totals=None, freeze_windows=None,
                  not_thawed=None, phase_after_thaw=None):
    """Fill the final status: phase, completionTimestamp, hookStatus, progress, error/warning counts.

    ``errors``/``warnings``: the message lists that go to the results file (their lengths are the
    counts, as Velero's status counts log entries).  Without ``errors`` the count is derived:
    failed hooks + export errors + 1 for a ``failure_reason``.  ``freeze_window`` seconds -> annotation;
    ``volume_totals``, ``freeze_windows`` (per group), ``not_thawed`` -> annotations.  A phase
    ``InProgress`` (pods not thawed) gets no completion time; ``phase_after_thaw`` is kept for the thaw.
    """
    if phase not in PHASES:
        raise KubehooksError("unknown backup phase %r" % (phase,))
    hook_totals = hook_totals or {}
    export_result = export_result or {}
    status = record.setdefault("status", {})
    status["phase"] = phase
    status.setdefault("startTimestamp", timestamp(now))
    if phase == PHASE_IN_PROGRESS:
        status.pop("completionTimestamp", None)
        if phase_after_thaw:
            set_annotation(record, ANNOTATION_PHASE_AFTER_THAW, phase_after_thaw)
    else:
        status["completionTimestamp"] = timestamp(now)
    if volume_totals is not None:
        set_annotation(record, ANNOTATION_VOLUMES, json.dumps(dict(volume_totals), sort_keys=True))
        if volume_totals.get("csi_snapshots"):  # Velero's counters (omitted when zero, as Velero's omitempty)
            status["csiVolumeSnapshotsAttempted"] = int(volume_totals["csi_snapshots"])
            if volume_totals.get("csi_snapshots_completed"):
                status["csiVolumeSnapshotsCompleted"] = int(volume_totals["csi_snapshots_completed"])
    if freeze_windows:
        set_annotation(record, ANNOTATION_FREEZE_WINDOWS, json.dumps(list(freeze_windows), sort_keys=True))
    if not_thawed is not None:
        set_annotation(record, ANNOTATION_NOT_THAWED, json.dumps(sorted(not_thawed)))
    status["hookStatus"] = {"hooksAttempted": int(hook_totals.get("hooks_attempted") or 0),
                            "hooksFailed": int(hook_totals.get("hooks_failed") or 0)}
    status["progress"] = {"totalItems": int(export_result.get("total_items") or 0),
                          "itemsBackedUp": int(export_result.get("items_backed_up") or 0)}
    if errors is None:
        status["errors"] = status["hookStatus"]["hooksFailed"] + len(export_result.get("errors") or []) \
            + (1 if failure_reason else 0)
    else:
        status["errors"] = len(errors)
    status["warnings"] = len(warnings or [])
    if failure_reason:
        status["failureReason"] = failure_reason
    if freeze_window is not None:
        set_annotation(record, ANNOTATION_FREEZE_WINDOW, "%.3f" % float(freeze_window))
    if export_result.get("excluded_pods"):
        set_annotation(record, ANNOTATION_EXCLUDED_PODS, json.dumps(sorted(export_result["excluded_pods"])))
    return record


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def write_object(path, obj, what):
    """Write a Velero object as indented JSON, atomically (owner-only); returns ``path``."""
    return _layout.atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"), what=what)


def load_object(path, kind, what):
    """The Velero object of ``kind`` in ``path``; KubehooksError naming ``what`` when missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            obj = json.loads(handle.read().decode("utf-8"))
    except (OSError, IOError) as exc:
        raise KubehooksError("no readable %s at %s: %s" % (what, path, getattr(exc, "strerror", None) or exc))
    except ValueError as exc:
        raise KubehooksError("the %s %s is not valid JSON: %s" % (what, path, exc))
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise KubehooksError("%s is not a Velero %s object" % (path, kind))
    return obj


def write_record(bdir, record):
    """Write ``velero-backup.json`` atomically (owner-only); returns its path."""
    return write_object(_layout.record_path(bdir), record, "the backup record")


def load_record(bdir):
    """The Backup object in ``bdir``; KubehooksError when missing or unreadable."""
    return load_object(_layout.record_path(bdir), KIND, "backup record")


def write_hook_plan(bdir, name, plan):
    """Write ``<name>-hook-plan.json`` (the pods with hooks, saved before anything is frozen)."""
    return _layout.atomic_write(_layout.hook_plan_path(bdir, name),
                                (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def read_hook_plan(bdir, name):
    """The saved hook plan, or [] when none was saved; KubehooksError when it is not JSON."""
    path = _layout.hook_plan_path(bdir, name)
    try:
        with open(path) as handle:
            plan = json.load(handle)
    except (IOError, OSError):
        return []
    except ValueError as exc:
        raise KubehooksError("the hook plan %s is not valid JSON: %s" % (path, exc))
    return plan if isinstance(plan, list) else []


def _gzip_json(value):
    return gzip.compress(json.dumps(value, sort_keys=True).encode("utf-8"), mtime=0)


def write_resource_list(bdir, name, resource_list):
    """Put ``<name>-resource-list.json.gz`` in place (0600); returns its path.

    ``resource_list``: Velero's dict ({"v1/Pod": ["ns/name"]}, entries get sorted) or the path of an
    already written gzip file (what ``_export.export`` returns), moved into place when elsewhere.
    """
    path = _layout.resource_list_path(bdir, name)
    if isinstance(resource_list, dict):
        return _layout.atomic_write(path, _gzip_json({k: sorted(v) for k, v in resource_list.items()}),
                                    what="the resource list")
    try:
        if os.path.abspath(resource_list) != os.path.abspath(path):
            shutil.move(resource_list, path)
            os.chmod(path, 0o600)
    except OSError as exc:
        raise KubehooksError("cannot write the resource list %s: %s" % (path, exc.strerror or exc))
    return path


def read_resource_list(path):
    """Velero's resource list as a dict (duplicate keys, should any exist, are merged)."""
    def merge(pairs):
        out = {}
        for key, value in pairs:
            if isinstance(value, list) and isinstance(out.get(key), list):
                out[key].extend(value)
            else:
                out[key] = value
        return out
    try:
        with gzip.open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"), object_pairs_hook=merge)
    except (OSError, IOError, EOFError, ValueError) as exc:
        raise KubehooksError("cannot read the resource list %s: %s" % (path, exc))


def results_document(errors=None, warnings=None):
    """Velero's results file content: {"errors": Result, "warnings": Result}.

    A message is a string (Velero-level) or a dict with ``message`` and optionally ``namespace``
    (namespaced) or ``resource`` without namespace (cluster-scoped).
    """
    def result(messages):
        out = {}
        for entry in messages or []:
            if isinstance(entry, dict):
                text = entry.get("message") or json.dumps(entry, sort_keys=True)
                namespace = entry.get("namespace")
                if namespace:
                    out.setdefault("namespaces", {}).setdefault(namespace, []).append(text)
                elif entry.get("resource"):
                    out.setdefault("cluster", []).append(text)
                else:
                    out.setdefault("velero", []).append(text)
            else:
                out.setdefault("velero", []).append(str(entry))
        return out
    return {"errors": result(errors), "warnings": result(warnings)}


def write_results(bdir, name, errors=None, warnings=None):
    """Write ``<name>-results.gz`` (0600); returns its path."""
    return _layout.atomic_write(_layout.results_path(bdir, name), _gzip_json(results_document(errors, warnings)),
                                what="the results")


def read_results(bdir, name):
    """The results document, or an empty one when the file does not exist."""
    path = _layout.results_path(bdir, name)
    if not os.path.exists(path):
        return {"errors": {}, "warnings": {}}
    try:
        with gzip.open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, IOError, EOFError, ValueError) as exc:
        raise KubehooksError("cannot read the results %s: %s" % (path, exc))


# --------------------------------------------------------------------------------------------
# Logs: gzipped JSON lines, one gzip member per append
# --------------------------------------------------------------------------------------------

def append_log(path, entries, backup=None, now=None):
    """Append log entries (dicts) to a ``-logs.gz`` file as JSON lines, in ONE new gzip member.

    Adds ``time`` (RFC 3339) when missing and ``backup`` (``velero/<name>``, Velero's field) when
    ``backup`` is given.  The file is created owner-only; appends are serialised with flock.
    """
    stamp = timestamp(now)
    lines = []
    for entry in entries:
        entry = dict(entry)
        entry.setdefault("time", stamp)
        if backup:
            entry.setdefault("backup", "%s/%s" % (VELERO_NAMESPACE, backup))
        lines.append(json.dumps(entry, sort_keys=True, ensure_ascii=False))
    if not lines:
        return path
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            member = gzip.compress(payload)
            view = memoryview(member)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
    except OSError as exc:
        raise KubehooksError("cannot append to the backup log %s: %s" % (path, exc.strerror or exc))
    return path


def _decompressed_chunks(handle, chunk_size=65536):
    """Decompress a multi-member gzip stream chunk by chunk; a truncated last member just ends it."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    while True:
        data = handle.read(chunk_size)
        if not data:
            return
        while data:
            try:
                out = decompressor.decompress(data)
            except zlib.error:
                return  # a damaged member: keep what was read before it
            if out:
                yield out
            if decompressor.eof:  # end of one member: the rest starts the next one
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""


def iter_log(path):
    """Yield the log's entries, streaming; a truncated last gzip member (a killed run) ends the log.

    Only complete lines count (a line cut by the truncation is dropped).  A line that is not a JSON
    object is yielded as ``{"msg": <line>, "unparsed": True}``.
    """
    try:
        handle = open(path, "rb")
    except (OSError, IOError) as exc:
        if not os.path.exists(path):
            return
        raise KubehooksError("cannot read the backup log %s: %s" % (path, exc))
    with handle:
        pending = b""
        for chunk in _decompressed_chunks(handle):
            pending += chunk
            complete, newline, pending = pending.rpartition(b"\n")
            if not newline:
                pending = complete + pending
                continue
            yield from _parse_lines(complete)


def _parse_lines(data):
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        yield entry if isinstance(entry, dict) else {"msg": raw, "unparsed": True}


def is_hook_entry(entry):
    """A hook entry carries Velero's ``hookCommand`` field (what ``grep hookCommand`` finds)."""
    return "hookCommand" in entry


def read_log(path, hooks_only=False):
    """The log entries as a list (only the hook entries with ``hooks_only``)."""
    return [entry for entry in iter_log(path) if not hooks_only or is_hook_entry(entry)]
