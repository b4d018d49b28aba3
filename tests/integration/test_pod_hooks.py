"""pod_hooks_info and pod_hooks against the local cluster: real exec on the real node, kwok for scale."""
import json
import os
import stat
import time

import pytest

from modrun import run_module

PRE = "pre.hook.backup.velero.io/"
POST = "post.hook.backup.velero.io/"
SHELL = "/bin/sh"  # the hooks below are argv lists; a test may still choose to exec a shell


def auth(cluster):
    return {"kubeconfig": cluster.kubeconfig}


def info(cluster, namespace, **args):
    return run_module("pod_hooks_info", dict(auth(cluster), included_namespaces=[namespace], **args))


def hooks_of(cluster, namespace, phase, check_mode=False, **args):
    return run_module("pod_hooks", dict(auth(cluster), included_namespaces=[namespace], phase=phase, **args),
                      check_mode=check_mode)


def by_pod(result):
    out = {}
    for hook in result["hooks"]:
        out.setdefault(hook["pod"], []).append(hook)
    return out


def rule(name, pre=None, post=None, **extra):
    body = {"name": name}
    body.update(extra)
    if pre is not None:
        body["pre"] = [{"exec": spec} for spec in pre]
    if post is not None:
        body["post"] = [{"exec": spec} for spec in post]
    return body


@pytest.mark.real_node
def test_exit_codes_argv_and_output_as_the_real_node_reports_them(cluster, namespace, pods):
    pods.real_pod("exits", annotations={
        PRE + "command": json.dumps(["/usr/bin/printf", "%s|", "a b", "c"]),
        POST + "command": json.dumps([SHELL, "-c", "echo oops >&2; exit 7"]),
    })
    pre = hooks_of(cluster, namespace, "pre")
    assert pre["hooks"][0]["status"] == "succeeded", pre
    assert pre["hooks"][0]["stdout"] == "a b|c|"  # spaces inside an argument survive: no shell split
    assert pre["hooks"][0]["exit_code"] == 0 and pre["changed"] is True

    post = hooks_of(cluster, namespace, "post")
    hook = post["hooks"][0]
    assert post["failed"] is True
    assert hook["status"] == "failed" and hook["exit_code"] == 7 and hook["stderr"] == "oops\n"
    assert "exits" in post["msg"] and "post hook" in post["msg"]
    assert (post["hooks_attempted"], post["hooks_failed"]) == (1, 1)


@pytest.mark.real_node
def test_a_command_string_is_one_program_name_never_split(cluster, namespace, pods):
    pods.real_pod("split", annotations={PRE + "command": "/bin/echo hello", PRE + "on-error": "Continue"})
    result = hooks_of(cluster, namespace, "pre")
    hook = result["hooks"][0]
    assert hook["command"] == ["/bin/echo hello"]
    assert hook["status"] == "failed" and hook["exit_code"] is None
    assert "no such file" in hook["error"].lower()
    assert not result.get("failed")  # on-error Continue: the task itself does not fail


@pytest.mark.real_node
def test_annotations_win_per_phase_and_rules_run_in_order(cluster, namespace, pods):
    log = "/tmp/order"

    def step(text):
        return {"command": [SHELL, "-c", "echo %s >> %s" % (text, log)]}
    pods.real_pod("both", labels={"app": "db"}, annotations={PRE + "command": json.dumps(step("annotation")["command"])})
    pods.real_pod("rules-only", labels={"app": "db"})
    rules = [rule("first", pre=[step("r1a"), step("r1b")], post=[step("post1")], labelSelector={"matchLabels": {"app": "db"}}),
             rule("second", pre=[step("r2")], post=[step("post2")], includedNamespaces=[namespace])]
    pre = hooks_of(cluster, namespace, "pre", hooks=rules)
    post = hooks_of(cluster, namespace, "post", hooks=rules)
    # Read the files back with a post rule: "both" has no post annotation, so rules reach it there.
    cat = run_module("pod_hooks", dict(auth(cluster), phase="post", hooks=[rule("cat", post=[{"command": ["/bin/cat", log]}])],
                                       included_namespaces=[namespace]))
    out = {h["pod"]: h["stdout"].split() for h in cat["hooks"]}
    # The annotation replaces the rules for pre only; post still comes from the rules.
    assert out["both"] == ["annotation", "post1", "post2"]
    assert out["rules-only"] == ["r1a", "r1b", "r2", "post1", "post2"]
    assert [(h["source"], h["name"]) for h in by_pod(pre)["both"]] == [("annotation", "<from-annotation>")]
    assert [h["name"] for h in by_pod(pre)["rules-only"]] == ["first", "first", "second"]
    assert all(h["status"] == "succeeded" for h in pre["hooks"] + post["hooks"])


