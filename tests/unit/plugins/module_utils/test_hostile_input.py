# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile and malformed input: one table, one test per case.

Every case is input a user, a tenant (pod annotations) or a survey can give.  Each must end in a clear
error that names the input (its key, its value, its pod or rule), never in a Python traceback or the
module wrapper's "Unexpected error" (how an exception the code did not expect reaches the user).
Pod annotation cases resolve the bad pod beside a good one: the good pod keeps its hooks.

The functions called are the ones the modules call (``_hooks.build_plan`` after discovery's LIST,
``_hook_runs.check_plan``/``run_hooks``, ``_layout.check_backup_name``, ``_section.run``'s option
checks); the LIST itself is the integration tests' (tests/integration/test_hostile_input.py).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _critical, _hook_runs, _hooks, _layout, _section
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

DEEP = "[" * 5000
PRE = "pre.hook.backup.velero.io/"
GOOD_POD = {"metadata": {"namespace": "ns", "name": "good", "annotations": {PRE + "command": '["/bin/true"]'}},
            "spec": {"containers": [{"name": "app"}]}, "status": {"phase": "Running"}}


def pod_with(annotations):
    return {"metadata": {"namespace": "ns", "name": "bad", "annotations": annotations},
            "spec": {"containers": [{"name": "app"}]}, "status": {"phase": "Running"}}


def annotation_error(annotations, max_timeout=None):
    """Resolve the bad pod beside the good one; return the bad pod's one error message."""
    plan = _hooks.build_plan([pod_with(annotations), GOOD_POD], [], max_timeout=max_timeout)
    good = [p for p in plan["pods"] if p["name"] == "good"][0]
    assert good["pre"] and good["pre"][0]["command"] == ["/bin/true"] and not good["errors"], "the good pod suffered"
    bad = [p for p in plan["pods"] if p["name"] == "bad"][0]
    assert not bad["pre"] and len(bad["errors"]) == 1
    return bad["errors"][0]["message"]


def raised(function, *args, **kwargs):
    with pytest.raises(KubehooksError) as info:
        function(*args, **kwargs)
    return str(info.value)


def rule(**fields):
    base = {"name": "freeze", "pre": [{"exec": {"command": ["/bin/true"]}}]}
    base.update(fields)
    return base


def rules_error(hooks, max_timeout=None):
    return raised(_hooks.build_plan, [GOOD_POD], hooks, max_timeout=max_timeout)


PLAN_HOOK = {"container": "app", "command": ["/bin/true"], "on_error": "Fail", "timeout": 30, "index": 0,
             "name": "<from-annotation>", "source": "annotation"}


def plan_with(**hook_fields):
    return [{"namespace": "ns", "name": "web-0", "phase": "Running", "pre": [dict(PLAN_HOOK, **hook_fields)],
             "post": [], "errors": []}]


def never_exec(*args, **kwargs):
    raise AssertionError("a hook ran although the input was refused")


class Factory(object):
    """A client factory that must not be called: the input is refused before any API call."""

    impersonate_user = None
    impersonate_groups = []
    host = "https://k8s.invalid:6443"

    def __call__(self):
        raise AssertionError("the API was called although the input was refused")


class Impersonating(Factory):
    impersonate_user = "system:serviceaccount:ns:backup"


def run_hooks_error(pods, **params):
    params.setdefault("phase", "pre")
    return raised(_hook_runs.run_hooks, Factory(), pods, params, exec_fn=never_exec)


CAPTURE_PARAMS = dict(plan=plan_with(), name="b1", backup_dir="/nonexistent/kubehooks-test", stage="all",
                      freeze_together=False, default_volumes_to_fs_backup=False, max_freeze_seconds=600,
                      thaw_retry_seconds=300, parallelism=8, output_limit=65536, log_path=None)


def capture_error(**params):
    return raised(_section.run, dict(CAPTURE_PARAMS, **params), Factory(), exec_fn=never_exec)


