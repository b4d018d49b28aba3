"""The playbooks through ansible-playbook and ansible-runner on the local cluster (issue 6, items 5-6).

- nginx_fsfreeze: Velero's walkthrough end to end (namespace nginx-example, shared with ``make demo``
  through a lock file; the test removes the namespace afterwards).
- a run killed with SIGKILL while a real filesystem is frozen, recovered by the ``thaw`` playbook.
- the ``backup`` playbook launched the way AWX launches a job: ansible-runner, a private data dir,
  survey answers in env/extravars, two inventory hosts (two scopes, each with its own credentials in
  kubehooks_auth) backed up at once.  The job credential (K8S_AUTH_*): test_awx_credential.py.

SAFETY: only the loop-mounted PVs of the local cluster are frozen (their host paths are checked to be
under the cluster's PV dir); writes that may block on a frozen filesystem run in separate processes
with time limits; every cleanup thaws with a time limit; only process groups started here are killed.
"""
import contextlib
import fcntl
import glob
import gzip
import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

from localcluster import config as lc_config
from localcluster import fake as lc_fake
from localcluster import storage as lc_storage
from modrun import RBAC, ROOT, admin_api, bind_lease_role, collections_path, run_playbook, wait_for

PLAYBOOKS = os.path.join(ROOT, "playbooks")
PRE = "pre.hook.backup.velero.io/"
POST = "post.hook.backup.velero.io/"
WALKTHROUGH_NS = "nginx-example"
# `make demo` takes the same lock (Makefile, demo target): one walkthrough at a time per machine.
WALKTHROUGH_LOCK = "/tmp/kubehooks-nginx-example.lock"

# Says "ready" once the interpreter is up, then writes: the time a write takes is measured from there.
WRITER = ("import os, sys\n"
          "print('ready', flush=True)\n"
          "with open(sys.argv[1], 'w') as f:\n"
          "    f.write('written from the host\\n'); f.flush(); os.fsync(f.fileno())\n")


def check_pv_path(path):
    """Only the local cluster's own loop-mounted PVs are ever frozen or written to."""
    pv_dir = str(lc_config.load().pv_dir) + "/"
    assert path.startswith(pv_dir), f"{path} is not one of the local cluster's PV mounts ({pv_dir})"
    return path


def thaw_from_host(path):
    """Best-effort thaw with a time limit (EINVAL when it is not frozen is fine)."""
    try:
        subprocess.run(["fsfreeze", "--unfreeze", check_pv_path(path)], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass


class Writers:
    """Writes into a PV from separate processes; a write that blocks means the filesystem is frozen."""

    def __init__(self, path):
        self.path = check_pv_path(path)
        self.procs = []

    def start(self):
        """Start a writer and return it once it is about to write."""
        name = os.path.join(self.path, f"host-write-{uuid.uuid4().hex[:8]}.txt")
        proc = subprocess.Popen([sys.executable, "-c", WRITER, name], stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        ready = select.select([proc.stdout], [], [], 30)[0]
        assert ready and proc.stdout.readline() == "ready\n", "the writer process did not start"
        return proc

    def blocks(self, seconds=3.0):
        """True when a fresh write is still blocked after ``seconds`` (the fs is frozen); the blocked
        writer is kept and finishes on the thaw."""
        proc = self.start()
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return True
        assert proc.returncode == 0, "a host write into the PV failed"
        return False

    def writable(self, timeout=10.0):
        proc = self.start()
        try:
            return proc.wait(timeout=timeout) == 0
        except subprocess.TimeoutExpired:
            return False

    def finish(self, timeout=30):
        """Wait for every writer (call after a thaw); True when all of them completed."""
        ok = True
        for proc in self.procs:
            try:
                ok = proc.wait(timeout=timeout) == 0 and ok
            except subprocess.TimeoutExpired:
                ok = False
        return ok

    def cleanup(self):
        thaw_from_host(self.path)
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.stdout.close()


def pv_host_path(namespace, claim):
    api = admin_api()
    pvc = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    pv = api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    return check_pv_path(pv["spec"]["local"]["path"])


def record_dir(storage, name, cluster="*"):
    found = glob.glob(os.path.join(storage, cluster, "backups", name))
    assert len(found) == 1, f"expected one record of {name} under {storage}/{cluster}: {found}"
    return found[0]


def load_record(bdir):
    with open(os.path.join(bdir, "velero-backup.json")) as handle:
        return json.load(handle)


def hook_lines(bdir, name):
    with gzip.open(os.path.join(bdir, f"{name}-logs.gz"), "rt") as handle:
        return [line for line in handle if "hookCommand" in line]


def archive_names(bdir, name):
    with tarfile.open(os.path.join(bdir, f"{name}.tar.gz")) as tar:
        return tar.getnames()


def run_detail(proc):
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-3000:]}"


