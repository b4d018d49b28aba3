"""AWX's Kubernetes credential, the way AWX launches a job: ansible-runner with a private data dir, the
credential's K8S_AUTH_* variables in env/envvars (what the credential type "OpenShift or Kubernetes API
Bearer Token" injects), the project's playbook importing the collection's one.  AWX itself is not available
here; ansible-runner is what runs the job inside its execution environment.

- a host without kubehooks_auth is backed up with the credential;
- a host WITH kubehooks_auth in a job that carries the credential is refused by the backup, thaw and restore
  playbooks before anything runs (nothing frozen, no record), naming the host and the variables: the
  modules would otherwise fill in the credential's host and token and silently connect with them.
"""
import json
import os
import sys
import uuid

import pytest

from modrun import collections_path

RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]},
]


def awx_job(tmp_path, playbook, credential, hosts, extravars):
    """Lay out ansible-runner's private data dir as AWX does and run the job; (result, stdout)."""
    import ansible_runner

    data = tmp_path / "runner"
    for sub in ("env", "inventory", "project"):
        (data / sub).mkdir(parents=True)
    env = {"ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    if credential:
        env.update({"K8S_AUTH_HOST": credential["host"], "K8S_AUTH_API_KEY": credential["token"],
                    "K8S_AUTH_SSL_CA_CERT": credential["ca_cert"], "K8S_AUTH_VERIFY_SSL": "True"})
    (data / "env" / "envvars").write_text(json.dumps(env))
    (data / "env" / "extravars").write_text(json.dumps(extravars))
    (data / "project" / "job.yml").write_text(
        "---\n- name: Job template playbook\n  ansible.builtin.import_playbook: kubehooks.backup.%s\n" % playbook)
    (data / "inventory" / "hosts.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    result = ansible_runner.run(private_data_dir=str(data), playbook="job.yml", quiet=True, timeout=600)
    return result, (result.stdout.read() if result.stdout else "")


@pytest.fixture
def credential(namespace, sa_token):
    return sa_token(namespace, RULES, name="awx-cred")


def test_credential_alone_backs_up_the_host(cluster, namespace, credential, tmp_path):
    storage = tmp_path / "storage"
    name = "cred-" + uuid.uuid4().hex[:6]
    result, stdout = awx_job(tmp_path, "backup", credential, {"prod": {"backup_included_namespaces": [namespace]}},
                             {"backup_name": name, "kubehooks_storage_dir": str(storage),
                              # A least-privilege token cannot list cluster-scoped resources.
                              "backup_include_cluster_resources": "false"})
    assert result.status == "successful", stdout[-4000:]
    with open(storage / "prod" / "backups" / name / "velero-backup.json") as handle:
        assert json.load(handle)["status"]["phase"] == "Completed"
    assert credential["token"] not in stdout


@pytest.mark.parametrize("auth_keys", [("kubeconfig", "context"), ("host", "api_key")])
def test_kubehooks_auth_with_the_credential_is_refused_by_the_backup_playbook(cluster, namespace, credential,
                                                                              tmp_path, auth_keys):
    context = cluster.kubectl_run("config", "current-context").stdout.strip()
    kubehooks_auth = {"kubeconfig": {"kubeconfig": cluster.kubeconfig, "context": context},
                      "host": {"host": cluster.host, "api_key": cluster.token}}[auth_keys[0]]
    storage = tmp_path / "storage"
    result, stdout = awx_job(tmp_path, "backup", credential,
                             {"prod-1": {"kubehooks_auth": kubehooks_auth, "backup_included_namespaces": [namespace]}},
                             {"backup_name": "mixed", "kubehooks_storage_dir": str(storage)})
    assert result.status == "failed", stdout[-4000:]
    assert "Host prod-1 has kubehooks_auth (%s)" % ", ".join(kubehooks_auth) in stdout, stdout[-4000:]
    assert "K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT" in stdout
    assert not storage.exists()  # refused before anything was discovered, frozen or recorded
    assert credential["token"] not in stdout and cluster.token not in stdout


def test_kubehooks_auth_with_the_credential_is_refused_by_the_thaw_playbook(cluster, credential, tmp_path):
    result, stdout = awx_job(tmp_path, "thaw", credential,
                             {"prod-2": {"kubehooks_auth": {"kubeconfig": cluster.kubeconfig}}},
                             {"thaw_backup": "nightly", "kubehooks_storage_dir": str(tmp_path / "storage")})
    assert result.status == "failed", stdout[-4000:]
    assert "Host prod-2 has kubehooks_auth (kubeconfig)" in stdout
    assert "Find the record" not in stdout


def test_kubehooks_auth_with_the_credential_is_refused_by_the_restore_playbook(cluster, credential, tmp_path):
    storage = tmp_path / "storage"
    result, stdout = awx_job(tmp_path, "restore", credential,
                             {"prod-3": {"kubehooks_auth": {"kubeconfig": cluster.kubeconfig}}},
                             {"restore_backup": "nightly", "kubehooks_storage_dir": str(storage)})
    assert result.status == "failed", stdout[-4000:]
    assert "Host prod-3 has kubehooks_auth (kubeconfig)" in stdout
    assert "K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT" in stdout
    assert "Read the inputs" not in stdout and not storage.exists()  # refused before anything ran
