"""_restore_hooks: Velero's restore hook annotations and rules, parsed strictly; the executor's
sequencing with a fake exec (the real ones: tests/integration/test_restore_hooks.py)."""
import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_hooks as rh
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import RuleError

INIT = rh.INIT_DOMAIN
POST = rh.POST_DOMAIN


def pod(annotations=None, labels=None, namespace="target", containers=("app", "side")):
    return {"metadata": {"name": "p", "namespace": namespace, "annotations": annotations or {},
                         "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": "own-init", "image": "x"}]}}


SEED = {"name": "seed", "image": "busybox", "command": ["sh", "-c", "echo hi"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}


def rules(**extra):
    rule = {"name": "r", "includedNamespaces": ["target"], "labelSelector": {"matchLabels": {"app": "web"}},
            "postHooks": [{"init": {"initContainers": [SEED], "timeout": "1m"}},
                          {"exec": {"command": ["/bin/true"], "onError": "Continue", "execTimeout": "5s",
                                    "waitTimeout": "1m", "waitForReady": True}},
                          {"exec": {"container": "side", "command": ["/bin/false"]}}]}
    rule.update(extra)
    return rh.parse_restore_rules([rule])


def test_rules_parse_velero_restore_spec():
    (rule,) = rules()
    assert rule.inits == [SEED]
    first, second = rule.execs
    assert (first["container"], first["on_error"], first["timeout"], first["wait_timeout"], first["wait_for_ready"]) == \
        (None, "Continue", 5, 60, True)
    assert (second["container"], second["on_error"], second["timeout"], second["wait_timeout"],
            second["wait_for_ready"]) == ("side", "Fail", 30, None, False)


@pytest.mark.parametrize("rule, words", [
    ({"name": "r", "postHooks": [{"exec": {"command": ["x"], "waitForReady": "yes"}}]}, ["waitForReady", "ParseBool"]),
    ({"name": "r", "postHooks": [{"exec": {"command": ["x"], "execTimeout": "0s"}}]}, ["execTimeout"]),
    ({"name": "r", "postHooks": [{"exec": {"command": ["x"], "waitTimeout": "abc"}}]}, ["waitTimeout"]),
    ({"name": "r", "postHooks": [{"exec": {"command": ["x"], "onError": "fail"}}]}, ["onError", "Fail or Continue"]),
    ({"name": "r", "postHooks": [{"exec": {"command": []}}]}, ["command"]),
    ({"name": "r", "postHooks": [{"exec": {"command": ["x"], "timeout": "1s"}}]}, ["timeout"]),
    ({"name": "r", "postHooks": [{"init": {"initContainers": [{"name": "a", "image": "b"}]}}]}, ["command"]),
    ({"name": "r", "postHooks": [{"init": {"initContainers": [{"name": "a", "command": ["x"]}]}}]}, ["image"]),
    ({"name": "r", "postHooks": [{"init": {"initContainers": []}}]}, ["initContainers"]),
    ({"name": "r", "postHooks": [{"pre": {}}]}, ["pre"]),
    ({"name": "r", "pre": []}, ["pre"]),
    ({"postHooks": []}, ["name"]),
    ({"name": "r", "labelSelector": {"matchLabels": {"a": "b c"}}}, ["labelSelector"]),
])
def test_invalid_rules_are_clear_errors(rule, words):
    with pytest.raises(RuleError) as err:
        rh.parse_restore_rules([rule])
    for word in words:
        assert word in str(err.value), str(err.value)
    assert "hooks[0]" in str(err.value)


def test_go_parse_bool_values():
    for value in ("1", "t", "T", "TRUE", "true", "True", True):
        assert rh.parse_bool(value) is True
    for value in ("0", "f", "F", "FALSE", "false", "False", False, None):
        assert rh.parse_bool(value) is False
    for value in ("yes", "", " true", "tRUE"):
        with pytest.raises(ValueError):
            rh.parse_bool(value)


def test_init_annotation_adds_one_container_first_and_wins_over_rules():
    annotated = pod({INIT + "container-image": "img", INIT + "command": '["sh", "-c", "echo x"]'})
    containers, source = rh.init_containers(annotated, rules())
    assert source == "annotation"
    assert containers == [{"name": rh.init_container_name("target", "p"), "image": "img",
                           "command": ["sh", "-c", "echo x"]}]
    rh.add_init_containers(annotated, containers)
    assert [c["name"] for c in annotated["spec"]["initContainers"]] == [containers[0]["name"], "own-init"]
    named, _source = rh.init_containers(pod({INIT + "container-image": "img", INIT + "container-name": "n",
                                             INIT + "command": "/bin/prep"}), [])
    assert named == [{"name": "n", "image": "img", "command": ["/bin/prep"]}]
    entrypoint, _source = rh.init_containers(pod({INIT + "container-image": "img"}), [])
    assert "command" not in entrypoint[0]   # the image's entrypoint, as Velero


@pytest.mark.parametrize("annotations, key", [
    ({INIT + "container-image": "img", INIT + "command": "[oops"}, "command"),
    ({INIT + "container-image": "img", INIT + "container-name": ""}, "container-name"),
])
def test_invalid_init_annotations_fail_the_pod(annotations, key):
    with pytest.raises(rh.InitHookError) as err:
        rh.init_containers(pod(annotations), [])
    assert "pod target/p" in str(err.value) and INIT + key in str(err.value)


def test_rule_init_hooks_match_the_target_namespace_and_labels():
    containers, source = rh.init_containers(pod(), rules())
    assert (containers, source) == ([SEED], "spec")
    assert rh.init_containers(pod(namespace="source"), rules()) == ([], "spec")
    assert rh.init_containers(pod(labels={"app": "db"}), rules()) == ([], "spec")


def test_exec_annotation_defaults_and_precedence():
    entry = rh.exec_hooks(pod({POST + "command": '["/bin/touch", "/x"]'}), rules(), wait_timeout=42)
    (hook,) = entry["post"]
    assert (hook["source"], hook["name"], hook["container"], hook["on_error"], hook["timeout"], hook["wait_timeout"],
            hook["wait_for_ready"]) == ("annotation", "<from-annotation>", "app", "Fail", 30, 42, False)
    full = rh.exec_hooks(pod({POST + "command": "/bin/x", POST + "container": "side", POST + "on-error": "Continue",
                              POST + "exec-timeout": "2s", POST + "wait-timeout": "1m30s",
                              POST + "wait-for-ready": "T"}), [])
    (hook,) = full["post"]
    assert (hook["container"], hook["on_error"], hook["timeout"], hook["wait_timeout"], hook["wait_for_ready"]) == \
        ("side", "Continue", 2, 90, True)


def test_exec_rules_apply_in_order_without_an_annotation():
    entry = rh.exec_hooks(pod(), rules())
    assert [(h["name"], h["container"], h["index"]) for h in entry["post"]] == [("r", "app", 0), ("r", "side", 1)]
    assert rh.exec_hooks(pod(namespace="elsewhere"), rules())["post"] == []


@pytest.mark.parametrize("key, value", [
    ("exec-timeout", "abc"), ("exec-timeout", "0"), ("wait-timeout", "-1s"), ("wait-for-ready", "yes"),
    ("on-error", "continue"), ("container", "missing"), ("command", "[1, 2]"),
])
def test_invalid_exec_annotations_are_errors_not_defaults(key, value):
    annotations = {POST + "command": '["/bin/true"]'}
    annotations[POST + key] = value
    entry = rh.exec_hooks(pod(annotations), rules())
    assert entry["post"] == []
    (error,) = entry["errors"]
    assert error["key"] == POST + key and error["value"] == value and "pod target/p" in error["message"]


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_container_running_ready_and_timeout():
    states = {"running": {"status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": False, "state": {"running": {}}}]}}}

    def call(method, path):
        return states["running"]
    clock = Clock()
    assert rh.wait_for_container(call, "ns", "p", "app", False, 5, clock=clock, sleep=clock.sleep) is None
    problem = rh.wait_for_container(call, "ns", "p", "app", True, 2, clock=clock, sleep=clock.sleep)
    assert problem == "container app was not ready within the wait-timeout 2s (running, not ready)"

    def gone(method, path):
        raise ApiRequestError(404, "not found")
    assert "no longer exists" in rh.wait_for_container(gone, "ns", "p", "app", False, 2, clock=clock,
                                                       sleep=clock.sleep)


def test_run_exec_hooks_uses_the_executors_on_error_sequencing():
    entry = rh.exec_hooks(pod(), rh.parse_restore_rules([{"name": "r", "postHooks": [
        {"exec": {"command": ["a"], "onError": "Continue"}},
        {"exec": {"command": ["b"]}},
        {"exec": {"command": ["c"]}}]}]))
    calls = []

    def fake_exec(client, namespace, name, container, argv, timeout, output_cap=None, hook=None):
        calls.append((argv, hook["wait_timeout"]))
        return dict(status="failed", error="exit 1", exit_code=1)
    results = rh.run_exec_hooks([entry], object, exec_fn=fake_exec)
    assert [r["status"] for r in results] == ["failed", "failed", "not_run"]
    assert calls == [(["a"], rh.DEFAULT_WAIT_TIMEOUT), (["b"], rh.DEFAULT_WAIT_TIMEOUT)]
    entry_log = rh.log_entry(results[0], "r1")
    assert entry_log["restore"] == "velero/r1" and entry_log["hookCommand"] == ["a"] and entry_log["hookPhase"] == ""
