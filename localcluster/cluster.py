"""Orchestration: up (reuse a healthy cluster, else clean leftovers and start in order), down, status.

Start order (as hack/local-up-cluster.sh): netns, containerd (+ images), etcd, kube-apiserver (wait
/readyz), controller-manager + scheduler, PV mounts, kubelet (wait node Ready), PVs, kwok + fake nodes
(wait Ready), default ServiceAccount (wait), the CSI stack (unless KUBEHOOKS_CSI=0; see csi.py).
"""
import contextlib
import fcntl
import shutil
import time

from . import build, cleanup, csi, fake, images, install, netns, node, pki, processes, storage
from .api import Api, ApiError
from .config import API_PORT, NODE_IP, SERVICE_CIDR
from .ui import Failure, say, step

COMPONENTS = ["containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kubelet", "kwok"]


@contextlib.contextmanager
def locked(cfg):
    """One up/down at a time on this machine."""
    cfg.cluster_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.cluster_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def wait_for(what, check, cfg, component, timeout=None, watch=()):
    """Poll check() until true; fail naming the log when a watched component dies or time runs out."""
    deadline = time.monotonic() + (timeout or cfg.ready_timeout)
    while True:
        try:
            if check():
                return
        except (OSError, ApiError):
            pass
        for name in watch:
            processes.check_alive(cfg, name)
        if time.monotonic() > deadline:
            raise Failure(f"timed out waiting for {what}; see log: {processes.log_path(cfg, component)}")
        time.sleep(0.25)


def _node_ready(api, name):
    """Ready, and schedulable: the node lifecycle controller has removed its not-ready taint."""
    node = api.get(f"/api/v1/nodes/{name}")
    conds = node.get("status", {}).get("conditions", [])
    taints = node.get("spec", {}).get("taints", [])
    return (any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
            and not any(t["key"] == "node.kubernetes.io/not-ready" for t in taints))


def healthy(cfg):
    """Every recorded component runs (pid + start time), the API answers and the real node is Ready."""
    if not all(processes.alive(cfg, n) for n in COMPONENTS):
        return False
    try:
        api = Api.admin(cfg, timeout=5)
        return api.healthy() and _node_ready(api, cfg.node_name)
    except (OSError, ApiError, KeyError):
        return False


def control_plane_argv(cfg):
    k8s, p = cfg.bin_dir("kubernetes"), cfg.pki_dir
    return {
        "etcd": [cfg.bin_dir("etcd") / "etcd", "--name", "kubehooks", "--data-dir", cfg.cluster_dir / "etcd",
                 "--listen-client-urls", "http://127.0.0.1:2379",
                 "--advertise-client-urls", "http://127.0.0.1:2379",
                 "--listen-peer-urls", "http://127.0.0.1:2380",
                 "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                 "--initial-cluster", "kubehooks=http://127.0.0.1:2380", "--unsafe-no-fsync",
                 "--log-level", "warn"],
        "kube-apiserver": [
            k8s / "kube-apiserver", "--etcd-servers", "http://127.0.0.1:2379",
            "--bind-address", "0.0.0.0", "--secure-port", str(API_PORT), "--advertise-address", NODE_IP,
            "--tls-cert-file", p / "apiserver.crt", "--tls-private-key-file", p / "apiserver.key",
            "--client-ca-file", p / "ca.crt", "--token-auth-file", p / "tokens.csv",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", p / "sa.pub", "--service-account-signing-key-file", p / "sa.key",
            "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
            "--allow-privileged=true",
            "--kubelet-client-certificate", p / "apiserver-kubelet-client.crt",
            "--kubelet-client-key", p / "apiserver-kubelet-client.key",
            "--kubelet-preferred-address-types", "InternalIP", "--profiling=false"],
        "kube-controller-manager": [
            k8s / "kube-controller-manager", "--kubeconfig", p / "controller-manager.kubeconfig",
            "--controllers", "*", "--leader-elect=false", "--use-service-account-credentials=false",
            "--service-account-private-key-file", p / "sa.key", "--root-ca-file", p / "ca.crt",
            "--flex-volume-plugin-dir", cfg.cluster_dir / "volume-plugins",
            "--bind-address", "127.0.0.1", "--profiling=false"],
        "kube-scheduler": [
            k8s / "kube-scheduler", "--kubeconfig", p / "scheduler.kubeconfig", "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--profiling=false"],
    }


def _fresh_state(cfg):
    """Remove the previous run's state (etcd, kubelet root, containerd state); keep images and certs.

    Only after every mount under the cluster dir is gone, so nothing mounted is ever deleted into.
    """
    left = storage.mounts_under(cfg.cluster_dir)
    if left:
        raise Failure(f"refusing to reset state: still mounted: {' '.join(left)}")
    for d in (cfg.cluster_dir / "etcd", cfg.kubelet_root, cfg.containerd_state,
              cfg.cluster_dir / "cni" / "ipam", cfg.run_dir):
        shutil.rmtree(d, ignore_errors=True)
    # The CSI driver's volumes belonged to the PVs of the etcd just removed; keep files a loop device
    # still uses (a lazy unmount not finished yet), they are removed by the next fresh start.
    in_use = {back for _, back in storage.our_loop_devices(cfg)}
    for sub in ("volumes", "snapshots"):
        for f in (cfg.csi_dir / sub).glob("*") if (cfg.csi_dir / sub).is_dir() else []:
            if str(f) not in in_use:
                f.unlink()


