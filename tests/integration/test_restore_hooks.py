"""Restore hooks against the real node: Velero's init and post exec hook annotations and Restore
spec.hooks.resources rules, run in the restored pods (real init containers, real pods/exec), with their
effects read back from inside the containers; on-error Fail/Continue, the exec timeout, the wait timeout
(a container that never gets ready), an invalid annotation, hookStatus and the JSON-lines log."""
import gzip
import json
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._exec import exec_hook
from modrun import admin_api as api
from modrun import run_module
from test_restore import delete_namespace, shipped_role_rules
from test_restore import wait as wait_for

pytestmark = pytest.mark.real_node

INIT = "init.hook.restore.velero.io/"
POST = "post.hook.restore.velero.io/"


def pod(cluster, name, annotations=None, ready_probe=None):
    main = {"name": "main", "image": cluster.node_image, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "infinity"], "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    if ready_probe:
        main["readinessProbe"] = {"exec": {"command": ready_probe}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": cluster.node_name},
                     "terminationGracePeriodSeconds": 0, "containers": [main],
                     "volumes": [{"name": "shared", "emptyDir": {}}]}}


def rules(cluster, target):
    seed = {"name": "seed", "image": cluster.node_image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo seeded > /shared/init.txt"],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    return [
        {"name": "seed-b", "includedNamespaces": [target], "labelSelector": {"matchLabels": {"app": "b"}},
         "postHooks": [{"init": {"initContainers": [seed]}}]},
        {"name": "exec-b", "includedNamespaces": [target], "labelSelector": {"matchLabels": {"app": "b"}},
         "postHooks": [
             {"exec": {"container": "main", "command": ["sh", "-c", "cat /shared/init.txt > /shared/seen.txt"]}},
             {"exec": {"command": ["false"], "onError": "Continue"}},
             {"exec": {"command": ["sh", "-c", "echo after-continue >> /shared/seen.txt"]}},
             {"exec": {"command": ["sleep", "5"], "execTimeout": "1s", "onError": "Continue"}},
             {"exec": {"command": ["false"], "onError": "Fail"}},
             {"exec": {"command": ["sh", "-c", "echo never > /shared/never.txt"]}}]},
        # the source namespace's name matches nothing: rules see the TARGET namespace (Velero issue 4720)
        {"name": "wrong-namespace", "includedNamespaces": ["not-" + target],
         "postHooks": [{"exec": {"command": ["sh", "-c", "echo wrong > /shared/wrong.txt"]}}]},
    ]


def run_in(api_client, namespace, name, script):
    result = exec_hook(api_client, namespace, name, "main", ["sh", "-c", script], 20)
    assert result["status"] == "succeeded", result
    return result["stdout"]


