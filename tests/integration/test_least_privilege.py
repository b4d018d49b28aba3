"""Secrets and privilege on the real cluster.

- The walkthrough's backup runs under a token bound to exactly the shipped RBAC (files/rbac/backup.yml:
  the namespaced Role and the small ClusterRole); without ``pods/exec`` the run fails clearly before any
  pre hook runs (a pre hook that would leave a mark in the container leaves none).
- A kubeconfig given as a dict is never printed: not at ``-vvv`` (also when a task fails its argument
  validation), not in the job events ansible-runner keeps for AWX.
"""
import json
import os
import sys
import uuid

import pytest

from modrun import RBAC, bind_lease_role, collections_path, run_playbook, shipped
import test_playbooks
from test_playbooks import (
    PLAYBOOKS,
    WALKTHROUGH_NS,
    Writers,
    admin_api,
    load_record,
    local_images,
    pv_host_path,
    record_dir,
    run_detail,
)

walkthrough = test_playbooks.walkthrough  # the fixture, for the tests here

PRE = "pre.hook.backup.velero.io/"
POST = "post.hook.backup.velero.io/"


@pytest.fixture
def cluster_role():
    """bind(credentials): the shipped ClusterRole and Lease Role (under a unique name) bound to a minted
    ServiceAccount."""
    api = admin_api()
    name = f"kh-backup-{uuid.uuid4().hex[:6]}"

    def bind(creds):
        role = dict(shipped("ClusterRole"), metadata={"name": name})
        api.create(f"{RBAC}/clusterroles", role)
        api.create(f"{RBAC}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": creds["service_account"],
                          "namespace": creds["namespace"]}]})

        # and the Lease Role in its namespace
        bound.append(bind_lease_role(api, [creds], name))

    bound = []
    yield bind
    api.delete(f"{RBAC}/clusterrolebindings/{name}")
    api.delete(f"{RBAC}/clusterroles/{name}")
    for namespace in bound:
        api.delete(f"{RBAC}/namespaces/{namespace}/rolebindings/{name}")
        api.delete(f"{RBAC}/namespaces/{namespace}/roles/{name}")


def token_auth(creds):
    return {"host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"]}


@pytest.mark.real_node
def test_walkthrough_runs_under_exactly_the_shipped_rbac(cluster, walkthrough, sa_token, cluster_role, tmp_path):
    api = admin_api()
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WALKTHROUGH_NS}})
    creds = sa_token(WALKTHROUGH_NS, shipped("Role")["rules"], name="kubehooks-backup")
    cluster_role(creds)
    storage = str(tmp_path / "storage")
    proc = run_playbook(os.path.join(PLAYBOOKS, "nginx_fsfreeze.yml"),
                        dict(local_images(cluster), storage_dir=storage, backup_auth=token_auth(creds)),
                        env={"KUBECONFIG": cluster.kubeconfig})
    host_path = pv_host_path(WALKTHROUGH_NS, "nginx-logs")
    walkthrough.append(host_path)
    assert proc.returncode == 0, run_detail(proc)
    record = load_record(record_dir(storage, "nginx-hook-test"))
    assert record["status"]["phase"] == "Completed", record["status"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}, record["status"]
    assert creds["token"] not in proc.stdout + proc.stderr
    writers = Writers(host_path)
    try:
        assert writers.writable(), "the PV is still frozen after the walkthrough"
    finally:
        writers.cleanup()


ROLE_PLAY = """---
- name: One backup through the role
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Back up
      ansible.builtin.include_role:
        name: kubehooks.backup.create
"""


