# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the critical section of a backup, in one process. Not a public API.

A backup freezes an application only around the data that needs it, as Velero's ItemBlocks do:

    for each group (in parallel, up to ``parallelism`` groups at a time):
        pre hooks  -> capture the group's volumes -> post hooks (in a ``finally``)

``plan_groups`` (pure) cuts the plan into groups: one pod; pods sharing a PVC (same namespace and
claim, union-find); or, with ``freeze_together``, every pod in scope.  Pods without hooks but with
volumes to capture form groups too (capture without freeze); pods with neither are left out.

``run_critical_section`` is the one function to read.  Its rules:

- pre hooks: ``_exec.run_phase`` (one pod's hooks in order, Velero's on-error semantics); every
  pre hook's timeout is cut to the time left before the freeze deadline (``max_freeze_seconds``
  after the section started; 0 = no deadline, Velero's behaviour);
- capture: ``capture_fn(group, deadline)`` for the pods whose pre phase did not fail with
  on-error Fail (Velero does not back such a pod up: its volumes are recorded as not captured).
  A capture still running at the deadline is abandoned (its thread is left behind, the volumes
  are recorded as abandoned) and the post hooks start;
- post hooks, in a ``finally``, for every pod of the group that has any: each pod is first
  *claimed* in the thaw state (so the watchdog never thaws it a second time), its post hooks run
  with their own timeouts (the freeze deadline does not cut a thaw), a post hook that could not
  be executed (``_exec.UNREACHABLE``) is retried with backoff until ``thaw_retry_seconds`` after
  the group's post phase started, and the pod is marked ``thawed`` as soon as its post hooks ended
  (whatever their exit status) or ``released`` when one could not be executed: it may still be
  frozen, and the result's ``not_thawed`` names it.

``ThawState`` is the thaw-state file (``_layout.thaw_state``: JSON lines, owner-only) shared with
the watchdog (_watchdog).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kubehooks.backup.plugins.module_utils import _capture, _exec, _layout, _on_error
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ThreadClients
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._args import require_count
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._hooks import phase_sequence

# Defaults of the deadlines (the module and the role document them).
DEFAULT_MAX_FREEZE_SECONDS = 600
DEFAULT_THAW_RETRY_SECONDS = 300
# Backoff between attempts of a post hook that could not be executed.
BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 2.0

STAGES = ("all", "freeze", "thaw")
CONTROLLER = "controller"
WATCHDOG = "watchdog"


