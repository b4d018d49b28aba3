# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of plugins/module_utils/_hooks.py, the pure hook resolution.

Table-driven; each case id names the rule it checks (Velero's hook semantics, as pod_hooks_info documents them).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import json
import os

import pytest
import yaml

from ansible_collections.kubehooks.backup.plugins.module_utils import _hooks as hooks
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import RuleError, ScopeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
with open(os.path.join(FIXTURES, "hooks_pods.yaml")) as handle:
    PODS = yaml.safe_load(handle)

HOOK_KEYS = {"source", "name", "container", "command", "on_error", "timeout", "index"}
ERROR_KEYS = {"namespace", "pod", "phase", "source", "name", "key", "value", "message", "index"}
PRE = "pre.hook.backup.velero.io/"
POST = "post.hook.backup.velero.io/"
LEGACY = "hook.backup.velero.io/"


def pod(annotations=None, namespace="ns", name="p", labels=None, containers=("main", "side"),
        init_containers=(), phase="Running"):
    """A pod dict in the API's JSON shape."""
    spec = {"containers": [{"name": c} for c in containers]}
    if init_containers:
        spec["initContainers"] = [dict(name=n, **({"restartPolicy": p} if p else {})) for n, p in init_containers]
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels or {},
                         "annotations": annotations or {}},
            "spec": spec, "status": {"phase": phase}}


def rule(name="r", pre=None, post=None, **extra):
    """A rule in Velero's schema with exec hooks given as (command, extra exec keys) pairs or dicts."""
    result = {"name": name}
    for phase, entries in (("pre", pre), ("post", post)):
        if entries is not None:
            result[phase] = [e if isinstance(e, dict) and "exec" in e or e == {} else {"exec": e} for e in entries]
    result.update(extra)
    return result


def resolve(pod_dict, hook_rules=None):
    return hooks.resolve_pod(pod_dict, hooks.parse_rules(hook_rules or []))


def commands(entry, phase):
    return [h["command"] for h in entry[phase]]


# ============================================================================================
# command parsing (JSON array vs one argv element)
# ============================================================================================

@pytest.mark.parametrize("value, argv", [
    pytest.param('["/usr/bin/uname", "-a"]', ["/usr/bin/uname", "-a"], id="command-json-array"),
    pytest.param('["/bin/sh", "-c", "echo a  b"]', ["/bin/sh", "-c", "echo a  b"], id="command-json-spaces-inside-args"),
    pytest.param('["/bin/true"]', ["/bin/true"], id="command-json-single-element"),
    pytest.param('["/bin/echo", ""]', ["/bin/echo", ""], id="command-json-empty-later-arg-kept"),
    pytest.param("/bin/ls -la", ["/bin/ls -la"], id="command-plain-is-one-argv-element-never-split"),
    pytest.param("/sbin/fsfreeze", ["/sbin/fsfreeze"], id="command-plain-program"),
    pytest.param("echo $HOME; rm x", ["echo $HOME; rm x"], id="command-plain-no-shell"),
    pytest.param('{"a": 1}', ['{"a": 1}'], id="command-only-leading-bracket-means-json"),
    pytest.param("x [y]", ["x [y]"], id="command-bracket-later-is-plain"),
])
def test_parse_command_accepts(value, argv):
    assert hooks.parse_command(value) == argv


def test_parse_command_empty_means_no_hook():
    assert hooks.parse_command("") is None


@pytest.mark.parametrize("value, reason", [
    pytest.param("[blarg", "not a valid JSON array", id="command-bracket-invalid-json-is-error-not-one-element"),
    pytest.param('["/bin/echo", 1]', "element 1", id="command-json-non-string-is-error"),
    pytest.param('["/bin/echo", null]', "element 1", id="command-json-null-is-error"),
    pytest.param("[]", "non-empty list", id="command-json-empty-array-is-error"),
    pytest.param('[""]', "program", id="command-json-empty-program-is-error"),
    pytest.param('["a"] trailing', "not a valid JSON array", id="command-json-trailing-garbage-is-error"),
    pytest.param(' ["/bin/true"]', "whitespace followed by '['", id="command-space-then-bracket-is-error"),
    pytest.param('\n["/bin/true"]', "whitespace followed by '['", id="command-newline-then-bracket-is-error"),
    pytest.param(["/bin/true"], "must be a string", id="command-annotation-must-be-string"),
])
def test_parse_command_rejects(value, reason):
    with pytest.raises(ValueError) as info:
        hooks.parse_command(value)
    assert reason in str(info.value)


# ============================================================================================
# pod annotations, defaults, legacy keys
# ============================================================================================

