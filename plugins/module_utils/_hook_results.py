# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: what is recorded about hook runs. Not a public API.

Pure functions over hook results (the pod_hooks result shape): Velero's counters, the failure
message, Velero-shaped JSON log entries, and the owner-only JSON-lines append.  No kubernetes
import, so the record-keeping module starts without the client.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration

# Velero counts a hook stopped by an earlier Fail as attempted; a skipped pod's hooks are not.
ATTEMPTED = ("succeeded", "failed", "not_run")


def totals(results):
    """``{hooks_attempted, hooks_failed}``: attempted = succeeded + failed + not_run (never skipped)."""
    attempted = sum(1 for r in results if r.get("status") in ATTEMPTED)
    failed = sum(1 for r in results if r.get("status") == "failed")
    return dict(hooks_attempted=attempted, hooks_failed=failed)


_LEVELS = {"succeeded": "info", "skipped": "info", "not_run": "warning", "failed": "error"}


def _rfc3339(now):
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(now, (int, float)):
        now = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def velero_log_entry(result, backup=None, now=None):
    """One log object for one hook result, with the field names Velero's JSON log uses.

    ``backup`` is written as Velero writes it, ``<backup namespace>/<backup name>``; a bare name
    gets Velero's default namespace: ``nginx-hook-test`` -> ``velero/nginx-hook-test``.
    ``now`` is a datetime or epoch seconds (default: when the hook ended, ``finished_at``, else the
    current time); ``time`` is RFC 3339 UTC.
    """
    if now is None:
        now = result.get("finished_at")
    status = result.get("status")
    detail = result.get("error") or result.get("reason")
    entry = {
        "time": _rfc3339(now),
        "level": _LEVELS.get(status, "error"),
        "msg": "exec hook %s%s" % (status, ": %s" % detail if detail else ""),
    }
    if backup:
        entry["backup"] = backup if "/" in backup else "velero/" + backup
    timeout = result.get("timeout")
    entry.update({
        "namespace": result.get("namespace"),
        "pod": result.get("pod"),
        "status": status,
        "hookCommand": result.get("command"),
        "hookContainer": result.get("container"),
        "hookName": result.get("name"),
        "hookPhase": result.get("phase"),
        "hookSource": result.get("source"),
        "hookType": "exec",
        "hookOnError": result.get("on_error"),
        "hookTimeout": format_duration(timeout) if timeout is not None else None,
        "exitCode": result.get("exit_code"),
        "duration": result.get("duration"),
    })
    for key in ("error", "reason", "stdout", "stderr"):
        if result.get(key):
            entry[key] = result[key]
    if result.get("truncated"):
        entry["truncated"] = True
    if isinstance(result.get("attempts"), int) and result["attempts"] > 1:
        entry["attempts"] = result["attempts"]  # a post hook retried while its exec could not be opened
    if result.get("not_executed"):
        entry["notExecuted"] = result["not_executed"]  # unreachable (may still be frozen) or gone (deleted)
    if result.get("thawed_by"):
        entry["thawedBy"] = result["thawed_by"]
    return entry


def append_jsonl(path, entries):
    """Append one JSON object per line to ``path`` (created 0600, parent directories 0700).

    The file is made owner-only even when it already existed: hook output may hold secrets.
    """
    data = "".join(json.dumps(entry) + "\n" for entry in entries).encode("utf-8")
    try:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise KubehooksError("could not append to the hook log %s: %s" % (path, exc))


def read_jsonl(path, skip=0, quiet=False):
    """Entries of a JSON-lines file after the first ``skip`` lines; (entries, total lines).

    Only complete lines count (a line still being written, or cut by a kill, is not one).  A missing
    file is empty; an unreadable one is a KubehooksError, or empty with ``quiet``.
    """
    entries, count = [], 0
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line still being written (or cut by a kill)
                count += 1
                if count <= skip or not raw.strip():
                    continue
                try:
                    entry = json.loads(raw.decode("utf-8", "replace"))
                except ValueError:
                    entry = {"msg": raw.decode("utf-8", "replace").strip(), "unparsed": True}
                entries.append(entry if isinstance(entry, dict) else {"msg": str(entry), "unparsed": True})
    except (IOError, OSError) as exc:
        if os.path.exists(path) and not quiet:
            raise KubehooksError("cannot read the hook log %s: %s" % (path, exc))
    return entries, count