@pytest.mark.real_node
def test_without_pods_exec_the_run_fails_before_anything_is_frozen(cluster, namespace, pods, sa_token, cluster_role,
                                                                   tmp_path):
    mark = "/tmp/kubehooks-pre-ran"
    pods.real_pod("app", annotations={PRE + "command": json.dumps(["/bin/touch", mark]),
                                      POST + "command": json.dumps(["/bin/true"])})
    rules = [rule for rule in shipped("Role")["rules"] if "pods/exec" not in rule["resources"]]
    assert len(rules) == len(shipped("Role")["rules"]) - 1
    creds = sa_token(namespace, rules, name="no-exec")
    cluster_role(creds)
    playbook = tmp_path / "play.yml"
    playbook.write_text(ROLE_PLAY)
    storage = str(tmp_path / "storage")
    proc = run_playbook(str(playbook), {"create_name": "no-exec", "create_included_namespaces": [namespace],
                                        "create_storage_dir": storage, "create_cluster": "c1",
                                        "create_auth": token_auth(creds)})
    assert proc.returncode != 0, run_detail(proc)
    out = proc.stdout
    assert f"may not create pods/exec in namespace {namespace}" in out, run_detail(proc)
    assert "nothing was frozen" in out, run_detail(proc)
    assert "Traceback" not in out + proc.stderr
    # No pre hook ran: the mark it would leave is absent (checked as the admin).
    check = cluster.kubectl_run("-n", namespace, "exec", "app", "--", "/bin/sh", "-c",
                                f"test -e {mark} && echo present || echo absent")
    assert check.stdout.strip() == "absent"
    # The run is recorded as Failed before any freeze; nothing of it says a pod may be frozen.
    record = load_record(record_dir(storage, "no-exec", "c1"))
    assert record["status"]["phase"] == "Failed", record["status"]
    assert record["status"].get("hookStatus", {}).get("hooksAttempted", 0) == 0


# --------------------------------------------------------------------------------------------------
# A kubeconfig given as a dict is never printed
# --------------------------------------------------------------------------------------------------

def kubeconfig_dict(creds):
    with open(creds["ca_cert"], "rb") as handle:
        import base64
        ca = base64.b64encode(handle.read()).decode()
    return {"apiVersion": "v1", "kind": "Config", "current-context": "kh",
            "clusters": [{"name": "kh", "cluster": {"server": creds["host"], "certificate-authority-data": ca}}],
            "users": [{"name": "kh", "user": {"token": creds["token"]}}],
            "contexts": [{"name": "kh", "context": {"cluster": "kh", "user": "kh", "namespace": creds["namespace"]}}]}


SECRET_PLAY = """---
- name: A kubeconfig dict in module options
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Discover with the kubeconfig dict
      kubehooks.backup.pod_hooks_info:
        kubeconfig: "{{ kh_kubeconfig }}"
        included_namespaces: ["{{ kh_namespace }}"]
      register: found

    - name: The same, failing its argument validation
      kubehooks.backup.pod_hooks_info:
        kubeconfig: "{{ kh_kubeconfig }}"
        included_namespaces: ["{{ kh_namespace }}"]
        check_exec: not-a-boolean
      ignore_errors: true

    - name: The same, failing at the API (a namespace pattern it may not list cluster-wide)
      kubehooks.backup.pod_hooks_info:
        kubeconfig: "{{ kh_kubeconfig }}"
        included_namespaces: ["kh-*"]
      ignore_errors: true

    - name: Show that discovery worked
      ansible.builtin.assert:
        that: found.pods | length == 1
"""


def test_a_kubeconfig_dict_is_never_printed_at_vvv(namespace, pods, sa_token, tmp_path):
    pods.fake_pods(1, annotations={PRE + "command": json.dumps(["/bin/true"])})
    creds = sa_token(namespace, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    playbook = tmp_path / "play.yml"
    playbook.write_text(SECRET_PLAY)
    proc = run_playbook(str(playbook), {"kh_kubeconfig": kubeconfig_dict(creds), "kh_namespace": namespace},
                        env={"ANSIBLE_VERBOSITY": "3"})
    assert proc.returncode == 0, run_detail(proc)
    shown = proc.stdout + proc.stderr
    assert "module_args" in shown and "not-a-boolean" in shown  # -vvv shows the invocations...
    assert creds["token"] not in shown  # ...without the token
    assert kubeconfig_dict(creds)["clusters"][0]["cluster"]["certificate-authority-data"] not in shown
    assert "********" in shown


def test_a_kubeconfig_dict_is_in_no_job_event(namespace, pods, sa_token, tmp_path):
    import ansible_runner

    pods.fake_pods(1, annotations={PRE + "command": json.dumps(["/bin/true"])})
    creds = sa_token(namespace, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    data = tmp_path / "runner"
    (data / "env").mkdir(parents=True)
    (data / "project").mkdir()
    (data / "project" / "play.yml").write_text(SECRET_PLAY)
    (data / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}))
    extravars = {"kh_kubeconfig": kubeconfig_dict(creds), "kh_namespace": namespace}
    (data / "env" / "extravars").write_text(json.dumps(extravars))
    result = ansible_runner.run(private_data_dir=str(data), playbook="play.yml", quiet=True, timeout=300,
                                verbosity=3)
    stdout = result.stdout.read() if result.stdout else ""
    assert result.rc == 0, stdout[-6000:]
    events = json.dumps(list(result.events))
    assert "module_args" in events and creds["token"] not in events
    assert creds["token"] not in stdout