def test_walkthrough_pod_resolves_to_velero_example():
    entry = resolve(PODS["nginx_walkthrough"])
    assert entry["namespace"] == "nginx-example"
    assert entry["name"] == "nginx-deployment-5d9c6f7b8-abcde"
    assert entry["phase"] == "Running"
    assert entry["errors"] == []
    assert entry["pre"] == [{"source": "annotation", "name": "<from-annotation>", "container": "fsfreeze",
                             "command": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"],
                             "on_error": "Fail", "timeout": 30, "index": 0}]
    assert entry["post"] == [{"source": "annotation", "name": "<from-annotation>", "container": "fsfreeze",
                              "command": ["/sbin/fsfreeze", "--unfreeze", "/var/log/nginx"],
                              "on_error": "Fail", "timeout": 30, "index": 0}]


@pytest.mark.parametrize("phase, prefix", [("pre", PRE), ("post", POST)])
def test_annotation_defaults_first_container_fail_30s(phase, prefix):
    entry = resolve(pod({prefix + "command": "/bin/true"}, containers=("first", "second")))
    assert entry[phase] == [{"source": "annotation", "name": "<from-annotation>", "container": "first",
                             "command": ["/bin/true"], "on_error": "Fail", "timeout": 30, "index": 0}]
    other = "post" if phase == "pre" else "pre"
    assert entry[other] == []


@pytest.mark.parametrize("phase, prefix", [("pre", PRE), ("post", POST)])
def test_annotation_explicit_values(phase, prefix):
    entry = resolve(pod({prefix + "command": '["/bin/sync"]', prefix + "container": "side",
                         prefix + "on-error": "Continue", prefix + "timeout": "1m30s"}))
    assert entry[phase] == [{"source": "annotation", "name": "<from-annotation>", "container": "side",
                             "command": ["/bin/sync"], "on_error": "Continue", "timeout": 90, "index": 0}]
    assert entry["errors"] == []


def test_annotation_bare_number_timeout_is_seconds():
    entry = resolve(pod({PRE + "command": "/bin/true", PRE + "timeout": "300"}))
    assert entry["pre"][0]["timeout"] == 300


def test_legacy_keys_are_a_pre_hook_when_no_pre_command():
    entry = resolve(PODS["legacy_only"])
    assert entry["pre"] == [{"source": "annotation", "name": "<from-annotation>", "container": "side",
                             "command": ["/bin/sh", "-c", "sync"], "on_error": "Continue", "timeout": 120,
                             "index": 0}]
    assert entry["post"] == []  # there is no legacy post hook
    assert entry["phase"] == "Succeeded"  # recorded; skipping is the executor's job


def test_legacy_keys_ignored_when_pre_command_exists():
    entry = resolve(pod({PRE + "command": "/new", LEGACY + "command": "/old", LEGACY + "container": "side"}))
    assert commands(entry, "pre") == [["/new"]]
    assert entry["pre"][0]["container"] == "main"  # the legacy container does not leak into the pre hook


def test_legacy_keys_used_when_pre_command_is_empty():
    entry = resolve(pod({PRE + "command": "", LEGACY + "command": "/old"}))
    assert commands(entry, "pre") == [["/old"]]


def test_legacy_hook_reads_only_legacy_keys():
    entry = resolve(pod({LEGACY + "command": "/old", PRE + "container": "side", PRE + "timeout": "5s"}))
    assert entry["pre"][0]["container"] == "main"
    assert entry["pre"][0]["timeout"] == 30


def test_legacy_keys_never_make_a_post_hook():
    entry = resolve(pod({LEGACY + "command": "/old", POST + "container": "side"}))
    assert entry["post"] == []


@pytest.mark.parametrize("annotations", [
    pytest.param({PRE + "command": ""}, id="empty-command-means-no-hook"),
    pytest.param({PRE + "container": "side"}, id="orphan-container-key-accepted-silently"),
    pytest.param({PRE + "on-error": "bogus", PRE + "timeout": "1y"}, id="orphan-invalid-keys-accepted-silently"),
    pytest.param({POST + "command": ""}, id="empty-post-command-means-no-hook"),
    pytest.param({}, id="pod-without-hooks-untouched"),
])
def test_no_annotation_hook(annotations):
    entry = resolve(pod(annotations))
    assert entry["pre"] == [] and entry["post"] == [] and entry["errors"] == []


