# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: a backup shown like ``velero backup describe [--details]`` and its log as
Velero's default text (logfmt) lines. Not a public API.

``describe`` returns the description as data (what a playbook or a query reads); ``describe_lines``
prints it as velero does.  With ``details``: the resource list grouped by kind, the captured volumes
(``<name>-volumes.json.gz``, once volume capture wrote one) and the error and warning messages per
namespace.  Reads files only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._listing import summarize, velero_time

VOLUME_FIELDS = ("namespace", "pod", "volume", "pvc", "path", "bytes", "files", "sha256", "method", "status", "error")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_volumes(bdir, name):
    """The entries of ``<name>-volumes.json.gz`` (``VOLUME_FIELDS`` of each); [] when there is none."""
    entries = _volumes.read_volumes_index(_layout.volumes_index(bdir, name))
    return [dict((key, entry.get(key)) for key in VOLUME_FIELDS) for entry in entries]


def _messages(result):
    """One side (errors or warnings) of the results file: velero, cluster, namespaces."""
    result = result or {}
    return {"velero": list(result.get("velero") or []), "cluster": list(result.get("cluster") or []),
            "namespaces": dict((ns, list(msgs)) for ns, msgs in sorted((result.get("namespaces") or {}).items()))}


def _resource_list(bdir, name):
    path = _layout.resource_list_path(bdir, name)
    if not os.path.exists(path):
        return {}
    return dict((kind, sorted(items)) for kind, items in sorted(_record.read_resource_list(path).items()))


# --------------------------------------------------------------------------------------------
# The description as data
# --------------------------------------------------------------------------------------------

def describe(bdir, record=None, details=False, now=None):
    """The description of the backup in ``bdir`` (dict); with ``details`` its resources, volumes, messages."""
    record = record if record is not None else _record.load_record(bdir)
    metadata = record.get("metadata") or {}
    spec = record.get("spec") or {}
    status = record.get("status") or {}
    name = metadata.get("name") or os.path.basename(bdir)
    row = summarize(record, bdir, now)
    hook_status = status.get("hookStatus") or {}
    progress = status.get("progress") or {}
    cluster_scoped = spec.get("includeClusterResources")
    results = _record.read_results(bdir, name)
    description = {
        "name": name,
        "namespace": metadata.get("namespace") or _record.VELERO_NAMESPACE,
        "labels": dict(metadata.get("labels") or {}),
        "annotations": dict(metadata.get("annotations") or {}),
        "phase": row["status"],
        "errors": row["errors"],
        "warnings": row["warnings"],
        "failure_reason": status.get("failureReason"),
        "included_namespaces": list(spec.get("includedNamespaces") or ["*"]),
        "excluded_namespaces": list(spec.get("excludedNamespaces") or []),
        "included_resources": list(spec.get("includedResources") or ["*"]),
        "excluded_resources": list(spec.get("excludedResources") or []),
        "cluster_scoped": "auto" if cluster_scoped is None else ("included" if cluster_scoped else "excluded"),
        "label_selector": row["selector"],
        "storage_location": row["storage_location"],
        "ttl": spec.get("ttl"),
        "hooks": list((spec.get("hooks") or {}).get("resources") or []),
        "format_version": status.get("formatVersion"),
        "started": status.get("startTimestamp"),
        "completed": status.get("completionTimestamp"),
        "expiration": status.get("expiration"),
        "expires": row["expires"],
        "total_items": int(progress.get("totalItems") or 0),
        "items_backed_up": int(progress.get("itemsBackedUp") or 0),
        "hooks_attempted": int(hook_status.get("hooksAttempted") or 0),
        "hooks_failed": int(hook_status.get("hooksFailed") or 0),
        "frozen_pods": _record.frozen_pods(record),
        "path": bdir,
        "details": bool(details),
    }
    if details:
        description["resource_list"] = _resource_list(bdir, name)
        description["volumes"] = read_volumes(bdir, name)
        description["error_messages"] = _messages(results.get("errors"))
        description["warning_messages"] = _messages(results.get("warnings"))
    return description


# --------------------------------------------------------------------------------------------
# The description as velero prints it
# --------------------------------------------------------------------------------------------

def _list(values):
    return ", ".join(values) if values else "<none>"


def _pairs(mapping):
    return ", ".join("%s=%s" % item for item in sorted(mapping.items())) if mapping else "<none>"


def _aligned(pairs, indent=""):
    width = max(len(key) for key, _value in pairs) + 3  # the colon, then two spaces after the longest
    return [("%s%s%s" % (indent, (key + ":").ljust(width), value)).rstrip() for key, value in pairs]


