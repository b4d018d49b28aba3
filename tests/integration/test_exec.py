"""The executor and pod discovery against the local cluster: real exec over the websocket.

Exit codes are checked on the real node (kwok reports no exit codes); scale and parallelism on kwok
fake-node pods, whose exec runs harmless host commands (true, sleep).
"""
import json
import time

import pytest
from kubernetes import config as k8s_config

from ansible_collections.kubehooks.backup.plugins.module_utils._client import ClientFactory
from ansible_collections.kubehooks.backup.plugins.module_utils._discovery import list_pods
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import exec_hook, run_phase
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import totals
from ansible_collections.kubehooks.backup.plugins.module_utils._hooks import build_plan

PRE_COMMAND = "pre.hook.backup.velero.io/command"


@pytest.fixture
def admin_factory(cluster):
    return lambda: k8s_config.new_client_from_config(config_file=cluster.kubeconfig)


@pytest.fixture
def real_pod(pods):
    return pods.real_pod("exec-target")["metadata"]["name"]


def token_factory(creds):
    return ClientFactory({"host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"]},
                         environ={})


def plan_for(api_client, namespace, page_size=500):
    pods = list(list_pods(api_client, [namespace], [], None, page_size=page_size))
    return build_plan(pods, [], included_namespaces=[namespace])["pods"]


@pytest.mark.real_node
def test_exit_codes_as_the_real_node_reports_them(api_client, namespace, real_pod):
    ok = exec_hook(api_client, namespace, real_pod, "main", ["/bin/true"], 30)
    assert (ok["status"], ok["exit_code"], ok["error"]) == ("succeeded", 0, None)

    seven = exec_hook(api_client, namespace, real_pod, "main", ["/bin/sh", "-c", "echo oops >&2; exit 7"], 30)
    assert (seven["status"], seven["exit_code"]) == ("failed", 7)
    assert seven["error"] == "command exited with code 7" and seven["stderr"] == "oops\n"

    missing = exec_hook(api_client, namespace, real_pod, "main", ["/no/such/program"], 30)
    assert (missing["status"], missing["exit_code"]) == ("failed", None)
    assert "no such file or directory" in missing["error"]

    # One string is one argv element, never split on spaces: the program "/bin/echo hi" does not exist.
    unsplit = exec_hook(api_client, namespace, real_pod, "main", ["/bin/echo hi"], 30)
    assert unsplit["status"] == "failed" and "no such file or directory" in unsplit["error"]


def agreed(ws):
    """The subprotocol the server chose, from its upgrade answer (the floor's WSClient does not keep it)."""
    return (ws.sock.getheaders() or {}).get("sec-websocket-protocol")


@pytest.mark.real_node
def test_the_real_node_speaks_v4_without_stdin_and_v5_with_it(api_client, namespace, real_pod):
    """Hooks and captures offer only v4 (the API server proxies it as it is, instead of translating a v5
    exec into SPDY): the real kubelet and containerd must accept it; a stdin exec keeps the client's v5."""
    from ansible_collections.kubehooks.backup.plugins.module_utils._api import open_exec

    plain = open_exec(api_client, namespace, real_pod, "main", ["/bin/true"], timeout=30)
    try:
        assert agreed(plain) == "v4.channel.k8s.io"
    finally:
        plain.close(timeout=1)
    fed = open_exec(api_client, namespace, real_pod, "main", ["/bin/cat"], timeout=30, stdin=True)
    try:
        from kubernetes.stream import ws_client  # v5 is offered since kubernetes 31 (not by the floor, 30.1)
        offered_first = "v5.channel.k8s.io" if hasattr(ws_client, "V5_CHANNEL_PROTOCOL") else "v4.channel.k8s.io"
        assert agreed(fed) == offered_first
    finally:
        fed.close(timeout=1)


@pytest.mark.real_node
def test_argv_with_spaces_inside_arguments(api_client, namespace, real_pod):
    result = exec_hook(api_client, namespace, real_pod, "main", ["/usr/bin/printf", "%s|", "a b", "c"], 30)
    assert result["status"] == "succeeded", result
    assert result["stdout"] == "a b|c|"


@pytest.mark.real_node
def test_timeout_closes_the_stream_soon_after_the_deadline(api_client, namespace, real_pod):
    start = time.monotonic()
    result = exec_hook(api_client, namespace, real_pod, "main", ["/bin/sleep", "30"], 2)
    elapsed = time.monotonic() - start
    assert result["status"] == "failed" and result["exit_code"] is None
    assert result["error"] == "timed out after 2s"
    assert 2 <= elapsed < 5, elapsed
    assert 2 <= result["duration"] < 5