@pytest.mark.parametrize("annotations, key, value, reason", [
    pytest.param({PRE + "command": "/x", PRE + "on-error": "fail"}, PRE + "on-error", "fail",
                 "exactly Fail or Continue", id="invalid-on-error-lowercase"),
    pytest.param({PRE + "command": "/x", PRE + "on-error": "Abort"}, PRE + "on-error", "Abort",
                 "exactly Fail or Continue", id="invalid-on-error-unknown"),
    pytest.param({PRE + "command": "/x", PRE + "on-error": "Continue "}, PRE + "on-error", "Continue ",
                 "exactly Fail or Continue", id="invalid-on-error-trailing-space"),
    pytest.param({PRE + "command": "/x", PRE + "on-error": ""}, PRE + "on-error", "",
                 "exactly Fail or Continue", id="invalid-on-error-present-but-empty"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": "abc"}, PRE + "timeout", "abc",
                 "invalid duration", id="invalid-timeout-garbage"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": "1y"}, PRE + "timeout", "1y",
                 "unknown unit", id="invalid-timeout-unit"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": "0"}, PRE + "timeout", "0",
                 "greater than zero", id="invalid-timeout-zero"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": "-10s"}, PRE + "timeout", "-10s",
                 "negative", id="invalid-timeout-negative"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": ""}, PRE + "timeout", "",
                 "empty", id="invalid-timeout-empty"),
    pytest.param({PRE + "command": "/x", PRE + "timeout": "30s "}, PRE + "timeout", "30s ",
                 "whitespace", id="invalid-timeout-surrounding-space"),
    pytest.param({PRE + "command": "[blarg"}, PRE + "command", "[blarg",
                 "not a valid JSON array", id="invalid-command-json"),
    pytest.param({PRE + "command": '["/bin/echo", 1]'}, PRE + "command", '["/bin/echo", 1]',
                 "not a string", id="invalid-command-non-string"),
    pytest.param({PRE + "command": "[]"}, PRE + "command", "[]", "non-empty", id="invalid-command-empty-array"),
    pytest.param({PRE + "command": '  ["/x"]'}, PRE + "command", '  ["/x"]', "whitespace",
                 id="invalid-command-whitespace-then-bracket"),
    pytest.param({PRE + "command": "/x", PRE + "container": "nope"}, PRE + "container", "nope",
                 'no such container: "nope"', id="missing-container-is-error"),
    pytest.param({PRE + "command": "/x", PRE + "container": ""}, PRE + "container", "",
                 "non-empty string", id="container-present-but-empty-is-error"),
    pytest.param({LEGACY + "command": "/x", LEGACY + "on-error": "nope"}, LEGACY + "on-error", "nope",
                 "exactly Fail or Continue", id="invalid-legacy-on-error-names-legacy-key"),
])
def test_invalid_annotation_becomes_error_entry(annotations, key, value, reason):
    entry = resolve(pod(annotations, namespace="shop", name="cart-0"))
    assert entry["pre"] == []  # the invalid hook is absent from pre
    assert len(entry["errors"]) == 1
    error = entry["errors"][0]
    assert set(error) == ERROR_KEYS
    assert error["namespace"] == "shop" and error["pod"] == "cart-0"
    assert error["phase"] == "pre" and error["source"] == "annotation" and error["name"] == "<from-annotation>"
    assert error["key"] == key and error["value"] == value and error["index"] == 0
    for part in ("shop/cart-0", key, json.dumps(value), reason):
        assert part in error["message"]


def test_invalid_post_annotation_leaves_pre_alone():
    entry = resolve(pod({PRE + "command": "/freeze", POST + "command": "/thaw", POST + "timeout": "1y"}))
    assert commands(entry, "pre") == [["/freeze"]]
    assert entry["post"] == []
    assert [(e["phase"], e["key"]) for e in entry["errors"]] == [("post", POST + "timeout")]


def test_several_problems_make_one_error_naming_all():
    entry = resolve(pod({PRE + "command": "[x", PRE + "on-error": "x", PRE + "timeout": "y", PRE + "container": "z"}))
    assert len(entry["errors"]) == 1  # one invalid hook = one failed hook at its index
    error = entry["errors"][0]
    assert error["key"] == PRE + "command"
    for key in ("command", "on-error", "timeout"):
        assert PRE + key in error["message"]


# ============================================================================================
# containers, native sidecars, pods without containers
# ============================================================================================

def test_native_sidecar_is_a_valid_container_but_classic_init_is_not():
    entry = resolve(PODS["with_sidecar"])
    assert entry["pre"][0]["container"] == "log-shipper"
    assert entry["post"] == []
    assert len(entry["errors"]) == 1
    assert entry["errors"][0]["key"] == POST + "container"
    assert 'no such container: "setup"' in entry["errors"][0]["message"]


def test_default_container_is_first_of_spec_containers_not_sidecar():
    entry = resolve(pod({PRE + "command": "/x"}, containers=("app",), init_containers=(("sc", "Always"),)))
    assert entry["pre"][0]["container"] == "app"


@pytest.mark.parametrize("annotations, key, value", [
    pytest.param({PRE + "command": "/bin/true"}, PRE + "container", None, id="no-containers-default-is-error"),
    pytest.param({PRE + "command": "/bin/true", PRE + "container": "x"}, PRE + "container", "x",
                 id="no-containers-named-is-error"),
])
def test_pod_with_no_containers_is_error(annotations, key, value):
    no_containers = copy.deepcopy(PODS["no_containers"])
    no_containers["metadata"]["annotations"] = annotations
    entry = resolve(no_containers)
    assert entry["pre"] == []
    assert [(e["key"], e["value"]) for e in entry["errors"]] == [(key, value)]
    assert "db/empty" in entry["errors"][0]["message"]
    assert "no containers" in entry["errors"][0]["message"]