# --------------------------------------------------------------------------------------------------
# nginx_fsfreeze: the walkthrough
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def walkthrough_lock(timeout=900):
    fd = os.open(WALKTHROUGH_LOCK, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another walkthrough (make demo?) held {WALKTHROUGH_LOCK} for {timeout}s")
                time.sleep(1)
        yield
    finally:
        os.close(fd)


def delete_walkthrough_namespace(timeout=120):
    api = admin_api()
    api.delete(f"/api/v1/namespaces/{WALKTHROUGH_NS}")

    def gone():
        try:
            api.get(f"/api/v1/namespaces/{WALKTHROUGH_NS}")
            return False
        except Exception:  # noqa: BLE001 - 404: gone
            return True

    wait_for(gone, timeout, f"namespace {WALKTHROUGH_NS} to be deleted")
    lc_storage.recycle_released(api)


@pytest.fixture
def walkthrough(cluster):
    """Exclusive use of namespace nginx-example (shared with `make demo`), removed before and after."""
    with walkthrough_lock():
        delete_walkthrough_namespace()  # a demo left it behind: start from the walkthrough's first step
        host_paths = []
        try:
            yield host_paths
        finally:
            for path in host_paths:
                thaw_from_host(path)
            delete_walkthrough_namespace()


def local_images(cluster):
    return {"kubectl": cluster.kubectl, "nginx_image": cluster.node_image, "fsfreeze_image": cluster.node_image}


@pytest.mark.real_node
def test_walkthrough_nginx_fsfreeze(cluster, walkthrough, tmp_path):
    storage, report = str(tmp_path / "storage"), str(tmp_path / "report.txt")
    lc_storage.recycle_released(admin_api())
    proc = run_playbook(os.path.join(PLAYBOOKS, "nginx_fsfreeze.yml"),
                        dict(local_images(cluster), storage_dir=storage, report_path=report),
                        env={"KUBECONFIG": cluster.kubeconfig})
    host_path = pv_host_path(WALKTHROUGH_NS, "nginx-logs")
    walkthrough.append(host_path)
    assert proc.returncode == 0, run_detail(proc)

    bdir = record_dir(storage, "nginx-hook-test")
    record = load_record(bdir)
    assert record["status"]["phase"] == "Completed", record["status"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}, record["status"]
    lines = hook_lines(bdir, "nginx-hook-test")
    assert any("--freeze" in line and "/var/log/nginx" in line for line in lines), lines
    assert any("--unfreeze" in line and "/var/log/nginx" in line for line in lines), lines
    assert any(n.startswith("resources/pods/namespaces/nginx-example/nginx-deployment-")
               for n in archive_names(bdir, "nginx-hook-test"))

    # The output ends like the walkthrough: the `velero backup get` line, then the hookCommand lines,
    # then the files of the nginx-logs volume (opted in with backup.velero.io/backup-volumes), from the backup.
    with open(report) as handle:
        shown = handle.read().splitlines()
    # Before them, `velero backup describe nginx-hook-test --details`.
    described = "\n".join(shown[:shown.index("$ velero backup get nginx-hook-test")])
    for expected in ("$ velero backup describe nginx-hook-test --details", "Name:         nginx-hook-test",
                     "Phase:  Completed", "Namespaces:\n  Included:  nginx-example",
                     "Resource List:\n", "  apps/v1/Deployment:\n    - nginx-example/nginx-deployment\n",
                     "  v1/PersistentVolumeClaim:\n    - nginx-example/nginx-logs\n",
                     "HooksAttempted:  2\nHooksFailed:     0"):
        assert expected in described, (expected, described)
    assert "Phase:  Completed" in proc.stdout  # printed in the playbook's output too
    header = next(i for i, line in enumerate(shown) if line.startswith("NAME"))
    assert shown[header + 1].split()[:2] == ["nginx-hook-test", "Completed"], shown
    tar_at = next(i for i, line in enumerate(shown) if line.startswith("$ tar -tzf "))
    hook_shown = [line for line in shown[header + 2:tar_at] if line.strip() and not line.startswith("$ ")]
    assert hook_shown and all("hookCommand" in line for line in hook_shown), shown
    assert "volume nginx-logs of pod nginx-example/nginx-deployment-" in shown[tar_at], shown
    assert ": succeeded, " in shown[tar_at], shown
    members = [line.strip() for line in shown[tar_at + 1:] if line.startswith("    ")]
    assert "./access.log" in members and "./error.log" in members, shown
    annotations = record["metadata"]["annotations"]
    totals = json.loads(annotations["backup.kubehooks.io/volumes"])
    assert totals["volumes"] == totals["succeeded"] == 1 and totals["failed"] == 0, totals
    assert "Volumes: 1 of 1 captured" in proc.stdout, proc.stdout[-3000:]
    tail = proc.stdout[proc.stdout.rindex("nginx-hook-test"):]
    assert "--unfreeze" in proc.stdout and "Completed" in proc.stdout and "PLAY RECAP" in tail

    # Thawed: the volume is writable again, from a separate process with a time limit.
    writers = Writers(host_path)
    try:
        assert writers.writable(), "the PV is still frozen after the walkthrough"
    finally:
        writers.cleanup()

    # The thaw playbook without an inventory finds the record by name and leaves a finished run alone.
    thaw = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                        {"thaw_backup": "nginx-hook-test", "kubehooks_storage_dir": storage},
                        env={"KUBECONFIG": cluster.kubeconfig})
    assert thaw.returncode == 0, run_detail(thaw)
    assert "is Completed, not InProgress" in thaw.stdout and "Run the post hooks" not in thaw.stdout, thaw.stdout
    assert load_record(bdir) == record
    # Forced: the unfreeze of a filesystem that is not frozen fails harmlessly; shown, recorded, not fatal.
    thaw = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                        {"thaw_backup": "nginx-hook-test", "kubehooks_storage_dir": storage, "thaw_force": "true"},
                        env={"KUBECONFIG": cluster.kubeconfig})
    assert thaw.returncode == 0, run_detail(thaw)
    assert "Failed: nginx-example/nginx-deployment-" in thaw.stdout and "--unfreeze" in thaw.stdout, thaw.stdout
    after = load_record(bdir)
    assert after["status"]["phase"] == "Completed" and "backup.kubehooks.io/thawed" in after["metadata"]["annotations"]
    assert len(hook_lines(bdir, "nginx-hook-test")) == 3