def _message_lines(title, count, messages):
    if messages is None:
        return ["%s:  %s" % (title, count if count else "<none>")]
    lines = ["%s:" % title]
    lines.append("  Velero:     %s" % ("<none>" if not messages["velero"] else ""))
    lines.extend("    %s" % msg for msg in messages["velero"])
    lines.append("  Cluster:    %s" % ("<none>" if not messages["cluster"] else ""))
    lines.extend("    %s" % msg for msg in messages["cluster"])
    lines.append("  Namespaces: %s" % ("<none>" if not messages["namespaces"] else ""))
    for namespace, msgs in messages["namespaces"].items():
        lines.append("    %s:" % namespace)
        lines.extend("      %s" % msg for msg in msgs)
    return [line.rstrip() for line in lines]


def _size(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0
    return str(count)


def describe_lines(d):
    """``velero backup describe [--details]`` text of a :func:`describe` result, one string per line."""
    annotations = dict((k, v) for k, v in d["annotations"].items() if k != _record.ANNOTATION_FROZEN_PODS)
    lines = _aligned([("Name", d["name"]), ("Namespace", d["namespace"]), ("Labels", _pairs(d["labels"])),
                      ("Annotations", _pairs(annotations))])
    lines += ["", "Phase:  %s" % d["phase"]]
    if d["failure_reason"]:
        lines += ["", "Failure reason:  %s" % d["failure_reason"]]
    lines += [""] + _message_lines("Warnings", d["warnings"], d.get("warning_messages"))
    lines += [""] + _message_lines("Errors", d["errors"], d.get("error_messages"))
    namespaces = [("Included", _list(d["included_namespaces"])), ("Excluded", _list(d["excluded_namespaces"]))]
    resources = [("Included", _list(d["included_resources"])), ("Excluded", _list(d["excluded_resources"])),
                 ("Cluster-scoped", d["cluster_scoped"])]
    lines += ["", "Namespaces:"] + _aligned(namespaces, "  ")
    lines += ["", "Resources:"] + _aligned(resources, "  ")
    lines += ["", "Label selector:  %s" % d["label_selector"], "", "Storage Location:  %s" % d["storage_location"],
              "", "TTL:  %s" % (d["ttl"] or "<none>"), ""]
    if d["hooks"]:
        lines.append("Hooks:")
        for rule in d["hooks"]:
            lines.append("  %s:" % (rule.get("name") or "<unnamed>"))
            lines.append("    Namespaces:  %s" % _list(rule.get("includedNamespaces") or ["*"]))
            for phase, key in (("Pre", "pre"), ("Post", "post")):
                for hook in rule.get(key) or []:
                    command = (hook.get("exec") or {}).get("command") or []
                    lines.append("    %s exec hook:  %s" % (phase, " ".join(command)))
    else:
        lines.append("Hooks:  <none>")
    lines += ["", "Backup Format Version:  %s" % (d["format_version"] or "<none>"), ""]
    lines += _aligned([("Started", velero_time(d["started"])), ("Completed", velero_time(d["completed"]))])
    lines += ["", "Expiration:  %s" % (velero_time(d["expiration"]) if d["expiration"] else "<nil>"), ""]
    lines += _aligned([("Total items to be backed up", d["total_items"]), ("Items backed up", d["items_backed_up"])])
    if d["details"]:
        lines += ["", "Resource List:"]
        if not d["resource_list"]:
            lines.append("  <none>")
        for kind, items in d["resource_list"].items():
            lines.append("  %s:" % kind)
            lines.extend("    - %s" % item for item in items)
        lines += ["", "Backup Volumes:"]
        if not d["volumes"]:
            lines.append("  <none included>")
        for vol in d["volumes"]:
            lines.append("  %s/%s: volume %s (pvc %s) %s, %s files, %s, %s%s" % (
                vol["namespace"], vol["pod"], vol["volume"], vol["pvc"] or "<none>", vol["method"] or "",
                vol["files"] if vol["files"] is not None else "?", _size(int(vol["bytes"] or 0)), vol["status"],
                ": %s" % vol["error"] if vol["error"] else ""))
    lines += [""] + _aligned([("HooksAttempted", d["hooks_attempted"]), ("HooksFailed", d["hooks_failed"])])
    return lines


# --------------------------------------------------------------------------------------------
# Velero's text log format (logfmt)
# --------------------------------------------------------------------------------------------

_BARE = re.compile(r'^[^\s="\\]+$')
_FIRST = ("time", "level", "msg")


def _logfmt_value(value):
    if value is None:
        text = "<nil>"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[%s]" % " ".join(str(item) for item in value)  # Go's %v of a []string
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    if _BARE.match(text):
        return text
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def logfmt_line(entry):
    """One log entry as Velero's default text line: ``time=... level=info msg="..." key=value ...``."""
    keys = [key for key in _FIRST if key in entry] + sorted(key for key in entry if key not in _FIRST)
    return " ".join("%s=%s" % (key, _logfmt_value(entry[key])) for key in keys)