def test_pod_missing_spec_does_not_crash():
    entry = hooks.resolve_pod({"metadata": {"namespace": "a", "name": "b",
                                            "annotations": {PRE + "command": "/x"}}}, [])
    assert entry["phase"] is None
    assert entry["pre"] == [] and len(entry["errors"]) == 1


def test_rule_hook_missing_container_is_spec_error():
    entry = resolve(pod(namespace="db", name="db-0"),
                    [rule("freeze", pre=[{"command": ["/ok"]}, {"command": ["/x"], "container": "ghost"}])])
    assert commands(entry, "pre") == [["/ok"]]
    error = entry["errors"][0]
    assert (error["source"], error["name"], error["key"], error["value"], error["index"]) == (
        "spec", "freeze", "hooks[0].pre[1].exec.container", "ghost", 1)
    assert 'no such container: "ghost"' in error["message"] and "db/db-0" in error["message"]


# ============================================================================================
# rules, precedence per phase, order
# ============================================================================================

FREEZE_RULE = rule("freeze-db", includedNamespaces=["db"],
                   pre=[{"command": ["/sbin/fsfreeze", "--freeze", "/data"], "container": "db", "onError": "Fail",
                         "timeout": "60s"}],
                   post=[{"command": ["/sbin/fsfreeze", "--unfreeze", "/data"], "container": "db"}])


def test_rule_hooks_with_defaults_and_values():
    entry = resolve(PODS["plain_db"], [FREEZE_RULE])
    assert entry["pre"] == [{"source": "spec", "name": "freeze-db", "container": "db",
                             "command": ["/sbin/fsfreeze", "--freeze", "/data"], "on_error": "Fail",
                             "timeout": 60, "index": 0}]
    assert entry["post"] == [{"source": "spec", "name": "freeze-db", "container": "db",
                              "command": ["/sbin/fsfreeze", "--unfreeze", "/data"], "on_error": "Fail",
                              "timeout": 30, "index": 0}]


def test_rule_defaults_first_container_fail_30s():
    entry = resolve(PODS["plain_db"], [rule("r", pre=[{"command": ["/x"]}])])
    assert entry["pre"][0]["container"] == "db"
    assert entry["pre"][0]["on_error"] == "Fail"  # unset on-error means Fail, as Velero documents
    assert entry["pre"][0]["timeout"] == 30


@pytest.mark.parametrize("timeout, seconds", [
    pytest.param("1m", 60, id="rule-timeout-go-duration"),
    pytest.param(45, 45, id="rule-timeout-number-is-seconds"),
    pytest.param("45", 45, id="rule-timeout-bare-string-is-seconds"),
    pytest.param(None, 30, id="rule-timeout-null-is-default"),
])
def test_rule_timeout(timeout, seconds):
    entry = resolve(PODS["plain_db"], [rule("r", pre=[{"command": ["/x"], "timeout": timeout}])])
    assert entry["pre"][0]["timeout"] == seconds


def test_annotation_wins_per_phase_rules_keep_other_phase():
    annotated = pod({PRE + "command": "/annotated-freeze"}, namespace="db", containers=("db",))
    entry = resolve(annotated, [FREEZE_RULE])
    assert [(h["source"], h["command"]) for h in entry["pre"]] == [("annotation", ["/annotated-freeze"])]
    assert [(h["source"], h["name"]) for h in entry["post"]] == [("spec", "freeze-db")]
    assert entry["errors"] == []


def test_annotation_post_only_keeps_rule_pre():
    entry = resolve(pod({POST + "command": "/annotated-thaw"}, namespace="db", containers=("db",)), [FREEZE_RULE])
    assert [h["source"] for h in entry["pre"]] == ["spec"]
    assert [h["source"] for h in entry["post"]] == ["annotation"]


def test_legacy_annotation_replaces_rule_pre_hooks():
    entry = resolve(pod({LEGACY + "command": "/legacy"}, namespace="db", containers=("db",)), [FREEZE_RULE])
    assert commands(entry, "pre") == [["/legacy"]]
    assert [h["source"] for h in entry["post"]] == ["spec"]


def test_invalid_annotation_still_replaces_rules_for_its_phase():
    entry = resolve(pod({PRE + "command": "/x", PRE + "timeout": "nope"}, namespace="db", containers=("db",)), [FREEZE_RULE])
    assert entry["pre"] == []  # the rules' pre hooks do not silently take over
    assert [(e["phase"], e["source"], e["index"]) for e in entry["errors"]] == [("pre", "annotation", 0)]
    assert [h["name"] for h in entry["post"]] == ["freeze-db"]