def start(cfg):
    argv = control_plane_argv(cfg)
    with step("network namespace kubehooks (10.250.0.1 <-> 10.250.0.2)"):
        netns.ensure()
    with step("certificates, tokens and kubeconfigs"):
        pki.ensure(cfg)
        node.write_configs(cfg)
    with step("starting containerd"):
        processes.start(cfg, "containerd", node.containerd_argv(cfg))
        wait_for("containerd", lambda: images.ctr(cfg, "version", check=False).returncode == 0,
                 cfg, "containerd", watch=["containerd"])
    images.ensure_imported(cfg)
    api = Api.admin(cfg, timeout=5)
    with step("starting etcd and kube-apiserver (waiting for /readyz)"):
        processes.start(cfg, "etcd", argv["etcd"])
        processes.start(cfg, "kube-apiserver", argv["kube-apiserver"])
        wait_for("kube-apiserver /readyz", api.healthy, cfg, "kube-apiserver",
                 watch=["etcd", "kube-apiserver"])
    with step("starting kube-controller-manager and kube-scheduler"):
        for name in ("kube-controller-manager", "kube-scheduler"):
            processes.start(cfg, name, argv[name])
    with step(f"mounting {cfg.pv_count} loop-backed ext4 PV files"):
        storage.ensure_mounts(cfg)
    with step(f"starting the kubelet (waiting for node {cfg.node_name} Ready)"):
        processes.start(cfg, "kubelet", node.kubelet_argv(cfg))
        wait_for(f"node {cfg.node_name} Ready", lambda: _node_ready(api, cfg.node_name), cfg, "kubelet",
                 watch=["containerd", "kubelet", "kube-apiserver"])
    finish(cfg, api)


def finish(cfg, api):
    """Idempotent objects and the scale tier; also run when a healthy cluster is reused."""
    with step(f"PersistentVolumes ({cfg.pv_count}, storageClassName \"\")"):
        storage.ensure_pvs(cfg, api)
    if not processes.alive(cfg, "kwok"):
        with step("starting kwok"):
            processes.start(cfg, "kwok", fake.kwok_argv(cfg))
    with step(f"fake nodes ({cfg.fake_nodes}, waiting for Ready)"):
        fake.ensure_nodes(cfg, api)
        for i in range(cfg.fake_nodes):
            wait_for(f"fake node {fake.node_name(i)} Ready", lambda: _node_ready(api, fake.node_name(i)),
                     cfg, "kwok", watch=["kwok"])
    with step("waiting for the default ServiceAccount (controller-manager)"):
        wait_for("ServiceAccount default/default", lambda: api.get("/api/v1/namespaces/default/"
                 "serviceaccounts/default"), cfg, "kube-controller-manager",
                 watch=["kube-controller-manager"])
    if cfg.csi:
        csi.ensure(cfg, api, wait_for)


def up(cfg):
    t0 = time.monotonic()
    with locked(cfg):
        install.ensure_packages(cfg)
        build.ensure_binaries(cfg)
        if healthy(cfg) or _revived(cfg):
            say("==> a healthy cluster is running: reusing it")
            finish(cfg, Api.admin(cfg, timeout=5))
        else:
            if processes.recorded(cfg) or netns.exists() or storage.mounts_under(cfg.cluster_dir) \
                    or storage.our_loop_devices(cfg):
                with step("cleaning up what a previous run left (processes, mounts, netns, loops)"):
                    cleanup.down(cfg)
            _fresh_state(cfg)
            try:
                start(cfg)
            except Failure:
                say("    (the cluster is left as it is for inspection; 'down' removes it)")
                raise
    say(f"==> cluster up in {time.monotonic() - t0:.1f}s; logs in {cfg.log_dir}; kubectl: {cfg.kubectl}")


def _revived(cfg):
    """A running cluster that only lacks components a fault test stops (an API server being restarted):
    start those again instead of wiping the cluster (its etcd, its pods) and starting anew."""
    if not (netns.exists() and processes.alive(cfg, "containerd")):
        return False
    stopped = [name for name in RESTARTABLE if not processes.alive(cfg, name)]
    if not stopped or len(stopped) == len(RESTARTABLE):
        return False
    say(f"==> the cluster runs without {', '.join(stopped)}: starting {'it' if len(stopped) == 1 else 'them'} again")
    try:
        for name in stopped:
            _start_one(cfg, name)
    except Failure as exc:
        say(f"    could not: {exc}")
        return False
    return healthy(cfg)


