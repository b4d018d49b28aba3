# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: what pod_hooks_info and pod_hooks do, joined from the stages. Not a public API.

discover_plan: validate rules and scope (before any API call) -> list pods -> resolve the plan.
run_hooks:     check a plan -> run one phase (or, in check mode, return the plan as results) ->
               log each hook as it finishes -> totals and the failure message.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubehooks.backup.plugins.module_utils import _exec, _hook_results, _hooks, _scope
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, access_allowed, api_error
from ansible_collections.kubehooks.backup.plugins.module_utils._discovery import list_pods
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._args import require_count
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError, KubehooksError, show_value
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import fail_summary, failed_pods, parse_on_error

PLANNED = "planned"


IMPERSONATION_REFUSED = ("impersonate_user/impersonate_groups cannot be applied to pods/exec: the kubernetes "
                         "Python client opens the exec websocket with the Authorization header only; run the "
                         "hooks with credentials of that identity instead (listing and reading do impersonate)")
EXEC_VERBS = ("create", "get")


def discover_plan(client_factory, params):
    """``{"pods", "errors"}`` for the scope in ``params``; rule, scope and option errors raise first.

    ``max_hook_timeout``: hooks with a longer timeout are invalid (rules: RuleError; annotations: the
    pod's errors).  ``check_exec``: the plan's hooks must be executable (see check_exec_allowed).
    """
    included = params.get("included_namespaces") or []
    excluded = params.get("excluded_namespaces") or []
    max_timeout = _hooks.parse_max_hook_timeout(params.get("max_hook_timeout"))
    rules = _hooks.parse_rules(params.get("hooks") or [], max_timeout)
    _scope.validate_namespace_scope(included, excluded)
    selector = _scope.label_selector_query(params.get("label_selectors") or [])
    pods = list_pods(client_factory(), included, excluded, selector)
    plan = _hooks.build_plan(pods, rules, included, excluded, max_timeout=max_timeout)
    if params.get("check_exec"):
        check_exec_allowed(client_factory, plan["pods"])
    return plan


def refuses_impersonation(client_factory):
    return bool(getattr(client_factory, "impersonate_user", None) or getattr(client_factory, "impersonate_groups", None))


def check_exec_allowed(client_factory, pods, allowed_fn=access_allowed):
    """KubehooksError unless the credentials may ``create`` and ``get`` ``pods/exec`` in every namespace
    of ``pods`` that has a hook (a SelfSubjectAccessReview per namespace and verb), without
    impersonation (the exec websocket cannot carry it).

    Run before anything is frozen, so that credentials without the permission fail the run there,
    naming the namespaces, instead of failing every hook later.
    """
    namespaces = sorted(set(pod["namespace"] for pod in pods
                            if any(_hooks.phase_sequence(pod, phase) for phase in _hooks.PHASES)))
    if not namespaces:
        return
    if refuses_impersonation(client_factory):
        raise KubehooksError(IMPERSONATION_REFUSED)
    client = client_factory()
    missing = []
    try:
        for namespace in namespaces:
            for verb in EXEC_VERBS:
                try:
                    allowed, _reason = allowed_fn(client, verb, "pods", namespace, subresource="exec")
                except ApiRequestError as err:
                    raise api_error(err, "ask whether it may %s pods/exec in namespace %s" % (verb, namespace),
                                    "create on selfsubjectaccessreviews.authorization.k8s.io")
                if not allowed:
                    missing.append("%s pods/exec in namespace %s" % (verb, namespace))
    finally:
        getattr(client, "close", lambda: None)()
    if missing:
        raise AuthorizationError(
            "Forbidden: the credentials may not %s; the hooks of the plan could not run, so nothing was frozen "
            "(RBAC needs get and create on pods/exec in each namespace with hooks: see files/rbac/backup.yml)"
            % "; ".join(missing))


def _check_number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s must be a number (as kubehooks.backup.pod_hooks_info returns it), got %s"
                         % (what, show_value(value)))
    return value


def _check_hook(hook, max_timeout):
    if not isinstance(hook, dict):
        raise ValueError("a hook must be a dictionary, got %s" % show_value(hook))
    _hooks.check_argv(hook.get("command"))
    parse_on_error(hook.get("on_error"))
    # A number of seconds, as the plan holds it: a string such as "30" would reach the executor,
    # its deadline arithmetic and the hook log as text.
    _hooks.check_max_timeout(parse_duration(_check_number(hook.get("timeout"), "the timeout")), max_timeout)
    if not isinstance(hook.get("container"), str) or not hook.get("container"):
        raise ValueError("the container must be a non-empty string, got %s" % show_value(hook.get("container")))
    if "index" in hook and hook["index"] is not None:
        _check_number(hook["index"], "the index")