def test_every_matching_rule_runs_in_list_order_and_each_list_in_order():
    rules = [
        rule("first", pre=[{"command": ["/1a"]}, {"command": ["/1b"]}], post=[{"command": ["/1z"]}]),
        rule("not-matching", includedNamespaces=["elsewhere"], pre=[{"command": ["/never"]}]),
        rule("second", pre=[{"command": ["/2a"]}]),
        rule("first", pre=[{"command": ["/dup"]}]),  # duplicate names are accepted
    ]
    entry = resolve(PODS["plain_db"], rules)
    assert [(h["name"], h["command"][0], h["index"]) for h in entry["pre"]] == [
        ("first", "/1a", 0), ("first", "/1b", 1), ("second", "/2a", 2), ("first", "/dup", 3)]
    assert commands(entry, "post") == [["/1z"]]


def test_entries_without_exec_accepted_silently_and_take_no_index():
    entry = resolve(PODS["plain_db"], [rule("r", pre=[{}, {"exec": None}, {"command": ["/x"]}])])
    assert [(h["command"], h["index"]) for h in entry["pre"]] == [(["/x"], 0)]


def test_rule_command_argv_exactly_as_given():
    argv = ["/bin/sh", "-c", "echo 'a b' > /tmp/x"]
    entry = resolve(PODS["plain_db"], [rule("r", pre=[{"command": argv}])])
    assert entry["pre"][0]["command"] == argv


@pytest.mark.parametrize("extra, matches", [
    pytest.param({}, True, id="rule-no-scope-matches-all"),
    pytest.param({"includedNamespaces": ["db"]}, True, id="rule-namespace-included"),
    pytest.param({"includedNamespaces": ["web"]}, False, id="rule-namespace-not-included"),
    pytest.param({"includedNamespaces": ["d?"]}, True, id="rule-namespace-glob"),
    pytest.param({"includedNamespaces": ["*"]}, True, id="rule-namespace-star"),
    pytest.param({"excludedNamespaces": ["db"]}, False, id="rule-namespace-excluded"),
    pytest.param({"includedNamespaces": ["db"], "excludedNamespaces": ["d*"]}, False, id="rule-exclude-wins"),
    pytest.param({"includedResources": ["pods"]}, True, id="rule-resource-pods"),
    pytest.param({"includedResources": ["pod"]}, True, id="rule-resource-singular"),
    pytest.param({"includedResources": ["po"]}, True, id="rule-resource-short-name"),
    pytest.param({"includedResources": ["Pods"]}, True, id="rule-resource-case-insensitive"),
    pytest.param({"includedResources": ["pods."]}, True, id="rule-resource-core-group-suffix"),
    pytest.param({"includedResources": ["*"]}, True, id="rule-resource-star"),
    pytest.param({"includedResources": ["p*"]}, True, id="rule-resource-glob"),
    pytest.param({"includedResources": ["deployments", "pods"]}, True, id="rule-resource-among-others"),
    pytest.param({"includedResources": ["deployments"]}, False, id="rule-resource-only-pods-run-hooks"),
    pytest.param({"includedResources": ["pods.apps"]}, False, id="rule-resource-other-group-is-not-pods"),
    pytest.param({"excludedResources": ["pods"]}, False, id="rule-resource-excluded"),
    pytest.param({"includedResources": ["*"], "excludedResources": ["pod"]}, False,
                 id="rule-resource-exclude-wins"),
    pytest.param({"excludedResources": ["deployments"]}, True, id="rule-resource-other-excluded"),
    pytest.param({"labelSelector": {"matchLabels": {"app": "db"}}}, True, id="rule-selector-match-labels"),
    pytest.param({"labelSelector": {"matchLabels": {"app": "web"}}}, False, id="rule-selector-match-labels-differ"),
    pytest.param({"labelSelector": {"matchLabels": {"app": "db", "tier": "frontend"}}}, False,
                 id="rule-selector-match-labels-all-must-match"),
    pytest.param({"labelSelector": {}}, True, id="rule-selector-empty-selects-all"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}},
                 True, id="rule-selector-in"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}},
                 False, id="rule-selector-notin"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}},
                 True, id="rule-selector-notin-absent-key-matches"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}, True,
                 id="rule-selector-exists"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}, False,
                 id="rule-selector-exists-absent"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}}, True,
                 id="rule-selector-does-not-exist"),
    pytest.param({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": []}]}},
                 False, id="rule-selector-does-not-exist-present"),
    pytest.param({"labelSelector": {"matchLabels": {"app": "db"},
                                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}},
                 False, id="rule-selector-labels-and-expressions-anded"),
    pytest.param({"includedNamespaces": ["web"], "labelSelector": {"matchLabels": {"app": "db"}}}, False,
                 id="rule-all-criteria-must-hold"),
])
def test_rule_matching(extra, matches):
    entry = resolve(PODS["plain_db"], [rule("r", pre=[{"command": ["/x"]}], **extra)])
    assert (entry["pre"] != []) is matches
    assert entry["errors"] == []


