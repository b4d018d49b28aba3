"""The two ways a module reaches the real API server: _kubeconfig + _rest (no kubernetes library imported),
and the kubernetes library for what _kubeconfig leaves to it (here a real exec credential plugin).

Each runs the same hook on a real pod through pod_hooks (a LIST, a SelfSubjectAccessReview, an exec),
then a volume-less namespace export through resource_export (LISTs of every type)."""
import json
import os

import pytest

from kubeconfigs import exec_plugin_user, kubeconfig_file
from modrun import run_module

PRE = "pre.hook.backup.velero.io/"


@pytest.mark.real_node
@pytest.mark.parametrize("path", ["kubeconfig read without the library", "exec plugin through the library"])
def test_a_hook_and_an_export_through_either_connection(cluster, namespace, pods, tmp_path, path):
    user = {"token": cluster.token} if path.startswith("kubeconfig") else exec_plugin_user(cluster, tmp_path)
    kubeconfig = kubeconfig_file(cluster, tmp_path, user)
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