def _check_error_entry(entry):
    if not isinstance(entry, dict):
        raise ValueError("an error entry must be a dictionary, got %s" % show_value(entry))
    if entry.get("phase") not in _hooks.PHASES:
        raise ValueError("an error entry's phase must be pre or post, got %s" % show_value(entry.get("phase")))
    if not isinstance(entry.get("message"), str):
        raise ValueError("an error entry's message must be a string, got %s" % show_value(entry.get("message")))
    if "index" in entry and entry["index"] is not None:
        _check_number(entry["index"], "the index")


def check_plan(pods, max_timeout=None):
    """Check a ``plan`` given back by the user (pod_hooks_info's ``pods``); raise on a bad entry.

    The plan is a task parameter: a hand-edited or garbled entry must fail the task before
    anything runs, not reach the API as a half-valid command or crash a worker.  ``max_timeout``
    (seconds, None = no cap): a hook whose timeout is longer is refused too.
    """
    for number, pod in enumerate(pods):
        where = "plan[%d]" % number
        if not isinstance(pod, dict):
            raise KubehooksError("%s: a pod entry must be a dictionary, got %s" % (where, show_value(pod)))
        for key in ("namespace", "name"):
            if not isinstance(pod.get(key), str) or not pod.get(key):
                raise KubehooksError("%s: %r must be a non-empty string (use the pods list that "
                                     "kubehooks.backup.pod_hooks_info returns), got %s"
                                     % (where, key, show_value(pod.get(key))))
        for phase in _hooks.PHASES + ("errors",):
            hooks = pod.get(phase) or []
            if not isinstance(hooks, list):
                raise KubehooksError("%s.%s (pod %s/%s) must be a list, got %s"
                                     % (where, phase, pod["namespace"], pod["name"], show_value(hooks)))
            for position, hook in enumerate(hooks):
                at = "%s.%s[%d] (pod %s/%s)" % (where, phase, position, pod["namespace"], pod["name"])
                try:
                    if phase == "errors":
                        _check_error_entry(hook)
                    else:
                        _check_hook(hook, max_timeout)
                except ValueError as exc:
                    raise KubehooksError("%s: %s" % (at, exc))


def planned_results(pods, phase):
    """Check mode: one result per hook, status ``planned``, nothing executed."""
    results = []
    for pod in pods:
        for item in _hooks.phase_sequence(pod, phase):
            result = _exec.result_for(pod, item, phase)
            result["status"] = PLANNED
            if "message" in item:
                result["error"] = "invalid hook: %s" % item["message"]
            results.append(result)
    return results


def _positive(params, key, default):
    value = params.get(key)
    return require_count(key, default if value is None else value)


def run_hooks(client_factory, pods, params, check_mode=False, exec_fn=None):
    """Run ``params["phase"]`` for ``pods``; the result of the pod_hooks module.

    Everything that can be refused is refused before the first hook: the plan, the numbers, the
    impersonation that exec cannot carry, a log file that cannot be written.  Once hooks run, a
    log write that fails later is reported with every hook's result, never instead of them.
    """
    pods = list(pods)
    check_plan(pods, _hooks.parse_max_hook_timeout(params.get("max_hook_timeout")))
    phase = params["phase"]
    parallelism = _positive(params, "parallelism", _exec.DEFAULT_PARALLELISM)
    output_cap = _positive(params, "output_limit", _exec.DEFAULT_OUTPUT_CAP)
    if check_mode:
        results = planned_results(pods, phase)
        return dict(changed=bool(results), hooks=results, hooks_attempted=0, hooks_failed=0, failed_pods=[])

    if refuses_impersonation(client_factory):
        # The client's exec websocket carries only the Authorization header: the hooks would run
        # with the credentials' own identity, not the impersonated one.  Refuse before anything runs.
        raise KubehooksError(IMPERSONATION_REFUSED)
    log_path, backup = params.get("log_path"), params.get("backup")
    log_errors = []
    if log_path:
        _hook_results.append_jsonl(log_path, [])  # creates it (0600) or fails now, before any hook runs

    def log(result):
        if log_path and not log_errors:
            try:
                _hook_results.append_jsonl(log_path, [_hook_results.velero_log_entry(result, backup=backup)])
            except KubehooksError as exc:
                log_errors.append(str(exc))

    kwargs = {} if exec_fn is None else {"exec_fn": exec_fn}
    results = _exec.run_phase(pods, phase, client_factory, parallelism=parallelism, on_result=log,
                              output_cap=output_cap, **kwargs)
    result = dict(hooks=results, changed=any(r["status"] in ("succeeded", "failed") for r in results),
                  failed_pods=failed_pods(results))
    result.update(_hook_results.totals(results))
    messages = [m for m in [fail_summary(results)] + log_errors if m]
    if messages:
        result.update(failed=True, msg="; ".join(messages))
    return result