def test_rule_applies_is_namespace_resource_labels():
    parsed = hooks.parse_rules([rule("r", includedNamespaces=["db"], includedResources=["pods"],
                                     labelSelector={"matchLabels": {"app": "db"}})])[0]
    assert hooks.rule_applies(parsed, "db", {"app": "db"})
    assert not hooks.rule_applies(parsed, "web", {"app": "db"})
    assert not hooks.rule_applies(parsed, "db", {"app": "web"})
    assert not hooks.rule_applies(parsed, "db", {})


# ============================================================================================
# Validation: rule errors name the rule, the key and the value
# ============================================================================================

@pytest.mark.parametrize("hook_rules, label, key, value", [
    pytest.param([{"pre": []}], "hooks[0]", "name", None, id="rule-missing-name"),
    pytest.param([{"name": ""}], "hooks[0]", "name", "", id="rule-empty-name"),
    pytest.param([{"name": 7}], "hooks[0]", "name", 7, id="rule-name-not-string"),
    pytest.param([rule("ok"), {"name": "x", "includeNamespaces": ["db"]}], 'hooks[1] ("x")', "includeNamespaces",
                 ["db"], id="rule-unknown-key-names-second-rule"),
    pytest.param([{"name": "x", "pre": [{"exec": {"command": ["/a"]}, "wait": True}]}], 'hooks[0] ("x")',
                 "pre[0].wait", True, id="rule-unknown-key-in-pre-item"),
    pytest.param([{"name": "x", "post": [{"exec": {"command": ["/a"], "onerror": "Fail"}}]}], 'hooks[0] ("x")',
                 "post[0].exec.onerror", "Fail", id="rule-unknown-key-in-exec"),
    pytest.param([rule("x", excludedNamespaces=["*"])], 'hooks[0] ("x")', "excludedNamespaces", "*",
                 id="rule-star-in-excluded-namespaces"),
    pytest.param([rule("x", excludedNamespaces=["db", "*"])], 'hooks[0] ("x")', "excludedNamespaces", "*",
                 id="rule-star-among-excluded-namespaces"),
    pytest.param([rule("x", includedNamespaces=["team-**"])], 'hooks[0] ("x")', "includedNamespaces", "team-**",
                 id="rule-bad-glob-double-star"),
    pytest.param([rule("x", includedNamespaces=["team-["])], 'hooks[0] ("x")', "includedNamespaces", "team-[",
                 id="rule-bad-glob-unclosed-bracket"),
    pytest.param([rule("x", excludedNamespaces=["a]"])], 'hooks[0] ("x")', "excludedNamespaces", "a]",
                 id="rule-bad-glob-in-excluded"),
    pytest.param([rule("x", includedNamespaces="db")], 'hooks[0] ("x")', "includedNamespaces", "db",
                 id="rule-namespaces-not-a-list"),
    pytest.param([rule("x", excludedResources=["*"])], 'hooks[0] ("x")', "excludedResources", "*",
                 id="rule-star-in-excluded-resources"),
    pytest.param([rule("x", includedResources=["pods["])], 'hooks[0] ("x")', "includedResources", "pods[",
                 id="rule-bad-resource-pattern"),
    pytest.param([rule("x", labelSelector={"matchLabels": {"app": "a b"}})], 'hooks[0] ("x")',
                 "labelSelector.matchLabels.app", "a b", id="rule-bad-selector-label-value"),
    pytest.param([rule("x", labelSelector={"matchLabels": {"bad key": "a"}})], 'hooks[0] ("x")',
                 "labelSelector.matchLabels.bad key", "a", id="rule-bad-selector-label-key"),
    pytest.param([rule("x", labelSelector={"matchLabels": {"version": 1}})], 'hooks[0] ("x")',
                 "labelSelector.matchLabels.version", 1, id="rule-bad-selector-label-value-not-string"),
    pytest.param([rule("x", labelSelector={"matchLabel": {"app": "a"}})], 'hooks[0] ("x")',
                 "labelSelector.matchLabel", {"app": "a"}, id="rule-bad-selector-unknown-key"),
    pytest.param([rule("x", labelSelector={"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]})],
                 'hooks[0] ("x")', "labelSelector.matchExpressions[0].operator", "in",
                 id="rule-bad-selector-operator-case"),
    pytest.param([rule("x", labelSelector={"matchExpressions": [{"key": "a", "operator": "In"}]})],
                 'hooks[0] ("x")', "labelSelector.matchExpressions[0]", {"key": "a", "operator": "In"},
                 id="rule-bad-selector-in-without-values"),
    pytest.param([rule("x", labelSelector={"matchExpressions": [{"key": "a", "operator": "Exists",
                                                                 "values": ["b"]}]})],
                 'hooks[0] ("x")', "labelSelector.matchExpressions[0]",
                 {"key": "a", "operator": "Exists", "values": ["b"]}, id="rule-bad-selector-exists-with-values"),
    pytest.param([rule("x", labelSelector={"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"],
                                                                 "value": "c"}]})],
                 'hooks[0] ("x")', "labelSelector.matchExpressions[0].value", "c",
                 id="rule-bad-selector-expression-unknown-key"),
    pytest.param([rule("x", labelSelector="app=db")], 'hooks[0] ("x")', "labelSelector", "app=db",
                 id="rule-bad-selector-string-instead-of-mapping"),
    pytest.param([rule("x", pre=[{"command": ["/a"], "onError": "fail"}])], 'hooks[0] ("x")',
                 "pre[0].exec.onError", "fail", id="rule-bad-on-error"),
    pytest.param([rule("x", post=[{"command": ["/a"], "onError": ""}])], 'hooks[0] ("x")',
                 "post[0].exec.onError", "", id="rule-empty-on-error"),
    pytest.param([rule("x", pre=[{"command": ["/a"], "timeout": "0s"}])], 'hooks[0] ("x")',
                 "pre[0].exec.timeout", "0s", id="rule-zero-timeout"),
    pytest.param([rule("x", pre=[{"command": ["/a"], "timeout": "1y"}])], 'hooks[0] ("x")',
                 "pre[0].exec.timeout", "1y", id="rule-bad-timeout"),
    pytest.param([rule("x", pre=[{"command": ["/a"], "timeout": -5}])], 'hooks[0] ("x")',
                 "pre[0].exec.timeout", -5, id="rule-negative-timeout"),
    pytest.param([rule("x", pre=[{"command": "/bin/true"}])], 'hooks[0] ("x")',
                 "pre[0].exec.command", "/bin/true", id="rule-command-string-not-list"),
    pytest.param([rule("x", pre=[{"command": []}])], 'hooks[0] ("x")',
                 "pre[0].exec.command", [], id="rule-command-empty-list"),
    pytest.param([rule("x", pre=[{"container": "db"}])], 'hooks[0] ("x")',
                 "pre[0].exec.command", None, id="rule-command-missing"),
    pytest.param([rule("x", pre=[{"command": ["/a", 2]}])], 'hooks[0] ("x")',
                 "pre[0].exec.command", ["/a", 2], id="rule-command-non-string"),
    pytest.param([rule("x", pre=[{"command": ["/a"], "container": ""}])], 'hooks[0] ("x")',
                 "pre[0].exec.container", "", id="rule-empty-container"),
    pytest.param([{"name": "x", "pre": [{"exec": "/bin/true"}]}], 'hooks[0] ("x")', "pre[0].exec", "/bin/true",
                 id="rule-exec-not-mapping"),
    pytest.param([{"name": "x", "pre": {"exec": {"command": ["/a"]}}}], 'hooks[0] ("x")', "pre",
                 {"exec": {"command": ["/a"]}}, id="rule-pre-not-a-list"),
    pytest.param([{"name": "x", "post": ["/bin/true"]}], 'hooks[0] ("x")', "post[0]", "/bin/true",
                 id="rule-hook-entry-not-mapping"),
    pytest.param(["freeze"], "hooks[0]", "hooks[0]", "freeze", id="rule-not-a-mapping"),
])
def test_rule_errors_name_rule_key_and_value(hook_rules, label, key, value):
    with pytest.raises(RuleError) as info:
        hooks.parse_rules(hook_rules)
    error = info.value
    assert (error.rule, error.key, error.value) == (label, key, value)
    message = str(error)
    assert label in message and key in message and json.dumps(value, sort_keys=True) in message