def write_json(path, data):
    """Replace ``path`` with ``data`` as JSON, owner-only (0600), atomically (_layout.atomic_write)."""
    return _layout.atomic_write(path, (json.dumps(data, sort_keys=True) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Groups (pure)

def pod_key(pod):
    """``namespace/name`` of a plan entry or a hook result."""
    return "%s/%s" % (pod.get("namespace"), pod.get("name") if "name" in pod and "pod" not in pod else pod.get("pod"))


def has_hooks(pod, phase):
    return bool(phase_sequence(pod, phase))


def _volume_name(volume):
    """A selected volume's name: ``_volumes.select_volumes`` items carry ``volume``."""
    if isinstance(volume, dict):
        return volume.get("volume") or volume.get("name")
    return str(volume)


def plan_groups(pods, freeze_together=False, volumes_by_pod=None, claims_by_pod=None):
    """Cut the plan ``pods`` into groups, in plan order: ``[{"id", "pods", "volumes"}]``.

    ``volumes_by_pod``: ``{"ns/name": [selected volume...]}`` (what the capture will copy);
    ``claims_by_pod``: ``{"ns/name": [PVC claim name...]}`` (every claim the pod mounts, whether
    captured or not: pods sharing one are frozen together, as Velero's ItemBlocks).  A group's
    ``pods`` are plan entries (in plan order), its ``volumes`` ``{"ns/name": [volume...]}``.
    """
    volumes_by_pod = volumes_by_pod or {}
    claims_by_pod = claims_by_pod or {}
    members = [pod for pod in pods
               if has_hooks(pod, "pre") or has_hooks(pod, "post") or volumes_by_pod.get(pod_key(pod))]
    parent = list(range(len(members)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner = {}
    for i, pod in enumerate(members):
        for claim in claims_by_pod.get(pod_key(pod)) or []:
            token = (pod.get("namespace"), claim)
            if token in owner:
                a, b = find(owner[token]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[token] = i
    if freeze_together:
        parent = [0] * len(members)
    groups, index = [], {}
    for i, pod in enumerate(members):
        root = find(i)
        if root not in index:
            index[root] = len(groups)
            groups.append({"id": len(groups), "pods": [], "volumes": {}})
        group = groups[index[root]]
        group["pods"].append(pod)
        if volumes_by_pod.get(pod_key(pod)):
            group["volumes"][pod_key(pod)] = list(volumes_by_pod[pod_key(pod)])
    return groups


def describe_plan(groups):
    """Check mode: the exact plan (order, groups, hooks, volumes) as plain data."""
    plan = []
    for group in groups:
        pods = []
        for pod in group["pods"]:
            entry = {"namespace": pod.get("namespace"), "name": pod.get("name")}
            for phase in ("pre", "post"):
                entry[phase] = [dict(name=item.get("name"), container=item.get("container"),
                                     command=item.get("command"), on_error=item.get("on_error"),
                                     timeout=item.get("timeout"), error=item.get("message"))
                                for item in phase_sequence(pod, phase)]
            entry["volumes"] = [_volume_name(v) for v in group["volumes"].get(pod_key(pod), [])]
            pods.append(entry)
        plan.append({"id": group["id"], "pods": pods,
                     "frozen": any(has_hooks(pod, "pre") for pod in group["pods"])})
    return plan


# ---------------------------------------------------------------------------------------------
# Deadlines and retries around one exec (exec_hook's signature in, the same signature out)

def deadline_capped(exec_fn, deadline, max_freeze_seconds, clock=time.monotonic):
    """``exec_fn`` whose timeout is cut to the time left before ``deadline`` (None: unchanged)."""
    if deadline is None:
        return exec_fn

    def run(api_client, namespace, pod, container, argv, timeout, output_cap=_exec.DEFAULT_OUTPUT_CAP):
        left = deadline - clock()
        if left <= 0:
            return dict(status="failed", error="not run: the freeze deadline (max_freeze_seconds=%s) had passed"
                        % format_duration(max_freeze_seconds))
        effective = min(float(timeout), left)
        outcome = exec_fn(api_client, namespace, pod, container, argv, effective, output_cap=output_cap)
        if effective < float(timeout) and outcome.get("status") == "failed" \
                and str(outcome.get("error") or "").startswith("timed out"):
            outcome = dict(outcome, error="cut by the freeze deadline (max_freeze_seconds=%s) after %s; the "
                                          "hook's own timeout is %s" % (format_duration(max_freeze_seconds),
                                                                        format_duration(round(effective, 3)),
                                                                        format_duration(timeout)))
        return outcome
    return run


def retrying(exec_fn, until, clock=time.monotonic, sleep=time.sleep):
    """``exec_fn`` retried with backoff (0.2 s doubling to 2 s) while its exec could not be opened
    (``not_executed == UNREACHABLE``) and ``until`` (a clock value) allows another attempt.  A hook
    that ran (any exit status, a timeout) or failed for a permanent reason is never retried."""

    def run(api_client, namespace, pod, container, argv, timeout, output_cap=_exec.DEFAULT_OUTPUT_CAP):
        delay, attempts, started = BACKOFF_FIRST_SECONDS, 0, clock()
        while True:
            attempts += 1
            outcome = exec_fn(api_client, namespace, pod, container, argv, timeout, output_cap=output_cap)
            if outcome.get("not_executed") != _exec.UNREACHABLE or clock() + delay > until:
                break
            sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        outcome = dict(outcome, attempts=attempts)
        if outcome.get("not_executed") == _exec.UNREACHABLE:
            outcome["error"] = "%s (not executed: %d attempt(s) over %.1fs, thaw retries ended)" % (
                outcome.get("error") or "could not exec", attempts, clock() - started)
        return outcome
    return run


# ---------------------------------------------------------------------------------------------
# The thaw state (shared with the watchdog)

class ThawState(object):
    """``<name>-thaw-state.jsonl``: who claimed which pod's post hooks, which pods are thawed.

    One JSON object per line, appended (owner-only); events: ``freeze`` (a group's pre phase
    started: ``pods``, ``time``), ``claimed`` / ``thawed`` / ``released`` (``pod``, ``by``),
    ``done`` (the run thawed normally: the watchdog stands down).  Claims are taken under an
    ``flock`` of the file, so the controller and the watchdog never both run a pod's post hooks.
    Reading never blocks on a frozen filesystem; the appends are small.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        # Writes that failed (read-only or full storage): the thaw goes on without them, the run reports them.
        self.errors = []
        # The file only grows: ``read`` folds in the lines after ``_offset`` (one pass over the file in all,
        # not one per claim: a claim per pod would otherwise re-read every earlier line).
        self._read_lock = threading.Lock()
        self._offset = 0
        self._state = self._empty()

    @staticmethod
    def _empty():
        return {"claimed": {}, "thawed": {}, "released": {}, "done": False, "freeze": []}

    def create(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise KubehooksError("cannot create the thaw state %s (before anything is frozen): %s" % (self.path, exc))
        os.close(fd)
        with self._read_lock:
            self._offset, self._state = 0, self._empty()
        return self

    def _failed(self, what, exc):
        message = "could not write the thaw state %s (%s): %s" % (self.path, what, exc)
        if message not in self.errors:
            self.errors.append(message)

    def _append(self, *entries):
        stamp = round(time.time(), 3)
        data = "".join(json.dumps(dict(entry, time=entry.get("time", stamp))) + "\n" for entry in entries)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = data.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def read(self):
        """``{"claimed": {pod: by}, "thawed": {pod: by}, "released": {pod: by}, "done": bool, "freeze": [..]}``."""
        with self._read_lock:
            try:
                with open(self.path, "rb") as handle:
                    if os.fstat(handle.fileno()).st_size < self._offset:  # replaced by a new run's file
                        self._offset, self._state = 0, self._empty()
                    handle.seek(self._offset)
                    data = handle.read()
            except (IOError, OSError):
                data = b""
            complete = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
            self._offset += len(complete)
            state = self._state
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a damaged line
                event = entry.get("event") if isinstance(entry, dict) else None
                if event == "done":
                    state["done"] = True
                elif event == "freeze":
                    state["freeze"].append(entry)
                elif event in ("claimed", "thawed", "released"):
                    state[event][entry.get("pod")] = entry.get("by")
                    if event == "claimed":
                        state["released"].pop(entry.get("pod"), None)
            return {"claimed": dict(state["claimed"]), "thawed": dict(state["thawed"]),
                    "released": dict(state["released"]), "done": state["done"], "freeze": list(state["freeze"])}

    def claim(self, keys, by, steal=False):
        """Claim the post hooks of ``keys`` for ``by``; return the keys now claimed by ``by``.

        A pod already thawed is never claimed again; one claimed by another party only when
        ``steal`` (that party is known to be dead); a released pod may be claimed again.
        """
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError as exc:  # gone or unreadable: the thaw must not depend on the storage
                self._failed("claim", exc)
                return list(keys)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                state = self.read()
                taken = [key for key in keys if key not in state["thawed"]
                         and (steal or state["claimed"].get(key) in (None, by) or key in state["released"])]
                if taken:
                    try:
                        self._append(*[{"event": "claimed", "pod": key, "by": by} for key in taken])
                    except OSError as exc:
                        # Read-only or full storage: thaw anyway (the first promise).  The watchdog cannot
                        # see this claim; it is told to stand down by a signal instead (_section).
                        self._failed("claim", exc)
                return taken
            finally:
                os.close(fd)  # releases the flock

    def _write(self, what, entry):
        """Append one event; False (and the error kept in ``errors``) when the storage refuses it."""
        with self._lock:
            try:
                self._append(entry)
                return True
            except OSError as exc:
                self._failed(what, exc)
                return False

    def mark(self, event, key, by, **extra):
        return self._write(event, dict(extra, event=event, pod=key, by=by))

    def freeze(self, keys, started):
        return self._write("freeze", {"event": "freeze", "pods": list(keys), "time": started})

    def done(self, by):
        return self._write("done", {"event": "done", "by": by})


class Options(object):
    """The critical section's settings (validated by ``Options.check``)."""

    def __init__(self, max_freeze_seconds=DEFAULT_MAX_FREEZE_SECONDS, thaw_retry_seconds=DEFAULT_THAW_RETRY_SECONDS,
                 parallelism=_exec.DEFAULT_PARALLELISM, output_cap=_exec.DEFAULT_OUTPUT_CAP,
                 clock=time.monotonic, sleep=time.sleep):
        self.max_freeze_seconds = max_freeze_seconds
        self.thaw_retry_seconds = thaw_retry_seconds
        self.parallelism = parallelism
        self.output_cap = output_cap
        self.clock = clock
        self.sleep = sleep

    def check(self):
        for key in ("max_freeze_seconds", "thaw_retry_seconds"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise KubehooksError("%s must be a number of seconds, 0 or more, got %r" % (key, value))
        for key in ("parallelism", "output_cap"):
            require_count(key, getattr(self, key))
        return self


# ---------------------------------------------------------------------------------------------
# The post hooks of some pods (used by the controller and by the watchdog)

def thaw_pods(pods, client_factory, marks, by, options, exec_fn=_exec.exec_hook, on_result=None, steal=False,
              clients=None):
    """Run the post hooks of ``pods`` that ``by`` can claim; ``(results, thawed, not_thawed)``.

    Each pod is marked ``thawed`` as soon as its last post hook ended, or ``released`` when a
    post hook could not be executed within ``options.thaw_retry_seconds`` (it may still be frozen).
    A pod that was deleted (``_exec.GONE``) is thawed by its deletion: counted as thawed.
    """
    wanted = [pod for pod in pods if has_hooks(pod, "post")]
    claimed = set(marks.claim([pod_key(pod) for pod in wanted], by, steal=steal))
    todo = [pod for pod in wanted if pod_key(pod) in claimed]
    if not todo:
        return [], [], []
    until = options.clock() + options.thaw_retry_seconds
    expected = dict((pod_key(pod), len(phase_sequence(pod, "post"))) for pod in todo)
    seen = {}
    thawed, not_thawed = [], []

    def report(result):
        key = pod_key(result)
        seen.setdefault(key, []).append(result)
        if on_result is not None:
            on_result(result)
        if len(seen[key]) == expected.get(key):
            stuck = [r for r in seen[key] if r.get("not_executed") == _exec.UNREACHABLE]
            (not_thawed if stuck else thawed).append(key)
            # A failed write is kept in marks.errors: the thaw itself happened.
            marks.mark("released" if stuck else "thawed", key, by)

    results = _exec.run_phase(todo, "post", client_factory, parallelism=options.parallelism, on_result=report,
                              exec_fn=retrying(exec_fn, until, options.clock, options.sleep),
                              output_cap=options.output_cap, clients=clients)
    return results, thawed, not_thawed


# ---------------------------------------------------------------------------------------------
# The critical section

def _not_captured(group, keys, status, why):
    """Volumes-index entries (``_capture.index_entry``'s shape) for volumes that were not copied."""
    entries = []
    for key in keys:
        namespace, pod = key.split("/", 1)
        for volume in group["volumes"].get(key, []):
            item = volume if isinstance(volume, dict) else {"volume": _volume_name(volume)}
            entries.append(dict(_capture.index_entry(namespace, pod, item, {"error": why}), status=status))
    return entries


def _capture_group(group, failed, capture_fn, deadline, max_freeze_seconds, clock):
    """The group's capture entries; runs ``capture_fn`` in a thread abandoned at ``deadline``."""
    entries = _not_captured(group, [k for k in failed if k in group["volumes"]], "not_captured",
                            "a pre hook failed with on-error Fail: the pod is not backed up (as Velero)")
    keep = [pod for pod in group["pods"] if pod_key(pod) not in failed]
    volumes = dict((k, v) for k, v in group["volumes"].items() if k not in failed and v)
    if not volumes or capture_fn is None:
        return entries
    part = dict(group, pods=keep, volumes=volumes)
    box = {}

    def work():
        try:
            box["entries"] = list(capture_fn(part, deadline) or [])
        except Exception as exc:  # pylint: disable=broad-except  # recorded on each volume
            box["error"] = "%s: %s" % (type(exc).__name__, exc)

    worker = threading.Thread(target=work, name="kubehooks-capture-%s" % group["id"])
    worker.daemon = True  # abandoned at the deadline: must not hold the process at exit
    worker.start()
    worker.join(None if deadline is None else max(0.0, deadline - clock()))
    if worker.is_alive():
        return entries + _not_captured(part, sorted(volumes), "abandoned",
                                       "abandoned: the freeze deadline (max_freeze_seconds=%s) passed during "
                                       "the capture" % format_duration(max_freeze_seconds))
    if "error" in box:
        return entries + _not_captured(part, sorted(volumes), "failed", "capture failed: %s" % box["error"])
    return entries + box["entries"]


def run_critical_section(groups, client_factory, capture_fn, options, marks, exec_fn=_exec.exec_hook,
                         on_result=None, stage="all"):
    """Freeze -> capture -> thaw per group; groups in parallel.  See the module docstring.

    ``stage`` ``all`` does all three; ``freeze`` stops before the post hooks (the pods stay frozen,
    the caller's watchdog and a later ``thaw_stage`` thaw them).  ``on_result(result)`` is called
    once per finished hook (serialised), e.g. to append the hook log.  Returns ``hooks``,
    ``volumes``, ``groups``, ``freeze_window_seconds``, ``not_thawed``, ``failed_pods``.
    """
    options.check()
    clock = options.clock
    started = clock()
    deadline = started + options.max_freeze_seconds if options.max_freeze_seconds else None
    capped = deadline_capped(exec_fn, deadline, options.max_freeze_seconds, clock)
    report_lock = threading.Lock()

    def report(result):
        if on_result is not None:
            with report_lock:
                on_result(result)

    def one(group):
        out = dict(pre=[], post=[], volumes=[], failed=[], thawed=[], not_thawed=[], started=None, ended=None)
        frozen = any(has_hooks(pod, "pre") for pod in group["pods"])
        try:
            if frozen:
                out["started"] = time.time()
                marks.freeze([pod_key(pod) for pod in group["pods"]], out["started"])
            out["pre"] = _exec.run_phase(group["pods"], "pre", client_factory, parallelism=options.parallelism,
                                         on_result=report, exec_fn=capped, output_cap=options.output_cap,
                                         clients=clients)
            out["failed"] = _on_error.failed_pods(out["pre"])
            out["volumes"] = _capture_group(group, out["failed"], capture_fn, deadline, options.max_freeze_seconds, clock)
        finally:
            if stage == "all":
                out["post"], out["thawed"], out["not_thawed"] = thaw_pods(
                    group["pods"], client_factory, marks, CONTROLLER, options, exec_fn=exec_fn, on_result=report,
                    clients=clients)
                if frozen:
                    out["ended"] = time.time()
        return out

    outcomes = []
    if groups:
        # One ApiClient per thread for the whole section (not one per group and phase): a single-pod
        # group's hooks run in its group thread, so 200 groups use `parallelism` clients, not 400.
        with ThreadClients(client_factory) as clients:
            with ThreadPoolExecutor(max_workers=min(options.parallelism, len(groups))) as pool:
                futures = [pool.submit(one, group) for group in groups]
                outcomes = [future.result() for future in futures]
    return assemble(groups, outcomes)


def assemble(groups, outcomes):
    """The section's result from the per-group outcomes (group order kept)."""
    hooks = [r for out in outcomes for r in out["pre"]] + [r for out in outcomes for r in out["post"]]
    summary = []
    for group, out in zip(groups, outcomes):
        window = None
        if out["started"] is not None and out["ended"] is not None:
            window = round(out["ended"] - out["started"], 3)
        summary.append(dict(id=group["id"], pods=[pod_key(pod) for pod in group["pods"]],
                            frozen=out["started"] is not None, started=out["started"], ended=out["ended"],
                            freeze_window_seconds=window))
    starts = [g["started"] for g in summary if g["started"] is not None]
    ends = [g["ended"] for g in summary if g["ended"] is not None]
    overall = round(max(ends) - min(starts), 3) if starts and ends else None
    return dict(
        hooks=hooks,
        volumes=[entry for out in outcomes for entry in out["volumes"]],
        groups=summary,
        freeze_window_seconds=overall,
        not_thawed=sorted(set(key for out in outcomes for key in out["not_thawed"])),
        failed_pods=sorted(set(key for out in outcomes for key in out["failed"])),
    )


def thaw_stage(pods, client_factory, marks, options, exec_fn=_exec.exec_hook, on_result=None):
    """``stage: thaw``: the post hooks of the pods not thawed yet (the caller then writes ``done``).

    The freeze window runs from the first ``freeze`` event the freeze stage recorded to now.
    """
    options.check()
    lock = threading.Lock()

    def report(result):
        if on_result is not None:
            with lock:
                on_result(result)

    results, thawed, not_thawed = thaw_pods(pods, client_factory, marks, CONTROLLER, options, exec_fn=exec_fn,
                                            on_result=report)
    state = marks.read()
    ended = time.time()
    starts = [entry.get("time") for entry in state["freeze"] if isinstance(entry.get("time"), (int, float))]
    still = sorted(set(not_thawed) | set(k for k in state["released"] if k not in state["thawed"]))
    return dict(hooks=results, volumes=[], groups=[], failed_pods=[], not_thawed=still,
                thawed=sorted(thawed), freeze_window_seconds=round(ended - min(starts), 3) if starts else None)
