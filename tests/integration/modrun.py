"""Run the collection's modules for real, the way Ansible does, and return their JSON result.

``run_module`` executes a module file with an ``ANSIBLE_MODULE_ARGS`` file - exactly what Ansible's
module wrapper hands it on the controller - in the test virtualenv, with the collection importable.
It is much faster than going through ``ansible``; ``run_playbook`` covers the path through
ansible-playbook where that path is what a test is about.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(ROOT, "plugins", "modules")


def collections_path():
    # tests/conftest.py lays the checkout out as .../ansible_collections/kubehooks/backup.
    return os.environ["ANSIBLE_COLLECTIONS_PATH"]


def auth_args(cluster):
    """Module connection options for the local cluster's admin."""
    return {"kubeconfig": cluster.kubeconfig}


def run_module(name, args, check_mode=False, env=None, timeout=300):
    """Run ``kubehooks.backup.<name>`` with ``args``; return its result dict."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_tmpdir"] = tempfile.gettempdir()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        args_file = handle.name
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = collections_path()
    run_env.update(env or {})
    try:
        proc = subprocess.run([sys.executable, os.path.join(MODULES, name + ".py"), args_file],
                              capture_output=True, text=True, timeout=timeout, env=run_env, check=False)
    finally:
        os.unlink(args_file)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (exit %s):\nstdout: %s\nstderr: %s"
                             % (name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return result


def run_playbook(playbook, extra_vars=None, env=None, timeout=900, inventory=None, extra_args=()):
    """Run ansible-playbook from the test virtualenv; return the CompletedProcess (text)."""
    bindir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, "ansible-playbook"), playbook] + list(extra_args)
    if inventory:
        cmd += ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    run_env = dict(os.environ)
    run_env.update({"ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "PATH": bindir + os.pathsep + run_env["PATH"]})
    run_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env, cwd=ROOT, check=False)


def admin_api(timeout=30):
    """The local cluster's API as its admin (localcluster.api.Api)."""
    from localcluster import config as lc_config
    from localcluster.api import Api
    return Api.admin(lc_config.load(), timeout=timeout)


def wait_for(check, timeout, what, interval=0.5):
    """Call ``check`` until it returns a true value (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


RBAC = "/apis/rbac.authorization.k8s.io/v1"


def shipped(kind, name=None):
    with open(os.path.join(ROOT, "files", "rbac", "backup.yml")) as handle:
        document = yaml.safe_load(handle)
    assert document["kind"] == "List"
    return [item for item in document["items"] if item["kind"] == kind
            and (name is None or item["metadata"]["name"] == name)][0]


def bind_lease_role(api, subjects, name):
    """The shipped Lease Role (namespace default), under a unique name, bound to minted ServiceAccounts
    (``subjects``: what ``sa_token`` returned); returns the Lease's namespace."""
    role = shipped("Role", "kubehooks-backup-lease")
    namespace = role["metadata"]["namespace"]
    api.create(f"{RBAC}/namespaces/{namespace}/roles", dict(role, metadata={"name": name, "namespace": namespace}))
    api.create(f"{RBAC}/namespaces/{namespace}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa["service_account"], "namespace": sa["namespace"]}
                     for sa in subjects]})
    return namespace
