"""check_plan (a plan handed back by the user) and check mode's planned results."""
import copy
import json

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _hook_runs
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

HOOK = {"source": "annotation", "name": "<from-annotation>", "container": "fsfreeze",
        "command": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"], "on_error": "Fail", "timeout": 30, "index": 0}
POD = {"namespace": "nginx-example", "name": "web-1", "phase": "Running", "pre": [HOOK], "post": [], "errors": []}


def plan_with(**changes):
    pod = copy.deepcopy(POD)
    pod["pre"][0].update(changes)
    return [pod]


def test_a_plan_from_pod_hooks_info_is_accepted_as_it_is():
    plan = copy.deepcopy([POD])
    _hook_runs.check_plan(plan)
    assert plan == [POD]  # checked, not rewritten
    planned = _hook_runs.run_hooks(object, plan, {"phase": "pre"}, check_mode=True)["hooks"]
    assert [(h["pod"], h["container"], h["command"]) for h in planned] == [("web-1", "fsfreeze", HOOK["command"])]


@pytest.mark.parametrize("changes,message", [
    (dict(command="/sbin/fsfreeze --freeze"), "non-empty list of strings"),
    (dict(command=[]), "non-empty list of strings"),
    (dict(command=["/bin/echo", 1]), "not a string"),
    (dict(on_error="fail"), "exactly Fail or Continue"),
    (dict(timeout=0), "timeout|zero|positive|greater"),
    (dict(timeout="abc"), "abc"),
    (dict(container=""), "container"),
], ids=["command-string", "command-empty", "command-non-string", "on-error-case", "timeout-zero",
        "timeout-garbage", "container-empty"])
def test_a_garbled_plan_fails_before_anything_runs(changes, message):
    with pytest.raises(KubehooksError, match=message) as info:
        _hook_runs.check_plan(plan_with(**changes))
    assert "plan[0].pre[0] (pod nginx-example/web-1)" in str(info.value)


def test_a_plan_entry_without_a_name_is_refused():
    with pytest.raises(KubehooksError, match=r"plan\[0\]: 'name'"):
        _hook_runs.check_plan([dict(POD, name=None)])


def test_check_mode_lists_every_hook_as_planned_including_invalid_ones():
    error = {"namespace": "nginx-example", "pod": "web-1", "phase": "pre", "source": "annotation",
             "name": "<from-annotation>", "key": "pre.hook.backup.velero.io/timeout", "value": "1y",
             "message": "bad timeout", "index": 1}
    pod = dict(copy.deepcopy(POD), errors=[error])
    results = _hook_runs.planned_results([pod], "pre")
    assert [r["status"] for r in results] == ["planned", "planned"]
    assert results[0]["command"] == HOOK["command"] and results[0]["error"] is None
    assert results[1]["error"] == "invalid hook: bad timeout"
    assert _hook_runs.planned_results([pod], "post") == []


def test_check_mode_executes_nothing():
    def factory():
        raise AssertionError("check mode must not connect to the API")
    result = _hook_runs.run_hooks(factory, [POD], {"phase": "pre"}, check_mode=True)
    assert result["hooks_attempted"] == 0 and result["hooks"][0]["status"] == "planned"
    assert result["changed"] is True


def test_impersonation_is_refused_before_any_hook_runs():
    class Factory(object):
        impersonate_user = "bob"
        impersonate_groups = []

        def __call__(self):
            raise AssertionError("no client may be made")
    with pytest.raises(KubehooksError, match="impersonate_user/impersonate_groups cannot be applied to pods/exec"):
        _hook_runs.run_hooks(Factory(), [POD], {"phase": "pre"})


# --- run_hooks: logging, numbers, refusal before anything runs ---------------------------------
# A fake exec stands in for the websocket: what is tested is run_hooks' own bookkeeping; the real
# exec is covered by tests/integration/test_pod_hooks.py.

def fake_exec(api_client, namespace, pod, container, argv, timeout, output_cap=None):
    ok = argv[0] != "/bin/false"
    return dict(status="succeeded" if ok else "failed", exit_code=0 if ok else 1, stdout="", stderr="",
                truncated=False, duration=0.01, error=None if ok else "command exited with code 1")


def mixed_plan():
    hooks = [dict(HOOK, command=["/bin/false"], index=0), dict(HOOK, command=["/bin/true"], index=1)]
    invalid = {"namespace": "nginx-example", "pod": "bad", "phase": "pre", "source": "annotation",
               "name": "<from-annotation>", "key": "pre.hook.backup.velero.io/on-error", "value": "fail",
               "message": "on-error must be exactly Fail or Continue", "index": 0}
    return [dict(POD, name="a", pre=hooks), dict(POD, name="bad", pre=[], errors=[invalid]),
            dict(POD, name="done", phase="Succeeded", pre=[dict(HOOK)])]


def test_every_hook_of_any_status_is_logged_with_veleros_fields(tmp_path):
    log = tmp_path / "hooks.jsonl"
    result = _hook_runs.run_hooks(object, mixed_plan(), {"phase": "pre", "log_path": str(log)},
                                  exec_fn=fake_exec)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((e["pod"], e["status"]) for e in lines) == [
        ("a", "failed"), ("a", "not_run"), ("bad", "failed"), ("done", "skipped")]
    assert all(e["hookType"] == "exec" and e["hookPhase"] == "pre" for e in lines)
    assert (result["hooks_attempted"], result["hooks_failed"]) == (3, 2)  # invalid hooks are counted
    assert result["failed"] and "nginx-example/a" in result["msg"] and "nginx-example/bad" in result["msg"]
    # The pods the export leaves out: those that failed a Fail hook (an invalid hook acts as Fail).
    assert result["failed_pods"] == ["nginx-example/a", "nginx-example/bad"]


def test_an_unwritable_log_fails_before_any_hook_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ran = []
    with pytest.raises(KubehooksError, match="could not append to the hook log"):
        _hook_runs.run_hooks(object, [POD], {"phase": "pre", "log_path": str(blocker / "log.jsonl")},
                             exec_fn=lambda *a, **k: ran.append(a))
    assert ran == []


def test_a_log_failure_after_hooks_ran_keeps_every_result(tmp_path, monkeypatch):
    calls = []
    real_append = _hook_runs._hook_results.append_jsonl

    def flaky(path, entries):
        calls.append(len(entries))
        if len(calls) > 2:
            raise KubehooksError("could not append to the hook log %s: disk full" % path)
        return real_append(path, entries)
    monkeypatch.setattr(_hook_runs._hook_results, "append_jsonl", flaky)
    pods = [dict(POD, name="p%d" % i) for i in range(4)]
    params = {"phase": "pre", "log_path": str(tmp_path / "l"), "parallelism": 1}
    result = _hook_runs.run_hooks(object, pods, params, exec_fn=fake_exec)
    assert [h["status"] for h in result["hooks"]] == ["succeeded"] * 4  # every pod still ran and is reported
    assert result["failed"] and "disk full" in result["msg"]


@pytest.mark.parametrize("key,value", [("parallelism", 0), ("parallelism", -2), ("output_limit", 0),
                                       ("parallelism", True), ("output_limit", "8")])
def test_numbers_below_one_are_refused(key, value):
    """A bool too: Ansible's int type passes ``parallelism: true`` through as True, which would run as 1."""
    with pytest.raises(KubehooksError, match="%s must be a whole number of at least 1" % key):
        _hook_runs.run_hooks(object, [POD], {"phase": "pre", key: value}, exec_fn=fake_exec)


def test_rule_errors_stop_discovery_before_any_api_client_exists():
    def factory():
        raise AssertionError("no API call may happen before the rules are valid")
    params = {"hooks": [{"name": "ok", "pre": [{"exec": {"command": ["/bin/true"]}}]},
                        {"name": "bad", "excludedNamespaces": ["*"]}]}
    with pytest.raises(KubehooksError, match="bad"):
        _hook_runs.discover_plan(factory, params)


# --- check_exec: pods/exec asked before anything is frozen -----------------------------------------

def _exec_plan():
    hook = {"container": "c", "command": ["/bin/true"], "on_error": "Fail", "timeout": 30, "index": 0}
    return [{"namespace": "a", "name": "p", "pre": [hook], "post": [], "errors": []},
            {"namespace": "b", "name": "q", "pre": [], "post": [dict(hook)], "errors": []},
            {"namespace": "c", "name": "r", "pre": [], "post": [], "errors": []}]


class _Factory(object):
    impersonate_user = None
    impersonate_groups = []

    def __call__(self):
        return object()


def test_check_exec_asks_create_and_get_per_namespace_with_hooks_and_names_what_is_missing():
    asked = []

    def allowed(client, verb, resource, namespace, subresource=None):
        asked.append((verb, resource, subresource, namespace))
        return (namespace, verb) != ("b", "create"), "RBAC: no rule"

    with pytest.raises(KubehooksError) as info:
        _hook_runs.check_exec_allowed(_Factory(), _exec_plan(), allowed_fn=allowed)
    assert sorted(asked) == [("create", "pods", "exec", "a"), ("create", "pods", "exec", "b"),
                             ("get", "pods", "exec", "a"), ("get", "pods", "exec", "b")]
    assert "may not create pods/exec in namespace b;" in str(info.value) and "nothing was frozen" in str(info.value)


def test_check_exec_asks_nothing_without_hooks_and_passes_when_allowed():
    def never(*args, **kwargs):
        raise AssertionError("asked although no pod has hooks")

    _hook_runs.check_exec_allowed(_Factory(), _exec_plan()[2:], allowed_fn=never)
    _hook_runs.check_exec_allowed(_Factory(), _exec_plan(), allowed_fn=lambda *a, **k: (True, ""))
