"""check_plan (a plan handed back by the user) and check mode's planned results."""
import copy

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _plan
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

HOOK = {"source": "annotation", "name": "<from-annotation>", "container": "fsfreeze",
        "command": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"], "on_error": "Fail", "timeout": 30, "index": 0}
POD = {"namespace": "nginx-example", "name": "web-1", "phase": "Running", "pre": [HOOK], "post": [], "errors": []}


def plan_with(**changes):
    pod = copy.deepcopy(POD)
    pod["pre"][0].update(changes)
    return [pod]


def test_a_plan_from_pod_hooks_info_is_accepted():
    _plan.check_plan([POD])


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
        _plan.check_plan(plan_with(**changes))
    assert "plan[0].pre[0] (pod nginx-example/web-1)" in str(info.value)


def test_a_plan_entry_without_a_name_is_refused():
    with pytest.raises(KubehooksError, match=r"plan\[0\]: 'name'"):
        _plan.check_plan([dict(POD, name=None)])


def test_check_mode_lists_every_hook_as_planned_including_invalid_ones():
    error = {"namespace": "nginx-example", "pod": "web-1", "phase": "pre", "source": "annotation",
             "name": "<from-annotation>", "key": "pre.hook.backup.velero.io/timeout", "value": "1y",
             "message": "bad timeout", "index": 1}
    pod = dict(copy.deepcopy(POD), errors=[error])
    results = _plan.planned_results([pod], "pre")
    assert [r["status"] for r in results] == ["planned", "planned"]
    assert results[0]["command"] == HOOK["command"] and results[0]["error"] is None
    assert results[1]["error"] == "invalid hook: bad timeout"
    assert _plan.planned_results([pod], "post") == []


def test_check_mode_executes_nothing():
    def factory():
        raise AssertionError("check mode must not connect to the API")
    result = _plan.run_hooks(factory, [POD], {"phase": "pre"}, check_mode=True)
    assert result["hooks_attempted"] == 0 and result["hooks"][0]["status"] == "planned"
    assert result["changed"] is True


def test_impersonation_is_refused_before_any_hook_runs():
    class Factory(object):
        impersonate_user = "bob"
        impersonate_groups = []

        def __call__(self):
            raise AssertionError("no client may be made")
    with pytest.raises(KubehooksError, match="impersonate_user/impersonate_groups cannot be applied to pods/exec"):
        _plan.run_hooks(Factory(), [POD], {"phase": "pre"})