# --------------------------------------------------------------------------------------------------
# Inputs that would become exec rights: survey hook rules, a saved plan others could write
# --------------------------------------------------------------------------------------------------

def test_survey_hook_rules_are_refused_unless_the_inventory_allows_them(cluster, namespace, tmp_path):
    storage = str(tmp_path / "storage")
    rules = [{"name": "anything", "pre": [{"exec": {"command": ["/bin/true"]}}]}]
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"c1": {
        "kubehooks_auth": {"kubeconfig": cluster.kubeconfig}, "kubehooks_storage_dir": storage}}}}))
    proc = run_playbook(os.path.join(PLAYBOOKS, "backup.yml"),
                        {"backup_name": "survey", "backup_included_namespaces": namespace,
                         "backup_hooks": json.dumps(rules)}, inventory=str(inventory))
    assert proc.returncode != 0, run_detail(proc)
    assert "Cluster c1: backup_hooks holds 1 hook rule(s)" in proc.stdout, run_detail(proc)
    assert "kubehooks_allow_hook_rules=true" in proc.stdout and "Nothing was frozen" in proc.stdout
    assert not os.path.exists(storage), "nothing may be recorded for a refused run"

    inventory.write_text(json.dumps({"all": {"hosts": {"c1": {
        "kubehooks_auth": {"kubeconfig": cluster.kubeconfig}, "kubehooks_storage_dir": storage,
        "kubehooks_allow_hook_rules": True}}}}))
    allowed = run_playbook(os.path.join(PLAYBOOKS, "backup.yml"),
                           {"backup_name": "survey", "backup_included_namespaces": namespace,
                            "backup_hooks": json.dumps(rules)}, inventory=str(inventory))
    assert allowed.returncode == 0, run_detail(allowed)
    assert load_record(record_dir(storage, "survey", "c1"))["status"]["phase"] == "Completed"


def test_the_thaw_playbook_refuses_a_plan_others_could_write(tmp_path):
    from modrun import run_module

    storage = str(tmp_path / "storage")
    plan = [{"namespace": "ns", "name": "web-0", "phase": "Running", "errors": [], "pre": [],
             "post": [{"container": "app", "command": ["/bin/true"], "on_error": "Fail", "timeout": 30,
                       "index": 0, "name": "<from-annotation>", "source": "annotation"}]}]
    started = run_module("backup_record", {"state": "started", "name": "writable", "storage_dir": storage,
                                           "cluster": "c1", "plan": plan})
    assert not started.get("failed"), started
    plan_file = os.path.join(started["backup_dir"], "writable-hook-plan.json")
    os.chmod(plan_file, 0o666)
    proc = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                        {"thaw_backup": "writable", "thaw_backup_dir": started["backup_dir"],
                         "kubehooks_auth": {"host": "https://127.0.0.1:9", "api_key": "x"}})
    assert proc.returncode != 0, run_detail(proc)
    assert "the saved hook plan is not trusted" in proc.stdout and "mode 0666" in proc.stdout, run_detail(proc)
    assert "TASK [Run the post hooks" not in proc.stdout, "the refused plan's hooks were run"
    assert load_record(started["backup_dir"])["status"]["phase"] == "InProgress"