def test_init_and_exec_hooks_run_in_the_restored_pods(cluster, namespace, api_client, tmp_path):
    storage = str(tmp_path / "storage")
    base = "/api/v1/namespaces/%s/pods" % namespace
    api().create(base, pod(cluster, "a", {
        INIT + "container-image": cluster.node_image, INIT + "container-name": "restore-init",
        INIT + "command": '["sh", "-c", "echo from-init-annotation"]',
        POST + "container": "main", POST + "command": '["sh", "-c", "echo post-ran > /shared/post.txt"]',
        POST + "wait-for-ready": "true", POST + "exec-timeout": "20s"}))
    api().create(base, pod(cluster, "b"))
    api().create(base, pod(cluster, "c", {POST + "command": '["true"]', POST + "wait-for-ready": "true",
                                          POST + "wait-timeout": "2s"}, ready_probe=["false"]))
    api().create(base, pod(cluster, "d", {POST + "command": '["true"]', POST + "exec-timeout": "abc",
                                          POST + "on-error": "fail"}))
    exported = run_module("resource_export", {"kubeconfig": cluster.kubeconfig, "name": "b1", "storage_dir": storage,
                                              "cluster": "c1", "included_namespaces": [namespace]})
    assert not exported.get("failed"), exported

    target = namespace + "-h"
    args = {"kubeconfig": cluster.kubeconfig, "backup": "b1", "storage_dir": storage, "cluster": "c1",
            "namespace_mappings": {namespace: target}, "hooks": rules(cluster, target)}
    try:
        plan = run_module("restore_resources", dict(args, name="plan"), check_mode=True)
        assert not plan.get("failed"), plan
        planned = {p["pod"]: p for p in plan["hooks"]}
        assert [h["command"] for h in planned["b"]["hooks"]][0] == ["sh", "-c", "cat /shared/init.txt > /shared/seen.txt"]
        assert planned["d"]["errors"][0]["key"] == POST + "on-error", planned["d"]

        result = run_module("restore_resources", dict(args, name="r1"), timeout=300)
        assert result["phase"] == "PartiallyFailed", result
        by_pod = {}
        for hook in result["hooks"]:
            by_pod.setdefault(hook["pod"], []).append(hook)
        assert [h["status"] for h in by_pod["a"]] == ["succeeded"], by_pod["a"]
        assert [h["status"] for h in by_pod["b"]] == ["succeeded", "failed", "succeeded", "failed", "failed",
                                                      "not_run"], by_pod["b"]
        assert by_pod["b"][3]["error"] == "timed out after 1s", by_pod["b"][3]
        assert [h["name"] for h in by_pod["b"]] == ["exec-b"] * 6
        (waited,) = by_pod["c"]
        assert waited["status"] == "failed" and "not ready within the wait-timeout 2s" in waited["error"], waited
        (invalid,) = by_pod["d"]
        assert invalid["status"] == "failed" and "exec-timeout" in invalid["error"] and "on-error" in invalid["error"]
        assert (result["hooks_attempted"], result["hooks_failed"]) == (9, 5)
        assert result["record"]["status"]["hookStatus"] == {"hooksAttempted": 9, "hooksFailed": 5}

        # the effects, read inside the restored containers
        assert run_in(api_client, target, "a", "cat /shared/post.txt") == "post-ran\n"
        assert run_in(api_client, target, "b", "cat /shared/seen.txt") == "seeded\nafter-continue\n"
        assert run_in(api_client, target, "b", "ls /shared") .split() == ["init.txt", "seen.txt"]  # never/wrong absent
        restored_a = api().get("/api/v1/namespaces/%s/pods/a" % target)
        assert [c["name"] for c in restored_a["spec"]["initContainers"]] == ["restore-init"]
        init_state = restored_a["status"]["initContainerStatuses"][0]["state"]["terminated"]
        assert init_state["exitCode"] == 0
        restored_b = api().get("/api/v1/namespaces/%s/pods/b" % target)
        assert [c["name"] for c in restored_b["spec"]["initContainers"]] == ["seed"]
        assert sorted((h["pod"], h["source"]) for h in result["init_hooks"]) == [("a", "annotation"), ("b", "spec")]

        rdir = os.path.join(storage, "c1", "restores", "r1")
        with gzip.open(os.path.join(rdir, "restore-r1-logs.gz")) as handle:
            log = [json.loads(line) for line in handle.read().decode().splitlines()]
        hook_lines = [e for e in log if "hookCommand" in e]
        assert len(hook_lines) == 9, hook_lines
        first = next(e for e in hook_lines if e["pod"] == "a")
        assert first["hookCommand"] == ["sh", "-c", "echo post-ran > /shared/post.txt"]
        assert (first["hookContainer"], first["hookName"], first["hookSource"], first["hookType"],
                first["restore"], first["hookTimeout"]) == ("main", "<from-annotation>", "annotation", "exec",
                                                            "velero/r1", "20s")
    finally:
        delete_namespace(target)


def test_exec_and_init_hooks_under_the_shipped_least_privilege_role(cluster, namespace, api_client, tmp_path, sa_token):
    storage = str(tmp_path / "storage")
    base = "/api/v1/namespaces/%s/pods" % namespace
    api().create(base, pod(cluster, "a", {
        INIT + "container-image": cluster.node_image, INIT + "command": '["true"]',
        POST + "command": '["sh", "-c", "echo least > /shared/post.txt"]'}))
    exported = run_module("resource_export", {"kubeconfig": cluster.kubeconfig, "name": "b1", "storage_dir": storage,
                                              "cluster": "c1", "included_namespaces": [namespace]})
    assert not exported.get("failed"), exported
    api().delete(base + "/a")
    wait_for(lambda: not api().get(base)["items"], 60, "pod a to be gone")
    creds = sa_token(namespace, shipped_role_rules())
    result = run_module("restore_resources", {
        "host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"], "backup": "b1",
        "storage_dir": storage, "cluster": "c1", "name": "least", "included_namespaces": [namespace],
        "include_cluster_resources": False, "included_resources": ["pods"]}, timeout=300)
    assert result["phase"] == "Completed", result.get("error_messages") or result
    assert [h["status"] for h in result["hooks"]] == ["succeeded"], result["hooks"]
    assert run_in(api_client, namespace, "a", "cat /shared/post.txt") == "least\n"