# (case id, a function returning the error message, fragments the message must contain)
CASES = [
    # -- pod annotations (a tenant's input): a clear error for that pod, the other pod unaffected
    ("command-json-5000-deep", lambda: annotation_error({PRE + "command": DEEP}),
     ["pod ns/bad", PRE + "command", "nested"]),
    ("command-json-deep-after-first-element", lambda: annotation_error({PRE + "command": '["/bin/sh", ' + DEEP}),
     ["pod ns/bad", PRE + "command", "nested too deeply"]),
    ("command-json-not-an-array", lambda: annotation_error({PRE + "command": "[blarg"}),
     ["pod ns/bad", PRE + "command", '"[blarg"', "not a valid JSON array"]),
    ("command-json-number-element", lambda: annotation_error({PRE + "command": '["/bin/echo", 1]'}),
     ["pod ns/bad", "element 1 of the command is 1"]),
    ("command-json-empty-array", lambda: annotation_error({PRE + "command": "[]"}),
     ["pod ns/bad", PRE + "command", "non-empty list"]),
    ("on-error-lowercase", lambda: annotation_error({PRE + "command": "x", PRE + "on-error": "fail"}),
     ["pod ns/bad", PRE + "on-error", '"fail"']),
    ("timeout-unknown-unit", lambda: annotation_error({PRE + "command": "x", PRE + "timeout": "1y"}),
     ["pod ns/bad", PRE + "timeout", '"1y"', "unknown unit"]),
    ("timeout-negative", lambda: annotation_error({PRE + "command": "x", PRE + "timeout": "-5s"}),
     ["pod ns/bad", PRE + "timeout", '"-5s"', "negative"]),
    ("timeout-beyond-go-durations", lambda: annotation_error({PRE + "command": "x", PRE + "timeout": "2562048h"}),
     ["pod ns/bad", PRE + "timeout", '"2562048h"', "too long"]),
    ("timeout-above-max-hook-timeout",
     lambda: annotation_error({PRE + "command": "x", PRE + "timeout": "2562047h"}, max_timeout=600),
     ["pod ns/bad", PRE + "timeout", '"2562047h"', "longer than max_hook_timeout (10m0s)"]),
    ("container-missing", lambda: annotation_error({PRE + "command": "x", PRE + "container": "nope"}),
     ["pod ns/bad", PRE + "container", 'no such container: "nope"']),
    # -- hook rules (the hooks option, a survey answer): the whole run stops before anything is frozen
    ("matchlabels-value-list", lambda: rules_error([rule(labelSelector={"matchLabels": {"app": ["db"]}})]),
     ['hooks[0] ("freeze")', "labelSelector.matchLabels.app", '["db"]', "not a string"]),
    ("matchlabels-value-map", lambda: rules_error([rule(labelSelector={"matchLabels": {"app": {"a": "b"}}})]),
     ['hooks[0] ("freeze")', "labelSelector.matchLabels.app", '{"a": "b"}', "not a string"]),
    ("operator-list", lambda: rules_error([rule(labelSelector={"matchExpressions": [
        {"key": "app", "operator": ["In"], "values": ["db"]}]})]),
     ['hooks[0] ("freeze")', "matchExpressions[0].operator", '["In"]']),
    ("rule-timeout-1e10", lambda: rules_error([rule(pre=[{"exec": {"command": ["x"], "timeout": 1e10}}])]),
     ['hooks[0] ("freeze")', "pre[0].exec.timeout", "10000000000", "too long"]),
    ("rule-timeout-above-max", lambda: rules_error([rule(pre=[{"exec": {"command": ["x"], "timeout": "1h"}}])],
                                                   max_timeout=60),
     ['hooks[0] ("freeze")', "pre[0].exec.timeout", '"1h"', "longer than max_hook_timeout (1m0s)"]),
    ("rule-exclude-all-namespaces", lambda: rules_error([rule(excludedNamespaces=["*"])]),
     ['hooks[0] ("freeze")', "excludedNamespaces", '"*"']),
    ("rule-unknown-key", lambda: rules_error([rule(includeNamespaces=["db"])]),
     ['hooks[0] ("freeze")', "includeNamespaces", "unknown key"]),
    ("rule-without-name", lambda: rules_error([{"pre": [{"exec": {"command": ["x"]}}]}]),
     ["hooks[0]", "name", "null"]),
    ("rule-bad-namespace-glob", lambda: rules_error([rule(includedNamespaces=["db-{a,b}"])]),
     ['hooks[0] ("freeze")', "includedNamespaces", '"db-{a,b}"']),
    ("rule-entry-not-a-mapping", lambda: rules_error([rule(pre=["fsfreeze --freeze /data"])]),
     ['hooks[0] ("freeze")', "pre[0]", '"fsfreeze --freeze /data"']),
    ("rules-not-a-list", lambda: rules_error({"resources": []}),
     ["hooks", '{"resources": []}', "must be a list"]),
    # -- scope options
    ("label-selector-unclosed", lambda: raised(_hooks.build_plan, [GOOD_POD], [], None, None, ["app in (a"]),
     ['"app in (a"']),
    ("namespace-not-a-string", lambda: raised(_hooks.build_plan, [GOOD_POD], [], [["db"]]),
     ["included_namespaces", '["db"]']),
    ("max-hook-timeout-garbage", lambda: raised(_hooks.parse_max_hook_timeout, "ten minutes"),
     ["max_hook_timeout", '"ten minutes"']),
    # -- a hand-written plan (the module input, not an annotation): refused before any hook runs
    ("plan-timeout-string", lambda: run_hooks_error(plan_with(timeout="30")),
     ["plan[0].pre[0] (pod ns/web-0)", "timeout must be a number", '"30"']),
    ("plan-timeout-1e10", lambda: run_hooks_error(plan_with(timeout=1e10)),
     ["plan[0].pre[0] (pod ns/web-0)", "10000000000", "too long"]),
    ("plan-timeout-above-max", lambda: run_hooks_error(plan_with(timeout=7200), max_hook_timeout="1h"),
     ["plan[0].pre[0] (pod ns/web-0)", "2h0m0s", "longer than max_hook_timeout (1h0m0s)"]),
    ("plan-command-string", lambda: run_hooks_error(plan_with(command="fsfreeze --freeze /data")),
     ["plan[0].pre[0] (pod ns/web-0)", "non-empty list of strings"]),
    ("plan-index-string", lambda: run_hooks_error(plan_with(index="1")),
     ["plan[0].pre[0] (pod ns/web-0)", "index must be a number", '"1"']),
    ("plan-entry-not-a-dict", lambda: run_hooks_error(["web-0"]),
     ["plan[0]", '"web-0"', "must be a dictionary"]),
    ("plan-error-entry-garbled", lambda: run_hooks_error([dict(plan_with()[0], errors=[{"phase": "during"}])]),
     ["plan[0].errors[0] (pod ns/web-0)", '"during"']),
    # -- options refused before anything is frozen
    ("parallelism-zero", lambda: run_hooks_error(plan_with(), parallelism=0),
     ["parallelism", "at least 1", "0"]),
    ("output-limit-negative", lambda: run_hooks_error(plan_with(), output_limit=-1),
     ["output_limit", "at least 1", "-1"]),
    ("impersonation-with-exec", lambda: raised(_hook_runs.run_hooks, Impersonating(), plan_with(), {"phase": "pre"},
                                               exec_fn=never_exec),
     ["impersonate_user", "pods/exec"]),
    ("check-exec-impersonation", lambda: raised(_hook_runs.check_exec_allowed, Impersonating(), plan_with()),
     ["impersonate_user", "pods/exec"]),
    ("capture-max-freeze-negative", lambda: capture_error(max_freeze_seconds=-1),
     ["max_freeze_seconds", "-1"]),
    ("capture-parallelism-zero", lambda: capture_error(parallelism=0), ["parallelism", "0"]),
    ("capture-plan-timeout-string", lambda: capture_error(plan=plan_with(timeout="30")),
     ["plan[0].pre[0] (pod ns/web-0)", '"30"']),
    ("capture-impersonation", lambda: raised(_section.run, dict(CAPTURE_PARAMS), Impersonating(), exec_fn=never_exec),
     ["impersonate_user", "pods/exec"]),
    # -- backup names: a Kubernetes object name that keeps every file name of the layout within 255 bytes
    ("name-dot-dash", lambda: raised(_layout.check_backup_name, "a.-b"), ['"a.-b"', "DNS-1123 subdomain"]),
    ("name-double-dot", lambda: raised(_layout.check_backup_name, "a..b"), ['"a..b"', "DNS-1123 subdomain"]),
    ("name-uppercase", lambda: raised(_layout.check_backup_name, "Nightly"), ['"Nightly"', "lowercase"]),
    ("name-too-long-for-file-names", lambda: raised(_layout.check_backup_name, "b" * 226),
     ['"bbbb', "226 characters", "at most 210", "<name>-csi-volumesnapshotcontents.json.gz", "255-byte"]),
    ("name-too-long-capture", lambda: capture_error(name="c" * 253), ["253 characters", "at most 210"]),
]


