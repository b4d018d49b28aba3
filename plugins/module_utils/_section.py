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
import uuid

from ansible_collections.kubehooks.backup.plugins.module_utils import (
    _critical,
    _csi_snapshot,
    _exec,
    _hook_results,
    _hook_runs,
    _hooks,
    _layout,
    _lease,
    _room,
    _volumes,
    _watchdog,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    ThreadClients,
    api_caller,
    api_getter,
    api_requester,
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


def _hook_logger(params, errors, precreate=True):
    """The hook log's writer: a failed write is kept in ``errors`` (once), never stops a hook.

    ``precreate``: create the log now, so that an unusable one refuses the run before anything is
    frozen; never for a thaw (a log that cannot be written must not stop the post hooks).
    """
    log_path = params.get("log_path")
    if log_path and precreate:
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


def check_room(client_factory, groups, objects, backup_dir):
    """``_room``'s check for the volumes of ``groups`` (before anything is frozen); None without volumes."""
    selections = [(objects.get(key), [item for item in items if not _is_snapshot(item)])  # a snapshot takes no room here
                  for group in groups for key, items in group["volumes"].items()]
    if not any(items for _obj, items in selections):
        return None
    client = client_factory()
    try:
        get_json = api_getter(client)

        def get_claim(namespace, claim):
            try:
                return get_json("/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (namespace, claim))
            except ApiRequestError as err:
                raise KubehooksError("Could not read PersistentVolumeClaim %s/%s (to check the storage has room for "
                                     "its copy; check_storage_room=false skips this): %s" % (namespace, claim, err))
        need, unknown = _room.needed(selections, get_claim)
    finally:
        getattr(client, "close", lambda: None)()
    return _room.check(backup_dir, need, unknown)


def lease_settings(params):
    """``(namespace, name, wait)`` of the Lease, checked; None when ``lease`` is false."""
    if not params.get("lease", True):
        return None
    namespace = params.get("lease_namespace") or _lease.DEFAULT_NAMESPACE
    name = params.get("lease_name") or _lease.DEFAULT_NAME
    _layout.check_backup_name(namespace, what="lease_namespace")
    _layout.check_backup_name(name, what="lease_name")
    wait = params.get("lease_wait_seconds")
    wait = _lease.DEFAULT_WAIT_SECONDS if wait is None else wait
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
        raise KubehooksError("lease_wait_seconds must be a number of seconds, 0 or more, got %r" % (wait,))
    return namespace, name, wait


def take_lease(client_factory, params, options, run_id):
    """Take the run's Lease before anything is frozen (waiting for another run's); the Lease, or None."""
    settings = lease_settings(params)
    if settings is None:
        return None
    namespace, name, wait = settings
    client = client_factory()
    lease = _lease.Lease(api_requester(client), namespace, name, _lease.holder_for(params["name"], run_id),
                         _lease.duration_seconds(options.max_freeze_seconds, options.thaw_retry_seconds))
    try:
        lease.acquire(wait)
    except Exception:
        getattr(client, "close", lambda: None)()
        raise
    lease.client = client
    return lease


def refuse_while_held(client_factory, record):
    """``respect_lease`` (the thaw playbook): refuse while the run that froze still holds its Lease - unless
    that run is certainly gone (its watchdog and module recorded on this machine and boot, both dead)."""
    held = (record or {}).get("lease")
    if not held or _watchdog.run_is_gone(record):
        return
    client = client_factory()
    try:
        _lease.check_not_held(api_requester(client), held["namespace"], held["name"], held["holder"])
    finally:
        getattr(client, "close", lambda: None)()


def release_dead_runs_lease(client_factory, record):
    """After the thaw playbook thawed every pod: delete the Lease if the finished run still holds it (its
    machine was lost, or its watchdog was killed), so other backups need not wait for it to lapse."""
    held = (record or {}).get("lease")
    if not held:
        return None
    client = client_factory()
    try:
        lease = _lease.Lease(api_requester(client), held["namespace"], held["name"], held["holder"],
                             held.get("duration_seconds") or 0)
        try:
            return lease.release()
        except KubehooksError as exc:
            return str(exc)
    finally:
        getattr(client, "close", lambda: None)()


def _finish(result, params, log_errors, marks=None):
    result.update(_hook_results.totals(result["hooks"]))
    result["changed"] = bool(result["hooks"] or result.get("volumes"))
    result["write_errors"] = list(log_errors) + [e for e in (marks.errors if marks is not None else [])
                                                 if e not in log_errors]
    messages = []
    if result.get("not_thawed"):
        messages.append("%d pod(s) may still be frozen: their post hooks could not be executed within "
                        "thaw_retry_seconds=%s: %s; run the thaw playbook (or their post hooks) for them"
                        % (len(result["not_thawed"]), params["thaw_retry_seconds"], ", ".join(result["not_thawed"])))
    messages += result["write_errors"]
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
        dog = _watchdog.read_record(record_path)
        if params.get("respect_lease"):
            refuse_while_held(client_factory, dog)
        log_errors = []
        result = _critical.thaw_stage(plan, client_factory, marks, options, exec_fn=exec_fn,
                                      on_result=_hook_logger(params, log_errors, precreate=False))
        marks.done(_critical.CONTROLLER)
        _watchdog.tell_stand_down(dog)  # done written or not: the watchdog stands down now
        if params.get("respect_lease") and not result["not_thawed"]:
            released = release_dead_runs_lease(client_factory, dog)
            if isinstance(released, str):
                log_errors.append("the Lease of the run could not be released: %s" % released)
        result["watchdog"] = _watchdog.wait_for_record(record_path, WATCHDOG_RECORD_WAIT_SECONDS)
        result["stage"] = stage
        return _finish(result, params, log_errors, marks)

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
    room = check_room(client_factory, groups, objects, backup_dir) if params.get("check_storage_room", True) else None
    lease_settings(params)
    frozen = any(_critical.has_hooks(pod, "pre") for group in groups for pod in group["pods"])
    lease = take_lease(client_factory, params, options, params.get("run_id") or uuid.uuid4().hex) if frozen else None
    try:
        log_errors = []
        log = _hook_logger(params, log_errors)
        marks.create()
    except Exception:
        if lease is not None:
            lease.release_patiently(time.time() + 10)
        raise
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
                                  playbook_pid=playbook, lease=lease.describe() if lease is not None else None)
    try:
        watchdog.start()  # before the first thread and the first pre hook
    except Exception:
        if lease is not None:
            lease.release_patiently(time.time() + 10)
        raise
    finally:
        if lease is not None:
            getattr(lease.client, "close", lambda: None)()  # the watchdog renews it with a client of its own

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
    result["storage_room"] = room
    result["lease"] = lease.describe() if lease is not None else None
    if stage == "all":
        marks.done(_critical.CONTROLLER)
        _watchdog.tell_stand_down(watchdog.base_record())  # done written or not: the watchdog stands down now
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
    return _finish(result, params, log_errors, marks)