def down(cfg):
    t0 = time.monotonic()
    with locked(cfg):
        with step("stopping the cluster (containers, processes, mounts, netns, loop devices)"):
            left = cleanup.down(cfg)
    if left:
        raise Failure(f"some mounts could not be removed: {' '.join(left)}")
    say(f"==> cluster down in {time.monotonic() - t0:.1f}s (caches kept in {cfg.cache_dir})")


# Components a test may stop and start again (fault tests: an API outage, a dead kubelet). containerd is
# not among them: stopping it is a teardown (its containers' shims outlive it), not a fault.
RESTARTABLE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kwok")


def _component_argv(cfg, name):
    if name == "kubelet":
        return node.kubelet_argv(cfg)
    if name == "kwok":
        return fake.kwok_argv(cfg)
    return control_plane_argv(cfg)[name]


def stop_component(cfg, name):
    """Stop one recorded component (SIGTERM, then SIGKILL), leaving the rest of the cluster running."""
    if name not in RESTARTABLE:
        raise Failure(f"cannot stop {name!r} alone; one of: {', '.join(RESTARTABLE)}")
    t0 = time.monotonic()
    with locked(cfg):
        # A fault, not a shutdown: a short grace (the API server would otherwise wait for open exec streams).
        processes.stop(cfg, name, timeout=3)
    say(f"==> {name} stopped in {time.monotonic() - t0:.1f}s")


def start_component(cfg, name):
    """Start one stopped component with its usual flags; waits until it serves (apiserver /readyz, node Ready)."""
    if name not in RESTARTABLE:
        raise Failure(f"cannot start {name!r} alone; one of: {', '.join(RESTARTABLE)}")
    t0 = time.monotonic()
    with locked(cfg):
        _start_one(cfg, name)
    say(f"==> {name} started in {time.monotonic() - t0:.1f}s")


# The API server's clients that keep no state of their own. After an outage client-go's reflectors back off
# (800 ms doubling to 30 s, each wait stretched by up to 2x, reset only after 2 min without a failure): after
# two short outages a controller may sleep about a minute before it lists again, and the next namespace waits
# that long for its default ServiceAccount (seen in CI after the fault tests). Restarting them is seconds.
API_CLIENTS = ("kube-controller-manager", "kube-scheduler", "kubelet", "kwok")


def restart_api_clients(cfg):
    """Restart the API server's stateless clients (and the CSI sidecars) so that none waits out a back-off."""
    t0 = time.monotonic()
    with locked(cfg):
        api = Api.admin(cfg, timeout=5)
        if not api.healthy():
            raise Failure("the API server is not serving: start it first (localcluster start kube-apiserver)")
        for name in API_CLIENTS:
            processes.stop(cfg, name, timeout=3)
            _start_one(cfg, name)
        if cfg.csi:
            commands = csi.argv(cfg)
            for name in csi.SIDECARS:
                processes.stop(cfg, name, timeout=3)
                processes.start(cfg, name, commands[name])
        # The new kubelet may report its node NotReady a moment after the old status said Ready: return
        # only once the whole cluster is healthy again (a CI run saw healthy() false right after).
        wait_for("the cluster healthy after the restart", lambda: healthy(cfg), cfg, "kubelet",
                 watch=list(API_CLIENTS))
    say(f"==> the API server's clients restarted in {time.monotonic() - t0:.1f}s")


def _start_one(cfg, name):
    if not processes.alive(cfg, name):
        processes.start(cfg, name, _component_argv(cfg, name))
    api = Api.admin(cfg, timeout=5)
    if name in ("etcd", "kube-apiserver"):
        wait_for("kube-apiserver /readyz", api.healthy, cfg, name, watch=[name])
    elif name == "kubelet":
        wait_for(f"node {cfg.node_name} Ready", lambda: _node_ready(api, cfg.node_name), cfg, name, watch=[name])


def status(cfg):
    ok = True
    for name in COMPONENTS + (csi.COMPONENTS if cfg.csi else []):
        rec = processes.record(cfg, name)
        running = processes.alive(cfg, name)
        ok &= running
        pid = rec["pid"] if rec else "-"
        print(f"{name:<24} {'running' if running else 'STOPPED':<8} pid {pid:<8} "
              f"log {processes.log_path(cfg, name)}")
    api = None
    try:
        api = Api.admin(cfg, timeout=5)
    except (OSError, KeyError):
        pass
    if api and api.healthy():
        print(f"{'kube-apiserver /readyz':<24} ok       {cfg.server}")
        for n in api.get("/api/v1/nodes")["items"]:
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in n.get("status", {}).get("conditions", []))
            print(f"node {n['metadata']['name']:<19} {'Ready' if ready else 'NotReady'}")
    else:
        ok = False
        print(f"{'kube-apiserver /readyz':<24} unreachable")
    print(f"kubeconfig {cfg.kubeconfig}\nkubectl    {cfg.kubectl}")
    return ok