@pytest.mark.real_node
def test_output_is_capped_and_flagged(api_client, namespace, real_pod):
    argv = ["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo done >&2"]
    small = exec_hook(api_client, namespace, real_pod, "main", argv, 30, output_cap=1000)
    assert small["status"] == "succeeded"
    assert small["stdout"] == "x" * 1000 and small["truncated"] is True
    assert small["stderr"] == "done\n"

    default = exec_hook(api_client, namespace, real_pod, "main", argv, 30)
    assert len(default["stdout"]) == 65536 and default["truncated"] is True

    fits = exec_hook(api_client, namespace, real_pod, "main", ["/usr/bin/printf", "%s", "x" * 5000], 30)
    assert fits["stdout"] == "x" * 5000 and fits["truncated"] is False


@pytest.mark.real_node
def test_missing_container_is_a_clear_failure(api_client, namespace, real_pod):
    result = exec_hook(api_client, namespace, real_pod, "nope", ["/bin/true"], 30)
    assert result["status"] == "failed"
    assert "API error 400" in result["error"] and "nope" in result["error"]


def test_parallel_across_fake_pods(pods, namespace, api_client, admin_factory):
    count = 16
    pods.fake_pods(count, annotations={PRE_COMMAND: '["sleep", "1"]'})
    plan = plan_for(api_client, namespace, page_size=5)  # 4 pages
    assert len(plan) == count and all(len(p["pre"]) == 1 for p in plan)

    start = time.monotonic()
    results = run_phase(plan, "pre", admin_factory, parallelism=8)
    elapsed = time.monotonic() - start
    assert [r["status"] for r in results] == ["succeeded"] * count, [r["error"] for r in results]
    assert [r["pod"] for r in results] == [p["name"] for p in plan]
    assert totals(results) == {"hooks_attempted": count, "hooks_failed": 0}
    assert elapsed < count / 2, elapsed  # serial: 16 s; 8 workers: about 2 s


def test_pod_deleted_between_discovery_and_exec(pods, namespace, api_client, core_v1, admin_factory):
    pods.fake_pods(2, annotations={PRE_COMMAND: "true"})
    plan = plan_for(api_client, namespace)
    core_v1.delete_namespaced_pod("fake-0", namespace, grace_period_seconds=0)
    deadline = time.monotonic() + 30
    while any(p["metadata"]["name"] == "fake-0" for p in
              json.loads(core_v1.list_namespaced_pod(namespace, _preload_content=False).data)["items"]):
        assert time.monotonic() < deadline, "fake-0 was not deleted"
        time.sleep(0.2)

    results = run_phase(plan, "pre", admin_factory)
    by_pod = {r["pod"]: r for r in results}
    assert by_pod["fake-0"]["status"] == "failed"
    assert by_pod["fake-0"]["error"].startswith("pod %s/fake-0 not found (deleted since discovery?)" % namespace)
    assert by_pod["fake-1"]["status"] == "succeeded"


READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


@pytest.mark.parametrize("exec_verbs", [None, ["create"]])
def test_token_without_full_pods_exec_fails_clearly(pods, namespace, sa_token, exec_verbs):
    pods.fake_pods(1, annotations={PRE_COMMAND: "true"})
    rules = [READ_PODS]
    if exec_verbs:
        rules.append({"apiGroups": [""], "resources": ["pods/exec"], "verbs": exec_verbs})
    factory = token_factory(sa_token(namespace, rules))
    discovery_client = factory()
    plan = plan_for(discovery_client, namespace)  # a namespaced Role suffices to list
    results = run_phase(plan, "pre", factory)
    assert results[0]["status"] == "failed"
    assert "Forbidden" in results[0]["error"]
    assert "get AND create on the pods/exec subresource in namespace %s" % namespace in results[0]["error"]


def test_least_privilege_token_runs_hooks_and_cannot_list_cluster_wide(pods, namespace, sa_token):
    pods.fake_pods(1, annotations={PRE_COMMAND: "true"})
    factory = token_factory(sa_token(namespace, [
        READ_PODS, {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}]))
    plan = plan_for(factory(), namespace)
    results = run_phase(plan, "pre", factory)
    assert results[0]["status"] == "succeeded", results[0]["error"]
    with pytest.raises(AuthorizationError, match=r"list pods cluster-wide"):
        list(list_pods(factory(), [], [], None))
    with pytest.raises(AuthorizationError, match=r"list pods cluster-wide"):
        list(list_pods(factory(), [namespace[:-1] + "*"], [], None))


def test_discovery_lists_with_label_selector(pods, namespace, api_client):
    pods.fake_pods(3, prefix="lab", labels={"app": "db"})
    pods.fake_pods(2, prefix="other", labels={"app": "web"})
    found = list(list_pods(api_client, [namespace], [], "app=db", page_size=2))
    assert sorted(p["metadata"]["name"] for p in found) == ["lab-0", "lab-1", "lab-2"]
    everywhere = [p for p in list_pods(api_client, [], [], "app=db") if p["metadata"]["namespace"] == namespace]
    assert len(everywhere) == 3