@pytest.mark.parametrize("make_message,fragments", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_hostile_input_is_a_clear_error_naming_it(make_message, fragments):
    message = make_message()
    for fragment in fragments:
        assert fragment in message, "%r not in %r" % (fragment, message)
    assert "Traceback" not in message and "Unexpected error" not in message
    assert len(message) < 2000, "a hostile value must not flood the message"


def test_the_table_has_at_least_25_cases_with_unique_ids():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 25 and len(set(ids)) == len(ids)


def test_longest_accepted_name_fits_every_file_name_with_its_temporary_suffix():
    name = "n" * _layout.max_backup_name_length()
    assert _layout.check_backup_name(name) == name
    for pattern in _layout.FILE_NAMES.values():
        assert len(pattern.format(name=name)) + _layout.TEMP_NAME_OVERHEAD <= _layout.FILE_NAME_MAX_BYTES


def test_a_capture_that_passed_the_checks_is_bounded_by_the_freeze_deadline(tmp_path):
    """A tenant's 2562047h pre hook cannot hold the frozen section past max_freeze_seconds (module level)."""
    seen = []

    def fake_exec(api_client, namespace, pod, container, argv, timeout, output_cap=None):
        seen.append(timeout)
        return dict(status="succeeded", exit_code=0, stdout="", stderr="", truncated=False, duration=0.0, error=None)

    options = _critical.Options(max_freeze_seconds=5, thaw_retry_seconds=1)
    plan = plan_with(timeout=9223369200)
    plan[0]["post"] = [dict(PLAN_HOOK, timeout=30)]
    marks = _critical.ThawState(str(tmp_path / "thaw.jsonl")).create()
    groups = _critical.plan_groups(plan)
    result = _critical.run_critical_section(groups, object, None, options, marks, exec_fn=fake_exec)
    assert seen[0] <= 5 and seen[1] == 30, seen  # the pre hook was cut to the deadline; the post hook was not
    assert result["not_thawed"] == []