@pytest.mark.parametrize("name", ["nginx_fsfreeze", "backup", "thaw", "delete", "expire"])
def test_playbooks_resolve_by_their_collection_name(name):
    """`ansible-playbook kubehooks.backup.<name>` as with an installed collection (syntax check only)."""
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), "--syntax-check", f"kubehooks.backup.{name}"],
                          capture_output=True, text=True, env=playbook_env(), cwd="/", timeout=120, check=False)
    assert proc.returncode == 0, run_detail(proc)


# --------------------------------------------------------------------------------------------------
# a run killed while frozen, then the thaw playbook
# --------------------------------------------------------------------------------------------------

def write_inventory(path, hosts):
    """A YAML (JSON) inventory of clusters: {host: {var: value}}."""
    path.write_text(json.dumps({"clusters": {"hosts": hosts}}))
    return str(path)


def playbook_cmd(name, inventory, extra_vars):
    bindir = os.path.dirname(sys.executable)
    return [os.path.join(bindir, "ansible-playbook"), os.path.join(PLAYBOOKS, name), "-i", inventory,
            "-e", json.dumps(extra_vars)]


def playbook_env():
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env.update({"ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
                "PATH": bindir + os.pathsep + env["PATH"]})
    return env


def kill_group(proc):
    """SIGKILL the process group of a process this test started (and only that one)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


@pytest.mark.real_node
def test_run_killed_while_frozen_is_thawed_by_the_thaw_playbook(cluster, namespace, pods, pvc, tmp_path):
    claim, host_path = pvc()
    check_pv_path(host_path)
    pods.real_pod("db", privileged=True, pvc=claim, mount_path="/data", labels={"app": "db"})
    storage, name = str(tmp_path / "storage"), "killed"
    inventory = write_inventory(tmp_path / "hosts.json", {
        "local": {"kubehooks_auth": {"kubeconfig": cluster.kubeconfig}, "kubehooks_storage_dir": storage,
                  "kubehooks_allow_hook_rules": True}})
    # Freeze, then a slow pre hook: the run is killed while the filesystem is frozen.
    rules = [{"name": "freeze-then-wait", "includedNamespaces": [namespace],
              "labelSelector": {"matchLabels": {"app": "db"}},
              "pre": [{"exec": {"command": ["/sbin/fsfreeze", "--freeze", "/data"], "timeout": "30s"}},
                      {"exec": {"command": ["/bin/sleep", "600"], "timeout": "15m"}}],
              "post": [{"exec": {"command": ["/sbin/fsfreeze", "--unfreeze", "/data"], "timeout": "30s"}}]}]
    writers = Writers(host_path)
    proc = None
    output = tmp_path / "killed-run.log"
    try:
        with open(output, "w") as log:  # a file, not a pipe: the run never blocks on its own output
            proc = subprocess.Popen(
                playbook_cmd("backup.yml", inventory, {"backup_name": name, "backup_included_namespaces": namespace,
                                                       "backup_hooks": json.dumps(rules)}),
                env=playbook_env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        bdir = os.path.join(storage, "local", "backups", name)
        wait_for(lambda: proc.poll() is not None or os.path.exists(os.path.join(bdir, f"{name}-hook-plan.json")),
                 180, "the hook plan to be recorded")
        assert proc.poll() is None, output.read_text()
        wait_for(lambda: proc.poll() is not None or writers.blocks(2.0), 120, "the filesystem to be frozen", 1)
        assert proc.poll() is None, output.read_text()

        # The machine running the playbook is gone: the watchdog goes with it (what it cannot cover).
        # Simulated by SIGKILL of the watchdog, then of the module (a worker in a session of its own
        # under ansible-core 2.19), then of the playbook's process group - all started by this test.
        wait_for(lambda: os.path.exists(os.path.join(bdir, f"{name}-watchdog.json")), 60, "the watchdog")
        with open(os.path.join(bdir, f"{name}-watchdog.json")) as handle:
            dog = json.load(handle)
        for pid in (dog["pid"], dog["controller_pid"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_group(proc)
        record = load_record(bdir)
        assert record["status"]["phase"] == "InProgress", record["status"]
        assert writers.blocks(2.0), "the filesystem should still be frozen after the kill"

        # A thaw whose post hooks cannot run at all (API unreachable) fails and leaves the record
        # InProgress, so that the next thaw still runs.
        failed = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                              {"thaw_backup": name, "thaw_retry_seconds": 3,
                               "kubehooks_auth": {"host": "https://127.0.0.1:9", "api_key": "x"}},
                              inventory=inventory, timeout=300)
        assert failed.returncode != 0 and "post hooks could not run" in failed.stdout, run_detail(failed)
        assert load_record(bdir)["status"]["phase"] == "InProgress"
        assert writers.blocks(2.0), "nothing should have thawed the filesystem yet"

        thaw = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"), {"thaw_backup": name}, inventory=inventory,
                            timeout=300)
        assert thaw.returncode == 0, run_detail(thaw)
        assert writers.finish(30), "the writes blocked by the freeze did not complete after the thaw\n" + run_detail(thaw)
        assert writers.writable(), "the PV is not writable after the thaw playbook"
        record = load_record(bdir)
        assert record["status"]["phase"] == "Failed", record["status"]
        thawed = json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/thawed"])
        assert thawed["by"] == "thaw playbook" and thawed["hooksAttempted"] == 1, thawed
        assert any("--unfreeze" in line for line in hook_lines(bdir, name))
        # Exactly the pods not thawed yet: a second thaw (forced past InProgress) finds nothing left to thaw.
        again = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"), {"thaw_backup": name}, inventory=inventory,
                             timeout=300)
        assert again.returncode == 0 and "is Failed, not InProgress" in again.stdout, run_detail(again)
    finally:
        if proc is not None:
            kill_group(proc)
        writers.cleanup()


# --------------------------------------------------------------------------------------------------
# the backup playbook the way AWX runs a job: ansible-runner, private data dir, two clusters at once
# --------------------------------------------------------------------------------------------------

BACKUP_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]},
]


@pytest.fixture
def namespace_reader():
    """bind(subjects): a ClusterRole to get/list Namespace objects (cluster-scoped: a Role cannot grant it;
    the export records the Namespace objects in scope) and the shipped Lease Role (the frozen section's
    Lease) bound to the given ServiceAccounts; removed after."""
    api = admin_api()
    name = f"kh-namespace-reader-{uuid.uuid4().hex[:6]}"
    rbac = RBAC
    lease_namespace = []

    def bind(subjects):
        lease_namespace.append(bind_lease_role(api, subjects, name))
        api.create(f"{rbac}/clusterroles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]})
        api.create(f"{rbac}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": sa["service_account"], "namespace": sa["namespace"]}
                         for sa in subjects]})

    yield bind
    api.delete(f"{rbac}/clusterrolebindings/{name}")
    api.delete(f"{rbac}/clusterroles/{name}")
    for namespace in lease_namespace:
        api.delete(f"{rbac}/namespaces/{namespace}/rolebindings/{name}")
        api.delete(f"{rbac}/namespaces/{namespace}/roles/{name}")


@pytest.fixture
def second_namespace(cluster):
    api = admin_api()
    name = f"kh-awx-b-{uuid.uuid4().hex[:6]}"
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": {"kubehooks.local/test": "true"}}},
               exist_ok=False)
    wait_for(lambda: _exists(api, f"/api/v1/namespaces/{name}/serviceaccounts/default"), 60,
             f"default ServiceAccount in {name}")
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


def _exists(api, path):
    try:
        api.get(path)
        return True
    except Exception:  # noqa: BLE001 - not there yet
        return False


def make_fake_pods(core_v1, namespace, count, prefix):
    """``count`` pods on kwok fake nodes with harmless hooks (exec there runs on the host: echo only)."""
    names = [f"{prefix}-{i}" for i in range(count)]
    for pod in names:
        core_v1.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "annotations": {
                PRE + "command": json.dumps(["/bin/echo", f"pre {namespace}/{pod}"]),
                POST + "command": json.dumps(["/bin/echo", f"post {namespace}/{pod}"])}},
            "spec": {"nodeSelector": dict(lc_fake.NODE_SELECTOR), "tolerations": [dict(lc_fake.TOLERATION)],
                     "containers": [{"name": "main", "image": "fake-image"}]}})
    return names


def wait_running(core_v1, namespace, names, timeout=180):
    def running():
        resp = core_v1.list_namespaced_pod(namespace, _preload_content=False)
        phases = {p["metadata"]["name"]: p.get("status", {}).get("phase") for p in json.loads(resp.data)["items"]}
        return all(phases.get(n) == "Running" for n in names)

    wait_for(running, timeout, f"pods {names} in {namespace} to run")


def test_backup_playbook_through_ansible_runner_two_clusters_at_once(
        cluster, core_v1, namespace, second_namespace, sa_token, namespace_reader, tmp_path):
    import ansible_runner

    first = make_fake_pods(core_v1, namespace, 3, "a")
    second = make_fake_pods(core_v1, second_namespace, 3, "b")
    wait_running(core_v1, namespace, first)
    wait_running(core_v1, second_namespace, second)
    # Each cluster carries its own credentials as host vars (least privilege in its namespace); a job
    # credential (K8S_AUTH_*) together with kubehooks_auth is refused (test_awx_credential.py).
    cred_a = sa_token(namespace, BACKUP_RULES, name="awx-backup")
    cred_b = sa_token(second_namespace, BACKUP_RULES, name="awx-backup")
    namespace_reader([cred_a, cred_b])

    storage = str(tmp_path / "storage")
    data = tmp_path / "runner"
    (data / "env").mkdir(parents=True)
    (data / "inventory").mkdir()
    (data / "project").mkdir()
    (data / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }))
    # The job template's project holds a playbook that imports the collection's one by its FQCN
    # (the collection comes from the EE or the project's collections/requirements.yml).
    (data / "project" / "backup.yml").write_text(
        "---\n- name: Nightly backup of the clusters\n  ansible.builtin.import_playbook: kubehooks.backup.backup\n")
    # Survey answers: plain strings, as AWX passes them.
    name = "nightly-" + uuid.uuid4().hex[:6]
    (data / "env" / "extravars").write_text(json.dumps({
        "backup_name": name, "kubehooks_storage_dir": storage, "backup_parallelism": "4",
        "backup_fail_on_partial": "true"}))
    (data / "inventory" / "hosts.json").write_text(json.dumps({
        "all": {"children": {"clusters": {"hosts": {
            "cluster-a": {"backup_included_namespaces": [namespace],
                          "kubehooks_auth": {"host": cred_a["host"], "api_key": cred_a["token"],
                                             "ca_cert": cred_a["ca_cert"], "validate_certs": True}},
            "cluster-b": {"backup_included_namespaces": [second_namespace],
                          "kubehooks_auth": {"host": cred_b["host"], "api_key": cred_b["token"],
                                             "ca_cert": cred_b["ca_cert"]}},
        }}}}}))
    result = ansible_runner.run(private_data_dir=str(data), playbook="backup.yml",
                                forks=5, quiet=True, timeout=600, verbosity=1)
    stdout = result.stdout.read() if result.stdout else ""
    assert result.rc == 0 and result.status == "successful", f"{result.status} rc={result.rc}\n{stdout[-6000:]}"
    assert "K8S_AUTH_API_KEY" not in stdout and cred_a["token"] not in stdout and cred_b["token"] not in stdout
    # AWX stores every job event: no token in any of them either (at -v, as a job template may run).
    events = json.dumps(list(result.events))
    assert cred_a["token"] not in events and cred_b["token"] not in events

    for host, ns, expected in (("cluster-a", namespace, first), ("cluster-b", second_namespace, second)):
        bdir = record_dir(storage, name, host)
        record = load_record(bdir)
        assert record["status"]["phase"] == "Completed", (host, record["status"])
        assert record["status"]["hookStatus"] == {"hooksAttempted": 6, "hooksFailed": 0}, (host, record["status"])
        pods_in_archive = sorted(
            os.path.basename(n)[:-len(".json")] for n in archive_names(bdir, name)
            if n.startswith("resources/pods/namespaces/"))
        assert pods_in_archive == sorted(expected), (host, pods_in_archive)
        assert all(f"/{ns}/" in n or not n.startswith("resources/pods/") for n in archive_names(bdir, name))
    # Records are separated per cluster: nothing else under the storage dir.
    assert sorted(os.listdir(storage)) == ["cluster-a", "cluster-b"]
    # Both clusters ran in the same job, concurrently (strategy free, forks): their runs overlap.
    a = load_record(record_dir(storage, name, "cluster-a"))["status"]
    b = load_record(record_dir(storage, name, "cluster-b"))["status"]
    assert a["startTimestamp"] <= b["completionTimestamp"] and b["startTimestamp"] <= a["completionTimestamp"]
