# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: a whole backup in one process (the backup_create module). Not a public API.

discover -> record started -> the critical section (per group: pre hooks, capture, post hooks, under its
watchdog) -> export (after the thaw) -> record finished.  Each step is the function its own module runs
(pod_hooks_info, backup_record, backup_capture, resource_export); this file only sequences them as the
role's tasks did, so that a backup pays one module start-up instead of five.

What a failed step does is what the role's block/rescue/always did: the reason is kept as
``"<step>: <message>"``, the later steps are skipped, and the record is completed all the same (Failed,
or InProgress naming the pods that may still be frozen) unless the run could not even start its own
record (the name taken: the existing backup is left untouched).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time
import traceback

from ansible_collections.kubehooks.backup.plugins.module_utils import _record_steps, _storage
from ansible_collections.kubehooks.backup.plugins.module_utils._args import SECTION_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

DISCOVER = "Discover the pods in scope and their hooks"
START = "Record the backup and the pods about to be frozen"
SECTION = "Freeze, capture, thaw"
EXPORT = "Export the resources in scope"
FINISH = "Complete the record"

# What each step reads of the module's parameters
RECORD_SCOPE_KEYS = ("included_namespaces", "excluded_namespaces", "label_selectors", "hooks",
                     "included_resources", "excluded_resources", "include_cluster_resources")
DISCOVER_KEYS = ("included_namespaces", "excluded_namespaces", "label_selectors", "hooks", "max_hook_timeout")
SECTION_KEYS = tuple(SECTION_ARG_SPEC) + ("max_hook_timeout",)


def _pick(params, keys, **extra):
    picked = dict((key, params.get(key)) for key in keys)
    picked.update(extra)
    return picked


class Step(Exception):
    """A step failed: ``reason`` is what the record keeps."""

    def __init__(self, step, message):
        super(Step, self).__init__("%s: %s" % (step, message))
        self.reason = "%s: %s" % (step, message)


def _call(steps, key, step, durations, fn, *args, **kwargs):
    """``steps[key] = fn(...)``; a failure is kept there as a failed result (``failed``, ``msg``) and raised as a
    Step naming ``step``."""
    started = time.time()
    try:
        steps[key] = fn(*args, **kwargs)
        return steps[key]
    except KubehooksError as exc:
        steps[key] = dict(getattr(exc, "result", None) or {}, msg=str(exc), failed=True)
        raise Step(step, str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # a defect: recorded, never a lost record
        steps[key] = dict(msg=str(exc), failed=True, exception=traceback.format_exc())
        raise Step(step, "Unexpected error (please report it): %s: %s" % (type(exc).__name__, exc))
    finally:
        durations.append((step, round(time.time() - started, 3)))


def run(params, client_factory, discover, section, export, check_mode=False, warn=None):
    """The backup_create module's result: ``steps`` holds what each step returned (the role's registered
    results), the top level the finished record's summary.

    ``discover(factory, params)``, ``section(params, factory, check_mode)`` and ``export(factory, params,
    check_mode)`` are the steps' own functions (passed in so that the module chooses the executors)."""
    warn = warn or (lambda message: None)
    durations = []  # (step, seconds), in order
    location = _pick(params, ("name", "storage_dir", "cluster", "backup_dir"))
    record_scope = _pick(params, RECORD_SCOPE_KEYS)
    steps = dict(discovered=None, started=None, capture=None, export=None, finished=None, failure=None)
    api_host = getattr(client_factory, "host", None)
    try:
        pods = _call(steps, "discovered", DISCOVER, durations, discover, client_factory,
                     _pick(params, DISCOVER_KEYS, check_exec=True))["pods"]
        started = _call(steps, "started", START, durations, _record_steps.start, dict(
            location, api_host=api_host, plan=pods, ttl=params.get("ttl"), **record_scope), check_mode)
        warning = None if check_mode else _storage.ephemeral_reason(started["backup_dir"])
        if warning:
            warn(warning)
        if pods:
            capture = _call(steps, "capture", SECTION, durations, section, _pick(
                params, SECTION_KEYS, plan=pods, name=params["name"], backup_dir=started["backup_dir"], stage="all",
                run_id=started.get("run_id"), log_path=started.get("hook_log")), client_factory, check_mode)
            if "hooks" not in capture:  # the section could not run (as the role's failed_when)
                raise Step(SECTION, capture.get("msg", "failed"))
        exported = _call(steps, "export", EXPORT, durations, export, client_factory, dict(
            record_scope, name=params["name"], backup_dir=started["backup_dir"], page_size=params["page_size"],
            exclude_pods=(steps["capture"] or {}).get("failed_pods") or []), check_mode)
        if not check_mode:
            for message in exported.get("warning_messages") or []:
                warn(message)
    except Step as failed:
        steps["failure"] = failed.reason
    started = steps["started"]
    if started is not None and started.get("failed"):
        return _result(steps, durations)  # the name is taken (or the storage unusable): nothing of ours to complete
    capture = steps["capture"]
    finish = dict(location, **record_scope)
    finish.update(hook_results=(capture or {}).get("hooks") or [], errors=[], capture=capture,
                  export=steps["export"], failure_reason=steps["failure"], hooks=params.get("hooks") or [])
    if started is not None:
        finish.update(backup_dir=started["backup_dir"], storage_dir=None, cluster=None, run_id=started.get("run_id"))
    elif not params.get("backup_dir"):
        finish["api_host"] = api_host  # a record of the failure where the run's record would have been
    started_at = time.time()
    try:
        steps["finished"] = _record_steps.finish(finish, check_mode)
    except Exception as exc:  # pylint: disable=broad-except  # reported; the record stays InProgress
        steps["finished"] = dict(failed=True, msg="%s: %s" % (FINISH, exc))
    durations.append((FINISH, round(time.time() - started_at, 3)))
    return _result(steps, durations)


def _slim(steps):
    """The steps without the plan (every pod and hook, twice) and the hook results: the plan is in
    ``<name>-hook-plan.json`` (in check mode, the section's ``plan``), each hook's result in the record's logs
    and the hook log. At 500 pods they would be most of a result Ansible parses and templates."""
    slim = dict(steps)
    for key, drop in (("discovered", "pods"), ("started", "plan"), ("capture", "hooks")):
        if isinstance(slim[key], dict) and drop in slim[key]:
            slim[key] = dict(slim[key])
            items = slim[key].pop(drop)
            if key == "discovered":
                slim[key]["pod_count"] = len(items or [])
    return slim


def _result(steps, durations):
    finished = steps["finished"] or {}
    started = steps["started"] or {}
    capture = steps["capture"] or {}
    result = dict(changed=bool(started and not started.get("failed")), steps=_slim(steps),
                  step_seconds=[dict(step=step, seconds=seconds) for step, seconds in durations])
    for key in ("phase", "backup_dir", "summary", "error_messages", "not_thawed", "hooks_attempted", "hooks_failed",
                "items_backed_up", "total_items", "freeze_window_seconds"):
        if key in finished:
            result[key] = finished[key]
    result.setdefault("phase", "Failed")
    result.setdefault("not_thawed", capture.get("not_thawed") or [])
    result.setdefault("error_messages", [steps["failure"] or finished.get("msg") or "the backup could not be recorded"])
    return result
