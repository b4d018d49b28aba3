"""The two ways a module reaches the real API server: _kubeconfig + _rest (no kubernetes library imported),
and the kubernetes library for what _kubeconfig leaves to it (here a real exec credential plugin).

Each runs the same hook on a real pod through pod_hooks (a LIST, a SelfSubjectAccessReview, an exec),
then a volume-less namespace export through resource_export (LISTs of every type)."""
import base64
import json
import os
import sys

import pytest

from modrun import run_module

PRE = "pre.hook.backup.velero.io/"


def _kubeconfig(cluster, tmp_path, user):
    with open(cluster.ca_cert, "rb") as handle:
        ca = base64.b64encode(handle.read()).decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
              "clusters": [{"name": "c", "cluster": {"server": cluster.host, "certificate-authority-data": ca}}],
              "users": [{"name": "u", "user": user}],
              "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)


def _exec_plugin(cluster, tmp_path):
    """A real credential plugin: a program the library runs, printing an ExecCredential with the token."""
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    token_file.chmod(0o600)
    script = tmp_path / "credential-plugin"
    script.write_text(u"#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      u"'kind': 'ExecCredential', 'status': {'token': open(%r).read()}}))\n"
                      % (sys.executable, str(token_file)))
    script.chmod(0o700)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
                     "interactiveMode": "Never"}}


@pytest.mark.real_node
@pytest.mark.parametrize("path", ["kubeconfig read without the library", "exec plugin through the library"])
def test_a_hook_and_an_export_through_either_connection(cluster, namespace, pods, tmp_path, path):
    user = {"token": cluster.token} if path.startswith("kubeconfig") else _exec_plugin(cluster, tmp_path)
    kubeconfig = _kubeconfig(cluster, tmp_path, user)
    pods.real_pod("reach", annotations={PRE + "command": json.dumps(["/bin/echo", "reached"])})
    result = run_module("pod_hooks", {"kubeconfig": kubeconfig, "included_namespaces": [namespace], "phase": "pre"})
    assert not result.get("failed"), result
    assert [(h["pod"], h["status"], h["stdout"]) for h in result["hooks"]] == [("reach", "succeeded", "reached\n")]
    export = run_module("resource_export", {"kubeconfig": kubeconfig, "name": "conn-%s" % path.split()[0],
                                            "included_namespaces": [namespace],
                                            "storage_dir": str(tmp_path / "storage")})
    assert not export.get("failed"), export
    assert os.path.isfile(export["path"]) and not export["errors"], export
    assert export["items_backed_up"] >= 2  # the namespace and its pod at least