@pytest.mark.real_node
def test_fail_stops_the_pod_continue_goes_on(cluster, namespace, pods):
    pods.real_pod("fail", labels={"mode": "fail"})
    pods.real_pod("cont", labels={"mode": "cont"})
    hooks = [rule("f", pre=[{"command": ["/bin/false"], "onError": "Fail"}, {"command": ["/bin/true"]}],
                  labelSelector={"matchLabels": {"mode": "fail"}}),
             rule("c", pre=[{"command": ["/bin/false"], "onError": "Continue"}, {"command": ["/bin/true"]}],
                  labelSelector={"matchLabels": {"mode": "cont"}})]
    result = hooks_of(cluster, namespace, "pre", hooks=hooks)
    pods_ = by_pod(result)
    assert [h["status"] for h in pods_["fail"]] == ["failed", "not_run"]
    assert [h["status"] for h in pods_["cont"]] == ["failed", "succeeded"]
    assert pods_["fail"][0]["exit_code"] == 1
    assert result["failed"] is True
    assert "%s/fail:" % namespace in result["msg"] and "%s/cont:" % namespace not in result["msg"]
    assert (result["hooks_attempted"], result["hooks_failed"]) == (4, 2)


@pytest.mark.real_node
def test_timeout_returns_soon_after_it_expires(cluster, namespace, pods):
    pods.real_pod("slow", annotations={PRE + "command": json.dumps(["/bin/sleep", "60"]), PRE + "timeout": "2s"})
    started = time.monotonic()
    result = hooks_of(cluster, namespace, "pre")
    elapsed = time.monotonic() - started
    hook = result["hooks"][0]
    assert hook["status"] == "failed" and hook["error"] == "timed out after 2s"
    assert 2 <= hook["duration"] < 10 and elapsed < 30, (hook, elapsed)


@pytest.mark.real_node
def test_default_container_is_the_first_and_a_missing_one_is_an_error(cluster, namespace, pods):
    containers = [{"name": "one", "command": ["sleep", "infinity"], "env": [{"name": "WHO", "value": "first"}]},
                  {"name": "two", "command": ["sleep", "infinity"], "env": [{"name": "WHO", "value": "second"}]}]
    pods.real_pod("default", containers=containers,
                  annotations={PRE + "command": json.dumps([SHELL, "-c", "echo $WHO"])})
    pods.real_pod("missing", containers=containers,
                  annotations={PRE + "command": json.dumps(["/bin/true"]), PRE + "container": "nope"})
    plan = info(cluster, namespace)
    assert [e["pod"] for e in plan["errors"]] == ["missing"]
    assert plan["errors"][0]["key"] == PRE + "container" and plan["errors"][0]["value"] == "nope"
    result = hooks_of(cluster, namespace, "pre")
    pods_ = by_pod(result)
    assert pods_["default"][0]["container"] == "one" and pods_["default"][0]["stdout"] == "first\n"
    assert pods_["missing"][0]["status"] == "failed" and "nope" in pods_["missing"][0]["error"]


@pytest.mark.real_node
def test_finished_pods_are_skipped_and_pods_without_hooks_untouched(cluster, namespace, pods, core_v1):
    done = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "done", "annotations": {PRE + "command": json.dumps(["/bin/true"])}},
            "spec": {"restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": cluster.node_name},
                     "containers": [{"name": "main", "image": cluster.node_image, "command": ["true"],
                                     "imagePullPolicy": "IfNotPresent"}]}}
    core_v1.create_namespaced_pod(namespace, done)
    pods.real_pod("plain")
    deadline = time.monotonic() + 60
    while pods.get("done").get("status", {}).get("phase") != "Succeeded":
        assert time.monotonic() < deadline, "pod did not complete"
        time.sleep(0.5)
    result = hooks_of(cluster, namespace, "pre")
    assert [(h["pod"], h["status"]) for h in result["hooks"]] == [("done", "skipped")]
    assert "Succeeded" in result["hooks"][0]["reason"]
    assert result["hooks_attempted"] == 0 and result["changed"] is False
    plan = info(cluster, namespace)
    assert {p["name"]: (p["pre"], p["post"]) for p in plan["pods"]}["plain"] == ([], [])


@pytest.mark.real_node
def test_check_mode_executes_nothing_and_the_log_has_veleros_fields(cluster, namespace, pods, tmp_path):
    pods.real_pod("marker", annotations={PRE + "command": json.dumps(["/bin/touch", "/tmp/ran"])})
    probe = [rule("probe", pre=[{"command": ["/bin/ls", "/tmp/ran"], "onError": "Continue"}])]
    checked = hooks_of(cluster, namespace, "pre", check_mode=True)
    assert [h["status"] for h in checked["hooks"]] == ["planned"]
    assert checked["hooks"][0]["command"] == ["/bin/touch", "/tmp/ran"]
    before = run_module("pod_hooks", dict(auth(cluster), phase="post", hooks=[dict(probe[0], post=probe[0]["pre"])],
                                          included_namespaces=[namespace]))
    assert before["hooks"][0]["exit_code"] != 0  # check mode really did not run the touch

    log = tmp_path / "logs" / "hooks.jsonl"
    hooks_of(cluster, namespace, "pre", log_path=str(log), backup="nginx-hook-test")
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["hookCommand"] == ["/bin/touch", "/tmp/ran"]
    assert entry["hookTimeout"] == "30s" and entry["hookOnError"] == "Fail"
    assert (entry["hookName"], entry["hookSource"], entry["hookType"], entry["hookPhase"]) == (
        "<from-annotation>", "annotation", "exec", "pre")
    assert entry["backup"] == "velero/nginx-hook-test" and entry["pod"] == "marker", entry
    assert entry["status"] == "succeeded", entry


