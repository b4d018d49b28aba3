# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: restore hooks - init containers and post-restore exec hooks. Not a public API.

Velero's restore hooks (``internal/hook/item_hook_handler.go``, ``wait_exec_hook_handler.go``,
``pkg/restore/actions/init_restorehook_pod_action.go``, v1.18), with this collection's strictness:

Init hooks (an init container added FIRST to a restored pod, before its own init containers):

- Annotations ``init.hook.restore.velero.io/container-image`` (the hook exists when it is set),
  ``/container-name`` (default ``restore-init-<8 hex of the pod's namespace/name>``; Velero uses a
  random uuid) and ``/command`` (parsed as the backup's command annotation; empty: the image's
  entrypoint, as Velero).  An annotation init hook replaces the rules' init hooks for that pod.
- Rules: ``postHooks[].init.initContainers`` - full container specs, each with ``name``, ``image``
  and a non-empty ``command`` (Velero's ValidateContainer); ``init.timeout`` is accepted and, as in
  Velero, not used.
- An invalid init hook (a bad command annotation, an empty name annotation) fails its POD item: the
  pod is not restored (Velero fails the item when a rule's init container is invalid); the message
  names the pod, the key and the value.

Exec hooks (run once the restored pod's container is Running, or Ready with ``wait-for-ready``):

- Annotations ``post.hook.restore.velero.io/command`` (the hook exists when it is non-empty),
  ``/container`` (default: the first container), ``/on-error`` (Fail or Continue; unset: Fail, the
  documented default), ``/exec-timeout`` (Go duration; unset: 30s), ``/wait-timeout`` (Go duration;
  unset: the module's ``hook_wait_timeout`` - Velero waits without a limit), ``/wait-for-ready``
  (Go's ParseBool values: 1 t T TRUE true True 0 f F FALSE false False).  An annotation exec hook
  replaces all the rules' exec hooks for that pod.
- Rules: ``postHooks[].exec`` with ``container``, ``command``, ``onError``, ``execTimeout``,
  ``waitTimeout``, ``waitForReady`` (a boolean).  Every matching rule's hooks, rules in order.
- Velero turns an unparseable timeout or boolean into its default with a log line; here every
  invalid value is the hook's validation error (it does not run and acts as on-error Fail); rule
  errors (unknown keys, a bad selector, a bad value) stop the restore before anything is written.
- Matching (namespace, pods, label selector) uses the TARGET namespace, as Velero (issue 4720).

Execution reuses the backup's executor (``_exec.run_phase``: one pod's hooks in order, Fail stops
the rest as ``not_run``, pods in parallel); each hook first waits for its container.  Counted as
Velero's restore ``status.hookStatus`` (``_hook_results.totals``); logged with Velero's field names.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import hashlib
import time
from collections import namedtuple

from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, api_caller
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration, parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import (
    FieldError,
    RuleError,
    reject_unknown_keys,
    show_value,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import exec_hook, run_phase
from ansible_collections.kubehooks.backup.plugins.module_utils._hooks import (
    FROM_ANNOTATION,
    SOURCE_ANNOTATION,
    SOURCE_SPEC,
    _container_problem,
    _rule_error,
    check_argv,
    parse_command,
    parse_container,
    parse_rule_scope,
    pod_containers,
    rule_applies,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import parse_on_error

INIT_DOMAIN = "init.hook.restore.velero.io/"
POST_DOMAIN = "post.hook.restore.velero.io/"
PHASE = "post"                  # the executor's phase name for restore exec hooks
DEFAULT_EXEC_TIMEOUT = 30       # seconds, Velero's
DEFAULT_WAIT_TIMEOUT = 600      # seconds, the module's hook_wait_timeout default (Velero: no limit)
RULE_KEYS = ("name", "includedNamespaces", "excludedNamespaces", "includedResources", "excludedResources",
             "labelSelector", "postHooks")
HOOK_KEYS = ("exec", "init")
EXEC_KEYS = ("container", "command", "onError", "execTimeout", "waitTimeout", "waitForReady")
INIT_KEYS = ("initContainers", "timeout")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_POLL = 0.5

RestoreRule = namedtuple("RestoreRule", "name index namespaces applies_to_pods selector execs inits")


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

def parse_bool(value):
    """Go's strconv.ParseBool for an annotation; a YAML boolean in a rule; None = false (Velero's default)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    raise ValueError("must be true or false (Go's ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, "
                     "False), got %s" % show_value(value))


def parse_exec_timeout(value):
    return DEFAULT_EXEC_TIMEOUT if value is None else parse_duration(value)


def parse_wait_timeout(value, default=DEFAULT_WAIT_TIMEOUT):
    return default if value is None else parse_duration(value)


def init_container_name(namespace, name):
    return "restore-init-%s" % hashlib.sha256(("%s/%s" % (namespace, name)).encode("utf-8")).hexdigest()[:8]


# --------------------------------------------------------------------------------------------
# Rules (Velero's Restore spec.hooks.resources)
# --------------------------------------------------------------------------------------------

def _parse_exec(spec, where):
    if not isinstance(spec, dict):
        raise FieldError(where, spec, "exec must be a mapping")
    reject_unknown_keys(spec, EXEC_KEYS, where)
    hook = {}
    for field, name, parse in (("command", "command", check_argv), ("container", "container", parse_container),
                               ("onError", "on_error", parse_on_error), ("execTimeout", "timeout", parse_exec_timeout),
                               ("waitTimeout", "wait_timeout", lambda v: None if v is None else parse_duration(v)),
                               ("waitForReady", "wait_for_ready", parse_bool)):
        try:
            hook[name] = parse(spec.get(field))
        except ValueError as exc:
            raise FieldError("%s.%s" % (where, field), spec.get(field), str(exc))
    return hook


def _parse_init(spec, where):
    if not isinstance(spec, dict):
        raise FieldError(where, spec, "init must be a mapping")
    reject_unknown_keys(spec, INIT_KEYS, where)
    if spec.get("timeout") is not None:
        try:
            parse_duration(spec["timeout"])
        except ValueError as exc:
            raise FieldError(where + ".timeout", spec["timeout"], str(exc))
    containers = spec.get("initContainers")
    if not isinstance(containers, list) or not containers:
        raise FieldError(where + ".initContainers", containers, "must be a non-empty list of containers")
    out = []
    for position, container in enumerate(containers):
        here = "%s.initContainers[%d]" % (where, position)
        if not isinstance(container, dict):
            raise FieldError(here, container, "each init container must be a mapping (a Kubernetes container)")
        for key in ("name", "image"):
            if not isinstance(container.get(key), str) or not container.get(key):
                raise FieldError("%s.%s" % (here, key), container.get(key), "must be a non-empty string "
                                 "(Velero requires name, image and command)")
        try:
            check_argv(container.get("command"))
        except ValueError as exc:
            raise FieldError(here + ".command", container.get("command"), str(exc))
        out.append(copy.deepcopy(container))
    return out


def _parse_rule(rule, index):
    name, namespaces, applies, selector = parse_rule_scope(rule, index, RULE_KEYS)
    entries = rule.get("postHooks")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise FieldError("postHooks", entries, "must be a list of hooks (each with exec or init)")
    execs, inits = [], []
    for position, entry in enumerate(entries):
        where = "postHooks[%d]" % position
        if not isinstance(entry, dict):
            raise FieldError(where, entry, "each entry must be a mapping with an exec or an init key")
        reject_unknown_keys(entry, HOOK_KEYS, where)
        if entry.get("exec") is not None:
            hook = _parse_exec(entry["exec"], where + ".exec")
            hook["key"] = "hooks[%d].%s.exec" % (index, where)
            execs.append(hook)
        if entry.get("init") is not None:
            inits.extend(_parse_init(entry["init"], where + ".init"))
    return RestoreRule(name, index, namespaces, applies, selector, execs, inits)


def parse_restore_rules(hooks):
    """Validate the ``hooks`` option (Velero's Restore ``spec.hooks.resources``); RuleError on the first bad rule."""
    if hooks is None:
        return []
    if not isinstance(hooks, list):
        raise RuleError("hooks: must be a list of rules (the items of Velero's Restore spec.hooks.resources), got %s"
                        % show_value(hooks))
    rules = []
    for index, rule in enumerate(hooks):
        try:
            rules.append(_parse_rule(rule, index))
        except FieldError as exc:
            raise _rule_error(rule, index, exc.key, exc.value, exc.problem)
    return rules


# --------------------------------------------------------------------------------------------
# One pod: init containers (before it is created) and its exec hooks (after)
# --------------------------------------------------------------------------------------------

class InitHookError(Exception):
    """An invalid init hook annotation: the pod is not restored (the message names key and value)."""


def init_containers(pod, rules):
    """The init containers to add first to ``pod`` (a cleaned pod in its target namespace), as Velero.

    Returns ``(containers, source)``; InitHookError for an invalid annotation."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    image = annotations.get(INIT_DOMAIN + "container-image")
    if image:
        container = {"name": init_container_name(namespace, name), "image": image}
        key = INIT_DOMAIN + "container-name"
        if key in annotations:
            if not annotations[key]:
                raise InitHookError("pod %s/%s: init hook %s=%s: the container name is empty" % (
                    namespace, name, key, show_value(annotations[key])))
            container["name"] = annotations[key]
        key = INIT_DOMAIN + "command"
        try:
            command = parse_command(annotations.get(key, ""))
        except ValueError as exc:
            raise InitHookError("pod %s/%s: init hook %s=%s: %s" % (namespace, name, key,
                                                                    show_value(annotations.get(key)), exc))
        if command:
            container["command"] = command
        return [container], SOURCE_ANNOTATION
    containers = []
    for rule in rules:
        if rule.inits and rule_applies(rule, namespace, metadata.get("labels") or {}):
            containers.extend(copy.deepcopy(rule.inits))
    return containers, SOURCE_SPEC


def add_init_containers(pod, containers):
    """``pod`` with ``containers`` first in ``spec.initContainers`` (in place; returned)."""
    if containers:
        spec = pod.setdefault("spec", {})
        spec["initContainers"] = list(containers) + list(spec.get("initContainers") or [])
    return pod


_ANNOTATION_FIELDS = (
    ("command", "command", parse_command),
    ("container", "container", parse_container),
    ("on-error", "on_error", parse_on_error),
    ("exec-timeout", "timeout", parse_exec_timeout),
    ("wait-timeout", "wait_timeout", lambda v: None if v is None else parse_duration(v)),
    ("wait-for-ready", "wait_for_ready", parse_bool),
)


def exec_hooks(pod, rules, wait_timeout=DEFAULT_WAIT_TIMEOUT):
    """The pod's exec hooks as an executor entry ``{namespace, name, phase, post, errors}`` (see ``_hooks.resolve_pod``).

    Each valid item: source, name, index, container, command, on_error, timeout (exec), wait_timeout,
    wait_for_ready.  An invalid one goes to ``errors`` (it fails, as on-error Fail, and is not run).
    """
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    entry = {"namespace": namespace, "name": name, "phase": None, "post": [], "errors": []}
    default, allowed = pod_containers(pod)
    candidates = []
    if annotations.get(POST_DOMAIN + "command"):
        fields, problems = {}, []
        for suffix, field, parse in _ANNOTATION_FIELDS:
            key = POST_DOMAIN + suffix
            value = annotations.get(key)
            try:
                fields[field] = parse(value)
            except ValueError as exc:
                problems.append((key, value, str(exc)))
        candidates.append((SOURCE_ANNOTATION, FROM_ANNOTATION, fields, problems, POST_DOMAIN + "container"))
    else:
        for rule in rules:
            if rule_applies(rule, namespace, metadata.get("labels") or {}):
                for hook in rule.execs:
                    candidates.append((SOURCE_SPEC, rule.name, dict(hook), [], hook["key"] + ".container"))
    for index, (source, hook_name, fields, problems, container_key) in enumerate(candidates):
        if "container" in fields:
            problem = _container_problem(fields["container"], default, allowed)
            if problem:
                problems.append((container_key, fields["container"], problem))
        base = {"source": source, "name": hook_name, "index": index}
        if problems:
            detail = "; ".join("%s=%s: %s" % (key, show_value(value), text) for key, value, text in problems)
            entry["errors"].append(dict(base, namespace=namespace, pod=name, phase=PHASE, key=problems[0][0],
                                        value=problems[0][1], message="pod %s/%s: restore exec hook %s (%s): %s" % (
                                            namespace, name, show_value(hook_name), source, detail)))
            continue
        entry["post"].append(dict(base, container=fields["container"] or default, command=list(fields["command"]),
                                  on_error=fields["on_error"], timeout=fields["timeout"],
                                  wait_timeout=wait_timeout if fields.get("wait_timeout") is None
                                  else fields["wait_timeout"],
                                  wait_for_ready=bool(fields.get("wait_for_ready"))))
    return entry


# --------------------------------------------------------------------------------------------
# Running the exec hooks
# --------------------------------------------------------------------------------------------

def _container_state(pod, container):
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return status
    return None


def wait_for_container(call, namespace, pod, container, wait_for_ready, timeout, clock=time.monotonic,
                       sleep=time.sleep):
    """None once ``container`` is Running (or Ready); else why not, after ``timeout`` seconds."""
    deadline = clock() + float(timeout)
    path = "/api/v1/namespaces/%s/pods/%s" % (namespace, pod)
    last = "not started"
    while True:
        try:
            obj = call("GET", path)
        except ApiRequestError as err:
            if err.status == 404:
                return "pod %s/%s no longer exists" % (namespace, pod)
            obj, last = None, "cannot read the pod: %s" % err
        if obj is not None:
            phase = (obj.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return "pod %s/%s is %s: its container %s will not run" % (namespace, pod, phase, container)
            status = _container_state(obj, container)
            state = (status or {}).get("state") or {}
            if status and (status.get("ready") if wait_for_ready else "running" in state):
                return None
            waiting = state.get("waiting") or {}
            last = waiting.get("reason") or ("running, not ready" if "running" in state else "not started")
        if clock() >= deadline:
            return "container %s was not %s within the wait-timeout %s (%s)" % (
                container, "ready" if wait_for_ready else "running", format_duration(timeout), last)
        sleep(min(_POLL, max(deadline - clock(), 0.01)))


def waiting_exec(api_client, namespace, pod, container, argv, timeout, output_cap=None, hook=None):
    """``_exec.exec_hook`` after the container is Running/Ready (the hook's wait-timeout)."""
    hook = hook or {}
    started = time.monotonic()
    problem = wait_for_container(api_caller(api_client), namespace, pod, container, hook.get("wait_for_ready"),
                                 hook.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
    if problem:
        return dict(status="failed", error=problem, duration=round(time.monotonic() - started, 3))
    kwargs = {"output_cap": output_cap} if output_cap else {}
    return exec_hook(api_client, namespace, pod, container, argv, timeout, **kwargs)


def run_exec_hooks(entries, client_factory, parallelism=8, on_result=None, exec_fn=waiting_exec):
    """Run the pods' exec hooks (``exec_hooks`` entries) with the backup's executor; the results."""
    entries = [e for e in entries if e["post"] or e["errors"]]
    return run_phase(entries, PHASE, client_factory, parallelism=parallelism, on_result=on_result, exec_fn=exec_fn,
                     pass_hook=True)


def log_entry(result, restore_name):
    """One restore log object for a hook result, with Velero's field names (``_hook_results``)."""
    from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import velero_log_entry
    entry = velero_log_entry(result)
    entry["restore"] = restore_name if "/" in restore_name else "velero/" + restore_name
    entry["hookPhase"] = ""       # Velero records restore hooks without a phase
    return entry
