"""Impersonation against the real API server: one Impersonate-Group header per group, as kubernetes.core.

The admin of the local cluster may impersonate anyone.  A Role that lets the group kh-readers list
pods is bound in the test namespace; the user alice is impersonated with several groups, and only the
LAST group is allowed: the list succeeds only if every group reached the API server as a group of
its own (a comma-joined header would be the single group "kh-other,kh-readers").
"""
from modrun import auth_args, run_module

USER = "kh-alice"


def _grant_readers(cluster, namespace):
    cluster.kubectl_run("create", "role", "kh-pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    cluster.kubectl_run("create", "rolebinding", "kh-readers", "--role=kh-pod-reader", "--group=kh-readers",
                        "-n", namespace)


def _discover(cluster, namespace, groups):
    return run_module("pod_hooks_info", dict(auth_args(cluster), included_namespaces=[namespace],
                                             impersonate_user=USER, impersonate_groups=groups))


def test_every_impersonated_group_reaches_the_api_server(cluster, namespace):
    _grant_readers(cluster, namespace)
    result = _discover(cluster, namespace, ["kh-other", "kh-readers"])
    assert not result.get("failed"), result.get("msg")
    assert result["pods"] == []


def test_without_the_granted_group_the_list_is_forbidden(cluster, namespace):
    _grant_readers(cluster, namespace)
    result = _discover(cluster, namespace, ["kh-other", "kh-more"])
    assert result.get("failed")
    assert "Forbidden" in result["msg"] and USER in result["msg"], result["msg"]


def test_groups_from_the_environment_reach_the_api_server(cluster, namespace):
    _grant_readers(cluster, namespace)
    result = run_module("pod_hooks_info", dict(auth_args(cluster), included_namespaces=[namespace]),
                        env={"K8S_AUTH_IMPERSONATE_USER": USER, "K8S_AUTH_IMPERSONATE_GROUPS": "kh-other,kh-readers"})
    assert not result.get("failed"), result.get("msg")


def test_hooks_are_refused_with_impersonation(cluster, namespace):
    plan = [{"namespace": namespace, "name": "p", "phase": "Running", "hooks": {"pre": [], "post": []}}]
    result = run_module("pod_hooks", dict(auth_args(cluster), phase="pre", plan=plan,
                                          impersonate_user=USER, impersonate_groups=["kh-readers"]))
    assert result.get("failed")
    assert "cannot be applied to pods/exec" in result["msg"]
