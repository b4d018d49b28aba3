"""Hostile input through the real modules and the real API (the unit table is
tests/unit/plugins/module_utils/test_hostile_input.py): a tenant's pod annotation nested 5,000 deep fails
that pod's hook, not discovery, and the pod beside it keeps its hooks; a hand-written plan and a backup
name too long for the layout are refused with a clear message, before any hook runs."""
import json

from modrun import auth_args, run_module

PRE = "pre.hook.backup.velero.io/"


def test_a_5000_deep_command_annotation_fails_only_its_pod(cluster, namespace, pods):
    pods.fake_pods(1, prefix="deep", annotations={PRE + "command": "[" * 5000})
    pods.fake_pods(1, prefix="normal", annotations={PRE + "command": json.dumps(["/bin/true"])})
    result = run_module("pod_hooks_info", dict(auth_args(cluster), included_namespaces=[namespace]))
    assert not result.get("failed"), result.get("msg")
    by_name = dict((pod["name"], pod) for pod in result["pods"])
    assert by_name["normal-0"]["pre"][0]["command"] == ["/bin/true"] and not by_name["normal-0"]["errors"]
    assert by_name["deep-0"]["pre"] == [] and len(result["errors"]) == 1
    error = result["errors"][0]
    assert error["pod"] == "deep-0" and error["key"] == PRE + "command"
    assert "pod %s/deep-0" % namespace in error["message"] and "nested" in error["message"]
    assert "Traceback" not in json.dumps(result) and "RecursionError" not in json.dumps(result)


def test_a_hand_written_plan_with_a_text_timeout_is_refused_before_any_hook(cluster, namespace):
    plan = [{"namespace": namespace, "name": "web-0", "phase": "Running", "errors": [], "post": [],
             "pre": [{"container": "app", "command": ["/bin/true"], "on_error": "Fail", "timeout": "30",
                      "index": 0, "name": "<from-annotation>", "source": "annotation"}]}]
    result = run_module("pod_hooks", dict(auth_args(cluster), phase="pre", plan=plan))
    assert result.get("failed") and not result.get("hooks")
    assert result["msg"].startswith("plan[0].pre[0] (pod %s/web-0): the timeout must be a number" % namespace)
    assert "Unexpected error" not in result["msg"] and "exception" not in result


def test_a_backup_name_too_long_for_the_layout_is_refused_before_anything_is_written(tmp_path):
    name = "n" * 230
    result = run_module("backup_record", {"state": "started", "name": name, "storage_dir": str(tmp_path / "s"),
                                          "plan": []})
    assert result.get("failed") and "230 characters): at most 210 characters are allowed" in result["msg"]
    assert not (tmp_path / "s").exists()
