"""restore_resources through ansible-playbook: run in the controller's task worker (plugin_utils._in_process)
or as a module, the same restore against the real cluster gives the same result.

Each playbook runs with -vvv, and the test reads which path each task took from the lines the action plugin
prints. Results come back through a file written by ansible.builtin.copy.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import yaml

from kubeconfigs import exec_plugin_user, inline_kubeconfig, kubeconfig_file
from modrun import admin_api, run_module, run_playbook, wait_for

IN_PROCESS = "kubehooks.backup.restore_resources runs in the controller's process"
AS_MODULE = "kubehooks.backup.restore_resources runs as a module: "


def _backup(cluster, namespace, storage, name, count=3):
    api = admin_api()
    for i in range(count):
        api.create("/api/v1/namespaces/%s/configmaps" % namespace,
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-%d" % i}, "data": {"i": str(i)}})
    result = run_module("resource_export", {"kubeconfig": cluster.kubeconfig, "name": name, "storage_dir": storage,
                                            "cluster": "c1", "included_namespaces": [namespace]})
    assert not result.get("failed"), result


def _held_terminating_namespace(api, name):
    """A namespace left Terminating by a ConfigMap's finalizer; ``_release`` lets it go."""
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    api.create("/api/v1/namespaces/%s/configmaps" % name,
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hold", "finalizers": ["kubehooks.local/hold"]}})
    api.delete("/api/v1/namespaces/%s" % name)


def _release(api, name):
    api.patch("/api/v1/namespaces/%s/configmaps/hold" % name, {"metadata": {"finalizers": None}})


def _play(tmp_path, tasks, out):
    """A playbook of restore tasks, each registered and written to ``out`` as JSON, in order."""
    body = []
    for i, task in enumerate(tasks):
        task = dict(task)
        task["register"] = "r%d" % i
        task["ignore_errors"] = True
        body.append(task)
    body.append({"name": "Write the results", "ansible.builtin.copy": {
        "content": "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(tasks))), "dest": out,
        "mode": "0600"}})
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": body}]))
    return str(path)


def _restore_task(args, check_mode=False, **keywords):
    task = {"kubehooks.backup.restore_resources": args, "check_mode": check_mode}
    task.update(keywords)
    return task


def _configmaps(namespace):
    items = admin_api().get("/api/v1/namespaces/%s/configmaps" % namespace)["items"]
    return sorted(item["metadata"]["name"] for item in items if item["metadata"]["name"].startswith("cm-"))


def _paths(stdout):
    return [line.split("> ", 1)[1] for line in stdout.splitlines()
            if IN_PROCESS in line or AS_MODULE in line]


def test_the_same_restore_in_the_controller_process_and_as_a_module(cluster, namespace, tmp_path):
    storage = str(tmp_path / "storage")
    _backup(cluster, namespace, storage, "ip")
    # the virtualenv's Python under another of its names: Ansible would run that path, so the module runs
    bindir = os.path.dirname(sys.executable)
    interpreter = next(os.path.join(bindir, name) for name in ("python3", "python", "python3.%d" % sys.version_info[1])
                       if name != os.path.basename(sys.executable) and os.path.exists(os.path.join(bindir, name)))
    targets = [namespace[:50] + "-" + suffix for suffix in ("ip", "mod", "py")]
    base = {"backup": "ip", "storage_dir": storage, "cluster": "c1"}
    out = str(tmp_path / "results.json")
    tasks = [
        # check mode both ways: the exact plan must be the same
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, namespace_mappings={namespace: targets[0]}),
                      check_mode=True),
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, namespace_mappings={namespace: targets[0]}),
                      check_mode=True, vars={"kubehooks_backup_in_process": False}),
        # the connection from the task's environment, as a module process would see it
        _restore_task(dict(base, name="r-ip", namespace_mappings={namespace: targets[0]}),
                      environment={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig}),
        _restore_task(dict(base, name="r-mod", kubeconfig=cluster.kubeconfig, namespace_mappings={namespace: targets[1]}),
                      vars={"kubehooks_backup_in_process": "no"}),
        _restore_task(dict(base, name="r-py", kubeconfig=cluster.kubeconfig, namespace_mappings={namespace: targets[2]}),
                      vars={"ansible_python_interpreter": str(interpreter)}),
        # bad input: the module's own messages
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, bogus=1)),
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, bogus=1), vars={"kubehooks_backup_in_process": False}),
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, volume_parallelism="many")),
        _restore_task(dict(base, kubeconfig=cluster.kubeconfig, volume_parallelism="many"),
                      vars={"kubehooks_backup_in_process": False}),
    ]
    api = admin_api()
    try:
        proc = run_playbook(_play(tmp_path, tasks, out), extra_args=["-vvv"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert _paths(proc.stdout) == [
            IN_PROCESS, AS_MODULE + "kubehooks_backup_in_process is false",
            IN_PROCESS, AS_MODULE + "kubehooks_backup_in_process is false",
            AS_MODULE + "the module's interpreter is %s, not the controller's %s" % (interpreter, sys.executable),
            IN_PROCESS, AS_MODULE + "kubehooks_backup_in_process is false",
            IN_PROCESS, AS_MODULE + "kubehooks_backup_in_process is false"], proc.stdout[-4000:]
        with open(out) as handle:
            results = json.load(handle)
        plan_here, plan_module, here, module, other = results[:5]
        assert not plan_here.get("failed") and plan_here["plan"] == plan_module["plan"], (plan_here, plan_module)
        assert [(p["name"], p["target_namespace"], p["outcome"]) for p in plan_here["plan"]
                if p["group_resource"] == "configmaps" and p["name"].startswith("cm-")] == [
            ("cm-0", targets[0], "create"), ("cm-1", targets[0], "create"), ("cm-2", targets[0], "create")]
        for result in (here, module, other):
            assert not result.get("failed") and result["phase"] == "Completed", result
        for key in ("total_items", "items_restored", "changed"):
            assert here[key] == module[key] == other[key], key
        # kube-root-ca.crt is created or skipped depending on whether the controller manager published it first
        assert len(set(json.dumps(r["outcomes"].get("created", 0) + r["outcomes"].get("skipped", 0))
                       for r in (here, module, other))) == 1, [r["outcomes"] for r in (here, module, other)]
        for target in targets:
            assert _configmaps(target) == ["cm-0", "cm-1", "cm-2"]
        for bad_here, bad_module in (results[5:7], results[7:9]):
            assert bad_here["failed"] and bad_here["msg"] == bad_module["msg"], (bad_here, bad_module)
        assert results[5]["msg"].startswith(
            "Unsupported parameters for (kubehooks.backup.restore_resources) module: bogus.")
        assert "volume_parallelism" in results[7]["msg"]
    finally:
        for target in targets:
            try:
                api.delete("/api/v1/namespaces/%s" % target)
            except OSError:
                pass


def test_an_inline_kubeconfig_stays_secret_and_leaves_no_file(cluster, namespace, tmp_path):
    """The inline kubeconfig's token and CA data never show (task result, -vvv output), and the private CA file
    the run wrote is gone when the task ends, though a task worker leaves without running atexit handlers."""
    storage = str(tmp_path / "storage")
    _backup(cluster, namespace, storage, "sec", count=1)
    kubeconfig, ca = inline_kubeconfig(cluster, {"token": cluster.token})
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = str(tmp_path / "results.json")
    tasks = [_restore_task({"backup": "sec", "storage_dir": storage, "cluster": "c1", "kubeconfig": kubeconfig},
                           check_mode=True)]
    proc = run_playbook(_play(tmp_path, tasks, out), extra_args=["-vvv"], env={"TMPDIR": str(temp)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert _paths(proc.stdout) == [IN_PROCESS]
    with open(out) as handle:
        result = json.load(handle)[0]
    assert not result.get("failed") and result["plan"], result
    text = proc.stdout + proc.stderr + json.dumps(result)
    assert cluster.token not in text and ca not in text
    # -vvv shows the arguments, masked as AnsibleModule masks them
    assert '"invocation"' in proc.stdout and '"token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in proc.stdout
    assert glob.glob(str(temp / "kubehooks-kubeconfig-*")) == []


def test_an_exec_plugin_kubeconfig_runs_the_module(cluster, namespace, tmp_path):
    """A configuration only the kubernetes library reads (an exec credential plugin) goes to the module."""
    storage = str(tmp_path / "storage")
    _backup(cluster, namespace, storage, "ex", count=1)
    kubeconfig = kubeconfig_file(cluster, tmp_path, exec_plugin_user(cluster, tmp_path))
    out = str(tmp_path / "results.json")
    tasks = [_restore_task({"backup": "ex", "storage_dir": storage, "cluster": "c1", "kubeconfig": kubeconfig},
                           check_mode=True)]
    proc = run_playbook(_play(tmp_path, tasks, out), extra_args=["-vvv"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert _paths(proc.stdout) == [AS_MODULE + "the kubernetes library reads this connection's configuration"]
    with open(out) as handle:
        result = json.load(handle)[0]
    assert not result.get("failed") and result["plan"], result


def test_the_task_timeout_stops_a_restore_in_the_controller_process(cluster, namespace, tmp_path):
    """A restore waiting for its Terminating target namespace (held by a finalizer) is stopped by the task's
    ``timeout``, which Ansible reports as such: its own exception is not turned into an "Unexpected error"."""
    storage = str(tmp_path / "storage")
    _backup(cluster, namespace, storage, "to", count=1)
    api = admin_api()
    target = namespace[:50] + "-held"
    _held_terminating_namespace(api, target)
    out = str(tmp_path / "results.json")
    tasks = [_restore_task({"backup": "to", "storage_dir": storage, "cluster": "c1", "kubeconfig": cluster.kubeconfig,
                            "namespace_mappings": {namespace: target}, "terminating_timeout": 120}, timeout=3)]
    try:
        proc = run_playbook(_play(tmp_path, tasks, out), extra_args=["-vvv"], timeout=100)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert _paths(proc.stdout) == [IN_PROCESS]
        with open(out) as handle:
            result = json.load(handle)[0]
        # ansible-core 2.19: "Task failed: Timed out after 3 second(s)."; 2.16: "... failed to execute in the
        # expected time frame (3) and was terminated"
        assert result["failed"] and "Unexpected error" not in result["msg"], result
        assert "Timed out after 3 second" in result["msg"] or "expected time frame (3)" in result["msg"], result
    finally:
        _release(api, target)


def test_an_interrupted_restore_in_the_controller_process_cleans_up_and_records_it(cluster, namespace, tmp_path):
    """SIGINT to ansible-playbook's process group (Ctrl-C) while the restore waits for its Terminating target
    namespace: the extracted archive (it holds the backup's Secrets) and the inline kubeconfig's private files are
    removed from the task's TMPDIR, and the record says Failed, interrupted, instead of InProgress forever."""
    storage = str(tmp_path / "storage")
    _backup(cluster, namespace, storage, "int", count=1)
    api = admin_api()
    target = namespace[:50] + "-int"
    _held_terminating_namespace(api, target)
    kubeconfig = inline_kubeconfig(cluster, {"token": cluster.token})[0]
    temp = tmp_path / "task-tmp"
    temp.mkdir()
    tasks = [_restore_task({"backup": "int", "name": "int", "storage_dir": storage, "cluster": "c1",
                            "kubeconfig": kubeconfig, "namespace_mappings": {namespace: target},
                            "terminating_timeout": 120}, environment={"TMPDIR": str(temp)})]
    playbook = _play(tmp_path, tasks, str(tmp_path / "results.json"))
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.environ["ANSIBLE_COLLECTIONS_PATH"], ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, PATH=bindir + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen([os.path.join(bindir, "ansible-playbook"), playbook, "-vvv"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: glob.glob(str(temp / "kubehooks-restore-*")), 60,
                 "the restore's extraction directory in the task's TMPDIR")
        assert glob.glob(str(temp / "kubehooks-kubeconfig-*"))
        time.sleep(1)   # waiting for the Terminating namespace now
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
        assert IN_PROCESS in output, output[-3000:]
        assert glob.glob(str(temp / "kubehooks-*")) == [], output[-3000:]
        with open(os.path.join(storage, "c1", "restores", "int", "velero-restore.json")) as handle:
            status = json.load(handle)["status"]
        assert status["phase"] == "Failed" and "the restore was interrupted" in status["failureReason"], status
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _release(api, target)