def test_plan_round_trip_reaches_the_same_pods_and_a_deleted_pod_fails_clearly(cluster, namespace, pods, core_v1):
    pods.fake_pods(3, annotations={PRE + "command": json.dumps(["/bin/echo", "hi"])})
    plan = info(cluster, namespace)["pods"]
    assert [p["name"] for p in plan] == ["fake-0", "fake-1", "fake-2"]
    core_v1.delete_namespaced_pod("fake-1", namespace, grace_period_seconds=0)
    deadline = time.monotonic() + 30
    while any(p["metadata"]["name"] == "fake-1" for p in json.loads(
            core_v1.list_namespaced_pod(namespace, _preload_content=False).data)["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    result = run_module("pod_hooks", dict(auth(cluster), phase="pre", plan=plan))
    status = {h["pod"]: h for h in result["hooks"]}
    assert status["fake-0"]["status"] == status["fake-2"]["status"] == "succeeded"
    assert status["fake-1"]["status"] == "failed" and "not found" in status["fake-1"]["error"]


def test_parallel_execution_across_fake_node_pods(cluster, namespace, pods):
    pods.fake_pods(16, annotations={PRE + "command": json.dumps(["/bin/sleep", "1"])})
    started = time.monotonic()
    result = hooks_of(cluster, namespace, "pre", parallelism=8)
    wall = time.monotonic() - started
    serial = sum(h["duration"] for h in result["hooks"])
    assert len(result["hooks"]) == 16 and all(h["status"] == "succeeded" for h in result["hooks"])
    assert serial >= 16 and wall < serial / 2, (wall, serial)


def test_rule_errors_fail_the_task_and_run_nothing(cluster, namespace, pods):
    pods.fake_pods(1, annotations={PRE + "command": json.dumps(["/bin/true"])})
    bad = [rule("ok", pre=[{"command": ["/bin/true"]}]), {"name": "bad", "excludedNamespaces": ["*"]}]
    for module, extra in (("pod_hooks_info", {}), ("pod_hooks", {"phase": "pre"})):
        result = run_module(module, dict(auth(cluster), included_namespaces=[namespace], hooks=bad, **extra))
        assert result["failed"] is True and "bad" in result["msg"] and "excludedNamespaces" in result["msg"]
        assert "hooks" not in result


# Exactly what the modules document: list pods; get AND create on pods/exec (websocket exec).
EXEC_ROLE = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
             {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}]


def test_least_privilege_token_through_awx_style_environment(cluster, namespace, pods, sa_token):
    pods.fake_pods(2, annotations={PRE + "command": json.dumps(["/bin/echo", "ok"])})
    creds = sa_token(namespace, EXEC_ROLE)
    env = {"K8S_AUTH_HOST": creds["host"], "K8S_AUTH_API_KEY": creds["token"],
           "K8S_AUTH_SSL_CA_CERT": creds["ca_cert"], "K8S_AUTH_VERIFY_SSL": "true"}
    result = run_module("pod_hooks", {"phase": "pre", "included_namespaces": [namespace]}, env=env)
    assert [h["status"] for h in result["hooks"]] == ["succeeded", "succeeded"], result
    assert [h["stdout"] for h in result["hooks"]] == ["ok\n", "ok\n"]

    # Cluster-wide listing is not granted by a namespaced Role: the message names the permission.
    wide = run_module("pod_hooks_info", {"included_namespaces": [namespace[:-1] + "*"]}, env=env)
    assert wide["failed"] is True and "list pods cluster-wide" in wide["msg"]


def test_without_pods_exec_the_run_fails_clearly_and_runs_nothing(cluster, namespace, pods, sa_token):
    pods.fake_pods(1, annotations={PRE + "command": json.dumps(["/bin/echo", "ok"])})
    creds = sa_token(namespace, EXEC_ROLE[:1])
    args = {"host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"],
            "phase": "pre", "included_namespaces": [namespace]}
    result = run_module("pod_hooks", args)
    hook = result["hooks"][0]
    assert result["failed"] is True and hook["status"] == "failed"
    assert "pods/exec" in hook["error"] and "create" in hook["error"]
    assert hook["stdout"] == "" and hook["exit_code"] is None


def test_a_pending_pod_is_attempted_and_its_exec_error_is_the_failure(cluster, namespace, core_v1):
    core_v1.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pending", "annotations": {PRE + "command": json.dumps(["/bin/true"])}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "no-such-node"},
                 "containers": [{"name": "main", "image": cluster.node_image}]}})
    result = hooks_of(cluster, namespace, "pre")
    hook = result["hooks"][0]
    assert hook["status"] == "failed" and hook["exit_code"] is None
    assert "API error 400" in hook["error"], hook["error"]
    assert (result["hooks_attempted"], result["hooks_failed"]) == (1, 1) and result["failed"] is True
