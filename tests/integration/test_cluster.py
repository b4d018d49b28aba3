"""The local cluster itself: real exec semantics, a real freeze, the scale tier, least privilege, and
the tool's lifecycle (down leaves nothing behind; up after down and after a crash)."""
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from localcluster import cleanup as lc_cleanup
from localcluster import cluster as lc_cluster
from localcluster import config as lc_config
from localcluster import csi as lc_csi
from localcluster import netns as lc_netns
from localcluster import processes as lc_processes
from localcluster import storage as lc_storage

REPO = Path(__file__).resolve().parents[2]


def exec_status(core_v1, namespace, pod, argv, container=None, timeout=30):
    """Run argv in the pod; return (status dict from the error channel, stdout, stderr).

    The error channel (3) is read and parsed exactly once here: WSClient.returncode re-reads it and
    breaks after that."""
    kwargs = {"container": container} if container else {}
    ws = stream(core_v1.connect_get_namespaced_pod_exec, pod, namespace, command=list(argv),
                stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False, **kwargs)
    out, err = [], []
    deadline = time.monotonic() + timeout
    try:
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err.append(ws.read_stderr())
        raw = ws.read_channel(3)
    finally:
        ws.close()
    status = json.loads(raw) if raw else None
    return status, "".join(out), "".join(err)


@pytest.fixture
def real_pod(pods):
    return pods.real_pod("exec-target")["metadata"]["name"]


@pytest.mark.real_node
def test_exec_exit_zero_is_success(core_v1, namespace, real_pod):
    status, out, unused_err = exec_status(core_v1, namespace, real_pod, ["sh", "-c", "echo hello"])
    assert status == {"metadata": {}, "status": "Success"}
    assert out == "hello\n"


@pytest.mark.real_node
def test_exec_exit_seven_is_nonzero_exit_code(core_v1, namespace, real_pod):
    status, unused_out, err = exec_status(core_v1, namespace, real_pod, ["sh", "-c", "echo oops >&2; exit 7"])
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0] == {"reason": "ExitCode", "message": "7"}
    assert err == "oops\n"


@pytest.mark.real_node
def test_exec_missing_program_is_a_failure(core_v1, namespace, real_pod):
    status, unused_out, unused_err = exec_status(core_v1, namespace, real_pod, ["/no/such/program"])
    # runc reports it as an exec failure (code 500), not as exit code 127
    assert status["status"] == "Failure"
    assert status["reason"] == "InternalError"
    assert "no such file or directory" in status["message"]


WRITER = textwrap.dedent("""
    import os, sys
    print("writing", flush=True)
    with open(sys.argv[1], "w") as f:
        f.write("written from the host\\n")
        f.flush()
        os.fsync(f.fileno())
""")


def _thaw_from_host(path):
    """Best-effort thaw of our PV mount with a time limit (EINVAL when already thawed is fine)."""
    try:
        subprocess.run(["fsfreeze", "--unfreeze", path], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass


@pytest.mark.real_node
def test_fsfreeze_in_privileged_container_blocks_host_write(core_v1, namespace, pods, pvc):
    claim, host_path = pvc()
    assert host_path.startswith(str(lc_config.load().pv_dir) + "/")  # our loop file, never /dev/vda
    pod = pods.real_pod("freezer", privileged=True, pvc=claim, mount_path="/data")["metadata"]["name"]
    writer = None
    try:
        status, unused_out, err = exec_status(core_v1, namespace, pod, ["fsfreeze", "--freeze", "/data"])
        assert status["status"] == "Success", (status, err)
        # The writer is a separate process: a write to a frozen fs sleeps uninterruptibly until the thaw.
        writer = subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(host_path, "host-write.txt")],
                                  stdout=subprocess.PIPE, text=True)
        ready, unused_w, unused_x = select.select([writer.stdout], [], [], 30)
        assert ready and writer.stdout.readline() == "writing\n", "the writer did not start"
        time.sleep(2)
        assert writer.poll() is None, "the host write finished although the filesystem was frozen"
        status, unused_out, err = exec_status(core_v1, namespace, pod, ["fsfreeze", "--unfreeze", "/data"])
        assert status["status"] == "Success", (status, err)
        assert writer.wait(timeout=30) == 0
        status, out, unused_err = exec_status(core_v1, namespace, pod, ["cat", "/data/host-write.txt"])
        assert out == "written from the host\n"
    finally:
        _thaw_from_host(host_path)
        if writer is not None and writer.poll() is None:
            try:
                writer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                writer.kill()


def test_200_pods_on_fake_nodes_reach_running(pods, core_v1, namespace, cluster):
    start = time.monotonic()
    names = pods.fake_pods(200, timeout=240)
    listed = json.loads(core_v1.list_namespaced_pod(namespace, _preload_content=False).data)["items"]
    assert len(names) == 200
    assert {p["spec"]["nodeName"] for p in listed} <= set(cluster.fake_nodes)
    assert time.monotonic() - start < 240


