"""Kubeconfigs for the local cluster as tests need them: given inline (a dict), written to a file, or with a
real exec credential plugin (a program the kubernetes library runs)."""
import base64
import json
import sys


def inline_kubeconfig(cluster, user):
    """A kubeconfig dict for ``user`` with the cluster's CA inline (base64); returns it and the CA data."""
    with open(cluster.ca_cert, "rb") as handle:
        ca = base64.b64encode(handle.read()).decode()
    return {"apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "c", "cluster": {"server": cluster.host, "certificate-authority-data": ca}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}, ca


def kubeconfig_file(cluster, tmp_path, user):
    """That kubeconfig written to ``tmp_path/kubeconfig`` (0600); returns its path."""
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(inline_kubeconfig(cluster, user)[0]))
    path.chmod(0o600)
    return str(path)


def exec_plugin_user(cluster, tmp_path):
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
