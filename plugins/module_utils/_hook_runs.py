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
from ansible_collections.kubehooks.backup.plugins.module_utils._discovery import list_pods
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import parse_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import fail_summary, failed_pods, parse_on_error

PLANNED = "planned"


def discover_plan(client_factory, params):
    """``{"pods", "errors"}`` for the scope in ``params``; rule and scope errors raise first."""
    included = params.get("included_namespaces") or []
    excluded = params.get("excluded_namespaces") or []
    rules = _hooks.parse_rules(params.get("hooks") or [])
    _scope.validate_namespace_scope(included, excluded)
    selector = _scope.label_selector_query(params.get("label_selectors") or [])
    pods = list_pods(client_factory(), included, excluded, selector)
    return _hooks.build_plan(pods, rules, included, excluded)


def check_plan(pods):
    """Check a ``plan`` given back by the user (pod_hooks_info's ``pods``); raise on a bad entry.

    The plan is a task parameter: a hand-edited or garbled entry must fail the task before
    anything runs, not reach the API as a half-valid command.
    """
    for number, pod in enumerate(pods):
        where = "plan[%d]" % number
        for key in ("namespace", "name"):
            if not isinstance(pod.get(key), str) or not pod.get(key):
                raise KubehooksError("%s: %r must be a non-empty string (use the pods list that "
                                     "kubehooks.backup.pod_hooks_info returns)" % (where, key))
        for phase in _hooks.PHASES:
            hooks = pod.get(phase) or []
            if not isinstance(hooks, list):
                raise KubehooksError("%s.%s must be a list" % (where, phase))
            for position, hook in enumerate(hooks):
                at = "%s.%s[%d] (pod %s/%s)" % (where, phase, position, pod["namespace"], pod["name"])
                try:
                    if not isinstance(hook, dict):
                        raise ValueError("a hook must be a dictionary")
                    _hooks.check_argv(hook.get("command"))
                    parse_on_error(hook.get("on_error"))
                    parse_duration(hook.get("timeout"))
                    if not isinstance(hook.get("container"), str) or not hook.get("container"):
                        raise ValueError("the container must be a non-empty string")
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
    value = default if value is None else value
    if not isinstance(value, int) or value < 1:
        raise KubehooksError("%s must be a whole number of at least 1, got %r" % (key, value))
    return value


def run_hooks(client_factory, pods, params, check_mode=False, exec_fn=None):
    """Run ``params["phase"]`` for ``pods``; the result of the pod_hooks module.

    Everything that can be refused is refused before the first hook: the plan, the numbers, the
    impersonation that exec cannot carry, a log file that cannot be written.  Once hooks run, a
    log write that fails later is reported with every hook's result, never instead of them.
    """
    pods = list(pods)
    check_plan(pods)
    phase = params["phase"]
    parallelism = _positive(params, "parallelism", _exec.DEFAULT_PARALLELISM)
    output_cap = _positive(params, "output_limit", _exec.DEFAULT_OUTPUT_CAP)
    if check_mode:
        results = planned_results(pods, phase)
        return dict(changed=bool(results), hooks=results, hooks_attempted=0, hooks_failed=0, failed_pods=[])

    if getattr(client_factory, "impersonate_user", None) or getattr(client_factory, "impersonate_groups", None):
        # The client's exec websocket carries only the Authorization header: the hooks would run
        # with the credentials' own identity, not the impersonated one.  Refuse before anything runs.
        raise KubehooksError("impersonate_user/impersonate_groups cannot be applied to pods/exec: the kubernetes "
                             "Python client opens the exec websocket with the Authorization header only; run the "
                             "hooks with credentials of that identity instead (listing and reading do impersonate)")
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