def test_fake_exec_runs(pods, core_v1, namespace):
    name = pods.fake_pods(1, prefix="fake-exec")[0]
    status, out, unused_err = exec_status(core_v1, namespace, name, ["echo", "fake"])
    assert status["status"] == "Success"
    assert out == "fake\n"


def test_real_pods_never_land_on_fake_nodes(pods, cluster):
    pod = pods.real_pod("placed", wait=True)
    assert pod["spec"]["nodeName"] == cluster.node_name


def test_sa_token_is_least_privilege(sa_token, namespace, cluster):
    creds = sa_token(namespace, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    conf = client.Configuration()
    conf.host, conf.ssl_ca_cert = creds["host"], creds["ca_cert"]
    conf.api_key = {"authorization": "Bearer " + creds["token"]}
    core = client.CoreV1Api(client.ApiClient(conf))
    assert core.list_namespaced_pod(namespace).items == []
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default")
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret(namespace)
    assert exc.value.status == 403


def test_cli_token_prints_a_working_token(cluster, namespace):
    rules = json.dumps([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    proc = subprocess.run([sys.executable, "-m", "localcluster", "token", "--namespace", namespace,
                           "--name", "reader", "--rules-json", rules], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    conf = client.Configuration()
    conf.host, conf.ssl_ca_cert = cluster.host, cluster.ca_cert
    conf.api_key = {"authorization": "Bearer " + proc.stdout.strip()}
    assert client.CoreV1Api(client.ApiClient(conf)).list_namespaced_config_map(namespace).items is not None


def test_kubectl_matches_the_cluster(cluster):
    out = json.loads(cluster.kubectl_run("version", "-o", "json").stdout)
    assert out["clientVersion"]["gitVersion"] == out["serverVersion"]["gitVersion"]


# --- lifecycle: runs last (conftest orders 'lifecycle' tests after the rest) and leaves the cluster up


def _leftovers(cfg, old_records):
    """What a stopped cluster must not leave: recorded processes, mounts, our loops, the netns."""
    found = []
    for name, rec in old_records.items():
        st = lc_processes._starttime(rec["pid"])
        if st is not None and st[0] == rec["starttime"] and st[1] != "Z":
            found.append(f"process {name} pid {rec['pid']}")
    found += [f"mount {m}" for m in lc_storage.mounts_under(cfg.cluster_dir)]
    found += [f"loop {dev} -> {back}" for dev, back in lc_storage.our_loop_devices(cfg)]
    if lc_netns.exists():
        found.append("netns kubehooks")
    found += [f"container process {pid}" for pid in sorted(lc_cleanup.container_pids(cfg))]
    return found


def _eventually(check, what, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ApiException:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _tool(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "localcluster", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"localcluster {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.lifecycle
@pytest.mark.real_node
def test_lifecycle_down_up_and_crash_recovery(cluster, core_v1, namespace, pods, pvc):
    cfg = lc_config.load()
    # A real pod with a PV, so that down has containers, volume mounts and a loop-backed PV to remove.
    claim, host_path = pvc()
    pods.real_pod("lifecycle", pvc=claim)
    if cfg.csi:  # and a volume of the CSI test driver: its loop device and mounts must go too
        core_v1.create_namespaced_persistent_volume_claim(namespace, {"metadata": {"name": "csi"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": lc_csi.STORAGE_CLASS,
            "resources": {"requests": {"storage": "16Mi"}}}})
        pods.real_pod("lifecycle-csi", pvc="csi")
        assert any(loop[1].startswith(f"{cfg.csi_dir}/") for loop in lc_storage.our_loop_devices(cfg))
    records = {n: lc_processes.record(cfg, n) for n in lc_processes.recorded(cfg)}
    assert set(lc_cluster.COMPONENTS + (lc_csi.COMPONENTS if cfg.csi else [])) <= set(records)

    # down leaves nothing behind; a second down has nothing to do; status says it is down
    _tool("down")
    assert _leftovers(cfg, records) == []
    _tool("down")
    assert subprocess.run([sys.executable, "-m", "localcluster", "status"], cwd=REPO, capture_output=True,
                          timeout=60, check=False).returncode == 1

    # up after down: a healthy cluster; the last line of stdout is the export; a second up reuses it
    proc = _tool("up")
    assert proc.stdout.splitlines()[-1] == f"export KUBECONFIG={cfg.kubeconfig}"
    assert lc_cluster.healthy(cfg)
    pids = {n: lc_processes.record(cfg, n)["pid"] for n in lc_cluster.COMPONENTS}
    proc = _tool("up")
    assert "reusing it" in proc.stderr
    assert pids == {n: lc_processes.record(cfg, n)["pid"] for n in lc_cluster.COMPONENTS}
    _tool("status")

    # a crash: every recorded process SIGKILLed while a pod runs and a PV mount is frozen
    ns = "kh-lifecycle-crash"
    core_v1.create_namespace({"metadata": {"name": ns}})
    _eventually(lambda: core_v1.read_namespaced_service_account("default", ns), "default SA")
    core_v1.create_namespaced_pod(ns, {"metadata": {"name": "victim"}, "spec": {
        "nodeSelector": {"kubernetes.io/hostname": cfg.node_name}, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": cfg.node_image, "command": ["sleep", "infinity"]}]}})
    _eventually(lambda: core_v1.read_namespaced_pod("victim", ns).status.phase == "Running", "victim Running")
    frozen = str(lc_storage.pv_mount(cfg, 0))
    try:
        subprocess.run(["fsfreeze", "--freeze", frozen], check=True, timeout=10)
        records = {n: lc_processes.record(cfg, n) for n in lc_processes.recorded(cfg)}
        for name in records:
            assert lc_processes.alive(cfg, name)
            os.kill(records[name]["pid"], signal.SIGKILL)
        proc = _tool("up")
        assert proc.stdout.splitlines()[-1] == f"export KUBECONFIG={cfg.kubeconfig}"
        assert "cleaning up what a previous run left" in proc.stderr
        assert lc_cluster.healthy(cfg)
    finally:
        _thaw_from_host(frozen)
    # the cluster stays up for whoever comes next
    assert lc_cluster.healthy(cfg)


@pytest.mark.lifecycle
def test_stop_and_start_one_component_for_fault_tests(cluster):
    """`localcluster stop kube-apiserver` makes the API refuse connections while the rest runs; `up` (as
    `make integration` runs it) or `start` brings it back on the same state instead of a new cluster."""
    cfg = lc_config.load()
    others = {n: lc_processes.record(cfg, n) for n in lc_cluster.COMPONENTS if n != "kube-apiserver"}
    default_uid = cluster.kubectl_run("get", "namespace", "default", "-o", "jsonpath={.metadata.uid}").stdout
    _tool("stop", "kube-apiserver")
    try:
        assert not lc_processes.alive(cfg, "kube-apiserver")
        refused = subprocess.run([cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "get", "--raw", "/readyz",
                                  "--request-timeout=5s"], capture_output=True, text=True, timeout=30, check=False)
        assert refused.returncode != 0 and "refused" in refused.stderr, refused.stderr
        # the other components were left alone (same pid and start time)
        assert {n: lc_processes.record(cfg, n) for n in others} == others
        assert all(lc_processes.alive(cfg, n) for n in others)
        # `up` on a cluster that only lacks the API server starts it again: nothing is wiped
        up = _tool("up")
        assert "starting it again" in up.stderr and "cleaning up" not in up.stderr, up.stderr[-2000:]
    finally:
        _tool("start", "kube-apiserver")  # nothing to do when `up` revived it
    assert cluster.kubectl_run("get", "--raw", "/readyz").stdout.strip() == "ok"
    assert lc_cluster.healthy(cfg)
    assert cluster.kubectl_run("get", "namespace", "default", "-o", "jsonpath={.metadata.uid}").stdout == default_uid
    assert {n: lc_processes.record(cfg, n) for n in others} == others
    wrong = subprocess.run([sys.executable, "-m", "localcluster", "stop", "containerd"], cwd=REPO,
                           capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


@pytest.mark.lifecycle
def test_restart_clients_after_an_outage_leaves_no_back_off(cluster, core_v1):
    """After an API outage `localcluster restart-clients` (the fault tests' cleanup) restarts the stateless
    clients: new pids, the same etcd state, and a new namespace gets its default ServiceAccount at once
    instead of after client-go's list back-off."""
    cfg = lc_config.load()
    _tool("stop", "kube-apiserver")
    _tool("start", "kube-apiserver")
    clients = list(lc_cluster.API_CLIENTS) + (list(lc_csi.SIDECARS) if cfg.csi else [])
    before = {n: lc_processes.record(cfg, n)["pid"] for n in clients}
    keep = {n: lc_processes.record(cfg, n) for n in ("etcd", "kube-apiserver", "containerd")}
    _tool("restart-clients")
    after = {n: lc_processes.record(cfg, n)["pid"] for n in clients}
    assert all(before[n] != after[n] and lc_processes.alive(cfg, n) for n in clients), (before, after)
    assert {n: lc_processes.record(cfg, n) for n in keep} == keep
    assert lc_cluster.healthy(cfg)
    ns = f"kh-restart-clients-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespace({"metadata": {"name": ns}})
    try:
        _eventually(lambda: core_v1.read_namespaced_service_account("default", ns), "default SA", timeout=20)
    finally:
        core_v1.delete_namespace(ns)