def test_hooks_option_must_be_a_list():
    with pytest.raises(RuleError) as info:
        hooks.parse_rules({"resources": []})
    assert "must be a list" in str(info.value)


def test_no_hooks_option_means_no_rules():
    assert hooks.parse_rules(None) == [] and hooks.parse_rules([]) == []


def test_rule_error_stops_whole_plan_valid_rules_included():
    pods = [PODS["plain_db"], PODS["nginx_walkthrough"]]
    with pytest.raises(RuleError) as info:
        hooks.build_plan(pods, [FREEZE_RULE, rule("broken", excludedNamespaces=["*"])])
    assert '"broken"' in str(info.value)


def test_invalid_selector_stops_whole_plan():
    with pytest.raises(RuleError):
        hooks.build_plan([PODS["plain_db"]], [rule("x", labelSelector={"matchLabels": {"app": "!"}})])


# ============================================================================================
# the plan (build_plan) and its shapes
# ============================================================================================

def plan_pods():
    return [copy.deepcopy(PODS[name]) for name in ("with_sidecar", "nginx_walkthrough", "plain_db", "legacy_only")]


def test_plan_shape_and_order():
    plan = hooks.build_plan(plan_pods(), [FREEZE_RULE])
    assert set(plan) == {"pods", "errors"}
    assert [(p["namespace"], p["name"]) for p in plan["pods"]] == [
        ("db", "db-0"), ("db", "db-sidecar"), ("legacy", "old-app"), ("nginx-example", "nginx-deployment-5d9c6f7b8-abcde")]
    for entry in plan["pods"]:
        assert set(entry) >= {"namespace", "name", "phase", "pre", "post", "errors"}
        for phase in ("pre", "post"):
            for hook in entry[phase]:
                assert set(hook) == HOOK_KEYS
                assert isinstance(hook["command"], list) and isinstance(hook["timeout"], (int, float))
    assert plan["errors"] == [e for entry in plan["pods"] for e in entry["errors"]]
    assert [(e["pod"], e["phase"], e["key"]) for e in plan["errors"]] == [("db-sidecar", "post", POST + "container")]


