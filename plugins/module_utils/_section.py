# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: what the backup_capture module does, stage by stage. Not a public API.

    check the options and the plan -> read the plan's pods (one LIST per namespace) -> groups
    -> check mode: the exact plan, nothing run, no file written
    -> ``all``:    thaw state + hook log created, watchdog forked (before any thread), the critical
                   section (_critical), ``done`` for the watchdog, its record read back
    -> ``freeze``: the same without the post hooks; the watchdog is left watching ansible-playbook
    -> ``thaw``:   the post hooks of the pods not thawed yet, ``done`` for the watchdog

The capture is injected (the module passes ``_volumes.select_volumes`` and
``_capture.capture_pod_volumes``; tests pass their own): ``select_volumes(pod,
default_volumes_to_fs_backup)`` (``(selected, skipped)`` or a plain list) and
``capture_pod_volumes(get_client, pod, selected, backup_dir, name, deadline, progress=...,
parallelism=...)`` (``deadline`` is a ``time.monotonic`` value, the freeze deadline, or None).
As soon as the section's captures ended, the volumes index ``<name>-volumes.json.gz`` is written
(``_volumes.write_volumes_index``) and the result carries ``volume_totals``; while volumes are
copied, ``<name>-progress.json`` says how many bytes are done (phase ``volumes``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import threading
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import (
    _critical,
    _csi_snapshot,
    _exec,
    _hook_results,
    _hook_runs,
    _hooks,
    _layout,
    _volumes,
    _watchdog,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    ThreadClients,
    api_caller,
    api_getter,
    list_pages,
    pods_path,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

# How long a finished run waits for the watchdog to record that it stood down.
WATCHDOG_RECORD_WAIT_SECONDS = 3


def no_volumes(pod, default_volumes_to_fs_backup):  # pylint: disable=unused-argument
    """The volume selector used until the capture module is wired in: nothing is captured."""
    return []


def read_pods(client_factory, plan):
    """``{"ns/name": pod object}`` for the plan's pods: one paginated LIST per namespace."""
    wanted = set(_critical.pod_key(pod) for pod in plan)
    found = {}
    client = client_factory()
    try:
        get_json = api_getter(client)
        for namespace in sorted(set(pod["namespace"] for pod in plan)):
            try:
                for obj in list_pages(get_json, pods_path(namespace)):
                    key = "%s/%s" % (namespace, (obj.get("metadata") or {}).get("name"))
                    if key in wanted:
                        found[key] = obj
            except ApiRequestError as err:
                raise KubehooksError("Could not list pods in namespace %s (to find the volumes of the plan's "
                                     "pods): %s" % (namespace, err))
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    return found


def claims_of(pod_object):
    return [volume["persistentVolumeClaim"].get("claimName")
            for volume in ((pod_object or {}).get("spec") or {}).get("volumes") or []
            if isinstance(volume, dict) and isinstance(volume.get("persistentVolumeClaim"), dict)]


def _snapshot_timeout(params):
    value = params.get("csi_snapshot_timeout")
    if value is None:
        return _csi_snapshot.DEFAULT_TIMEOUT_SECONDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise KubehooksError("csi_snapshot_timeout must be a number of seconds above 0, got %r" % (value,))
    return value


def _with_caller(client_factory, work):
    """``work(call)`` with an ``_api.api_caller`` over a new client, closed after."""
    client = client_factory()
    try:
        return work(api_caller(client))
    finally:
        getattr(client, "close", lambda: None)()


def _is_snapshot(item):
    return isinstance(item, dict) and item.get("method") == _csi_snapshot.METHOD


def _options(params):
    return _critical.Options(max_freeze_seconds=params["max_freeze_seconds"],
                             thaw_retry_seconds=params["thaw_retry_seconds"],
                             parallelism=params["parallelism"], output_cap=params["output_limit"]).check()


def _hook_logger(params, errors):
    log_path = params.get("log_path")
    if log_path:
        _hook_results.append_jsonl(log_path, [])  # created (0600) or refused now, before anything is frozen

    def log(result):
        if log_path and not errors:
            try:
                _hook_results.append_jsonl(log_path, [_hook_results.velero_log_entry(result, backup=params["name"])])
            except KubehooksError as exc:
                errors.append(str(exc))
    return log


class VolumeProgress(object):
    """``<name>-progress.json`` while volumes are copied: ``phase: volumes``, ``volume_bytes_done``
    (tar bytes over all volumes), ``volumes_done`` of ``volumes``.  Advisory: a failed write never stops
    the capture.  The export rewrites the file afterwards (phase ``export``)."""

    def __init__(self, path, name, total):
        self.path, self.lock = path, threading.Lock()
        self.state = dict(backup=name, phase="volumes", started_at=time.time(), volume_bytes_done=0,
                          volumes=total, volumes_done=0, done=False)
        self.by_pod = {}
        self.write()

    def write(self):
        state = dict(self.state, updated_at=time.time())
        try:
            _layout.atomic_write(self.path, (json.dumps(state, sort_keys=True) + "\n").encode("utf-8"), sync=False)
        except (KubehooksError, OSError, IOError):
            pass

    def for_pod(self, key):
        def update(tar_bytes):
            with self.lock:
                self.by_pod[key] = tar_bytes
                self.state["volume_bytes_done"] = sum(self.by_pod.values())
                self.write()
        return update

    def pod_done(self, count):
        with self.lock:
            self.state["volumes_done"] += count
            self.write()

    def finish(self, entries):
        with self.lock:
            self.state.update(done=True, volumes_done=len(entries),
                              volume_bytes_done=sum(int(e.get("tar_bytes") or 0) for e in entries))
            self.write()


def _finish(result, params, log_errors):
    result.update(_hook_results.totals(result["hooks"]))
    result["changed"] = bool(result["hooks"] or result.get("volumes"))
    messages = []
    if result.get("not_thawed"):
        messages.append("%d pod(s) may still be frozen: their post hooks could not be executed within "
                        "thaw_retry_seconds=%s: %s; run the thaw playbook (or their post hooks) for them"
                        % (len(result["not_thawed"]), params["thaw_retry_seconds"], ", ".join(result["not_thawed"])))
    messages += log_errors
    if messages:
        result.update(failed=True, msg="; ".join(messages))
    return result


def run(params, client_factory, check_mode=False, select_volumes=no_volumes, capture_pod_volumes=None,
        exec_fn=_exec.exec_hook):
    """The backup_capture module's result for ``params`` (see its documentation)."""
    plan = list(params["plan"] or [])
    _hook_runs.check_plan(plan, _hooks.parse_max_hook_timeout(params.get("max_hook_timeout")))
    options = _options(params)
    stage, name = params["stage"], _layout.check_backup_name(params["name"])
    backup_dir = os.path.abspath(params["backup_dir"])
    if _hook_runs.refuses_impersonation(client_factory):
        raise KubehooksError(_hook_runs.IMPERSONATION_REFUSED)
    marks = _critical.ThawState(_layout.thaw_state(backup_dir, name))
    record_path = _layout.watchdog_record(backup_dir, name)

    if stage == "thaw":
        if check_mode:
            return dict(changed=False, stage=stage, plan=[], hooks=[], not_thawed=[])
        if not os.path.exists(marks.path):
            raise KubehooksError("%s does not exist: no freeze stage of backup %s ran with backup_dir %s"
                                 % (marks.path, name, backup_dir))
        log_errors = []
        result = _critical.thaw_stage(plan, client_factory, marks, options, exec_fn=exec_fn,
                                      on_result=_hook_logger(params, log_errors))
        marks.done(_critical.CONTROLLER)
        result["watchdog"] = _watchdog.wait_for_record(record_path, WATCHDOG_RECORD_WAIT_SECONDS)
        result["stage"] = stage
        return _finish(result, params, log_errors)

    objects = read_pods(client_factory, plan)
    volumes, claims = {}, {}
    for pod in plan:
        key = _critical.pod_key(pod)
        obj = objects.get(key)
        claims[key] = claims_of(obj)
        picked = select_volumes(obj, params["default_volumes_to_fs_backup"]) if obj else []
        if isinstance(picked, tuple):  # _volumes.select_volumes: (selected, skipped)
            picked = picked[0]
        volumes[key] = list(picked or [])
    snapshot_timeout = _snapshot_timeout(params)
    snapshots_skipped = []
    if params.get("snapshot_volumes"):  # before anything is frozen: claims, PVs, classes (GET/LIST only)
        fs_names = dict((key, [v.get("volume") if isinstance(v, dict) else v for v in items])
                        for key, items in volumes.items())
        found, snapshots_skipped = _with_caller(client_factory, lambda call: _csi_snapshot.plan_snapshots(
            call, [(_critical.pod_key(pod), objects.get(_critical.pod_key(pod))) for pod in plan], fs_names))
        for key, items in found.items():
            volumes[key] = volumes.get(key, []) + items
    groups = _critical.plan_groups(plan, params["freeze_together"], volumes, claims)
    if check_mode:
        return dict(changed=bool(groups), stage=stage, plan=_critical.describe_plan(groups), hooks=[], volumes=[],
                    groups=[], not_thawed=[], failed_pods=[], freeze_window_seconds=None,
                    volumes_skipped=snapshots_skipped)

    if not os.path.isdir(backup_dir):
        os.makedirs(backup_dir, 0o700)
    log_errors = []
    log = _hook_logger(params, log_errors)
    marks.create()
    playbook = None
    if stage == "all":  # the module process, and the playbook whose cancellation must stop it
        controller, playbook = os.getpid(), _watchdog.find_ansible()
    else:  # the module returns with the pods frozen: the playbook that will run the thaw stage
        controller = _watchdog.find_controller()
    deadline = None
    if options.max_freeze_seconds:
        deadline = time.time() + options.max_freeze_seconds + options.thaw_retry_seconds + \
            _watchdog.DEADLINE_MARGIN_SECONDS
    watchdog = _watchdog.Watchdog(plan, client_factory, marks, options, record_path, controller, deadline=deadline,
                                  log_path=params.get("log_path"), backup=name, exec_fn=exec_fn,
                                  playbook_pid=playbook)
    watchdog.start()  # before the first thread and the first pre hook

    capture_fn, progress = None, None
    selected_count = sum(len(v) for group in groups for v in group["volumes"].values())
    snapshot_count = sum(1 for group in groups for v in group["volumes"].values() for item in v if _is_snapshot(item))
    copy_count = selected_count - snapshot_count
    if (capture_pod_volumes is not None and copy_count) or snapshot_count:
        if copy_count:
            progress = VolumeProgress(_layout.progress_path(backup_dir, name), name, copy_count)

        def capture_fn(group, section_deadline):
            """The group's volumes, pod by pod; one ApiClient per capture thread, closed after."""
            entries = []
            with ThreadClients(client_factory) as clients:
                # the snapshots first: each is cut in well under a second, then the copies run
                jobs = [tuple(_critical.pod_key(pod).split("/", 1)) + (item,) for pod in group["pods"]
                        for item in group["volumes"].get(_critical.pod_key(pod), []) if _is_snapshot(item)]
                if jobs:
                    until = options.clock() + snapshot_timeout
                    if section_deadline is not None:
                        until = min(until, section_deadline - _csi_snapshot.DEADLINE_MARGIN_SECONDS)
                    entries += _csi_snapshot.cut_snapshots(api_caller(clients.get()), jobs, name, until,
                                                           clock=options.clock, sleep=options.sleep)
                for pod in group["pods"]:
                    key = _critical.pod_key(pod)
                    copies = [item for item in group["volumes"].get(key, []) if not _is_snapshot(item)]
                    if copies and capture_pod_volumes is not None:
                        done = capture_pod_volumes(clients.get, objects[key], copies, backup_dir,
                                                   name, section_deadline, progress=progress.for_pod(key),
                                                   parallelism=options.parallelism)
                        progress.pod_done(len(done))
                        entries += done
            return entries

    result = _critical.run_critical_section(groups, client_factory, capture_fn, options, marks, exec_fn=exec_fn,
                                            on_result=log, stage=stage)
    result["stage"] = stage
    index_path = _layout.volumes_index(backup_dir, name)

    def write_index():
        try:
            _volumes.write_volumes_index(index_path, result["volumes"])
        except KubehooksError as exc:
            log_errors.append(str(exc))

    if selected_count:  # as soon as the captures ended: nothing is lost if a later step dies
        write_index()
        if progress is not None:
            progress.finish([e for e in result["volumes"] if not _is_snapshot(e)])
    if stage == "all":
        marks.done(_critical.CONTROLLER)
        result["watchdog"] = _watchdog.wait_for_record(record_path, WATCHDOG_RECORD_WAIT_SECONDS)
    if any(_is_snapshot(e) and e.get("status") == "cut" for e in result["volumes"]):
        # after the thaw (stage freeze: the pods are still frozen): readyToUse, bounded by the timeout
        try:
            _with_caller(client_factory, lambda call: _csi_snapshot.wait_ready(call, result["volumes"],
                                                                               snapshot_timeout))
        except KubehooksError as exc:
            log_errors.append(str(exc))
        write_index()
    if snapshot_count:  # Velero's files about the snapshots (objects as the API now shows them)
        def velero_files(call):
            docs, problems = _csi_snapshot.velero_documents(call, result["volumes"], snapshots_skipped)
            for role, objects in sorted(docs.items()):
                _volumes.write_json_gz(_layout.backup_file(backup_dir, name, role), objects,
                                       what="Velero's %s file" % role.replace("_", "-"))
            return problems
        try:
            result["velero_file_problems"] = _with_caller(client_factory, velero_files)
        except KubehooksError as exc:
            log_errors.append(str(exc))
    result["volumes_skipped"] = snapshots_skipped
    result["volume_totals"] = _volumes.volume_totals(result["volumes"])
    if stage != "all":
        result["frozen_pods"] = sorted(set(_critical.pod_key(pod) for group in groups for pod in group["pods"]
                                           if _critical.has_hooks(pod, "pre")))
        result["watchdog"] = dict(watchdog.base_record(), deadline=deadline)
    return _finish(result, params, log_errors)