def test_plan_is_json_serialisable_and_deterministic():
    first = hooks.build_plan(plan_pods(), [FREEZE_RULE])
    second = hooks.build_plan(list(reversed(plan_pods())), [FREEZE_RULE])
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_plan_rules_raw_or_parsed_give_the_same_plan():
    assert hooks.build_plan(plan_pods(), [FREEZE_RULE]) == hooks.build_plan(
        plan_pods(), hooks.parse_rules([FREEZE_RULE]))


@pytest.mark.parametrize("included, excluded, selectors, names", [
    pytest.param([], [], [], ["db-0", "db-sidecar", "old-app", "nginx-deployment-5d9c6f7b8-abcde"],
                 id="plan-scope-all"),
    pytest.param(["db"], [], [], ["db-0", "db-sidecar"], id="plan-scope-included"),
    pytest.param(["*", "db"], ["db"], [], ["old-app", "nginx-deployment-5d9c6f7b8-abcde"],
                 id="plan-scope-exclude-wins"),
    pytest.param(["nginx-*", "leg?cy"], [], [], ["old-app", "nginx-deployment-5d9c6f7b8-abcde"],
                 id="plan-scope-globs"),
    pytest.param([], [], ["app=db"], ["db-0", "db-sidecar"], id="plan-label-selector"),
    pytest.param([], [], ["app=db", "tier"], ["db-0"], id="plan-label-selectors-anded"),
    pytest.param(["db"], [], ["!tier"], ["db-sidecar"], id="plan-scope-and-selector"),
])
def test_plan_scope(included, excluded, selectors, names):
    plan = hooks.build_plan(plan_pods(), [], included, excluded, selectors)
    assert sorted(p["name"] for p in plan["pods"]) == sorted(names)


def test_plan_pod_without_hooks_is_listed_with_empty_phases():
    plan = hooks.build_plan([PODS["plain_db"]], [])
    assert plan["pods"] == [{"namespace": "db", "name": "db-0", "phase": "Running", "pre": [], "post": [],
                             "errors": []}]
    assert plan["errors"] == []


@pytest.mark.parametrize("included, excluded, selectors", [
    pytest.param([], ["*"], [], id="plan-scope-star-excluded"),
    pytest.param(["bad_ns"], [], [], id="plan-scope-bad-pattern"),
    pytest.param([], [], ["app in ("], id="plan-scope-bad-selector"),
])
def test_plan_scope_errors(included, excluded, selectors):
    with pytest.raises(ScopeError):
        hooks.build_plan(plan_pods(), [], included, excluded, selectors)


# ============================================================================================
# phase_sequence interleaves valid and invalid hooks by index (what pod_hooks runs)
# ============================================================================================

def interleaved_entry():
    rules = [rule("r", pre=[{"command": ["/a"]}, {"command": ["/b"], "container": "ghost"}, {"command": ["/c"]}])]
    return resolve(PODS["plain_db"], rules)


def test_phase_sequence_interleaves_by_index():
    sequence = hooks.phase_sequence(interleaved_entry(), "pre")
    assert [item["index"] for item in sequence] == [0, 1, 2]
    assert ["message" in item for item in sequence] == [False, True, False]
    assert [item.get("command") for item in sequence] == [["/a"], None, ["/c"]]


def test_phase_sequence_works_on_plan_round_tripped_through_json():
    entry = json.loads(json.dumps(interleaved_entry()))
    entry["pre"].reverse()  # order on the wire must not matter: index decides
    assert [item["index"] for item in hooks.phase_sequence(entry, "pre")] == [0, 1, 2]


def test_phase_sequence_only_its_phase():
    entry = resolve(pod({PRE + "command": "/x", POST + "command": "/y", POST + "timeout": "bad"}))
    assert [i["command"] for i in hooks.phase_sequence(entry, "pre")] == [["/x"]]
    post = hooks.phase_sequence(entry, "post")
    assert len(post) == 1 and post[0]["key"] == POST + "timeout"


def test_phase_sequence_empty_and_bad_phase():
    assert hooks.phase_sequence({"pre": [], "post": []}, "post") == []
    with pytest.raises(ValueError):
        hooks.phase_sequence({}, "during")
